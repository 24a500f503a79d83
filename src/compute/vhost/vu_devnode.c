// SPDX-License-Identifier: MIT
/*
 * The device-node storage back end of vhost-user-blk (vu_devnode.h).
 *
 * A guest request becomes one or more fabric requests: one per buffer of
 * the guest's (split at PROTO_BLK_MAX_IO), read into or written from guest
 * memory directly, when it has at most MAX_DIRECT_PARTS buffers of whole
 * sectors. Otherwise (many small buffers; or buffers that are not whole
 * sectors, never made by Linux, allowed by virtio) the request goes
 * through one bounce buffer, in parts of PROTO_BLK_MAX_IO. A
 * request is done when all its parts are answered: its first error is the
 * guest's, unless the connection broke, in which case the whole request
 * waits to be sent again (see the header for outages).
 */
#include "vu_devnode.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "dnclient.h"
#include "log.h"
#include "macro.h"
#include "net.h"

#define RETRY_MS 200u

struct dn_req {
	struct vu_devnode *s;
	struct vu_blk_io *io;
	struct dn_req *next;         /* the waiting list */
	uint8_t *bounce;             /* the data, when the guest's buffers are not sectors */
	unsigned pending;            /* parts on the wire */
	int err;                     /* the first error the node answered */
	bool broken;                 /* a part was lost with the connection: send it all again */
	bool sending;
};

struct vu_devnode {
	struct vu_devnode_conf conf;   /* its strings point into this object */
	pthread_mutex_t grant_mu;      /* conf.grant: a renewal comes from another thread */
	char volume[PROTO_VOL_NAME_SIZE];
	char addr[PROTO_MAX_ADDR];
	struct mnc *c;               /* NULL while the node is unreachable */
	bool closing;
	bool deferred;               /* not opened yet: the first request opens */
	uint32_t handle;
	uint64_t size;
	int timer_fd;
	uint64_t outage_since;       /* ns; 0 while connected */
	struct dn_req *wait_head, *wait_tail;
	unsigned inflight;           /* requests not done */
	struct vu_devnode_stats stats;
};

const struct vu_devnode_stats *vu_devnode_stats(const struct vu_devnode *s)
{
	return &s->stats;
}

static bool lost_with_connection(const struct vu_devnode *s, int status)
{
	return !s->c || s->closing || mnc_broken(s->c) || status == -ECANCELED ||
	       status == -ECONNRESET || status == -EPIPE || status == -ETIMEDOUT ||
	       status == -ENOTCONN;
}

static void wait_push(struct vu_devnode *s, struct dn_req *q)
{
	q->next = NULL;
	if (s->wait_tail)
		s->wait_tail->next = q;
	else
		s->wait_head = q;
	s->wait_tail = q;
}

static void req_finish(struct dn_req *q, int err)
{
	struct vu_blk_io *io = q->io;

	if (err == 0 && q->bounce && io->type == VU_BLK_T_IN) {
		size_t off = 0;

		for (unsigned i = 0; i < io->niov; i++) {
			memcpy(io->iov[i].iov_base, q->bounce + off, io->iov[i].iov_len);
			off += io->iov[i].iov_len;
		}
	}
	free(q->bounce);
	q->s->inflight--;
	free(q);
	vu_blk_io_done(io, err);
}

/* Once no part is on the wire: done, or waiting to be sent again. */
static void req_settle(struct dn_req *q)
{
	if (q->pending || q->sending)
		return;
	if (q->broken) {
		q->broken = false;
		q->err = 0;
		wait_push(q->s, q);
		return;
	}
	req_finish(q, q->err);
}

static void part_done(void *opaque, int status, size_t len)
{
	struct dn_req *q = opaque;

	q->pending--;
	if (status < 0) {
		if (lost_with_connection(q->s, status))
			q->broken = true;
		else if (!q->err)
			q->err = status;
	}
	req_settle(q);
}

/* Put one part on the wire; false when the request cannot go on. */
static bool part_send(struct dn_req *q, uint64_t off, uint32_t len, void *buf)
{
	struct vu_devnode *s = q->s;
	int r;

	q->pending++;
	switch (q->io->type) {
	case VU_BLK_T_IN:
		r = dnc_read_async(s->c, s->handle, off, len, buf, part_done, q);
		break;
	case VU_BLK_T_OUT:
		r = dnc_write_async(s->c, s->handle, off, len, buf, part_done, q);
		break;
	case VU_BLK_T_FLUSH:
		r = dnc_flush_async(s->c, s->handle, part_done, q);
		break;
	case VU_BLK_T_DISCARD:
		r = dnc_discard_async(s->c, s->handle, off, len, part_done, q);
		break;
	default:
		r = dnc_write_zeroes_async(s->c, s->handle, off, len, part_done, q);
		break;
	}
	if (r == 0)
		return true;
	q->pending--;
	if (lost_with_connection(s, r))
		q->broken = true;
	else if (!q->err)
		q->err = r;
	return false;
}

/* Split [off, off + len) of buf into parts of at most PROTO_BLK_MAX_IO. */
static bool send_range(struct dn_req *q, uint64_t off, uint64_t len, uint8_t *buf)
{
	while (len) {
		uint32_t n = (uint32_t)MIN(len, (uint64_t)PROTO_BLK_MAX_IO);

		if (!part_send(q, off, n, buf))
			return false;
		off += n;
		len -= n;
		buf += n;
	}
	return true;
}

static void req_send(struct dn_req *q)
{
	struct vu_blk_io *io = q->io;
	uint64_t off = io->offset;

	q->sending = true;
	if (io->type != VU_BLK_T_IN && io->type != VU_BLK_T_OUT) {
		(void)part_send(q, io->offset, (uint32_t)io->len, NULL);
	} else if (q->bounce) {
		(void)send_range(q, off, io->len, q->bounce);
	} else {
		for (unsigned i = 0; i < io->niov; i++) {
			if (!send_range(q, off, io->iov[i].iov_len, io->iov[i].iov_base))
				break;
			off += io->iov[i].iov_len;
		}
	}
	q->sending = false;
	req_settle(q);
}

/* ---- the connection ---------------------------------------------------------------- */

static void timer_arm(struct vu_devnode *s, bool on)
{
	struct itimerspec t = { 0 };

	if (on)
		t.it_value.tv_nsec = t.it_interval.tv_nsec = RETRY_MS * 1000000l;
	(void)timerfd_settime(s->timer_fd, 0, &t, NULL);
}

void vu_devnode_grant(struct vu_devnode *s, struct proto_grant *ret)
{
	pthread_mutex_lock(&s->grant_mu);
	*ret = s->conf.grant;
	pthread_mutex_unlock(&s->grant_mu);
}

void vu_devnode_set_grant(struct vu_devnode *s, const struct proto_grant *g)
{
	pthread_mutex_lock(&s->grant_mu);
	s->conf.grant = *g;
	pthread_mutex_unlock(&s->grant_mu);
}

static int connect_open(struct vu_devnode *s)
{
	struct proto_grant g;
	struct mnc *c;
	uint64_t size;
	uint32_t h;
	int r = dnc_connect(&s->conf.conn, &c);

	if (r < 0)
		return r;
	vu_devnode_grant(s, &g);
	/*
	 * TAKEOVER: a device node cut off from us may still serve our earlier
	 * connection; its writes must not land after the ones sent again here.
	 */
	r = dnc_open(c, &g, s->volume, s->conf.readonly ? PROTO_BLK_RDONLY : PROTO_BLK_TAKEOVER,
		     &h, &size);
	if (r < 0) {
		mnc_close(c);
		return r;
	}
	s->c = c;
	s->handle = h;
	s->size = size;
	return 0;
}

/* No connection now: requests wait, the timer reconnects. */
static void outage_begin(struct vu_devnode *s)
{
	s->outage_since = now_ns();
	s->stats.outages++;
	timer_arm(s, true);
	log_warn("device node %s: connection lost; requests wait up to %u ms", s->conf.conn.addr,
		 s->conf.outage_ms);
}

static void disconnect(struct vu_devnode *s)
{
	s->closing = true;
	mnc_close(s->c);             /* its requests come back -ECANCELED: they wait */
	s->c = NULL;
	s->closing = false;
	outage_begin(s);
}

/* The first request of a deferred store: take the volume over now. */
static void open_deferred(struct vu_devnode *s)
{
	int r = connect_open(s);

	s->deferred = false;
	if (r < 0) {
		log_warn("device node %s: volume %s: opening for the guest's first request: %s",
			 s->conf.conn.addr, s->volume, strerror(-r));
		outage_begin(s);
		return;
	}
	log_info("device node %s: volume %s taken over", s->conf.conn.addr, s->volume);
}

/* Send what waits (connected), or fail it (an outage past its time). */
static void wait_flush(struct vu_devnode *s, int fail)
{
	struct dn_req *q = s->wait_head;

	s->wait_head = s->wait_tail = NULL;
	while (q) {
		struct dn_req *next = q->next;

		if (fail) {
			s->stats.failed_in_outage++;
			req_finish(q, fail);
		} else {
			s->stats.resent++;
			req_send(q);
		}
		q = next;
	}
}

static bool outage_over_time(const struct vu_devnode *s)
{
	return s->outage_since &&
	       now_ns() - s->outage_since >= (uint64_t)s->conf.outage_ms * 1000000ull;
}

static void try_reconnect(struct vu_devnode *s)
{
	uint64_t v;
	int r;

	(void)!read(s->timer_fd, &v, sizeof(v));
	r = connect_open(s);
	if (r == 0) {
		log_info("device node %s: back after %llu ms", s->conf.conn.addr,
			 (unsigned long long)((now_ns() - s->outage_since) / 1000000ull));
		s->outage_since = 0;
		s->stats.reconnects++;
		timer_arm(s, false);
		wait_flush(s, 0);
		return;
	}
	if (outage_over_time(s) && s->wait_head) {
		log_warn("device node %s unreachable for %u ms (%s): failing its requests",
			 s->conf.conn.addr, s->conf.outage_ms, strerror(-r));
		wait_flush(s, -EIO);
	}
}

/* ---- the ops ----------------------------------------------------------------------- */

/*
 * Whether the guest's buffers can each be a part of their own: whole
 * sectors, and few of them. A request in many small buffers (a 1 MiB
 * O_DIRECT read is 256 pages, not contiguous in guest memory) costs one
 * round on the fabric per part; one bounce buffer and a copy are cheaper
 * (make bench-devices, seqread_1m).
 */
#define MAX_DIRECT_PARTS 8u

static bool direct_buffers(const struct vu_blk_io *io)
{
	if (io->niov > MAX_DIRECT_PARTS)
		return false;
	for (unsigned i = 0; i < io->niov; i++)
		if (io->iov[i].iov_len % PROTO_BLK_SECTOR)
			return false;
	return true;
}

static int dn_submit(void *store, struct vu_blk_io *io)
{
	struct vu_devnode *s = store;
	struct dn_req *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	q->s = s;
	q->io = io;
	if ((io->type == VU_BLK_T_IN || io->type == VU_BLK_T_OUT) && !direct_buffers(io)) {
		size_t off = 0;

		q->bounce = malloc(io->len ? (size_t)io->len : 1);
		if (!q->bounce) {
			free(q);
			return -ENOMEM;
		}
		for (unsigned i = 0; io->type == VU_BLK_T_OUT && i < io->niov; i++) {
			memcpy(q->bounce + off, io->iov[i].iov_base, io->iov[i].iov_len);
			off += io->iov[i].iov_len;
		}
	}
	s->inflight++;
	if (s->deferred)
		open_deferred(s);
	if (s->c)
		req_send(q);
	else if (outage_over_time(s))
		req_finish(q, -EIO);
	else
		wait_push(s, q);
	return 0;
}

static int dn_poll_fd(void *store)
{
	struct vu_devnode *s = store;

	return s->c ? mnc_fd(s->c) : s->timer_fd;
}

static void dn_poll(void *store)
{
	struct vu_devnode *s = store;

	if (s->c) {
		(void)mnc_poll(s->c, 0);
		if (mnc_broken(s->c))
			disconnect(s);
		else if (s->wait_head)
			wait_flush(s, 0);
		return;
	}
	try_reconnect(s);
}

static unsigned dn_inflight(void *store)
{
	return ((struct vu_devnode *)store)->inflight;
}

/* Drop every request unanswered: the ones on the wire come back with the connection. */
static void dn_abandon(void *store)
{
	struct vu_devnode *s = store;

	if (s->c) {
		s->closing = true;
		mnc_close(s->c);         /* its requests come back -ECANCELED: they wait */
		s->c = NULL;
		s->closing = false;
	}
	timer_arm(s, false);
	while (s->wait_head) {
		struct dn_req *q = s->wait_head;

		s->wait_head = q->next;
		free(q->bounce);
		s->inflight--;
		vu_blk_io_drop(q->io);
		free(q);
	}
	s->wait_tail = NULL;
}

const struct vu_blk_store_ops vu_devnode_ops = {
	.submit = dn_submit,
	.poll_fd = dn_poll_fd,
	.poll = dn_poll,
	.inflight = dn_inflight,
	.abandon = dn_abandon,
};

/* Deferred: check the grant read-only (nothing is fenced) and learn the size; keep nothing open. */
static int probe(struct vu_devnode *s)
{
	struct mnc *c;
	uint32_t h;
	int r = dnc_connect(&s->conf.conn, &c);

	if (r < 0)
		return r;
	r = dnc_open(c, &s->conf.grant, s->volume, PROTO_BLK_RDONLY, &h, &s->size);
	if (r == 0)
		(void)dnc_close(c, h);
	mnc_close(c);
	s->deferred = r == 0;
	return r;
}

/* A node that does not answer now, as opposed to one that refuses us. */
static bool unreachable(int r)
{
	return r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EHOSTUNREACH || r == -ENETUNREACH ||
	       r == -ECONNRESET || r == -ECONNABORTED || r == -EPIPE || r == -ENOTCONN;
}

int vu_devnode_new(const struct vu_devnode_conf *conf, struct vu_devnode **ret,
		   uint64_t *ret_size)
{
	struct vu_devnode *s;
	int r;

	if (!conf->volume || dnc_name_check(conf->volume) < 0 || !conf->conn.addr ||
	    strlen(conf->conn.addr) >= PROTO_MAX_ADDR)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->conf = *conf;
	pthread_mutex_init(&s->grant_mu, NULL);
	snprintf(s->volume, sizeof(s->volume), "%s", conf->volume);
	s->conf.volume = s->volume;
	/* Reconnections come long after the caller's string is gone. */
	snprintf(s->addr, sizeof(s->addr), "%s", conf->conn.addr);
	s->conf.conn.addr = s->addr;
	s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	r = s->timer_fd < 0 ? -errno : conf->deferred ? probe(s) : connect_open(s);
	if (r < 0 && s->timer_fd >= 0 && conf->known_size && unreachable(r)) {
		log_warn("device node %s: volume %s: %s; requests wait for it", s->addr, s->volume,
			 strerror(-r));
		s->size = conf->known_size;
		s->deferred = false;
		outage_begin(s);
		r = 0;
	}
	if (r < 0) {
		if (s->timer_fd >= 0)
			close(s->timer_fd);
		pthread_mutex_destroy(&s->grant_mu);
		free(s);
		return r;
	}
	*ret_size = s->size;
	*ret = s;
	return 0;
}

void vu_devnode_free(struct vu_devnode *s)
{
	if (!s)
		return;
	/* The device drained it: nothing is in flight or waiting. */
	if (s->c) {
		(void)dnc_close(s->c, s->handle);
		mnc_close(s->c);
	}
	close(s->timer_fd);
	pthread_mutex_destroy(&s->grant_mu);
	free(s);
}
