// SPDX-License-Identifier: MIT
/*
 * The memory-node client's connection engine. See mnconn.h; the interface
 * built on it is mnclient.h.
 *
 * Requests live in a fixed table of `cap` slots (cap = min(PROTO_MAX_INFLIGHT,
 * server max_inflight)). A request id is (sequence << 16 | slot), so a reply
 * finds its slot in O(1) and a stale or forged id is detected. Requests not
 * yet fully written sit in a FIFO send queue; each one is a pre-encoded
 * "head" (frame header + fixed payload + extents) plus, for WRITE, the
 * caller's page data, which is sent from where it is (never copied).
 * Sends use sendmsg(MSG_DONTWAIT) over many queued requests at once; requests
 * submitted from completion callbacks go out together after the receive
 * that completed them.
 *
 * Receiving goes through a 64 KiB staging buffer: with many requests in
 * flight, one recvmsg() takes a batch of replies (a few dozen 4 KiB pages),
 * whose payloads are copied out of staging. A READ payload whose header
 * arrived alone, or whose rest did not fit, is received straight into the
 * caller's buffer (the receive vector is [rest of payload, staging]). For the
 * common synchronous case, one READ in flight, the receive vector is
 * [32-byte header, caller's buffer], so one send and one blocking receive
 * serve a 4 KiB page. The socket stays in blocking mode (with a short
 * SO_RCVTIMEO) so a synchronous wait is a single blocking recvmsg(), not
 * poll() then recv(); every other socket call passes MSG_DONTWAIT.
 *
 * A recall channel (mnc_dir_attach) also receives DIR_RECALL frames, the
 * only requests a node sends: they are taken out of the stream like
 * replies and kept in c->recalls for mnc_dir_next_recall(). Any other
 * frame that is not a reply breaks the connection.
 *
 * Any protocol violation, EOF, socket error or sync timeout breaks the
 * connection: every outstanding request completes with the error.
 */
#include "mnconn.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "log.h"
#include "macro.h"
#include "net.h"
#include "wire.h"

#define SLOT_BITS        16
#define SLOT_MASK        ((1u << SLOT_BITS) - 1)
#define SEND_IOV         64
#define SEND_BATCH       (64u << 10)  /* bytes a callback's submissions may hold back */

/* ---- slots ------------------------------------------------------------- */

static struct mnc_req *slot_alloc(struct mnc *c)
{
	struct mnc_req *r;
	int i = c->free_head;

	if (i == MNC_NONE)
		return NULL;
	r = &c->slots[i];
	c->free_head = r->next;
	c->seq++;
	memset(r, 0, offsetof(struct mnc_req, head));
	r->id = c->seq << SLOT_BITS | (uint64_t)i;
	r->next = MNC_NONE;
	c->last = i;
	c->inflight++;
	return r;
}

static void slot_free(struct mnc *c, struct mnc_req *r)
{
	r->id = 0;
	r->next = c->free_head;
	c->free_head = (int)(r - c->slots);
	c->inflight--;
}

static struct mnc_req *slot_find(struct mnc *c, uint64_t id)
{
	uint64_t i = id & SLOT_MASK;

	if (i >= c->cap || c->slots[i].id != id || id == 0)
		return NULL;
	return &c->slots[i];
}

/* Complete a request: the slot is freed before the callback runs. */
static void complete(struct mnc *c, struct mnc_req *r, int status, size_t len)
{
	mnc_done_fn done = r->done;
	void *opaque = r->opaque;

	slot_free(c, r);
	c->completions++;
	c->in_callback++;
	if (done)
		done(opaque, status, len);
	c->in_callback--;
}

/* Break the connection: every outstanding request fails with err. */
void mnconn_fail_all(struct mnc *c, int err)
{
	if (!c->err)
		c->err = err;
	c->sq_head = c->sq_tail = MNC_NONE;
	c->sq_bytes = 0;
	c->in_payload = c->rpush = false;
	c->rreq = NULL;
	c->stg_off = c->stg_len = 0;
	for (unsigned i = 0; i < c->cap; i++)
		if (c->slots[i].id)
			complete(c, &c->slots[i], err, 0);
}

static bool in_sendq(const struct mnc_req *r)
{
	return r->sent < r->total;
}

/* ---- sending ----------------------------------------------------------- */

/* Write as much of the send queue as the socket takes. <0 only when broken. */
static int flush_send(struct mnc *c)
{
	int fr = fio_flush(&c->io);      /* what TLS staged first (nothing: 0) */

	if (fr < 0 && fr != -EAGAIN)
		mnconn_fail_all(c, fr == -ECONNRESET ? -ECONNRESET : -EPIPE);
	if (fr < 0)
		return fr == -EAGAIN ? 0 : c->err;
	while (c->sq_head != MNC_NONE) {
		struct iovec iov[SEND_IOV];
		size_t n = 0;
		ssize_t w;

		for (int i = c->sq_head; i != MNC_NONE && n + 2 <= SEND_IOV; i = c->slots[i].next) {
			struct mnc_req *r = &c->slots[i];

			if (r->sent < r->head_len)
				iov[n++] = (struct iovec){ r->head + r->sent, r->head_len - r->sent };
			if (r->total > r->head_len) {
				size_t off = r->sent > r->head_len ? r->sent - r->head_len : 0;

				iov[n++] = (struct iovec){ (uint8_t *)r->data + off,
							   r->total - r->head_len - off };
			}
		}
		w = fio_writev(&c->io, iov, (int)n);
		if (w > 0) {
			c->tx_ns = now_ns();
			c->tx_bytes += (uint64_t)w;
		}
		if (w < 0) {
			if (w == -EAGAIN)
				return 0;
			mnconn_fail_all(c, w == -ECONNRESET ? -ECONNRESET : -EPIPE);
			return c->err;
		}
		while (w > 0 && c->sq_head != MNC_NONE) {
			struct mnc_req *r = &c->slots[c->sq_head];
			size_t k = MIN((size_t)w, r->total - r->sent);

			r->sent += k;
			c->sq_bytes -= k;
			w -= (ssize_t)k;
			if (r->sent == r->total) {
				c->sq_head = r->next;
				r->next = MNC_NONE;
				if (r->noreply)
					complete(c, r, 0, 0);
			}
		}
		if (c->sq_head == MNC_NONE)
			c->sq_tail = MNC_NONE;
	}
	return 0;
}

static void sq_push(struct mnc *c, struct mnc_req *r)
{
	int i = (int)(r - c->slots);

	r->next = MNC_NONE;
	c->sq_bytes += r->total - r->sent;
	if (c->sq_tail == MNC_NONE)
		c->sq_head = i;
	else
		c->slots[c->sq_tail].next = i;
	c->sq_tail = i;
}

/* ---- receiving --------------------------------------------------------- */

/* A DIR_RECALL is all there: keep it for mnc_dir_next_recall(). */
static void recall_done(struct mnc *c)
{
	struct proto_dir_recall m;
	int r = wire_dir_recall_decode(&c->rcall, sizeof(c->rcall), &m);

	if (r == 0)
		r = fifo_push(&c->recalls, &(struct mnc_recall){ m.seq, m.section, m.generation,
								 m.page, m.mode, m.grants,
								 m.version });
	if (r < 0)
		mnconn_fail_all(c, -EBADMSG);
}

/* The current reply's payload is all there: complete its request. */
static void payload_done(struct mnc *c)
{
	struct mnc_req *r = c->rreq;
	int st;

	c->in_payload = false;
	c->rreq = NULL;
	if (c->rpush) {
		c->rpush = false;
		recall_done(c);
	}
	if (!r)
		return;
	st = c->rh.status == PROTO_ST_OK ? 0 : proto_status_to_errno(c->rh.status);
	complete(c, r, st, st == 0 ? c->rh.len : 0);
}

/*
 * A reply header arrived: validate it against its request and choose where
 * its payload goes (c->rdst, NULL to discard). Returns <0 on a protocol
 * violation. May complete the request (empty payload).
 */
static int start_reply(struct mnc *c, const uint8_t *hbuf)
{
	struct proto_hdr h;
	struct mnc_req *r;

	if (wire_hdr_decode(hbuf, PROTO_HDR_SIZE, &h) < 0)
		return -EBADMSG;
	if (!(h.flags & PROTO_F_REPLY)) {
		/* The one request a node sends: a recall, on a recall channel. */
		if (!c->chan || h.opcode != PROTO_OP_DIR_RECALL || h.len != sizeof(c->rcall))
			return -EBADMSG;
		c->rh = h;
		c->rgot = 0;
		c->rdst = (uint8_t *)&c->rcall;
		c->rpush = c->in_payload = true;
		return 0;
	}
	r = slot_find(c, h.req_id);
	if (!r && c->chan && h.opcode == PROTO_OP_DIR_RECALL_ACK && h.status != PROTO_ST_OK &&
	    h.req_id >> SLOT_BITS <= c->seq)
		return proto_status_to_errno(h.status);  /* a quiet answer refused (its slot is gone) */
	if (!r || r->op != h.opcode || in_sendq(r))
		return -EBADMSG;
	c->rh = h;
	c->rreq = r;
	c->rgot = 0;
	c->rdst = NULL;
	if (h.status == PROTO_ST_OK) {
		if (r->exact ? h.len != r->rlen : h.len > r->rlen)
			return -EBADMSG;
		c->rdst = r->rbuf;
	} else if (h.len > PROTO_MAX_REPLY) {
		return -EBADMSG; /* error replies carry (at most) a short text */
	}
	c->in_payload = true;
	if (h.len == 0)
		payload_done(c);
	return 0;
}

/*
 * Consume whole frames (and payload starts) from the staging buffer. The
 * consumed offset lives in the struct before any callback runs, so a
 * callback may itself wait on this connection.
 */
static int drain_staging(struct mnc *c)
{
	while (!c->err && c->stg_off < c->stg_len) {
		size_t avail = c->stg_len - c->stg_off;
		int r;

		if (c->in_payload) {
			size_t k = MIN(avail, (size_t)c->rh.len - c->rgot);

			if (c->rdst)
				memcpy(c->rdst + c->rgot, c->stg + c->stg_off, k);
			c->rgot += k;
			c->stg_off += k;
			if (c->rgot == c->rh.len)
				payload_done(c);
			continue;
		}
		if (avail < PROTO_HDR_SIZE)
			break;
		c->stg_off += PROTO_HDR_SIZE;
		r = start_reply(c, c->stg + c->stg_off - PROTO_HDR_SIZE);
		if (r < 0) {
			mnconn_fail_all(c, r);
			return r;
		}
	}
	if (c->err)
		return c->err;
	if (c->stg_off) {
		memmove(c->stg, c->stg + c->stg_off, c->stg_len - c->stg_off);
		c->stg_len -= c->stg_off;
		c->stg_off = 0;
	}
	return 0;
}

/* The single outstanding READ (or BLK_READ), if that is the only request in flight. */
static struct mnc_req *lone_read(struct mnc *c)
{
	struct mnc_req *r = &c->slots[c->last];

	if (c->inflight != 1)
		return NULL;
	if (!r->id)
		for (unsigned i = 0; i < c->cap && !r->id; i++)
			r = &c->slots[i];
	return r->op == PROTO_OP_READ || r->op == PROTO_OP_BLK_READ ? r : NULL;
}

/*
 * One recvmsg(). `block` lets it sleep (bounded by SO_RCVTIMEO).
 * Returns bytes received, 0 if nothing was available, <0 when broken.
 */
static int recv_some(struct mnc *c, bool block)
{
	struct iovec iov[2];
	int niov = 2;
	struct mnc_req *spec = NULL;
	size_t first, extra;
	ssize_t got;

	if (c->in_payload && c->rdst) {
		/* Rest of the payload in place, then whatever follows into staging. */
		iov[0] = (struct iovec){ c->rdst + c->rgot, c->rh.len - c->rgot };
		iov[1] = (struct iovec){ c->stg + c->stg_len, MNC_STG_SIZE - c->stg_len };
	} else if (!c->in_payload && c->stg_len < PROTO_HDR_SIZE && (spec = lone_read(c))) {
		/* Speculate: the header into staging, the pages straight into place. */
		iov[0] = (struct iovec){ c->stg + c->stg_len, PROTO_HDR_SIZE - c->stg_len };
		iov[1] = (struct iovec){ spec->rbuf, spec->rlen };
	} else {
		iov[0] = (struct iovec){ c->stg + c->stg_len, MNC_STG_SIZE - c->stg_len };
		niov = 1;
	}
	first = iov[0].iov_len;
	got = fio_readv(&c->io, iov, niov, block);
	if (got > 0) {
		c->rx_ns = now_ns();
		c->rx_bytes += (uint64_t)got;
	}
	if (got < 0) {
		if (got == -EAGAIN)
			return 0;
		mnconn_fail_all(c, got == -ECONNRESET ? -ECONNRESET : -EPIPE);
		return c->err;
	}
	if (got == 0) {
		mnconn_fail_all(c, -EPIPE);
		return c->err;
	}
	extra = (size_t)got > first ? (size_t)got - first : 0;

	if (spec) {
		int r;

		c->stg_len += (size_t)got - extra;
		if (c->stg_len < PROTO_HDR_SIZE)
			return (int)got;
		c->stg_len = 0;
		r = start_reply(c, c->stg);
		/* Bytes after the header must belong to this READ's payload. */
		if (r == 0 && extra && !(c->in_payload && c->rreq == spec && extra <= c->rh.len))
			r = -EBADMSG;
		if (r < 0) {
			mnconn_fail_all(c, r);
			return r;
		}
		if (extra) {
			c->rgot = extra;
			if (c->rgot == c->rh.len)
				payload_done(c);
		}
		return c->err ? c->err : (int)got;
	}
	if (c->in_payload && c->rdst) {
		c->stg_len += extra;
		c->rgot += (size_t)got - extra;
		if (c->rgot == c->rh.len)
			payload_done(c);
	} else {
		c->stg_len += (size_t)got;
	}
	return drain_staging(c) < 0 ? c->err : (int)got;
}

/*
 * After a receive: send what its completion callbacks submitted, in one
 * go (see mnconn_submit()). `r` is recv_some()'s result.
 */
static int recv_done(struct mnc *c, int r)
{
	if (r < 0)
		return r;
	return c->sq_head != MNC_NONE ? flush_send(c) : 0;
}

/* One round of I/O (mnconn.h). */
int mnconn_io_round(struct mnc *c, uint64_t deadline)
{
	int r;

	r = flush_send(c);
	if (r < 0)
		return r;
	if (deadline == 0)
		return recv_done(c, recv_some(c, false));
	for (;;) {
		uint64_t now = now_ns();
		int64_t left_ms;

		if (now >= deadline)
			return 0;
		left_ms = deadline == UINT64_MAX ? -1 : (int64_t)((deadline - now + 999999) / 1000000);
		if (fio_rpending(&c->io))
			return recv_done(c, recv_some(c, false));
		if (c->sq_head == MNC_NONE && !fio_wpending(&c->io) &&
		    (left_ms < 0 || left_ms >= MNC_RCVTIMEO_MS)) {
			/* Nothing to send: sleep in recvmsg itself (one syscall). */
			r = recv_some(c, true);
			if (r != 0)
				return recv_done(c, r);
			continue;
		}
		struct pollfd pfd = {
			.fd = c->fd,
			.events = POLLIN | (c->sq_head != MNC_NONE || fio_wpending(&c->io) ? POLLOUT : 0),
		};
		r = poll(&pfd, 1, left_ms < 0 ? -1 : (int)MIN(left_ms, (int64_t)INT32_MAX));
		if (r < 0 && errno != EINTR) {
			mnconn_fail_all(c, -errno);
			return c->err;
		}
		if (r <= 0)
			continue;
		if (pfd.revents & POLLOUT) {
			r = flush_send(c);
			if (r < 0)
				return r;
		}
		r = recv_some(c, false);
		if (r != 0 || (pfd.revents & POLLOUT))
			return recv_done(c, r);
	}
}

uint64_t mnconn_deadline_after(int ms)
{
	if (ms < 0)
		return UINT64_MAX;
	return now_ns() + (uint64_t)ms * 1000000;
}

/*
 * A wait ran out of time: say what the connection looked like, so that a
 * stall can be told apart (never sent, sent and not answered, answer half
 * read, bytes stuck in the TLS layer).
 */
static void stall_report(const struct mnc *c, const char *what)
{
	const struct mnc_req *old = NULL;
	uint64_t now = now_ns();

	for (unsigned i = 0; i < c->cap; i++)
		if (c->slots[i].id && (!old || c->slots[i].id < old->id))
			old = &c->slots[i];
	log_warn("memory node %llu: %s timed out after %d ms: %u in flight (oldest #%llu %s, "
		 "%zu/%zu bytes sent), %zu bytes queued, tls out %d in %d, reply %s %zu/%u, "
		 "staged %zu; last byte in %lld ms ago (%llu total), out %lld ms ago (%llu total)",
		 (unsigned long long)c->info.node_id, what, c->timeout_ms, c->inflight,
		 old ? (unsigned long long)old->id : 0ull, old ? proto_op_name(old->op) : "-",
		 old ? old->sent : 0, old ? old->total : 0, c->sq_bytes, fio_wpending(&c->io),
		 fio_rpending(&c->io), c->in_payload ? "partial" : "none", c->rgot,
		 c->in_payload ? c->rh.len : 0, c->stg_len - c->stg_off,
		 c->rx_ns ? (long long)((now - c->rx_ns) / 1000000) : -1ll,
		 (unsigned long long)c->rx_bytes,
		 c->tx_ns ? (long long)((now - c->tx_ns) / 1000000) : -1ll,
		 (unsigned long long)c->tx_bytes);
}

/* Wait until *flag is set (or nothing is in flight, flag NULL) within the sync timeout. */
int mnconn_wait_until(struct mnc *c, const bool *flag, uint64_t deadline)
{
	while (flag ? !*flag : c->inflight > 0) {
		int r;

		if (c->err)
			return c->err;
		if (now_ns() >= deadline) {
			stall_report(c, flag ? "a request" : "waiting for replies");
			mnconn_fail_all(c, -ETIMEDOUT);
			return -ETIMEDOUT;
		}
		r = mnconn_io_round(c, deadline);
		if (r < 0 && !(flag && *flag))
			return r;
	}
	return 0;
}

/* ---- submission -------------------------------------------------------- */

/* Get a slot, waiting for replies while the table is full. */
int mnconn_get_slot(struct mnc *c, struct mnc_req **ret)
{
	uint64_t deadline = 0;

	for (;;) {
		struct mnc_req *r;
		int k;

		if (c->err)
			return c->err;
		r = slot_alloc(c);
		if (r) {
			*ret = r;
			return 0;
		}
		if (!deadline)
			deadline = mnconn_deadline_after(c->timeout_ms);
		if (now_ns() >= deadline) {
			stall_report(c, "waiting for a free request slot");
			mnconn_fail_all(c, -ETIMEDOUT);
			return -ETIMEDOUT;
		}
		k = mnconn_io_round(c, deadline);
		if (k < 0)
			return k;
	}
}

/*
 * Encode the header in front of the `fixed_len` payload bytes already in
 * r->head and queue the request. From here on its callback will run, also
 * if sending fails (then with the connection's error), so this returns 0.
 *
 * A request submitted from a completion callback is only queued (up to
 * SEND_BATCH bytes): the receive that ran the callback sends everything its
 * completions queued in one sendmsg() (recv_done()). Sending each one at
 * once would make a pipelined client trickle one small segment per
 * completion, each waking the server for a single request, and the replies
 * then come back one per wakeup too (see bench/README.md). Large WRITEs
 * gain nothing from waiting and go at once. Any wait flushes the queue
 * first, so a callback may still wait on the connection.
 */
int mnconn_submit(struct mnc *c, struct mnc_req *r, uint16_t op, size_t fixed_len,
		  const void *data, size_t data_len)
{
	struct proto_hdr h = {
		.magic = PROTO_MAGIC,
		.version = PROTO_VERSION,
		.opcode = op,
		.len = (uint32_t)(fixed_len + data_len),
		.req_id = r->id,
	};

	wire_hdr_encode(&h, r->head);
	r->op = op;
	r->head_len = PROTO_HDR_SIZE + fixed_len;
	r->total = r->head_len + data_len;
	r->data = data;
	r->sent = 0;
	sq_push(c, r);
	if (!c->in_callback || c->sq_bytes >= SEND_BATCH)
		(void)flush_send(c);
	return 0;
}

/* ---- synchronous calls ------------------------------------------------- */

void mnconn_sync_done(void *opaque, int status, size_t len)
{
	struct mnconn_sync *w = opaque;

	w->done = true;
	w->status = status;
	w->len = len;
}

int mnconn_sync_wait(struct mnc *c, struct mnconn_sync *w, int ms)
{
	int r = mnconn_wait_until(c, &w->done, mnconn_deadline_after(ms));

	if (w->done)
		return w->status;
	return r < 0 ? r : -EIO;
}

/*
 * A synchronous request, sent: reply (rep, replen, exact) unless noreply.
 * Returns what mnconn_sync_wait returns.
 */
static int call_sync(struct mnc *c, struct mnconn_sync *w, uint16_t op, const void *req,
		     size_t reqlen, const void *data, size_t datalen, void *rep, size_t replen,
		     bool exact, bool noreply, int ms)
{
	struct mnc_req *r;
	int k;

	if (!c)
		return -EINVAL;
	k = mnconn_get_slot(c, &r);
	if (k < 0)
		return k;
	if (reqlen)
		memcpy(r->head + PROTO_HDR_SIZE, req, reqlen);
	r->done = mnconn_sync_done;
	r->opaque = w;
	r->rbuf = rep;
	r->rlen = replen;
	r->exact = exact;
	r->noreply = noreply;
	(void)mnconn_submit(c, r, op, reqlen, data, datalen);
	return mnconn_sync_wait(c, w, ms);
}

int mnconn_send_only(struct mnc *c, uint16_t op, const void *req, size_t reqlen,
		     const void *data, size_t datalen, int ms)
{
	struct mnconn_sync w = { 0 };

	return call_sync(c, &w, op, req, reqlen, data, datalen, NULL, 0, false, true, ms);
}

int mnconn_call(struct mnc *c, uint16_t op, const void *req, size_t reqlen, const void *data,
		size_t datalen, void *rep, size_t replen, bool exact, int ms, size_t *ret_len)
{
	struct mnconn_sync w = { 0 };
	int k = call_sync(c, &w, op, req, reqlen, data, datalen, rep, replen, exact, false, ms);

	if (k < 0)
		return k;
	if (ret_len)
		*ret_len = w.len;
	return 0;
}
