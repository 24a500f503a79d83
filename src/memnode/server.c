// SPDX-License-Identifier: MIT
/*
 * The network side of the memory node: an acceptor and N worker threads,
 * each with its own epoll instance and its own connections.
 *
 * The acceptor (the main thread, accept.c) admits non-blocking sockets and
 * hands them round-robin to the workers through a pipe per worker. A worker
 * owns its connections completely: reading, framing, dispatching to the
 * handlers and writing replies all happen on it, so connections need no
 * locks. The only cross-thread paths are mn_conn_post() and mn_conn_push()
 * (the answers of COPY threads and of the directory, dir.c, and its
 * recalls), through the worker's post queue (obuf.h); connections are
 * reference-counted so a frame for a client gone meanwhile is dropped. A
 * recall channel is never closed for idleness; its closing is told to dir.c.
 *
 * Framing: a connection reads into a 64 KiB buffer and takes as many
 * complete frames out of it as it holds (pipelining). Each header is
 * validated with wire_hdr_decode() before its payload is considered; a
 * payload too large for the buffer gets its own allocation of exactly the
 * validated length and is read straight into it. A frame that fails
 * validation gets an error reply and the connection is closed once that
 * reply is written.
 *
 * Before authentication: a connection may buffer only MN_PREAUTH_BUF
 * bytes (a frame larger than that is refused and the connection closed,
 * nothing is allocated for it), and must complete HELLO and AUTH within
 * the handshake timeout. Admission caps (admit.c) bound how many such
 * connections there are. Each worker sweeps its connections a few times
 * per timeout period: an unauthenticated one past the handshake timeout
 * is closed, and so is an authenticated one idle (nothing read, nothing
 * to write, nothing in flight) for longer than the idle timeout, if the
 * operator set one.
 *
 * Backpressure: replies queue per connection and go out with sendmsg()
 * of an iovec (over TLS: sealed into records that leave in one send(),
 * fio.h). While a connection has more than MN_OUTQ_CAP bytes or
 * PROTO_MAX_INFLIGHT frames unanswered or unsent, it is not read (nor are
 * the frames already buffered processed) until the queue drains, so a
 * slow reader only ever holds a bounded amount of memory and never blocks
 * anyone else.
 */
#include "memnode.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fio.h"
#include "log.h"
#include "macro.h"
#include "net.h"
#include "tls.h"
#include "tlsaccept.h"
#include "wire.h"
#include "thread.h"

#define MN_RBUF_SIZE (64u << 10)

struct mn_worker {
	struct mn_node *node;
	unsigned idx;
	pthread_t thread;
	bool started;
	int epfd;
	int pipe_rd, pipe_wr;    /* new connection fds from the acceptor */
	struct mn_postq posts;   /* frames from other threads; its eventfd also wakes for stop */
	char pipe_tag, wake_tag; /* epoll data markers (their addresses) */
	struct mn_conn *conns;
	struct mn_conn *closed;  /* closed in this round of events: freed after it */
	uint64_t next_sweep_ns;
	uint64_t revoke_gen;     /* the revocation list last applied */
};

/* A connection handed from the acceptor to a worker. */
struct mn_handoff {
	int fd;
	struct mn_peer *peer;
};

struct mn_conn {
	int fd;
	struct fio io;           /* plain or TLS (fio.h) */
	bool tls_hs;             /* TLS handshake not finished yet */
	uint32_t hs_want;        /* events the handshake waits for */
	struct mn_worker *w;
	struct mn_conn *prev, *next;
	_Atomic int refs;
	bool dead;
	bool closing;            /* stop reading; close once the queue is written */
	uint32_t ev;             /* epoll events registered */
	struct mn_conn_auth auth;
	struct mn_peer *peer;    /* its address's admission counts */
	bool unauth;             /* still counted as unauthenticated */
	uint64_t born_ns, active_ns;
	/* input */
	uint8_t *rbuf;
	size_t rcap;             /* MN_PREAUTH_BUF until authenticated, then MN_RBUF_SIZE */
	size_t rlen, rpos;
	struct proto_hdr bighdr;
	uint8_t *big;
	size_t big_have;
	/* output */
	struct mn_outq out;
	unsigned async;          /* requests answered later (COPY) */
};

/* ---- connections ---------------------------------------------------------- */

struct mn_conn_auth *mn_conn_auth(struct mn_conn *c)
{
	return &c->auth;
}

struct mn_node *mn_conn_node(struct mn_conn *c)
{
	return c->w->node;
}

void mn_conn_close_after_reply(struct mn_conn *c)
{
	c->closing = true;
}

void mn_conn_keep_open(struct mn_conn *c)
{
	c->closing = false;
}

void mn_conn_ref(struct mn_conn *c)
{
	atomic_fetch_add(&c->refs, 1);
}

void mn_conn_hold(struct mn_conn *c)
{
	mn_conn_ref(c);
	c->async++;
}

void mn_conn_unref(struct mn_conn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1)
		free(c);
}

static bool conn_over_cap(const struct mn_conn *c)
{
	return c->out.bytes >= MN_OUTQ_CAP || c->out.frames + c->async >= PROTO_MAX_INFLIGHT;
}

void mn_conn_queue(struct mn_conn *c, struct mn_obuf *ob)
{
	if (ob->kill) {
		free(ob);
		c->closing = true;
		return;
	}
	if (mn_obuf_status(ob) != PROTO_ST_OK)
		atomic_fetch_add(&c->w->node->stats.errors, 1);
	mn_outq_push(&c->out, ob);
}

static void conn_close(struct mn_conn *c)
{
	struct mn_worker *w = c->w;

	if (c->dead)
		return;
	c->dead = true;
	if (c->auth.dir_chan)
		mn_dir_conn_closed(w->node->dir, c);
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	fio_done(&c->io, !c->tls_hs);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	mn_outq_clear(&c->out);
	free(c->rbuf);
	c->rbuf = NULL;
	free(c->big);
	c->big = NULL;
	mn_admit_release(w->node->admit, c->peer, c->unauth);
	c->peer = NULL;
	atomic_fetch_sub(&w->node->stats.connections, 1);
	log_debug("connection closed (peer %llu)", (unsigned long long)c->auth.hs.peer_id);
	/* Events of this round may still name it: its reference goes after the round. */
	c->next = w->closed;
	w->closed = c;
}

/* The end of a round of events: let go of the connections closed in it. */
static void worker_bury(struct mn_worker *w)
{
	for (struct mn_conn *c; (c = w->closed);) {
		w->closed = c->next;
		mn_conn_unref(c);
	}
}

static int conn_flush(struct mn_conn *c)
{
	ssize_t wr = mn_outq_flush(&c->out, &c->io);

	if (wr > 0)
		c->active_ns = now_ns();
	return wr < 0 ? (int)wr : 0;
}

/* Register the events the connection needs now; close it when it is done. */
static void conn_update(struct mn_conn *c)
{
	struct epoll_event ev = { .data.ptr = c };
	uint32_t want = 0;

	if (c->dead)
		return;
	if (c->tls_hs)
		want = c->hs_want;
	else if (!c->closing && !conn_over_cap(c))
		want |= EPOLLIN;
	if (c->out.head || fio_wpending(&c->io))
		want |= EPOLLOUT;
	if (c->closing && !c->out.head && !fio_wpending(&c->io)) {
		conn_close(c);
		return;
	}
	if (want == c->ev)
		return;
	ev.events = want;
	if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		conn_close(c);
		return;
	}
	c->ev = want;
}

/* A header that failed validation: answer with the matching status, then close. */
static void conn_frame_error(struct mn_conn *c, const uint8_t *raw, int err)
{
	struct proto_hdr h = { 0 };
	uint16_t op;
	uint32_t st;

	memcpy(&h.req_id, raw + offsetof(struct proto_hdr, req_id), sizeof(h.req_id));
	h.req_id = le64toh(h.req_id);
	memcpy(&op, raw + offsetof(struct proto_hdr, opcode), sizeof(op));
	op = le16toh(op);
	h.opcode = op > PROTO_OP_INVALID && op < PROTO_OP_MAX ? op : PROTO_OP_PING;
	st = err == -E2BIG ? PROTO_ST_TOOBIG :
	     err == -EPROTONOSUPPORT ? PROTO_ST_VERSION : PROTO_ST_BADMSG;
	log_debug("bad frame from peer %llu: %s", (unsigned long long)c->auth.hs.peer_id,
		  strerror(-err));
	mn_reply_status(c, &h, st);
	c->closing = true;
}

/* After a frame: a connection that just authenticated leaves the pre-auth caps. */
static void conn_note_auth(struct mn_conn *c)
{
	if (c->unauth && c->auth.hs.authed) {
		c->unauth = false;
		mn_admit_authed(c->w->node->admit, c->peer);
	}
}

/*
 * A frame too large for the pre-authentication buffer: nothing is read or
 * allocated for it. HELLO and AUTH of that size are malformed; any other
 * opcode is not allowed yet (NOAUTH, as for every request before AUTH).
 */
static void conn_preauth_oversize(struct mn_conn *c, const struct proto_hdr *h)
{
	atomic_fetch_add(&c->w->node->stats.preauth_oversize, 1);
	log_debug("a %u-byte %s before authentication: closing", h->len,
		  proto_op_name(h->opcode));
	mn_reply_status(c, h, h->opcode == PROTO_OP_HELLO || h->opcode == PROTO_OP_AUTH ?
				      PROTO_ST_BADMSG : PROTO_ST_NOAUTH);
	c->closing = true;
}

/* Take every complete frame out of the input buffer. */
static void conn_parse(struct mn_conn *c)
{
	while (!c->dead && !c->closing && !c->big && !conn_over_cap(c)) {
		size_t avail = c->rlen - c->rpos;
		const uint8_t *p = c->rbuf + c->rpos;
		struct proto_hdr h;
		int r;

		if (avail < PROTO_HDR_SIZE)
			break;
		r = wire_hdr_decode(p, PROTO_HDR_SIZE, &h);
		if (r == 0 && (h.flags & PROTO_F_REPLY))
			r = -EBADMSG;      /* clients send requests only */
		if (r < 0) {
			conn_frame_error(c, p, r);
			break;
		}
		if (!c->auth.hs.authed && PROTO_HDR_SIZE + (size_t)h.len > MN_PREAUTH_BUF) {
			conn_preauth_oversize(c, &h);
			break;
		}
		if (h.len <= avail - PROTO_HDR_SIZE) {
			c->rpos += PROTO_HDR_SIZE + h.len;
			mn_dispatch(c, &h, p + PROTO_HDR_SIZE);
			conn_note_auth(c);
			continue;
		}
		if (PROTO_HDR_SIZE + (size_t)h.len <= MN_RBUF_SIZE)
			break;             /* fits the buffer: wait for the rest */
		/* Large payload (validated length): read it into its own buffer. */
		c->big = malloc(h.len);
		if (!c->big) {
			mn_reply_status(c, &h, PROTO_ST_INTERNAL);
			c->closing = true;
			break;
		}
		c->bighdr = h;
		c->big_have = avail - PROTO_HDR_SIZE;
		memcpy(c->big, p + PROTO_HDR_SIZE, c->big_have);
		c->rpos = c->rlen;
	}
	if (c->rpos == c->rlen)
		c->rpos = c->rlen = 0;
}

/* The input buffer: small until the connection authenticates. 0 or -ENOMEM. */
static int conn_rbuf(struct mn_conn *c)
{
	size_t want = c->auth.hs.authed ? MN_RBUF_SIZE : MN_PREAUTH_BUF;
	uint8_t *p;

	if (c->rbuf && c->rcap >= want)
		return 0;
	p = realloc(c->rbuf, want);
	if (!p)
		return -ENOMEM;
	c->rbuf = p;
	c->rcap = want;
	return 0;
}

static void conn_read(struct mn_conn *c)
{
	ssize_t n;

	if (c->big) {
		struct iovec iov = { c->big + c->big_have, c->bighdr.len - c->big_have };

		n = fio_readv(&c->io, &iov, 1, false);
		if (n > 0) {
			c->active_ns = now_ns();
			c->big_have += (size_t)n;
			if (c->big_have == c->bighdr.len) {
				_cleanup_free_ uint8_t *payload = TAKE_PTR(c->big);

				mn_dispatch(c, &c->bighdr, payload);
			}
			return;
		}
	} else {
		if (conn_rbuf(c) < 0) {
			conn_close(c);
			return;
		}
		if (c->rpos > 0) {
			memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
			c->rlen -= c->rpos;
			c->rpos = 0;
		}
		if (c->rlen == c->rcap)
			return;        /* full of frames waiting for the queue to drain */
		struct iovec iov = { c->rbuf + c->rlen, c->rcap - c->rlen };

		n = fio_readv(&c->io, &iov, 1, false);
		if (n > 0) {
			c->active_ns = now_ns();
			c->rlen += (size_t)n;
			conn_parse(c);
			return;
		}
	}
	if (n == -EAGAIN)
		return;
	conn_close(c);          /* EOF or error */
}

/*
 * Process buffered frames and write replies until neither makes progress:
 * parsing stops when the output queue is over its cap, and writing may
 * bring it under again while no new input will arrive to wake us.
 */
static void conn_pump(struct mn_conn *c)
{
	for (;;) {
		bool blocked;

		conn_parse(c);
		if (c->dead)
			return;
		blocked = conn_over_cap(c);    /* parsing stopped at the cap */
		if (conn_flush(c) < 0) {
			conn_close(c);
			return;
		}
		if (blocked && !conn_over_cap(c))
			continue;
		/* TLS: bytes decrypted in the library never make the socket readable: read
		 * them now, also into a full buffer whose last frame is cut (conn_read). */
		if (!c->closing && !conn_over_cap(c) && !c->tls_hs && fio_rpending(&c->io) &&
		    (c->big || c->rpos > 0 || c->rlen < c->rcap)) {
			conn_read(c);
			if (c->dead)
				return;
			continue;
		}
		break;
	}
	conn_update(c);
}

/* Advance the server side of the TLS handshake. */
static void conn_tls_handshake(struct mn_conn *c)
{
	struct mn_node *n = c->w->node;
	enum mn_tls_fail why = MN_TLS_PROTOCOL;
	struct cert_id id;
	enum mn_tls_step st = mn_tls_accept_step(c->io.ssl, &id, &why);

	if (st == MN_TLS_WANT_READ || st == MN_TLS_WANT_WRITE) {
		c->hs_want = st == MN_TLS_WANT_READ ? EPOLLIN : EPOLLOUT;
	} else if (st == MN_TLS_FAILED) {
		atomic_fetch_add(&n->stats.tls_fail[why], 1);
		conn_close(c);
	} else if (mn_revoked_has(&n->revoked, id.node_id)) {
		atomic_fetch_add(&n->stats.revoked_handshake, 1);
		log_info("TLS: node %llu is revoked: closing", (unsigned long long)id.node_id);
		conn_close(c);
	} else {
		c->tls_hs = false;
		c->auth.hs.has_cert = true;
		c->auth.hs.cert = id;
		atomic_fetch_add(&n->stats.tls_handshakes, 1);
	}
}

static void conn_event(struct mn_conn *c, uint32_t events)
{
	if (c->dead)
		return;            /* closed earlier in this round of events */
	/* Keep the memory alive while closing it on the way. */
	atomic_fetch_add(&c->refs, 1);
	if (events & EPOLLERR) {
		conn_close(c);
		goto out;
	}
	if (c->tls_hs) {
		conn_tls_handshake(c);
		if (c->dead)
			goto out;
		if (c->tls_hs) {
			conn_update(c);
			goto out;
		}
		events |= EPOLLIN;     /* HELLO may have come with the handshake's end */
	}
	if ((events & EPOLLOUT) && conn_flush(c) < 0) {
		conn_close(c);
		goto out;
	}
	if (events & EPOLLIN)
		conn_read(c);
	else if (events & EPOLLHUP)
		conn_close(c);
	if (!c->dead)
		conn_pump(c);
out:
	mn_conn_unref(c);
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
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
}

/* ---- cross-thread replies --------------------------------------------------- */

void mn_conn_post(struct mn_conn *c, struct mn_obuf *ob, uint64_t start_ns, uint16_t op)
{
	ob->conn = c;
	ob->start_ns = start_ns;
	ob->op = op;
	ob->push = false;
	mn_postq_push(&c->w->posts, ob);
}

void mn_conn_push(struct mn_conn *c, struct mn_obuf *ob)
{
	mn_conn_ref(c);          /* dropped when the worker takes it */
	ob->conn = c;
	ob->push = true;
	mn_postq_push(&c->w->posts, ob);
}

static void worker_take_posts(struct mn_worker *w, bool deliver)
{
	struct mn_obuf *list = mn_postq_take(&w->posts);

	while (list) {
		struct mn_obuf *ob = list;
		struct mn_conn *c = ob->conn;

		list = ob->next;
		ob->conn = NULL;
		if (deliver && !c->dead) {
			if (!ob->push) {
				c->async--;
				hist_observe(&w->node->stats.latency[ob->op], now_ns() - ob->start_ns);
			}
			mn_conn_queue(c, ob);
			conn_pump(c);
		} else {
			free(ob);
		}
		mn_conn_unref(c);
	}
}

/* ---- workers ------------------------------------------------------------------ */

static void worker_new_conns(struct mn_worker *w)
{
	struct mn_handoff hs[64];
	ssize_t n = read(w->pipe_rd, hs, sizeof(hs));

	for (ssize_t i = 0; i < n / (ssize_t)sizeof(hs[0]); i++)
		conn_new(w, &hs[i]);
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
		if (revoked && id && mn_revoked_has(&w->node->revoked, id)) {
			atomic_fetch_add(&w->node->stats.revoked_closed, 1);
			log_info("node %llu is revoked: closing its connection", (unsigned long long)id);
			conn_close(c);
		} else if (!c->auth.hs.authed) {
			if (now - c->born_ns < (uint64_t)lim->handshake_ms * 1000000)
				continue;
			atomic_fetch_add(&w->node->stats.handshake_timeouts, 1);
			log_debug("no authentication within %u ms: closing", lim->handshake_ms);
			conn_close(c);
		} else if (lim->idle_ms && !c->out.head && !c->async && !c->big && !c->auth.dir_chan &&
			   now - c->active_ns >= (uint64_t)lim->idle_ms * 1000000) {
			atomic_fetch_add(&w->node->stats.idle_timeouts, 1);
			log_debug("peer %llu idle for %u ms: closing",
				  (unsigned long long)c->auth.hs.peer_id, lim->idle_ms);
			conn_close(c);
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
	while (!atomic_load(&n->stopping)) {
		int k = epoll_wait(w->epfd, evs, ARRAY_SIZE(evs), worker_wait_ms(w));

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
				conn_event(ptr, evs[i].events);
			}
		}
		worker_bury(w);
	}
	while (w->conns)
		conn_close(w->conns);
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
			for (ssize_t i = 0; i < k / (ssize_t)sizeof(pending[0]); i++)
				handoff_drop(w->node, &pending[i]);
	}
	while (w->conns)
		conn_close(w->conns);
	worker_take_posts(w, false);
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
	for (unsigned i = 0; i < n->nworkers; i++) {
		if (n->workers[i].started)
			pthread_join(n->workers[i].thread, NULL);
		worker_destroy(&n->workers[i]);
	}
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
