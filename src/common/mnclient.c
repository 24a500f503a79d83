// SPDX-License-Identifier: MIT
/*
 * Memory-node client: one authenticated, pipelined connection. See mnclient.h.
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
 * Any protocol violation, EOF, socket error or sync timeout breaks the
 * connection: every outstanding request completes with the error.
 */
#include "mnclient.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fio.h"
#include "net.h"
#include "tls.h"
#include "wire.h"

#define SLOT_BITS        16
#define SLOT_MASK        ((1u << SLOT_BITS) - 1)
#define HEAD_MAX         (PROTO_HDR_SIZE + sizeof(struct proto_io_req) + \
			  PROTO_MAX_EXTENTS * sizeof(struct proto_extent))
#define STG_SIZE         (64u << 10)
#define SEND_IOV         64
#define SEND_BATCH       (64u << 10)  /* bytes a callback's submissions may hold back */
#define RCVTIMEO_MS      100
#define DEFAULT_TIMEOUT  5000
#define NONE             (-1)

_Static_assert(HEAD_MAX >= PROTO_HDR_SIZE + sizeof(struct proto_copy_req), "head size");
_Static_assert(HEAD_MAX >= PROTO_HDR_SIZE + sizeof(struct proto_atomic_req), "head size");

struct mnc_req {
	uint64_t id;                 /* 0 = free */
	uint16_t op;
	bool exact;                  /* reply payload must be exactly rlen (else <= rlen) */
	int next;                    /* free list or send queue link */
	mnc_done_fn done;
	void *opaque;
	void *rbuf;                  /* where reply payload goes (NULL: none expected) */
	size_t rlen;
	/* send side */
	size_t head_len, sent, total;
	const void *data;            /* WRITE page data (caller's) */
	uint8_t head[HEAD_MAX];
};

struct mnc {
	int fd;
	struct cert_id peer;         /* the server's certificate (TLS) */
	struct fio io;               /* plain or TLS byte I/O on fd */
	int err;                     /* 0, or why the connection is broken */
	int timeout_ms;
	struct mnc_info info;
	uint64_t seq;
	unsigned cap, inflight;
	unsigned completions;        /* requests completed, ever (mnc_poll's count) */
	unsigned in_callback;        /* completion callbacks running (submissions wait) */
	int free_head, last;         /* last: most recently allocated slot */
	int sq_head, sq_tail;        /* send queue */
	size_t sq_bytes;             /* its unsent bytes */
	struct mnc_req *slots;
	/* receive state */
	struct proto_hdr rh;         /* current reply header (when in_payload) */
	struct mnc_req *rreq;        /* its request (NULL: discard payload) */
	uint8_t *rdst;               /* payload destination (NULL: discard) */
	size_t rgot;
	bool in_payload;
	size_t stg_off, stg_len;     /* unconsumed staging bytes: [stg_off, stg_len) */
	uint8_t stg[STG_SIZE];
};

/* ---- slots ------------------------------------------------------------- */

static struct mnc_req *slot_alloc(struct mnc *c)
{
	struct mnc_req *r;
	int i = c->free_head;

	if (i == NONE)
		return NULL;
	r = &c->slots[i];
	c->free_head = r->next;
	c->seq++;
	memset(r, 0, offsetof(struct mnc_req, head));
	r->id = c->seq << SLOT_BITS | (uint64_t)i;
	r->next = NONE;
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
static void fail_all(struct mnc *c, int err)
{
	if (!c->err)
		c->err = err;
	c->sq_head = c->sq_tail = NONE;
	c->sq_bytes = 0;
	c->in_payload = false;
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
		fail_all(c, fr == -ECONNRESET ? -ECONNRESET : -EPIPE);
	if (fr < 0)
		return fr == -EAGAIN ? 0 : c->err;
	while (c->sq_head != NONE) {
		struct iovec iov[SEND_IOV];
		size_t n = 0;
		ssize_t w;

		for (int i = c->sq_head; i != NONE && n + 2 <= SEND_IOV; i = c->slots[i].next) {
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
		if (w < 0) {
			if (w == -EAGAIN)
				return 0;
			fail_all(c, w == -ECONNRESET ? -ECONNRESET : -EPIPE);
			return c->err;
		}
		while (w > 0 && c->sq_head != NONE) {
			struct mnc_req *r = &c->slots[c->sq_head];
			size_t k = MIN((size_t)w, r->total - r->sent);

			r->sent += k;
			c->sq_bytes -= k;
			w -= (ssize_t)k;
			if (r->sent == r->total) {
				c->sq_head = r->next;
				r->next = NONE;
			}
		}
		if (c->sq_head == NONE)
			c->sq_tail = NONE;
	}
	return 0;
}

static void sq_push(struct mnc *c, struct mnc_req *r)
{
	int i = (int)(r - c->slots);

	r->next = NONE;
	c->sq_bytes += r->total - r->sent;
	if (c->sq_tail == NONE)
		c->sq_head = i;
	else
		c->slots[c->sq_tail].next = i;
	c->sq_tail = i;
}

/* ---- receiving --------------------------------------------------------- */

/* The current reply's payload is all there: complete its request. */
static void payload_done(struct mnc *c)
{
	struct mnc_req *r = c->rreq;
	int st;

	c->in_payload = false;
	c->rreq = NULL;
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
	if (!(h.flags & PROTO_F_REPLY))
		return -EBADMSG;
	r = slot_find(c, h.req_id);
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
			fail_all(c, r);
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

/* The single outstanding READ, if that is the only request in flight. */
static struct mnc_req *lone_read(struct mnc *c)
{
	struct mnc_req *r = &c->slots[c->last];

	if (c->inflight != 1)
		return NULL;
	if (!r->id)
		for (unsigned i = 0; i < c->cap && !r->id; i++)
			r = &c->slots[i];
	return r->op == PROTO_OP_READ ? r : NULL;
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
		iov[1] = (struct iovec){ c->stg + c->stg_len, STG_SIZE - c->stg_len };
	} else if (!c->in_payload && c->stg_len < PROTO_HDR_SIZE && (spec = lone_read(c))) {
		/* Speculate: the header into staging, the pages straight into place. */
		iov[0] = (struct iovec){ c->stg + c->stg_len, PROTO_HDR_SIZE - c->stg_len };
		iov[1] = (struct iovec){ spec->rbuf, spec->rlen };
	} else {
		iov[0] = (struct iovec){ c->stg + c->stg_len, STG_SIZE - c->stg_len };
		niov = 1;
	}
	first = iov[0].iov_len;
	got = fio_readv(&c->io, iov, niov, block);
	if (got < 0) {
		if (got == -EAGAIN)
			return 0;
		fail_all(c, got == -ECONNRESET ? -ECONNRESET : -EPIPE);
		return c->err;
	}
	if (got == 0) {
		fail_all(c, -EPIPE);
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
			fail_all(c, r);
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
 * go (see submit()). `r` is recv_some()'s result.
 */
static int recv_done(struct mnc *c, int r)
{
	if (r < 0)
		return r;
	return c->sq_head != NONE ? flush_send(c) : 0;
}

/*
 * One round of I/O: send what is queued, then receive, sleeping until
 * `deadline` (ns, 0 = don't sleep, UINT64_MAX = forever) if nothing comes,
 * then send what the completions queued.
 * Returns 0 (progress made or deadline passed) or <0 when broken.
 */
static int io_round(struct mnc *c, uint64_t deadline)
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
		if (c->sq_head == NONE && !fio_wpending(&c->io) &&
		    (left_ms < 0 || left_ms >= RCVTIMEO_MS)) {
			/* Nothing to send: sleep in recvmsg itself (one syscall). */
			r = recv_some(c, true);
			if (r != 0)
				return recv_done(c, r);
			continue;
		}
		struct pollfd pfd = {
			.fd = c->fd,
			.events = POLLIN | (c->sq_head != NONE || fio_wpending(&c->io) ? POLLOUT : 0),
		};
		r = poll(&pfd, 1, left_ms < 0 ? -1 : (int)MIN(left_ms, (int64_t)INT32_MAX));
		if (r < 0 && errno != EINTR) {
			fail_all(c, -errno);
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

static uint64_t deadline_after(int ms)
{
	if (ms < 0)
		return UINT64_MAX;
	return now_ns() + (uint64_t)ms * 1000000;
}

/* Wait until *flag is set (or nothing is in flight, flag NULL) within the sync timeout. */
static int wait_until(struct mnc *c, const bool *flag, uint64_t deadline)
{
	while (flag ? !*flag : c->inflight > 0) {
		int r;

		if (c->err)
			return c->err;
		if (now_ns() >= deadline) {
			fail_all(c, -ETIMEDOUT);
			return -ETIMEDOUT;
		}
		r = io_round(c, deadline);
		if (r < 0 && !(flag && *flag))
			return r;
	}
	return 0;
}

/* ---- submission -------------------------------------------------------- */

/* Get a slot, waiting for replies while the table is full. */
static int get_slot(struct mnc *c, struct mnc_req **ret)
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
			deadline = deadline_after(c->timeout_ms);
		if (now_ns() >= deadline) {
			fail_all(c, -ETIMEDOUT);
			return -ETIMEDOUT;
		}
		k = io_round(c, deadline);
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
static int submit(struct mnc *c, struct mnc_req *r, uint16_t op, size_t fixed_len,
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

/* Check an extent vector; returns total pages or <0. */
static int check_extents(const struct mnc *c, const struct proto_extent *ext, uint32_t next)
{
	uint64_t total = 0;

	if (!ext || next == 0)
		return -EINVAL;
	if (next > PROTO_MAX_EXTENTS)
		return -E2BIG;
	for (uint32_t i = 0; i < next; i++) {
		if (ext[i].count == 0)
			return -EINVAL;
		total += ext[i].count;
	}
	if (total > c->info.max_pages)
		return -E2BIG;
	return (int)total;
}

static int io_async(struct mnc *c, uint16_t op, const struct proto_grant *g,
		    const struct proto_extent *ext, uint32_t next, void *buf, mnc_done_fn done,
		    void *opaque)
{
	struct proto_io_req io = { .grant = *g, .nextents = next };
	struct mnc_req *r;
	size_t bytes;
	uint8_t *p;
	int n;

	if (!c || !g || !buf)
		return -EINVAL;
	n = check_extents(c, ext, next);
	if (n < 0)
		return n;
	n = get_slot(c, &r);
	if (n < 0)
		return n;
	bytes = 0;
	for (uint32_t i = 0; i < next; i++)
		bytes += (size_t)ext[i].count * PROTO_PAGE_SIZE;
	r->done = done;
	r->opaque = opaque;
	wire_grant_swap(&io.grant);
	io.nextents = htole32(io.nextents);
	p = r->head + PROTO_HDR_SIZE;
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	for (uint32_t i = 0; i < next; i++, p += sizeof(struct proto_extent)) {
		struct proto_extent e = ext[i];

		wire_extent_swap(&e);
		memcpy(p, &e, sizeof(e));
	}
	if (op == PROTO_OP_READ) {
		r->rbuf = buf;
		r->rlen = bytes;
		r->exact = true;
		bytes = 0;
	} else {
		r->exact = true; /* empty reply */
	}
	return submit(c, r, op, (size_t)(p - r->head) - PROTO_HDR_SIZE,
		      op == PROTO_OP_WRITE ? buf : NULL, bytes);
}

int mnc_read_async(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
		   uint32_t next, void *buf, mnc_done_fn done, void *opaque)
{
	return io_async(c, PROTO_OP_READ, g, ext, next, buf, done, opaque);
}

int mnc_write_async(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
		    uint32_t next, const void *data, mnc_done_fn done, void *opaque)
{
	return io_async(c, PROTO_OP_WRITE, g, ext, next, (void *)data, done, opaque);
}

/* ---- synchronous calls ------------------------------------------------- */

struct sync_wait {
	bool done;
	int status;
	size_t len;
};

static void sync_done(void *opaque, int status, size_t len)
{
	struct sync_wait *w = opaque;

	w->done = true;
	w->status = status;
	w->len = len;
}

static int sync_wait_ms(struct mnc *c, struct sync_wait *w, int ms)
{
	int r = wait_until(c, &w->done, deadline_after(ms));

	if (w->done)
		return w->status;
	return r < 0 ? r : -EIO;
}

/*
 * A synchronous request with a fixed payload `req` (already little-endian)
 * and a reply of exactly (exact) or at most `replen` bytes into `rep`.
 */
#define call(c, op, req, reqlen, rep, replen, exact, ms, ret_len) \
	call_data(c, op, req, reqlen, NULL, 0, rep, replen, exact, ms, ret_len)
static int call_data(struct mnc *c, uint16_t op, const void *req, size_t reqlen,
		     const void *data, size_t datalen, void *rep, size_t replen, bool exact,
		     int ms, size_t *ret_len)
{
	struct sync_wait w = { 0 };
	struct mnc_req *r;
	int k;

	if (!c)
		return -EINVAL;
	k = get_slot(c, &r);
	if (k < 0)
		return k;
	if (reqlen)
		memcpy(r->head + PROTO_HDR_SIZE, req, reqlen);
	r->done = sync_done;
	r->opaque = &w;
	r->rbuf = rep;
	r->rlen = replen;
	r->exact = exact;
	(void)submit(c, r, op, reqlen, data, datalen);
	k = sync_wait_ms(c, &w, ms);
	if (k < 0)
		return k;
	if (ret_len)
		*ret_len = w.len;
	return 0;
}

int mnc_call_data(struct mnc *c, uint16_t op, const void *req, size_t reqlen, const void *data,
		  size_t datalen, void *rep, size_t replen)
{
	if (reqlen > HEAD_MAX - PROTO_HDR_SIZE || datalen > PROTO_MAX_PAYLOAD - reqlen)
		return -E2BIG;
	return call_data(c, op, req, reqlen, data, datalen, rep, replen, true,
			 c ? c->timeout_ms : 0, NULL);
}

int mnc_call(struct mnc *c, uint16_t op, const void *req, size_t reqlen, void *rep,
	     size_t replen)
{
	if (reqlen > HEAD_MAX - PROTO_HDR_SIZE)
		return -E2BIG;
	return call(c, op, req, reqlen, rep, replen, true, c ? c->timeout_ms : 0, NULL);
}

int mnc_ping(struct mnc *c)
{
	return call(c, PROTO_OP_PING, NULL, 0, NULL, 0, true, c ? c->timeout_ms : 0, NULL);
}

static int io_sync(struct mnc *c, uint16_t op, const struct proto_grant *g,
		   const struct proto_extent *ext, uint32_t next, void *buf)
{
	struct sync_wait w = { 0 };
	int r;

	r = io_async(c, op, g, ext, next, buf, sync_done, &w);
	if (r < 0)
		return r;
	return sync_wait_ms(c, &w, c->timeout_ms);
}

int mnc_read(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
	     uint32_t next, void *buf)
{
	return io_sync(c, PROTO_OP_READ, g, ext, next, buf);
}

int mnc_write(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
	      uint32_t next, const void *data)
{
	return io_sync(c, PROTO_OP_WRITE, g, ext, next, (void *)data);
}

struct range_wait {
	unsigned pending;
	int status;
};

static void range_done(void *opaque, int status, size_t len)
{
	struct range_wait *w = opaque;

	w->pending--;
	if (status < 0 && w->status == 0)
		w->status = status;
}

static int io_range(struct mnc *c, uint16_t op, const struct proto_grant *g, uint32_t page,
		    uint32_t npages, void *buf)
{
	struct range_wait w = { 0 };
	uint64_t deadline;
	int r = 0;

	if (!c || !g || !buf)
		return -EINVAL;
	if ((uint64_t)page + npages > UINT32_MAX)
		return -ERANGE;
	for (uint32_t done = 0; done < npages && w.status == 0;) {
		struct proto_extent e = { page + done, MIN(npages - done, c->info.max_pages) };

		w.pending++; /* before: the callback may run inside the call */
		r = io_async(c, op, g, &e, 1, (uint8_t *)buf + (size_t)done * PROTO_PAGE_SIZE,
			     range_done, &w);
		if (r < 0) {
			w.pending--;
			break;
		}
		done += e.count;
	}
	deadline = deadline_after(c->timeout_ms);
	while (w.pending > 0) {
		if (c->err)
			return c->err; /* cannot happen: breaking completes everything */
		if (now_ns() >= deadline) {
			fail_all(c, -ETIMEDOUT);
			break;
		}
		(void)io_round(c, deadline);
	}
	return w.status < 0 ? w.status : r;
}

int mnc_read_range(struct mnc *c, const struct proto_grant *g, uint32_t page, uint32_t npages,
		   void *buf)
{
	return io_range(c, PROTO_OP_READ, g, page, npages, buf);
}

int mnc_write_range(struct mnc *c, const struct proto_grant *g, uint32_t page, uint32_t npages,
		    const void *data)
{
	return io_range(c, PROTO_OP_WRITE, g, page, npages, (void *)data);
}

int mnc_list(struct mnc *c, uint32_t start, uint32_t max, struct proto_section *ret,
	     uint32_t *ret_count, uint32_t *ret_next)
{
	struct proto_list_req req = { .start = start, .max = MIN(max, (uint32_t)PROTO_MAX_LIST) };
	_cleanup_free_ uint8_t *buf = NULL;
	struct proto_list_rep lr;
	size_t cap, len = 0;
	int r;

	if (!c || (max && !ret))
		return -EINVAL;
	cap = sizeof(lr) + (size_t)req.max * sizeof(struct proto_section);
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	wire_list_req_swap(&req);
	r = call(c, PROTO_OP_SECTION_LIST, &req, sizeof(req), buf, cap, false, c->timeout_ms,
		 &len);
	if (r < 0)
		return r;
	if (len < sizeof(lr))
		return -EBADMSG;
	memcpy(&lr, buf, sizeof(lr));
	wire_list_rep_swap(&lr);
	if (lr.count > max || len != sizeof(lr) + (size_t)lr.count * sizeof(struct proto_section))
		return -EBADMSG;
	for (uint32_t i = 0; i < lr.count; i++) {
		memcpy(&ret[i], buf + sizeof(lr) + (size_t)i * sizeof(*ret), sizeof(*ret));
		wire_section_swap(&ret[i]);
	}
	*ret_count = lr.count;
	*ret_next = lr.next;
	return 0;
}

static int atomic(struct mnc *c, uint16_t op, const struct proto_grant *g, uint64_t offset,
		  uint64_t expect, uint64_t value, uint64_t *ret_old)
{
	struct proto_atomic_req req = { .offset = offset, .expect = expect, .value = value };
	uint64_t old;
	int r;

	if (!g)
		return -EINVAL;
	req.grant = *g;
	wire_atomic_req_swap(&req);
	r = call(c, op, &req, sizeof(req), &old, sizeof(old), true, c ? c->timeout_ms : 0, NULL);
	if (r < 0)
		return r;
	wire_u64_swap(&old);
	if (ret_old)
		*ret_old = old;
	return 0;
}

int mnc_cas(struct mnc *c, const struct proto_grant *g, uint64_t offset, uint64_t expect,
	    uint64_t value, uint64_t *ret_old)
{
	return atomic(c, PROTO_OP_CAS, g, offset, expect, value, ret_old);
}

int mnc_fadd(struct mnc *c, const struct proto_grant *g, uint64_t offset, uint64_t add,
	     uint64_t *ret_old)
{
	return atomic(c, PROTO_OP_FADD, g, offset, 0, add, ret_old);
}

int mnc_copy(struct mnc *c, const struct proto_grant *src_grant,
	     const struct proto_grant *dst_grant, const char *addr, struct proto_copy_rep *ret)
{
	struct proto_copy_req req = { 0 };
	struct proto_copy_rep rep;
	int r;

	if (!c || !src_grant || !dst_grant || !addr || strlen(addr) >= sizeof(req.addr))
		return -EINVAL;
	req.src_grant = *src_grant;
	req.dst_grant = *dst_grant;
	memcpy(req.addr, addr, strlen(addr));
	wire_copy_req_swap(&req);
	/* A copy moves a whole section: allow it ten times the usual wait. */
	r = call(c, PROTO_OP_COPY, &req, sizeof(req), &rep, sizeof(rep), true,
		 c->timeout_ms > INT32_MAX / 10 ? -1 : c->timeout_ms * 10, NULL);
	if (r < 0)
		return r;
	wire_copy_rep_swap(&rep);
	if (ret)
		*ret = rep;
	return 0;
}

/* ---- polling ----------------------------------------------------------- */

int mnc_poll(struct mnc *c, int timeout_ms)
{
	uint64_t deadline = timeout_ms == 0 ? 0 : deadline_after(timeout_ms);
	unsigned before;
	int r;

	if (!c)
		return -EINVAL;
	if (c->err)
		return c->err;
	before = c->completions;
	for (;;) {
		r = io_round(c, deadline);
		if (c->completions != before)
			return (int)(c->completions - before);
		if (r < 0)
			return r;
		if (c->inflight == 0 || deadline == 0 || now_ns() >= deadline)
			return 0;
	}
}

int mnc_drain(struct mnc *c)
{
	if (!c)
		return -EINVAL;
	return wait_until(c, NULL, deadline_after(c->timeout_ms));
}

/* ---- connection -------------------------------------------------------- */

/* Handshake I/O: blocking, bounded by `deadline`. */
static int hs_send(struct mnc *c, uint16_t op, uint64_t id, const void *p, size_t len,
		   uint64_t deadline)
{
	/* The largest handshake frame: the orchestrator's AUTH. */
	uint8_t buf[PROTO_HDR_SIZE + MAX(sizeof(struct proto_hello_req),
					 sizeof(struct proto_auth_orch_req))];
	struct proto_hdr h = {
		.magic = PROTO_MAGIC, .version = PROTO_VERSION, .opcode = op,
		.len = (uint32_t)len, .req_id = id,
	};

	if (len > sizeof(buf) - PROTO_HDR_SIZE)
		return -E2BIG;
	wire_hdr_encode(&h, buf);
	memcpy(buf + PROTO_HDR_SIZE, p, len);
	return fio_write_full(&c->io, buf, PROTO_HDR_SIZE + len, deadline);
}

static int hs_read(struct mnc *c, void *buf, size_t len, uint64_t deadline)
{
	return fio_read_full(&c->io, buf, len, deadline);
}

/* Read one handshake reply to request `id`: OK status with exactly `len` bytes. */
static int hs_reply(struct mnc *c, uint16_t op, uint64_t id, void *buf, size_t len,
		    uint64_t deadline)
{
	uint8_t hb[PROTO_HDR_SIZE];
	struct proto_hdr h;
	int r;

	r = hs_read(c, hb, sizeof(hb), deadline);
	if (r < 0)
		return r;
	if (wire_hdr_decode(hb, sizeof(hb), &h) < 0 || !(h.flags & PROTO_F_REPLY) ||
	    h.opcode != op || h.req_id != id)
		return -EBADMSG;
	if (h.status != PROTO_ST_OK)
		return proto_status_to_errno(h.status);
	if (h.len != len)
		return -EBADMSG;
	return hs_read(c, buf, len, deadline);
}

static int handshake(struct mnc *c, const struct mnc_opts *o, uint64_t deadline)
{
	struct proto_hello_req hq = {
		.ver_min = PROTO_VERSION, .ver_max = PROTO_VERSION,
		.features = PROTO_FEAT_ALL, .node_id = o->node_id,
	};
	struct proto_hello_rep hr;
	struct proto_auth_orch_req aq;    /* a plain AUTH sends only its MAC */
	uint8_t cnonce[PROTO_NONCE_SIZE], mac[PROTO_MAC_SIZE];
	int r;

	r = auth_random(cnonce, sizeof(cnonce));
	if (r < 0)
		return r;
	memcpy(hq.nonce, cnonce, sizeof(cnonce));
	wire_hello_req_swap(&hq);
	r = hs_send(c, PROTO_OP_HELLO, 1, &hq, sizeof(hq), deadline);
	if (r < 0)
		return r;
	r = hs_reply(c, PROTO_OP_HELLO, 1, &hr, sizeof(hr), deadline);
	if (r < 0)
		return r;
	wire_hello_rep_swap(&hr);
	r = auth_hello_mac(o->key, true, cnonce, hr.nonce, o->node_id, hr.node_id, mac);
	if (r < 0)
		return r;
	if (!auth_mac_equal(mac, hr.mac))
		return -EKEYREJECTED; /* the server does not hold the cluster key */
	if (hr.version != PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (hr.max_pages == 0 || hr.max_inflight == 0)
		return -EBADMSG;
	if (fio_is_tls(&c->io) && hr.node_id != c->peer.node_id)
		return -EKEYREJECTED;  /* its certificate names another memory node */

	r = auth_hello_mac(o->key, false, cnonce, hr.nonce, o->node_id, hr.node_id, aq.mac);
	if (r < 0)
		return r;
	if (o->orch_key) {
		r = grant_orch_sign(o->orch_key, cnonce, hr.nonce, o->node_id, hr.node_id, aq.sig);
		if (r < 0)
			return r;
	}
	r = hs_send(c, PROTO_OP_AUTH, 2, &aq,
		    o->orch_key ? sizeof(aq) : sizeof(struct proto_auth_req), deadline);
	if (r < 0)
		return r;
	r = hs_reply(c, PROTO_OP_AUTH, 2, NULL, 0, deadline);
	if (r < 0)
		return r;

	c->info = (struct mnc_info){
		.node_id = hr.node_id,
		.section_size = hr.section_size,
		.nsections = hr.nsections,
		.max_pages = MIN(hr.max_pages, (uint32_t)PROTO_MAX_PAGES),
		.max_inflight = MIN(hr.max_inflight, (uint32_t)PROTO_MAX_INFLIGHT),
		.features = hr.features & PROTO_FEAT_ALL,
		.version = hr.version,
	};
	return 0;
}

int mnc_connect(const struct mnc_opts *opts, struct mnc **ret)
{
	int fd = !opts || !opts->addr || !opts->key || !ret ? -EINVAL :
		 net_connect_tcp(opts->addr, opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT);

	return fd < 0 ? fd : mnc_connect_fd(opts, fd, ret);
}

int mnc_connect_fd(const struct mnc_opts *opts, int fd, struct mnc **ret)
{
	struct timeval tv = { .tv_usec = RCVTIMEO_MS * 1000 };
	bool args_ok = opts && opts->key && ret;
	struct mnc *c = args_ok ? calloc(1, sizeof(*c)) : NULL;
	struct tls_ctx *tls;
	uint64_t deadline;
	int r;

	if (!c) {
		close(fd);
		return args_ok ? -ENOMEM : -EINVAL;
	}
	c->fd = fd;
	c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT;
	c->free_head = c->sq_head = c->sq_tail = NONE;
	deadline = deadline_after(c->timeout_ms);
	tls = opts->tls ? opts->tls : tls_default();
	fio_init_plain(&c->io, fd, RCVTIMEO_MS);
	r = tls ? tls_client_fio(tls, fd, deadline, RCVTIMEO_MS, &c->io, &c->peer) : 0;
	if (r >= 0)
		r = handshake(c, opts, deadline);
	if (r < 0)
		goto fail;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		goto fail;
	}
	c->cap = c->info.max_inflight;
	c->slots = calloc(c->cap, sizeof(*c->slots));
	if (!c->slots) {
		r = -ENOMEM;
		goto fail;
	}
	for (unsigned i = c->cap; i-- > 0;) {
		c->slots[i].next = c->free_head;
		c->free_head = (int)i;
	}
	*ret = c;
	return 0;
fail:
	fio_done(&c->io, false);
	close(c->fd);
	free(c);
	return r;
}

void mnc_close(struct mnc *c)
{
	if (!c)
		return;
	fail_all(c, -ECANCELED);
	fio_done(&c->io, true);
	close(c->fd);
	free(c->slots);
	free(c);
}

const struct mnc_info *mnc_info(const struct mnc *c)
{
	return &c->info;
}

int mnc_fd(const struct mnc *c)
{
	return c->fd;
}

unsigned mnc_inflight(const struct mnc *c)
{
	return c->inflight;
}

bool mnc_broken(const struct mnc *c)
{
	return c->err != 0;
}
