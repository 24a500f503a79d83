// SPDX-License-Identifier: MIT
/*
 * A device-node connection: one thread that owns the socket, an io_uring
 * ring (blkio.h), the open volumes (handles) and every buffer of it.
 *
 * The loop: take the whole frames that are buffered (ops.c dispatches
 * them; block requests go on the ring), hand the ring what was queued in
 * one system call, write what replies are queued, then poll the socket
 * and the ring's fd. Answers are reaped and their replies queued in the
 * order the kernel finishes them; a frame's request id tells them apart.
 *
 * Bounded queues: the connection takes no new frame while `depth`
 * requests are on the ring, DN_IN_CAP bytes of their buffers are held,
 * or DN_OUT_CAP bytes of replies wait to be written; the socket is not
 * read meanwhile, so a client that sends faster than the disk or reads
 * slower than it answers is held back by TCP, and costs a bounded amount
 * of memory. A stalled client stalls only its own thread.
 *
 * Before AUTH a frame may be at most DN_PREAUTH_MAX bytes and the
 * handshake must end within the handshake timeout. A frame that fails
 * validation gets an error reply and the connection closes once it is
 * written. At the end, requests still on the ring are waited for (the
 * kernel may still write their buffers) before anything is freed.
 *
 * Revocation: a connection whose certificate, or in plaintext whose
 * HELLO, names a revoked node is refused (the TLS handshake here, HELLO
 * in ops.c). The node id a connection speaks for is the one thing of it
 * other threads read: a new list (REVOKE, on the orchestrator's
 * connection) shuts the socket of every connection of a node on it, which
 * wakes its thread's poll at once; the thread then ends as on any closed
 * socket.
 */
#include "conn.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "fio.h"
#include "log.h"
#include "macro.h"
#include "net.h"
#include "tls.h"
#include "wire.h"
#include "thread.h"

#define RBUF_SIZE (64u << 10)

struct dn_out {
	struct dn_out *next;
	size_t len, off;
	uint8_t *data;           /* malloc'ed: the whole frame */
};

struct dn_slot {
	bool used;
	struct proto_hdr req;
	uint8_t *buf;            /* READ: header room + data; WRITE: the payload */
	size_t buflen;
	unsigned handle;
	uint64_t start_ns;
};

struct dn_conn {
	struct dn_node *n;
	struct dn_conn *prev, *next;
	pthread_t thread;
	int fd;
	struct fio io;           /* plain or TLS (fio.h) */
	struct hs_peer peer;
	_Atomic uint64_t node_id; /* whom it speaks for, once known (dn_conn_identify) */
	_Atomic bool revoked;    /* shut for a revoked node: counted once */
	bool closing;            /* take no more frames; close once the replies are out */
	bool dead;               /* the socket failed: no more I/O on it */
	uint64_t born_ns;
	struct dn_blkio *ring;
	struct dn_slot *slots;
	unsigned nslots, inflight;
	size_t held;             /* bytes of slot buffers */
	struct dn_handle handles[PROTO_BLK_MAX_HANDLES];
	/* input */
	uint8_t *rbuf;
	size_t rlen, rpos;
	struct proto_hdr bighdr; /* a frame larger than rbuf, read into big */
	uint8_t *big;
	size_t big_have;
	/* output */
	struct dn_out *oq_head, *oq_tail;
	size_t out_bytes;
};

struct hs_peer *dn_conn_peer(struct dn_conn *c)
{
	return &c->peer;
}

struct dn_node *dn_conn_node(struct dn_conn *c)
{
	return c->n;
}

struct dn_handle *dn_conn_handles(struct dn_conn *c)
{
	return c->handles;
}

void dn_conn_close_after_reply(struct dn_conn *c, bool close)
{
	c->closing = close;
}

int dn_conn_identify(struct dn_conn *c, uint64_t node_id)
{
	atomic_store(&c->node_id, node_id);
	if (!revlist_has(&c->n->revoked, node_id))
		return 0;
	atomic_store(&c->revoked, true);   /* refused here: dn_conn_revoke_scan leaves it be */
	return -EACCES;
}

void dn_conn_revoke_scan(struct dn_node *n)
{
	pthread_mutex_lock(&n->mu);
	for (struct dn_conn *c = n->conns; c; c = c->next) {
		uint64_t id = atomic_load(&c->node_id);

		if (!id || !revlist_has(&n->revoked, id) || atomic_exchange(&c->revoked, true))
			continue;
		atomic_fetch_add(&n->stats.revoked_closed, 1);
		log_info("node %llu is revoked: closing its connection", (unsigned long long)id);
		(void)shutdown(c->fd, SHUT_RDWR);   /* wakes its poll; conn_free closes fd */
	}
	pthread_mutex_unlock(&n->mu);
}

static void out_push(struct dn_conn *c, uint8_t *data, size_t len)
{
	struct dn_out *o = malloc(sizeof(*o));

	if (!o) {
		free(data);
		c->closing = true;   /* a reply lost: the client must not wait for it */
		return;
	}
	*o = (struct dn_out){ .len = len, .data = data };
	if (c->oq_tail)
		c->oq_tail->next = o;
	else
		c->oq_head = o;
	c->oq_tail = o;
	c->out_bytes += len;
}

static void hdr_reply(const struct proto_hdr *req, uint32_t status, size_t len, void *buf)
{
	struct proto_hdr h = {
		.magic = PROTO_MAGIC,
		.version = PROTO_VERSION,
		.opcode = req->opcode,
		.flags = PROTO_F_REPLY,
		.len = (uint32_t)len,
		.req_id = req->req_id,
		.status = status,
	};

	wire_hdr_encode(&h, buf);
}

int dn_reply(struct dn_conn *c, const struct proto_hdr *req, uint32_t status, const void *p,
	     size_t len)
{
	uint8_t *buf = malloc(PROTO_HDR_SIZE + len);

	if (!buf) {
		c->closing = true;
		return -ENOMEM;
	}
	hdr_reply(req, status, len, buf);
	if (len)
		memcpy(buf + PROTO_HDR_SIZE, p, len);
	out_push(c, buf, PROTO_HDR_SIZE + len);
	return 0;
}

/* ---- the ring ------------------------------------------------------------------- */

int dn_conn_submit(struct dn_conn *c, const struct proto_hdr *req, struct dn_blk_req *rq,
		   unsigned handle, uint8_t *buf)
{
	struct dn_slot *s = NULL;
	int r;

	for (unsigned i = 0; i < c->nslots && !s; i++)
		if (!c->slots[i].used)
			s = &c->slots[i];
	if (!s)
		return -EBUSY;
	rq->cookie = (uint64_t)(s - c->slots);
	r = dn_blkio_queue(c->ring, rq);
	if (r < 0)
		return r;
	*s = (struct dn_slot){
		.used = true, .req = *req, .buf = buf, .handle = handle, .start_ns = now_ns(),
		.buflen = buf ? (req->opcode == PROTO_OP_BLK_READ ? PROTO_HDR_SIZE + rq->len
								  : req->len) : 0,
	};
	c->handles[handle].inflight++;
	c->inflight++;
	c->held += s->buflen;
	return 0;
}

/* A request the kernel answered: its reply, its counters, its slot back. */
static void slot_done(struct dn_conn *c, struct dn_slot *s, int res)
{
	struct dn_stats *st = &c->n->stats;
	uint16_t op = s->req.opcode;
	uint32_t status = res < 0 ? proto_errno_to_status(res) : PROTO_ST_OK;

	c->handles[s->handle].inflight--;
	if (op != PROTO_OP_BLK_READ)
		dn_fence_write_end(&c->handles[s->handle].fence);   /* on the disk, or failed */
	c->inflight--;
	c->held -= s->buflen;
	if (res < 0) {
		atomic_fetch_add(&st->io_errors, 1);
		atomic_fetch_add(&st->errors[op], 1);
		log_warn("%s on %s failed: %s", proto_op_name(op), c->handles[s->handle].name,
			 strerror(-res));
		/* The kernel's EIO stays EIO; anything else is the node's own failure. */
		if (status == PROTO_ST_BADMSG || status == PROTO_ST_RANGE)
			status = PROTO_ST_IO;
	}
	if (op == PROTO_OP_BLK_READ && res >= 0) {
		hdr_reply(&s->req, status, s->buflen - PROTO_HDR_SIZE, s->buf);
		atomic_fetch_add(&st->bytes_read, s->buflen - PROTO_HDR_SIZE);
		out_push(c, s->buf, s->buflen);
	} else {
		if (op == PROTO_OP_BLK_WRITE && res >= 0)
			atomic_fetch_add(&st->bytes_written, s->buflen - sizeof(struct proto_blk_io));
		free(s->buf);
		dn_reply(c, &s->req, status, NULL, 0);
	}
	hist_observe(&st->latency[op], now_ns() - s->start_ns);
	s->used = false;
	s->buf = NULL;
}

static int ring_reap(struct dn_conn *c, bool wait)
{
	struct dn_blk_done done[32];
	int n = dn_blkio_reap(c->ring, done, ARRAY_SIZE(done), wait);

	for (int i = 0; i < n; i++)
		if (done[i].cookie < c->nslots && c->slots[done[i].cookie].used)
			slot_done(c, &c->slots[done[i].cookie], done[i].res);
	return n;
}

/* ---- input ------------------------------------------------------------------------ */

static bool can_take(const struct dn_conn *c)
{
	return !c->closing && c->inflight < c->nslots && c->out_bytes < DN_OUT_CAP &&
	       c->held < DN_IN_CAP;
}

static void frame_error(struct dn_conn *c, const uint8_t *raw, int err)
{
	struct proto_hdr h = { 0 };

	atomic_fetch_add(&c->n->stats.bad_frames, 1);
	/* Answer with whatever request id and opcode the bytes give, if any. */
	memcpy(&h.req_id, raw + offsetof(struct proto_hdr, req_id), sizeof(h.req_id));
	memcpy(&h.opcode, raw + offsetof(struct proto_hdr, opcode), sizeof(h.opcode));
	h.req_id = le64toh(h.req_id);
	h.opcode = le16toh(h.opcode);
	log_debug("bad frame from peer %llu: %s", (unsigned long long)c->peer.peer_id,
		  strerror(-err));
	dn_reply(c, &h, proto_errno_to_status(err), NULL, 0);
	c->closing = true;
}

static void dispatch(struct dn_conn *c, const struct proto_hdr *h, uint8_t *payload,
		     uint8_t *owned)
{
	c->n->dispatch(c, h, payload, &owned);
	free(owned);
}

/* Take the whole frames buffered in rbuf while the queues allow. */
static void parse(struct dn_conn *c)
{
	while (can_take(c) && !c->big && c->rlen - c->rpos >= PROTO_HDR_SIZE) {
		const uint8_t *raw = c->rbuf + c->rpos;
		size_t avail = c->rlen - c->rpos - PROTO_HDR_SIZE;
		struct proto_hdr h;
		int r = wire_hdr_decode(raw, PROTO_HDR_SIZE, &h);

		if (r == 0 && (h.flags & PROTO_F_REPLY))
			r = -EBADMSG;    /* nobody asked the client anything */
		if (r == 0 && !c->peer.authed && PROTO_HDR_SIZE + (size_t)h.len > DN_PREAUTH_MAX)
			r = -E2BIG;
		if (r < 0) {
			frame_error(c, raw, r);
			return;
		}
		if (h.len <= avail) {
			c->rpos += PROTO_HDR_SIZE + h.len;
			dispatch(c, &h, (uint8_t *)raw + PROTO_HDR_SIZE, NULL);
			continue;
		}
		if (PROTO_HDR_SIZE + (size_t)h.len <= RBUF_SIZE)
			break;           /* it fits: read the rest */
		c->big = malloc(h.len);
		if (!c->big) {
			frame_error(c, raw, -ENOMEM);
			return;
		}
		c->bighdr = h;
		memcpy(c->big, raw + PROTO_HDR_SIZE, avail);
		c->big_have = avail;
		c->rpos = c->rlen;
	}
	if (c->rpos == c->rlen)
		c->rpos = c->rlen = 0;
}

static void big_done(struct dn_conn *c)
{
	uint8_t *big = c->big;

	c->big = NULL;
	dispatch(c, &c->bighdr, big, big);
}

/* Read what the socket has: 0, or -errno when it is gone. */
static int sock_read(struct dn_conn *c)
{
	ssize_t k;

	struct iovec iov;

	if (c->big) {
		iov = (struct iovec){ c->big + c->big_have, c->bighdr.len - c->big_have };
		k = fio_readv(&c->io, &iov, 1, false);
		if (k > 0 && (c->big_have += (size_t)k) == c->bighdr.len)
			big_done(c);
	} else {
		if (c->rpos && c->rlen == RBUF_SIZE) {
			memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
			c->rlen -= c->rpos;
			c->rpos = 0;
		}
		iov = (struct iovec){ c->rbuf + c->rlen, RBUF_SIZE - c->rlen };
		k = fio_readv(&c->io, &iov, 1, false);
		if (k > 0)
			c->rlen += (size_t)k;
	}
	if (k == 0)
		return -ECONNRESET;
	return k < 0 && k != -EAGAIN ? (int)k : 0;
}

/* ---- output ----------------------------------------------------------------------- */

static int sock_write(struct dn_conn *c)
{
	int k2;

	while (c->oq_head) {
		struct iovec iov[16];
		struct dn_out *o = c->oq_head;
		int n = 0;
		ssize_t k;

		for (; o && n < (int)ARRAY_SIZE(iov); o = o->next, n++)
			iov[n] = (struct iovec){ o->data + o->off, o->len - o->off };
		k = fio_writev(&c->io, iov, n);
		if (k == -EAGAIN || k == 0)
			break;
		if (k < 0)
			return (int)k;
		c->out_bytes -= (size_t)k;
		while (k > 0) {
			o = c->oq_head;
			size_t left = o->len - o->off;

			if ((size_t)k < left) {
				o->off += (size_t)k;
				break;
			}
			k -= (ssize_t)left;
			c->oq_head = o->next;
			if (!c->oq_head)
				c->oq_tail = NULL;
			free(o->data);
			free(o);
		}
	}
	/* TLS: what was sealed goes out (plain: nothing is staged). */
	k2 = fio_flush(&c->io);
	return k2 == -EAGAIN ? 0 : k2;
}

/* ---- the thread ------------------------------------------------------------------- */

static int wait_ms(const struct dn_conn *c)
{
	uint64_t end, now;

	if (c->peer.authed)
		return -1;
	end = c->born_ns + (uint64_t)c->n->limits.handshake_ms * 1000000ull;
	now = now_ns();
	return now >= end ? 0 : (int)((end - now) / 1000000ull) + 1;
}

static void serve(struct dn_conn *c)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->fd }, { .fd = dn_blkio_fd(c->ring), .events = POLLIN },
		};
		int r, t;

		if (!c->dead) {
			parse(c);
			if (c->inflight)
				(void)dn_blkio_submit(c->ring);
			if (sock_write(c) < 0)
				c->dead = true;
		}
		if (c->dead || (c->closing && !c->oq_head && !fio_wpending(&c->io) && !c->inflight))
			return;
		if (!c->peer.authed && (t = wait_ms(c)) == 0) {
			atomic_fetch_add(&c->n->stats.handshake_timeouts, 1);
			log_info("closing a connection that did not authenticate in %u ms",
				 c->n->limits.handshake_ms);
			return;
		}
		t = wait_ms(c);
		if (can_take(c) || c->big)
			p[0].events |= POLLIN;
		else if (!c->closing)
			atomic_fetch_add(&c->n->stats.queue_full, 1);
		if (c->oq_head || fio_wpending(&c->io))
			p[0].events |= POLLOUT;
		if ((p[0].events & POLLIN) && fio_rpending(&c->io))
			t = 0;           /* TLS holds decrypted bytes: no waiting for the socket */
		r = poll(p, c->inflight ? 2 : 1, t);
		if ((p[0].events & POLLIN) && fio_rpending(&c->io))
			p[0].revents |= POLLIN;
		if (r < 0 && errno != EINTR)
			return;
		if (c->inflight && (p[1].revents & POLLIN))
			ring_reap(c, false);
		if (p[0].revents & POLLIN) {
			if (sock_read(c) < 0)
				c->dead = true;
		} else if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			c->dead = true;
		}
		if (atomic_load(&c->n->stopping))
			c->dead = true;
	}
}

static void conn_free(struct dn_conn *c)
{
	struct dn_node *n = c->n;

	/* The kernel may still write into the buffers of requests on the ring. */
	while (c->inflight && ring_reap(c, true) > 0)
		;
	for (unsigned i = 0; i < PROTO_BLK_MAX_HANDLES; i++) {
		if (!c->handles[i].used)
			continue;
		dn_fence_leave(n->fences, &c->handles[i].fence);
		close(c->handles[i].fd);
		dn_volume_put(n->vols, c->handles[i].name);
	}
	while (c->oq_head) {
		struct dn_out *o = c->oq_head;

		c->oq_head = o->next;
		free(o->data);
		free(o);
	}
	for (unsigned i = 0; c->slots && i < c->nslots; i++)
		free(c->slots[i].buf);
	free(c->slots);
	free(c->big);
	free(c->rbuf);
	dn_blkio_free(c->ring);
	fio_done(&c->io, false);
	atomic_fetch_sub(&n->stats.conns_open, 1);
	/* After the unlock, n may be gone (dn_conn_stop_all returned): only c is ours. */
	pthread_mutex_lock(&n->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	n->nconns--;
	close(c->fd);            /* under the lock: dn_conn_stop_all may be shutting it */
	pthread_mutex_unlock(&n->mu);
	free(c);
}

/* TLS, when the node speaks it: the client's certificate names its node. */
static int handshake(struct dn_conn *c)
{
	struct cert_id id;
	SSL *ssl;
	int r = net_set_nonblock(c->fd, true);

	if (r < 0 || !c->n->tls)
		return r;
	r = tls_server_handshake(c->n->tls, c->fd,
				 c->born_ns + (uint64_t)c->n->limits.handshake_ms * 1000000ull, &ssl,
				 &id);
	if (r == 0)
		r = fio_init_tls(&c->io, c->fd, ssl, 0);
	if (r < 0) {
		atomic_fetch_add(&c->n->stats.tls_failures, 1);
		return r;
	}
	c->peer.has_cert = true;
	c->peer.cert = id;
	if (dn_conn_identify(c, id.node_id) < 0) {
		atomic_fetch_add(&c->n->stats.revoked_handshake, 1);
		log_info("TLS: node %llu is revoked: closing", (unsigned long long)id.node_id);
		return -EACCES;
	}
	return 0;
}

static void *conn_main(void *arg)
{
	struct dn_conn *c = arg;

	thread_name("dn-conn");
	if (handshake(c) == 0)
		serve(c);
	log_debug("connection closed (peer %llu)", (unsigned long long)c->peer.peer_id);
	/*
	 * This thread's OpenSSL state (its error queue, after a bad grant or a
	 * refused handshake) goes now, before conn_free tells dn_conn_stop_all
	 * that the connection is gone: a detached thread still exiting when the
	 * process does would leave it behind.
	 */
	OPENSSL_thread_stop();
	conn_free(c);
	return NULL;
}

int dn_conn_start(struct dn_node *n, int fd)
{
	struct dn_conn *c;
	pthread_attr_t attr;
	int r;

	pthread_mutex_lock(&n->mu);
	r = n->nconns >= n->limits.max_conns || atomic_load(&n->stopping) ? -EBUSY : 0;
	if (r == 0)
		n->nconns++;         /* the slot is ours from here */
	pthread_mutex_unlock(&n->mu);
	if (r < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->n = n;
	c->fd = fd;
	fio_init_plain(&c->io, fd, 0);
	c->born_ns = now_ns();
	c->nslots = n->limits.depth;
	c->slots = calloc(c->nslots, sizeof(*c->slots));
	c->rbuf = malloc(RBUF_SIZE);
	r = c->slots && c->rbuf ? dn_blkio_new(c->nslots, &c->ring) : -ENOMEM;
	if (r < 0)
		goto fail;
	(void)net_set_nodelay(fd);
	atomic_fetch_add(&n->stats.connections, 1);
	atomic_fetch_add(&n->stats.conns_open, 1);
	pthread_mutex_lock(&n->mu);
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&c->thread, &attr, conn_main, c);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		n->conns = c->next;
		if (c->next)
			c->next->prev = NULL;
		atomic_fetch_sub(&n->stats.conns_open, 1);
	}
	pthread_mutex_unlock(&n->mu);
	if (r == 0)
		return 0;
fail:
	if (c) {
		dn_blkio_free(c->ring);
		free(c->slots);
		free(c->rbuf);
		free(c);
	}
	pthread_mutex_lock(&n->mu);
	n->nconns--;
	pthread_mutex_unlock(&n->mu);
	return r < 0 ? r : -ENOMEM;
}

void dn_conn_stop_all(struct dn_node *n)
{
	atomic_store(&n->stopping, true);
	for (;;) {
		unsigned left;

		pthread_mutex_lock(&n->mu);
		for (struct dn_conn *c = n->conns; c; c = c->next)
			(void)shutdown(c->fd, SHUT_RDWR);   /* wakes its poll */
		left = n->nconns;
		pthread_mutex_unlock(&n->mu);
		if (!left)
			return;
		usleep(10000);
	}
}
