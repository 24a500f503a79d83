// SPDX-License-Identifier: MIT
/*
 * The memory node's accept loop, on the main thread: every connection is
 * admitted under the node's caps (max_conns here, the per-address and
 * unauthenticated caps in admit.c) and handed to a worker (server.c); one
 * over a cap gets a BUSY frame and is closed at once, counted by reason.
 */
#include "accept.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "net.h"

static void reject_busy(int fd)
{
	struct proto_hdr req = { .opcode = PROTO_OP_HELLO };
	struct mn_obuf *ob = mn_reply_new(&req, PROTO_ST_BUSY, 0);

	if (ob) {
		if (send(fd, ob->data, ob->len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			log_debug("busy reply: %s", strerror(errno));
		free(ob);
	}
	close(fd);
}

/* Count a refused connection by its reason. */
static void count_refusal(struct mn_node *n, enum mn_admit_verdict v)
{
	switch (v) {
	case MN_ADMIT_PER_ADDR:
		atomic_fetch_add(&n->stats.rejected_per_addr, 1);
		break;
	case MN_ADMIT_UNAUTH:
		atomic_fetch_add(&n->stats.rejected_unauth, 1);
		break;
	default:                  /* max_conns, or no memory to track the address */
		atomic_fetch_add(&n->stats.rejected_conns, 1);
		break;
	}
}

static void accept_all(struct mn_node *n)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		int fd = accept4(n->listen_fd, (struct sockaddr *)&ss, &sslen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		enum mn_admit_verdict v;
		struct mn_peer *peer = NULL;

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_warn("accept: %s", strerror(errno));
				if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
					usleep(10000);
			}
			return;
		}
		v = atomic_load(&n->stats.connections) >= n->limits.max_conns ?
			    MN_ADMIT_MAX_CONNS : mn_admit(n->admit, &ss, &peer);
		if (v != MN_ADMIT_OK) {
			count_refusal(n, v);
			log_debug("connection refused: %s",
				  v == MN_ADMIT_PER_ADDR ? "its address is at its connection cap" :
				  v == MN_ADMIT_UNAUTH ? "too many unauthenticated connections" :
							 "too many connections");
			reject_busy(fd);
			continue;
		}
		(void)net_set_nodelay(fd);
		mn_server_handoff(n, fd, peer);
	}
}

int mn_server_run(struct mn_node *n, int stop_fd)
{
	struct epoll_event ev = { .events = EPOLLIN }, evs[2];
	_cleanup_close_ int epfd = epoll_create1(EPOLL_CLOEXEC);

	if (epfd < 0)
		return -errno;
	ev.data.fd = n->listen_fd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, n->listen_fd, &ev) < 0)
		return -errno;
	ev.data.fd = stop_fd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, stop_fd, &ev) < 0)
		return -errno;
	for (;;) {
		int k = epoll_wait(epfd, evs, ARRAY_SIZE(evs), -1);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < k; i++) {
			if (evs[i].data.fd == stop_fd)
				return 0;
			accept_all(n);
		}
	}
}
