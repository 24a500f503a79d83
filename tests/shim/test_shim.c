// SPDX-License-Identifier: MIT
/*
 * libdisagg-shim.so, end to end: this test plays the compute agent. It
 * listens on a SOCK_SEQPACKET socket, starts shim_mapper with the shim
 * preloaded, receives the userfaultfd the shim registered inside the child,
 * serves every MISSING fault with a known page (UFFDIO_COPY from here, into
 * the child's address space), and checks what the child read.
 *
 * Cases: pages served by the "agent"; the agent refusing a mapping (mmap
 * fails with its errno); a file outside the directory and a process without
 * the variables are untouched (holes read as zeros, no message); the agent
 * dying in the middle (a fault read and never served) and a new agent on
 * the same socket path getting the mapping and its uffd back (READOPT),
 * waking the lost fault and serving the rest: the child reads every page
 * right.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../unit/tap.h"
#include "shim.h"

#define PAGES 64
#define LEN (PAGES * 4096)

extern char **environ;

static char dir[64], sockpath[128], file_in[160], file_out[160], file_re[160];

static int listen_sock(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	strcpy(sa.sun_path, sockpath);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
		return -1;
	return fd;
}

static pid_t spawn(const char *file, int with_env, int *ret_out)
{
	char *argv[] = { (char *)SHIM_MAPPER, (char *)file, (char *)"0x40000", NULL };
	char preload[300], edir[128], esock[160];
	char *envp[] = { preload, edir, esock, NULL };
	char *envp_plain[] = { preload, NULL };
	posix_spawn_file_actions_t fa;
	int pipefd[2];
	pid_t pid;

	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", SHIM_LIB);
	snprintf(edir, sizeof(edir), "DISAGG_SHIM_DIR=%s", dir);
	snprintf(esock, sizeof(esock), "DISAGG_SHIM_SOCK=%s", sockpath);
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	if (posix_spawn(&pid, SHIM_MAPPER, &fa, NULL, argv, with_env ? envp : envp_plain))
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	*ret_out = pipefd[0];
	return pid;
}

static int recv_map(int conn, struct shim_msg *msg, int *ret_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(*msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);

	*ret_fd = -1;
	if (n != (ssize_t)sizeof(*msg))
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
	return 0;
}

static void send_status(int conn, int32_t st)
{
	(void)!send(conn, &st, sizeof(st), MSG_NOSIGNAL);
}

/*
 * Serve MISSING faults (page i gets the byte value i+1) until the child
 * announces its munmap on `conn`; *ret_unmap gets that message.
 */
static int serve(int uffd, uint64_t base, int conn, struct shim_msg *ret_unmap)
{
	static char page[4096] __attribute__((aligned(4096)));
	int served = 0;

	for (;;) {
		struct pollfd p[2] = { { .fd = uffd, .events = POLLIN },
				       { .fd = conn, .events = POLLIN } };
		struct uffd_msg m;

		if (poll(p, 2, 10000) <= 0) {
			diag("no fault and no exit within 10 s");
			return -1;
		}
		if (p[0].revents & POLLIN) {
			if (read(uffd, &m, sizeof(m)) != sizeof(m))
				continue;
			if (m.event != UFFD_EVENT_PAGEFAULT)
				continue;
			uint64_t addr = m.arg.pagefault.address & ~4095ull;
			struct uffdio_copy cp = { .dst = addr, .src = (uintptr_t)page, .len = 4096 };

			memset(page, (int)((addr - base) / 4096 + 1), sizeof(page));
			if (ioctl(uffd, UFFDIO_COPY, &cp) < 0 && errno != EEXIST) {
				diag("UFFDIO_COPY at %#llx: %s", (unsigned long long)addr,
				     strerror(errno));
				return -1;
			}
			served++;
			continue;
		}
		if (p[1].revents) {
			int nofd;

			if (recv_map(conn, ret_unmap, &nofd) < 0 || nofd >= 0)
				return -1;
			return served;
		}
	}
}

/* Serve MISSING faults until the one on page stop_pg, which is read and dropped. */
static int serve_until(int uffd, uint64_t base, uint64_t stop_pg)
{
	static char page[4096] __attribute__((aligned(4096)));
	int served = 0;

	for (;;) {
		struct pollfd p = { .fd = uffd, .events = POLLIN };
		struct uffd_msg m;
		uint64_t addr;

		if (poll(&p, 1, 10000) <= 0) {
			diag("no fault within 10 s");
			return -1;
		}
		if (read(uffd, &m, sizeof(m)) != sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		addr = m.arg.pagefault.address & ~4095ull;
		if ((addr - base) / 4096 == stop_pg)
			return served;
		struct uffdio_copy cp = { .dst = addr, .src = (uintptr_t)page, .len = 4096 };

		memset(page, (int)((addr - base) / 4096 + 1), sizeof(page));
		if (ioctl(uffd, UFFDIO_COPY, &cp) < 0 && errno != EEXIST)
			return -1;
		served++;
	}
}

/* Accept one connection within 10 s. */
static int accept_within(int ls)
{
	struct pollfd p = { .fd = ls, .events = POLLIN };

	if (poll(&p, 1, 10000) <= 0)
		return -1;
	return accept4(ls, NULL, NULL, SOCK_CLOEXEC);
}

static int read_line(int fd, char *buf, size_t len)
{
	ssize_t n = read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return (int)n;
}

int main(void)
{
	struct shim_msg msg;
	char line[128];
	int ls, conn, uffd = -1, out, st, served;
	pid_t pid;

	if (access("/proc/sys/vm/unprivileged_userfaultfd", F_OK) != 0) {
		plan_skip_all("userfaultfd not available");
		return 0;
	}
	plan(20);
	strcpy(dir, "/dev/shm/disagg-shimtest.XXXXXX");
	if (!mkdtemp(dir))
		{ diag("mkdtemp: %s", strerror(errno)); return 1; }
	snprintf(sockpath, sizeof(sockpath), "%s/agent.sock", dir);
	snprintf(file_in, sizeof(file_in), "%s/ram0", dir);
	snprintf(file_re, sizeof(file_re), "%s/ram1", dir);
	strcpy(file_out, "/dev/shm/disagg-shimtest-outside");
	for (const char *f = file_in; f; f = f == file_in ? file_out : f == file_out ? file_re : NULL) {
		int fd = open(f, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0 || ftruncate(fd, LEN) < 0)
			{ diag("create %s: %s", f, strerror(errno)); return 1; }
		close(fd);
	}
	ls = listen_sock();
	ok(ls >= 0, "agent socket listens");

	/* 1. A guest-RAM file: registered, handed over, served by us. */
	pid = spawn(file_in, 1, &out);
	conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	ok(conn >= 0 && recv_map(conn, &msg, &uffd) == 0 && uffd >= 0,
	       "MAP message with a uffd arrives");
	ok(msg.op == SHIM_MSG_MAP && msg.len == LEN && msg.offset == 0 &&
		       strcmp(msg.path, file_in) == 0 && msg.pid == (uint32_t)pid,
	       "MAP names the file, length, offset and pid");
	send_status(conn, 0);
	{
		struct shim_msg um = { 0 };

		served = serve(uffd, msg.addr, conn, &um);
		is(served, PAGES, "every page faulted to the agent");
		ok(um.op == SHIM_MSG_UNMAP && um.addr == msg.addr && um.len == LEN,
		   "munmap is announced first");
		send_status(conn, 0);
	}
	read_line(out, line, sizeof(line));
	/* sum of 1..64 */
	ok(strcmp(line, "ok 2080") == 0, "child read the agent's pages (%s)", line);
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exited cleanly");
	close(uffd);
	close(conn);
	close(out);

	/* 2. The agent refuses: mmap fails with the agent's errno. */
	pid = spawn(file_in, 1, &out);
	conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	if (recv_map(conn, &msg, &uffd) == 0 && uffd >= 0)
		close(uffd);
	send_status(conn, -EACCES);
	read_line(out, line, sizeof(line));
	snprintf(msg.path, sizeof(msg.path), "mmap-failed %d", EACCES);
	ok(strcmp(line, msg.path) == 0, "refused mapping fails with EACCES (%s)", line);
	waitpid(pid, &st, 0);
	close(conn);
	close(out);

	/* 3. A file outside the directory: untouched, holes read as zeros. */
	pid = spawn(file_out, 1, &out);
	read_line(out, line, sizeof(line));
	ok(strcmp(line, "ok 0") == 0, "file outside the directory is untouched");
	waitpid(pid, &st, 0);
	close(out);

	/* 4. No variables: the shim does nothing; the file reads as it is
	 * (case 1 filled it through the uffd). */
	pid = spawn(file_in, 0, &out);
	read_line(out, line, sizeof(line));
	ok(strcmp(line, "ok 2080") == 0, "without the variables nothing changes (%s)", line);
	waitpid(pid, &st, 0);
	close(out);
	{
		struct pollfd p = { .fd = ls, .events = POLLIN };

		ok(poll(&p, 1, 0) == 0, "and the agent heard nothing");
	}

	/*
	 * 5. The agent dies with a fault read but not served; a new agent on
	 * the same path gets the mapping back with its uffd (READOPT, then
	 * READOPT_DONE), wakes the range and serves the rest.
	 */
	pid = spawn(file_re, 1, &out);
	conn = accept_within(ls);
	ok(conn >= 0 && recv_map(conn, &msg, &uffd) == 0 && uffd >= 0 && msg.op == SHIM_MSG_MAP,
	   "second child: MAP with a uffd");
	send_status(conn, 0);
	served = serve_until(uffd, msg.addr, PAGES / 2);
	is(served, PAGES / 2, "first agent served the first half, then died on a fault");
	close(uffd);
	close(conn);
	close(ls);
	unlink(sockpath);
	{
		struct pollfd p = { .fd = out, .events = POLLIN };

		ok(poll(&p, 1, 300) == 0, "the child waits for its page (no zeros, no exit)");
	}
	ls = listen_sock();
	conn = accept_within(ls);
	{
		struct shim_msg rm = { 0 }, done = { 0 };
		int uffd2 = -1, none = -1;

		ok(conn >= 0 && recv_map(conn, &rm, &uffd2) == 0 && uffd2 >= 0,
		   "the shim connects to the new agent and hands the uffd over again");
		ok(rm.op == SHIM_MSG_READOPT && rm.addr == msg.addr && rm.len == LEN &&
			   rm.offset == 0 && strcmp(rm.path, file_re) == 0 && rm.pid == (uint32_t)pid,
		   "READOPT names the same mapping");
		send_status(conn, 0);
		ok(recv_map(conn, &done, &none) == 0 && done.op == SHIM_MSG_READOPT_DONE &&
			   done.len == 1 && none < 0,
		   "READOPT_DONE counts one mapping");
		send_status(conn, 0);
		{
			struct uffdio_range rg = { .start = msg.addr, .len = LEN };

			ok(ioctl(uffd2, UFFDIO_WAKE, &rg) == 0, "the lost fault is woken");
		}
		struct shim_msg um = { 0 };

		served = serve(uffd2, msg.addr, conn, &um);
		is(served, PAGES / 2, "the new agent serves the second half, the lost page too");
		send_status(conn, 0);
		close(uffd2);
	}
	read_line(out, line, sizeof(line));
	ok(strcmp(line, "ok 2080") == 0, "the child read every page right (%s)", line);
	waitpid(pid, &st, 0);
	close(conn);
	close(out);

	unlink(file_in);
	unlink(file_out);
	unlink(file_re);
	unlink(sockpath);
	rmdir(dir);
	close(ls);
	return tap_exit();
}
