// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the shim protocol (src/shim/shim.h): the agent's
 * parser of the shim's messages (shim_server_recv and shim_server_handle
 * in src/compute/vm/shim_server.c: size and truncation checks, descriptors
 * passed with SCM_RIGHTS, dispatch by operation) and the shim's reading of
 * the agent's answer (shim_answer_status).
 *
 * Messages go over a real SOCK_SEQPACKET socketpair, as between QEMU and
 * the agent, each with 0 to 3 descriptors attached (eventfds standing in
 * for userfaultfds). The handler ops are the target's: they record what
 * they were handed and answer from the message's fields, so both the
 * success and the error path of every message kind run. Every descriptor
 * the agent receives must end up either closed by the server or handed to
 * keep_uffd exactly once; an input that leaves one open fails.
 *
 * Input layout: a sequence of messages, each a byte of descriptor count
 * (low 2 bits) and a little-endian 16-bit length (capped at MSG_MAX),
 * then that many bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "shim_server.h"

#define MSG_MAX 1024
#define MAX_FDS 3

struct seen {
	unsigned calls;
	int uffd;          /* handed to map, not yet kept or refused */
};

static int op_map(void *opaque, const struct shim_msg *msg, int uffd, bool readopt)
{
	struct seen *s = opaque;

	CHECK(uffd >= 0 && s->uffd < 0);
	CHECK(memchr(msg->path, '\0', sizeof(msg->path)) != NULL);
	CHECK(readopt == (msg->op == SHIM_MSG_READOPT));
	s->calls++;
	if (msg->addr % 2)
		return -EINVAL;  /* refused: the server must close the uffd */
	s->uffd = uffd;
	return 0;
}

static int op_unmap(void *opaque, const struct shim_msg *msg)
{
	struct seen *s = opaque;

	CHECK(msg->op == SHIM_MSG_UNMAP);
	s->calls++;
	return msg->len ? 0 : -ENOENT;
}

static void op_readopt_done(void *opaque, unsigned n)
{
	struct seen *s = opaque;

	s->calls++;
}

static void op_keep_uffd(void *opaque, uint64_t addr, int uffd)
{
	struct seen *s = opaque;

	CHECK(uffd == s->uffd);
	s->uffd = -1;
	close(uffd);
}

static const struct shim_server_ops ops = {
	.map = op_map,
	.unmap = op_unmap,
	.readopt_done = op_readopt_done,
	.keep_uffd = op_keep_uffd,
};

/* Send one message with `nfds` eventfds attached (ours are closed after). */
static void send_msg(int fd, const uint8_t *p, size_t len, unsigned nfds)
{
	char cbuf[CMSG_SPACE(MAX_FDS * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[MAX_FDS];

	for (unsigned i = 0; i < nfds; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
		CHECK(fds[i] >= 0);
	}
	if (nfds) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	CHECK(sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)len);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	int fds0 = test_open_fds(), sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	while (in.n) {
		uint8_t buf[MSG_MAX];
		unsigned nfds = fz_u8(&in) % (MAX_FDS + 1);
		size_t len = fz_u16(&in) % (MSG_MAX + 1);
		struct seen s = { .uffd = -1 };
		struct shim_msg msg;
		int32_t status = 1, answer = 1;
		bool whole;
		int r;

		len = fz_bytes(&in, buf, len);
		/*
		 * A message the server takes: the right size, at most one descriptor,
		 * and that only with MAP and READOPT (the others take none).
		 */
		whole = len == sizeof(msg) && nfds <= 1;
		if (whole)
			memcpy(&msg, buf, sizeof(msg));
		send_msg(sv[0], buf, len, nfds);
		r = shim_server_handle(sv[1], &ops, &s, &status);
		if (len == 0) {
			/* An empty message reads as a hang-up: the agent closes the connection. */
			CHECK(r == -EPIPE && s.calls == 0);
			break;
		}
		CHECK(r == 0);
		CHECK(status <= 0 && status > -4096);
		CHECK(whole || (status == -EBADMSG && s.calls == 0));
		if (whole && nfds && msg.op != SHIM_MSG_MAP && msg.op != SHIM_MSG_READOPT)
			CHECK(s.calls == 0 && status != 0);
		CHECK(s.uffd < 0);      /* kept or closed, never left over */
		if (whole && status == 0)
			CHECK(msg.op >= SHIM_MSG_MAP && msg.op <= SHIM_MSG_READOPT_DONE);
		/* The shim's side reads the answer. */
		CHECK(recv(sv[0], &answer, sizeof(answer), MSG_DONTWAIT) == sizeof(answer));
		CHECK(answer == status && shim_answer_status(answer) == status);
	}
	close(sv[0]);
	close(sv[1]);
	CHECK(test_open_fds() == fds0);
	return 0;
}
