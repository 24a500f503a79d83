// SPDX-License-Identifier: MIT
/*
 * The memory node's network threads: the acceptor and N workers, each
 * with its own epoll instance and its own connections (server.c).
 *
 * The acceptor (the main thread, accept.c) admits non-blocking sockets and
 * hands them round-robin to the workers through a pipe per worker. A worker
 * owns its connections completely. The only cross-thread paths are
 * mn_conn_post() and mn_conn_push() (the answers of COPY threads and of the
 * directory, dir.c, and its recalls), through the worker's post queue
 * (obuf.h); connections are reference-counted so a frame for a client gone
 * meanwhile is dropped. A post made on the worker's own thread (the
 * directory's connections all live on one worker) skips the queue: it goes
 * out in the pump of the connection whose frame caused it, before that
 * connection's own replies (mn_worker_deliver_local). A hand-over's reply
 * thus leaves before the holder's acknowledgement is answered, and a
 * recall leaves as soon as its request is read. A recall channel is never
 * closed for idleness; its closing is told to dir.c.
 *
 * Each worker sweeps its connections a few times per timeout period: an
 * unauthenticated one past the handshake timeout is closed, and so is an
 * authenticated one idle (nothing read, nothing to write, nothing in
 * flight) for longer than the idle timeout, if the operator set one.
 */
#include "server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "net.h"
#include "tlsaccept.h"
#include "thread.h"

/* The end of a round of events: let go of the connections closed in it. */
static void worker_bury(struct mn_worker *w)
{
	for (struct mn_conn *c; (c = w->closed);) {
		w->closed = c->next;
		mn_conn_unref(c);
	}
}

/* A connection the acceptor admitted but no worker took: undo its counts. */
static void handoff_drop(struct mn_node *n, const struct mn_handoff *h)
{
	close(h->fd);
	mn_admit_release(n->admit, h->peer, true);
	atomic_fetch_sub(&n->stats.connections, 1);
}

static void conn_new(struct mn_worker *w, const struct mn_handoff *h)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct mn_conn *c = calloc(1, sizeof(*c));
	int r;

	if (!c) {
		handoff_drop(w->node, h);
		return;
	}
	c->fd = h->fd;
	c->w = w;
	r = mn_tls_conn_init(&c->io, w->node->tls, h->fd);
	if (r < 0) {
		handoff_drop(w->node, h);
		free(c);
		return;
	}
	c->tls_hs = r > 0;          /* the handshake comes first */
	c->hs_want = EPOLLIN;
	c->refs = 1;
	c->out.tail = &c->out.head;
	c->ev = EPOLLIN;
	c->peer = h->peer;
	c->unauth = true;
	c->born_ns = c->active_ns = now_ns();
	ev.data.ptr = c;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0) {
		fio_done(&c->io, false);
		handoff_drop(w->node, h);
		free(c);
		return;
	}
	mn_worker_link(w, c);
}

void mn_worker_link(struct mn_worker *w, struct mn_conn *c)
{
	c->prev = NULL;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	atomic_fetch_add(&w->nconns, 1);
}

void mn_worker_unlink(struct mn_worker *w, struct mn_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	atomic_fetch_sub(&w->nconns, 1);
}

/* ---- the directory's worker ------------------------------------------------- */

/*
 * Directory traffic on one worker: a connection that offers
 * PROTO_FEAT_DIR_CONN in HELLO (recall channels and the connections that
 * send DIR_READ and DIR_WRITE) moves to worker 0 once its HELLO is
 * answered. A hand-over is then served on one thread: the request, the
 * recall it sends to the holder, the holder's answer and the reply it
 * unblocks. Spread over workers, the recall and the reply would each be
 * a post to another thread, a wake-up on the other CPU (docs/operations.md,
 * "Threads and scheduling"). Before AUTH nothing else knows the connection
 * (no COPY, no directory entry), so no post can be on its way to the old
 * worker while it moves.
 */
void mn_conn_dir_worker(struct mn_conn *c)
{
	if (c->dir_conn)
		return;              /* HELLO is refused twice anyway (hsserver.c) */
	c->to_dir = c->dir_conn = true;
	atomic_fetch_add(&c->w->node->stats.dir_conns, 1);
}

int mn_conn_move_to_dir(struct mn_conn *c)
{
	struct mn_worker *w = c->w, *to = &w->node->workers[0];
	struct mn_handoff h = { .fd = c->fd, .peer = c->peer, .conn = c };
	struct epoll_event ev = { .events = c->ev, .data.ptr = c };

	c->to_dir = false;
	if (to == w)
		return 0;
	if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL) < 0)
		return 0;
	mn_worker_unlink(w, c);
	c->w = to;
	/* The write publishes c: from here on it is the other worker's. */
	if (write(to->pipe_wr, &h, sizeof(h)) == (ssize_t)sizeof(h)) {
		atomic_fetch_add(&w->node->stats.dir_conn_moves, 1);
		return 1;
	}
	log_warn("worker %u is not taking connections: a directory connection stays on %u",
		 to->idx, w->idx);
	c->w = w;
	mn_worker_link(w, c);
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		mn_conn_close(c);
	return 0;
}

/* A moved connection arrives: watch it and go on with what it has buffered. */
static void conn_adopt(struct mn_worker *w, struct mn_conn *c)
{
	struct epoll_event ev = { .events = c->ev, .data.ptr = c };

	mn_worker_link(w, c);
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		mn_conn_close(c);
		return;
	}
	mn_conn_pump(c);
}

unsigned mn_server_worker_conns(struct mn_node *n, unsigned idx)
{
	return idx < n->nworkers ? atomic_load(&n->workers[idx].nconns) : 0;
}

/* ---- cross-thread replies --------------------------------------------------- */

static __thread struct mn_worker *tl_worker;   /* the worker this thread runs, if any */

static void post(struct mn_conn *c, struct mn_obuf *ob)
{
	struct mn_worker *w = c->w;

	if (w != tl_worker) {
		atomic_fetch_add(&w->node->stats.posts_queued, 1);
		mn_postq_push(&w->posts, ob);
		return;
	}
	atomic_fetch_add(&w->node->stats.posts_local, 1);
	ob->next = NULL;
	*w->local_tail = ob;
	w->local_tail = &ob->next;
}

void mn_conn_post(struct mn_conn *c, struct mn_obuf *ob, uint64_t start_ns, uint16_t op)
{
	ob->conn = c;
	ob->start_ns = start_ns;
	ob->op = op;
	ob->push = false;
	post(c, ob);
}

void mn_conn_push(struct mn_conn *c, struct mn_obuf *ob)
{
	mn_conn_ref(c);          /* dropped when the worker takes it */
	ob->conn = c;
	ob->push = true;
	post(c, ob);
}

/* One posted frame to its connection (sent at once unless it is hold), or dropped. */
static void post_deliver(struct mn_worker *w, struct mn_obuf *ob, bool deliver,
			 struct mn_conn *hold)
{
	struct mn_conn *c = ob->conn;

	ob->conn = NULL;
	if (deliver && !c->dead) {
		if (!ob->push) {
			c->async--;
			hist_observe(&w->node->stats.latency[ob->op], now_ns() - ob->start_ns);
		}
		mn_conn_queue(c, ob);
		if (c != hold)
			mn_conn_pump(c);
	} else {
		free(ob);
	}
	mn_conn_unref(c);
}

static void worker_take_posts(struct mn_worker *w, bool deliver)
{
	struct mn_obuf *list = mn_postq_take(&w->posts);

	while (list) {
		struct mn_obuf *ob = list;

		list = ob->next;
		post_deliver(w, ob, deliver, NULL);
	}
}

static void worker_local_posts(struct mn_worker *w, bool deliver, struct mn_conn *hold)
{
	struct mn_obuf *ob;

	/* A pump inside leaves what it adds to this loop. */
	if (w->delivering)
		return;
	w->delivering = true;
	while ((ob = w->local)) {
		w->local = ob->next;
		if (!w->local)
			w->local_tail = &w->local;
		post_deliver(w, ob, deliver, hold);
	}
	w->delivering = false;
}

void mn_worker_deliver_local(struct mn_worker *w, struct mn_conn *hold)
{
	if (w->local)
		worker_local_posts(w, true, hold);
}

/* ---- workers ------------------------------------------------------------------ */

static void worker_new_conns(struct mn_worker *w)
{
	struct mn_handoff hs[64];
	ssize_t n = read(w->pipe_rd, hs, sizeof(hs));

	for (ssize_t i = 0; i < n / (ssize_t)sizeof(hs[0]); i++) {
		if (hs[i].conn)
			conn_adopt(w, hs[i].conn);
		else
			conn_new(w, &hs[i]);
	}
}

/* How often a worker looks for connections past their timeouts (ms). */
static int sweep_period_ms(const struct mn_limits *lim)
{
	unsigned t = lim->handshake_ms;

	if (lim->idle_ms && lim->idle_ms < t)
		t = lim->idle_ms;
	return (int)MIN(MAX(t / 8, 20u), 1000u);
}

/* Close the connections past the handshake or the idle timeout, or of revoked nodes. */
static void worker_sweep(struct mn_worker *w)
{
	const struct mn_limits *lim = &w->node->limits;
	uint64_t now = now_ns(), gen = atomic_load(&w->node->revoked.gen);
	bool revoked = gen != w->revoke_gen;   /* a new revocation list */
	struct mn_conn *c, *next;

	w->revoke_gen = gen;
	for (c = w->conns; c; c = next) {
		uint64_t id = c->auth.hs.has_cert ? c->auth.hs.cert.node_id : c->auth.hs.peer_id;

		next = c->next;
		if (revoked && id && revlist_has(&w->node->revoked, id)) {
			atomic_fetch_add(&w->node->stats.revoked_closed, 1);
			log_info("node %llu is revoked: closing its connection", (unsigned long long)id);
			mn_conn_close(c);
		} else if (!c->auth.hs.authed) {
			if (now - c->born_ns < (uint64_t)lim->handshake_ms * 1000000)
				continue;
			atomic_fetch_add(&w->node->stats.handshake_timeouts, 1);
			log_debug("no authentication within %u ms: closing", lim->handshake_ms);
			mn_conn_close(c);
		} else if (lim->idle_ms && !c->out.head && !c->async && !c->big && !c->auth.dir_chan &&
			   now - c->active_ns >= (uint64_t)lim->idle_ms * 1000000) {
			atomic_fetch_add(&w->node->stats.idle_timeouts, 1);
			log_debug("peer %llu idle for %u ms: closing",
				  (unsigned long long)c->auth.hs.peer_id, lim->idle_ms);
			mn_conn_close(c);
		}
	}
}

/* epoll_wait's timeout: none without connections, else until the next sweep. */
static int worker_wait_ms(struct mn_worker *w)
{
	uint64_t now = now_ns();

	if (!w->conns)
		return -1;
	if (w->next_sweep_ns && now >= w->next_sweep_ns)
		worker_sweep(w);
	if (!w->next_sweep_ns || now >= w->next_sweep_ns)
		w->next_sweep_ns = now + (uint64_t)sweep_period_ms(&w->node->limits) * 1000000;
	return net_ms_left(w->next_sweep_ns);
}

static void *worker_main(void *arg)
{
	struct mn_worker *w = arg;
	struct mn_node *n = w->node;
	struct epoll_event evs[64];

	thread_start("mn-worker", THREAD_QUICK_SLICE_NS);
	tl_worker = w;
	while (!atomic_load(&n->stopping)) {
		int ms = worker_wait_ms(w), k;     /* its sweep may close connections */

		mn_worker_deliver_local(w, NULL);   /* ... and so post: nothing would wake us for those */
		k = epoll_wait(w->epfd, evs, ARRAY_SIZE(evs), ms);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			log_error("worker %u: epoll_wait: %s", w->idx, strerror(errno));
			break;
		}
		for (int i = 0; i < k; i++) {
			void *ptr = evs[i].data.ptr;

			if (ptr == &w->pipe_tag) {
				worker_new_conns(w);
			} else if (ptr == &w->wake_tag) {
				worker_take_posts(w, true);
				if (atomic_load(&n->revoked.gen) != w->revoke_gen)
					worker_sweep(w);
			} else {
				mn_conn_event(ptr, evs[i].events);
			}
			mn_worker_deliver_local(w, NULL);   /* posts made outside a pump (a close, a sweep) */
		}
		worker_bury(w);
	}
	while (w->conns)
		mn_conn_close(w->conns);
	worker_local_posts(w, false, NULL);
	worker_bury(w);
	return NULL;
}

static int worker_init(struct mn_worker *w, struct mn_node *n, unsigned idx)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int p[2], r;

	w->node = n;
	w->idx = idx;
	w->epfd = w->pipe_rd = w->pipe_wr = w->posts.efd = -1;
	w->local_tail = &w->local;
	r = mn_postq_init(&w->posts);
	if (r < 0)
		return r;

	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0)
		return -errno;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	w->pipe_rd = p[0];
	w->pipe_wr = p[1];
	ev.data.ptr = &w->pipe_tag;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->pipe_rd, &ev) < 0)
		return -errno;
	ev.data.ptr = &w->wake_tag;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->posts.efd, &ev) < 0)
		return -errno;
	return 0;
}

static void worker_destroy(struct mn_worker *w)
{
	struct mn_handoff pending[64];
	ssize_t k;

	/* Connections handed over but never picked up. */
	if (w->pipe_rd >= 0) {
		while ((k = read(w->pipe_rd, pending, sizeof(pending))) > 0)
			for (ssize_t i = 0; i < k / (ssize_t)sizeof(pending[0]); i++) {
				if (pending[i].conn)
					mn_worker_link(w, pending[i].conn);   /* closed below */
				else
					handoff_drop(w->node, &pending[i]);
			}
	}
	while (w->conns)
		mn_conn_close(w->conns);
	worker_take_posts(w, false);
	worker_local_posts(w, false, NULL);
	worker_bury(w);
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->pipe_rd >= 0)
		close(w->pipe_rd);
	if (w->pipe_wr >= 0)
		close(w->pipe_wr);
	mn_postq_destroy(&w->posts);
}

int mn_server_start(struct mn_node *n, int listen_fd, unsigned nworkers)
{
	int r;

	n->listen_fd = listen_fd;
	n->workers = calloc(nworkers, sizeof(*n->workers));
	if (!n->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < nworkers; i++) {
		n->nworkers = i + 1;     /* mn_server_stop() cleans up what got this far */
		r = worker_init(&n->workers[i], n, i);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < nworkers; i++) {
		r = -pthread_create(&n->workers[i].thread, NULL, worker_main, &n->workers[i]);
		if (r < 0)
			return r;
		n->workers[i].started = true;
	}
	return 0;
}

void mn_server_stop(struct mn_node *n)
{
	atomic_store(&n->stopping, true);
	mn_server_kick(n);
	/* All stopped before any is destroyed: one may still move a connection to another. */
	for (unsigned i = 0; i < n->nworkers; i++)
		if (n->workers[i].started)
			pthread_join(n->workers[i].thread, NULL);
	for (unsigned i = 0; i < n->nworkers; i++)
		worker_destroy(&n->workers[i]);
	free(n->workers);
	n->workers = NULL;
	n->nworkers = 0;
}

void mn_server_kick(struct mn_node *n)
{
	for (unsigned i = 0; i < n->nworkers; i++)
		if (n->workers[i].posts.efd >= 0)
			mn_postq_kick(&n->workers[i].posts);
}

void mn_server_handoff(struct mn_node *n, int fd, struct mn_peer *peer)
{
	struct mn_handoff h = { .fd = fd, .peer = peer };
	struct mn_worker *w = &n->workers[n->next_worker++ % n->nworkers];

	atomic_fetch_add(&n->stats.connections, 1);
	atomic_fetch_add(&n->stats.connections_total, 1);
	if (write(w->pipe_wr, &h, sizeof(h)) != (ssize_t)sizeof(h)) {
		log_warn("worker %u is not taking connections", w->idx);
		handoff_drop(n, &h);
	}
}

int mn_server_adopt(struct mn_node *n, int fd)
{
	mn_server_handoff(n, fd, NULL);     /* no address: never counted by admission */
	return 0;
}
