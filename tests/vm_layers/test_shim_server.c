// SPDX-License-Identifier: MIT
/*
 * Unit test of the agent's side of the shim protocol (src/compute/vm/
 * shim_server.c) over real sockets, with a recording handler instead of a
 * VM: good MAP, READOPT, READOPT_DONE and UNMAP frames reach the handler
 * and are answered with its result; malformed frames (short, too long,
 * a MAP without its uffd, an unknown operation) are answered -EBADMSG or
 * -EOPNOTSUPP and the connection stays usable; every uffd that is not
 * handed to the handler is closed; a peer that hangs up is reported, not
 * answered. Then the threaded server on a socket path: it serves, copes
 * with garbage and hang-ups, and stops promptly. An alarm turns a hang
 * into a failure.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fds.h"
#include "shim_server.h"
#include "tap.h"

struct rec {
	int maps, readopts, unmaps, dones, kept;
	unsigned done_n;
	uint64_t addr, kept_addr;
	size_t path_len;
	int map_ret, unmap_ret;
};

static int rec_map(void *opaque, const struct shim_msg *msg, int uffd, bool readopt)
{
	struct rec *r = opaque;

	if (readopt)
		r->readopts++;
	else
		r->maps++;
	r->addr = msg->addr;
	r->path_len = strlen(msg->path);
	(void)uffd;   /* the server's until the handler succeeds */
	return r->map_ret;
}

static int rec_unmap(void *opaque, const struct shim_msg *msg)
{
	struct rec *r = opaque;

	r->unmaps++;
	r->addr = msg->addr;
	return r->unmap_ret;
}

static void rec_done(void *opaque, unsigned n)
{
	struct rec *r = opaque;

	r->dones++;
	r->done_n = n;
}

static void rec_keep(void *opaque, uint64_t addr, int uffd)
{
	struct rec *r = opaque;

	r->kept++;
	r->kept_addr = addr;
	close(uffd);
}

static const struct shim_server_ops ops = {
	.map = rec_map,
	.unmap = rec_unmap,
	.readopt_done = rec_done,
	.keep_uffd = rec_keep,
};

/* Send len bytes of buf, with fd attached if fd >= 0. */
static int send_frame(int sock, const void *buf, size_t len, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

static struct shim_msg frame(uint32_t op, uint64_t addr, uint64_t len)
{
	struct shim_msg m = { .op = op, .pid = 1, .addr = addr, .len = len };

	snprintf(m.path, sizeof(m.path), "/run/vm/ram-base");
	return m;
}

/* Handle one frame on the server end; the answer the client end read (or the handle error). */
static int32_t roundtrip(int srv, int cli, struct rec *r, const void *buf, size_t len, int fd)
{
	int32_t status = 1, got = 1;
	int h;

	if (send_frame(cli, buf, len, fd) < 0)
		return 1000;
	h = shim_server_handle(srv, &ops, r, &status);
	if (h < 0)
		return h;
	if (recv(cli, &got, sizeof(got), 0) != (ssize_t)sizeof(got) || got != status)
		return 2000;
	return got;
}

static void test_frames(void)
{
	struct rec r = { 0 };
	struct shim_msg m;
	char big[sizeof(struct shim_msg) + 64];
	int sv[2], efd, before;
	int32_t st;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		ok(0, "socketpair: %s", strerror(errno));
		return;
	}
	efd = eventfd(0, EFD_CLOEXEC);   /* stands in for a uffd */
	before = test_open_fds();

	m = frame(SHIM_MSG_MAP, 0x7f0000000000ull, 1 << 20);
	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m), efd);
	is(st, 0, "MAP with a uffd: answered 0");
	ok(r.maps == 1 && r.addr == m.addr, "MAP reached the handler with its address");
	ok(r.kept == 1 && r.kept_addr == m.addr, "its uffd went to keep_uffd");
	is(test_open_fds(), before, "no descriptor left behind after a MAP");

	r.map_ret = -ENOENT;
	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m), efd);
	is(st, -ENOENT, "MAP the handler refuses: answered with its error");
	ok(r.maps == 2 && r.kept == 1, "a refused MAP's uffd is not kept");
	is(test_open_fds(), before, "a refused MAP's uffd is closed");
	r.map_ret = 0;

	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m), -1);
	is(st, -EBADMSG, "MAP without a uffd: -EBADMSG");
	is(r.maps, 2, "a MAP without a uffd never reaches the handler");

	m.op = SHIM_MSG_READOPT;
	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m), efd);
	ok(st == 0 && r.readopts == 1 && r.kept == 2, "READOPT: a MAP with readopt set, uffd kept");

	m = frame(SHIM_MSG_READOPT_DONE, 0, 3);
	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m), -1);
	ok(st == 0 && r.dones == 1 && r.done_n == 3, "READOPT_DONE: the count reaches the handler");
	m.len = UINT64_MAX;
	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m), -1);
	ok(st == 0 && r.done_n == UINT32_MAX, "READOPT_DONE: a huge count is clamped");

	m = frame(SHIM_MSG_UNMAP, 0x1000, 4096);
	r.unmap_ret = -ERANGE;
	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m), -1);
	ok(st == -ERANGE && r.unmaps == 1 && r.addr == 0x1000, "UNMAP: answered with the handler's result");
	r.unmap_ret = 0;
	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m), efd);
	ok(st == -EBADMSG && r.kept == 2 && r.unmaps == 1,
	   "UNMAP that carried a fd: refused, the fd not kept as a uffd");
	is(test_open_fds(), before, "... and closed, not leaked");
	m = frame(SHIM_MSG_READOPT_DONE, 0, 1);
	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m), efd);
	ok(st == -EBADMSG && r.kept == 2 && r.dones == 2, "READOPT_DONE that carried a fd: refused");
	is(test_open_fds(), before, "... and its fd closed");

	m = frame(99, 0, 0);
	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m), efd);
	is(st, -EOPNOTSUPP, "unknown operation: -EOPNOTSUPP");
	is(test_open_fds(), before, "an unknown operation's fd is closed");

	m = frame(SHIM_MSG_MAP, 0x2000, 4096);
	st = roundtrip(sv[0], sv[1], &r, &m, 10, efd);
	is(st, -EBADMSG, "short frame: -EBADMSG");
	is(test_open_fds(), before, "a short frame's fd is closed");
	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m) - 1, -1);
	is(st, -EBADMSG, "frame one byte short: -EBADMSG");

	memset(big, 'x', sizeof(big));
	memcpy(big, &m, sizeof(m));
	st = roundtrip(sv[0], sv[1], &r, big, sizeof(big), efd);
	is(st, -EBADMSG, "frame too long (truncated): -EBADMSG");
	is(test_open_fds(), before, "a long frame's fd is closed");
	is(r.maps, 2, "no malformed frame reached the handler");

	memset(m.path, 'p', sizeof(m.path));   /* no NUL */
	st = roundtrip(sv[0], sv[1], &r, &m, sizeof(m), efd);
	ok(st == 0 && r.path_len == sizeof(m.path) - 1,
	   "a path without its NUL is cut, never read past (after garbage, the connection still works)");

	close(sv[1]);
	{
		int32_t status = 7;
		int h = shim_server_handle(sv[0], &ops, &r, &status);

		ok(h == -EPIPE || h == -ECONNRESET, "peer hung up: reported (%d), nothing answered", h);
		is(status, 7, "no answer to a peer that is gone");
	}
	close(sv[0]);
	close(efd);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int32_t ask(int fd, const void *buf, size_t len, int attach)
{
	int32_t got = 12345;

	if (send_frame(fd, buf, len, attach) < 0 || recv(fd, &got, sizeof(got), 0) != sizeof(got))
		return 12345;
	return got;
}

static void test_server(void)
{
	char dir[] = "/tmp/shimsrv-XXXXXX", path[128], longpath[200];
	struct shim_server *s = NULL;
	struct rec r = { 0 };
	struct shim_msg m = frame(SHIM_MSG_MAP, 0x4000, 4096);
	int efd = eventfd(0, EFD_CLOEXEC), a, b, n;

	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	memset(longpath, 'l', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	is(shim_server_start(longpath, &ops, &r, &s), -ENAMETOOLONG,
	   "a socket path too long: -ENAMETOOLONG");
	snprintf(path, sizeof(path), "%s/shim.sock", dir);
	n = shim_server_start(path, &ops, &r, &s);
	is(n, 0, "server listens on %s", path);
	if (n < 0)
		return;
	a = connect_to(path);
	b = connect_to(path);
	ok(a >= 0 && b >= 0, "two connections (QEMU's threads each have one)");
	is(ask(a, &m, sizeof(m), efd), 0, "MAP over the first connection: 0");
	is(ask(b, "garbage", 7, -1), -EBADMSG, "garbage over the second: -EBADMSG");
	m.op = SHIM_MSG_UNMAP;
	is(ask(b, &m, sizeof(m), -1), 0, "the second connection still works after garbage");
	close(b);
	m.op = 42;
	is(ask(a, &m, sizeof(m), -1), -EOPNOTSUPP, "the first still works after the second hung up");
	ok(r.maps == 1 && r.unmaps == 1 && r.kept == 1, "the handler saw one MAP and one UNMAP");
	/* A new server on the same path replaces the stale socket (a restarted agent). */
	shim_server_free(s);
	close(a);
	s = NULL;
	is(shim_server_start(path, &ops, &r, &s), 0, "a new server replaces the stale socket");
	a = connect_to(path);
	m.op = SHIM_MSG_READOPT_DONE;
	m.len = 0;
	is(ask(a, &m, sizeof(m), -1), 0, "and serves (READOPT_DONE 0)");
	shim_server_free(s);   /* with a connection still open: the thread must not hang */
	ok(1, "shim_server_free returns with a client connected");
	shim_server_free(NULL);
	close(a);
	close(efd);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	alarm(30);   /* a hang is a failure, not a stuck test */
	signal(SIGPIPE, SIG_IGN);
	test_frames();
	test_server();
	done_testing();
	return tap_exit();
}
