// SPDX-License-Identifier: MIT
/*
 * The shim socket server: accept the shim's connections (a QEMU process
 * has a few: its threads map RAM concurrently, and a reconnecting shim
 * opens new ones), receive struct shim_msg with its uffd, dispatch it to
 * the handler and answer with an int32. A connection that sends garbage
 * gets -EBADMSG and stays open; one that hangs up is closed.
 */
#include "shim_server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "thread.h"

#define SHIM_MAX_CONNS 6

struct shim_server {
	const struct shim_server_ops *ops;
	void *opaque;
	int listen_fd, stop_efd;
	pthread_t thread;
	bool thread_on;
};

/*
 * Take every descriptor a received message carried: the first into
 * *ret_fd, the others closed. Returns how many there were.
 */
static unsigned take_fds(struct msghdr *mh, int *ret_fd)
{
	unsigned n = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++, n++) {
			int x;

			memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n == 0)
				*ret_fd = x;
			else
				close(x);
		}
	}
	return n;
}

int shim_server_recv(int fd, struct shim_msg *msg, int *ret_fd)
{
	/* Room for two: a message that carries more than one is refused, not half read. */
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(*msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	unsigned nfds;
	ssize_t n;

	*ret_fd = -1;
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	/* Every descriptor that came is ours to close, whatever the message. */
	nfds = take_fds(&mh, ret_fd);
	if (n != (ssize_t)sizeof(*msg) || nfds > 1 ||
	    (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		if (*ret_fd >= 0)
			close(*ret_fd);
		*ret_fd = -1;
		return n == 0 ? -EPIPE : -EBADMSG;
	}
	msg->path[sizeof(msg->path) - 1] = '\0';
	return 0;
}

/* One message's answer (uffd: the one it carried, or -1). */
static int dispatch(const struct shim_server_ops *ops, void *opaque, const struct shim_msg *msg,
		    int uffd)
{
	switch (msg->op) {
	case SHIM_MSG_MAP:
	case SHIM_MSG_READOPT:
		return uffd >= 0 ? ops->map(opaque, msg, uffd, msg->op == SHIM_MSG_READOPT)
				 : -EBADMSG;
	case SHIM_MSG_READOPT_DONE:
		if (uffd >= 0)
			return -EBADMSG;   /* a descriptor it does not take is not kept */
		ops->readopt_done(opaque, (unsigned)MIN(msg->len, UINT32_MAX));
		return 0;
	case SHIM_MSG_UNMAP:
		return uffd >= 0 ? -EBADMSG : ops->unmap(opaque, msg);
	default:
		return -EOPNOTSUPP;
	}
}

int shim_server_handle(int fd, const struct shim_server_ops *ops, void *opaque,
		       int32_t *ret_status)
{
	struct shim_msg msg;
	int uffd = -1, r;

	r = shim_server_recv(fd, &msg, &uffd);
	if (r == -EPIPE || r == -ECONNRESET)
		return r;
	if (r == 0)
		r = dispatch(ops, opaque, &msg, uffd);
	if (uffd >= 0 && r < 0)
		close(uffd);
	else if (uffd >= 0)
		ops->keep_uffd(opaque, msg.addr, uffd);
	*ret_status = r < 0 ? r : 0;
	(void)send(fd, ret_status, sizeof(*ret_status), MSG_NOSIGNAL);
	return 0;
}

static void *serve_main(void *arg)
{
	struct shim_server *s = arg;
	struct pollfd pfd[2 + SHIM_MAX_CONNS];
	int nconn = 0;

	thread_name("shim-serve");
	for (;;) {
		pfd[0] = (struct pollfd){ .fd = s->stop_efd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
		if (poll(pfd, (nfds_t)(2 + nconn), -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents)
			break;
		if ((pfd[1].revents & POLLIN) && nconn < SHIM_MAX_CONNS) {
			int c = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0)
				pfd[2 + nconn++] = (struct pollfd){ .fd = c, .events = POLLIN };
		}
		for (int i = 0; i < nconn; i++) {
			int32_t status;

			if (!pfd[2 + i].revents)
				continue;
			if (shim_server_handle(pfd[2 + i].fd, s->ops, s->opaque, &status) < 0) {
				close(pfd[2 + i].fd);
				pfd[2 + i] = pfd[2 + --nconn];
				i--;
			}
		}
	}
	for (int i = 0; i < nconn; i++)
		close(pfd[2 + i].fd);
	return NULL;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) >= (int)sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int shim_server_start(const char *path, const struct shim_server_ops *ops, void *opaque,
		      struct shim_server **ret)
{
	struct shim_server *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->ops = ops;
	s->opaque = opaque;
	s->listen_fd = -1;
	s->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (s->stop_efd < 0) {
		r = -errno;
		goto fail;
	}
	s->listen_fd = listen_on(path);
	if (s->listen_fd < 0) {
		r = s->listen_fd;
		goto fail;
	}
	r = -pthread_create(&s->thread, NULL, serve_main, s);
	if (r < 0)
		goto fail;
	s->thread_on = true;
	*ret = s;
	return 0;
fail:
	shim_server_free(s);
	return r;
}

void shim_server_free(struct shim_server *s)
{
	uint64_t one = 1;

	if (!s)
		return;
	if (s->thread_on) {
		(void)!write(s->stop_efd, &one, sizeof(one));
		pthread_join(s->thread, NULL);
	}
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->stop_efd >= 0)
		close(s->stop_efd);
	free(s);
}
