// SPDX-License-Identifier: MIT
/*
 * A memory node's connections (worker.c runs the threads that own them):
 * reading, framing, dispatching to the handlers and writing replies, all
 * on the connection's worker, so connections need no locks.
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
 * the handshake timeout (worker.c's sweep). Admission caps (admit.c) bound
 * how many such connections there are.
 *
 * Backpressure: replies queue per connection and go out with sendmsg()
 * of an iovec (over TLS: sealed into records that leave in one send(),
 * fio.h). While a connection has more than MN_OUTQ_CAP bytes or
 * PROTO_MAX_INFLIGHT frames unanswered or unsent, it is not read (nor are
 * the frames already buffered processed) until the queue drains, so a
 * slow reader only ever holds a bounded amount of memory and never blocks
 * anyone else.
 */
#include "server_int.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fio.h"
#include "log.h"
#include "macro.h"
#include "net.h"
#include "tls.h"
#include "tlsaccept.h"
#include "wire.h"

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

void mn_conn_close(struct mn_conn *c)
{
	struct mn_worker *w = c->w;

	if (c->dead)
		return;
	c->dead = true;
	if (c->auth.dir_chan)
		mn_dir_conn_closed(w->node->dir, c);
	if (c->dir_conn)
		atomic_fetch_sub(&w->node->stats.dir_conns, 1);
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	fio_done(&c->io, !c->tls_hs);
	close(c->fd);
	c->fd = -1;
	mn_worker_unlink(w, c);
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
		mn_conn_close(c);
		return;
	}
	if (want == c->ev)
		return;
	ev.events = want;
	if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		mn_conn_close(c);
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
	/* to_dir: nothing after the HELLO is taken here (mn_conn_move_to_dir). */
	while (!c->dead && !c->closing && !c->big && !c->to_dir && !conn_over_cap(c)) {
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
			mn_conn_close(c);
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
	mn_conn_close(c);          /* EOF or error */
}

/*
 * Process buffered frames and write replies until neither makes progress:
 * parsing stops when the output queue is over its cap, and writing may
 * bring it under again while no new input will arrive to wake us.
 */
void mn_conn_pump(struct mn_conn *c)
{
	for (;;) {
		bool blocked;

		conn_parse(c);
		mn_worker_deliver_local(c->w, c);   /* what its frames finished elsewhere goes first */
		if (c->dead)
			return;
		if (c->to_dir && (mn_conn_move_to_dir(c) > 0 || c->dead))
			return;        /* the directory's worker goes on with it, or it was closed */
		blocked = conn_over_cap(c);    /* parsing stopped at the cap */
		if (conn_flush(c) < 0) {
			mn_conn_close(c);
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
		mn_conn_close(c);
	} else if (revlist_has(&n->revoked, id.node_id)) {
		atomic_fetch_add(&n->stats.revoked_handshake, 1);
		log_info("TLS: node %llu is revoked: closing", (unsigned long long)id.node_id);
		mn_conn_close(c);
	} else {
		c->tls_hs = false;
		c->auth.hs.has_cert = true;
		c->auth.hs.cert = id;
		atomic_fetch_add(&n->stats.tls_handshakes, 1);
	}
}

void mn_conn_event(struct mn_conn *c, uint32_t events)
{
	if (c->dead)
		return;            /* closed earlier in this round of events */
	/* Keep the memory alive while closing it on the way. */
	atomic_fetch_add(&c->refs, 1);
	if (events & EPOLLERR) {
		mn_conn_close(c);
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
		mn_conn_close(c);
		goto out;
	}
	if (events & EPOLLIN)
		conn_read(c);
	else if (events & EPOLLHUP)
		mn_conn_close(c);
	if (!c->dead)
		mn_conn_pump(c);
out:
	mn_conn_unref(c);
}
