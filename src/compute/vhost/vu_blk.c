// SPDX-License-Identifier: MIT
/*
 * The vhost-user-blk back end (vu_blk.h): QEMU's messages, the virtqueues
 * and the guest's virtio-blk requests.
 *
 * Offered to QEMU: virtio 1.x with indirect descriptors, the virtio-blk
 * features SEG_MAX, BLK_SIZE, FLUSH, CONFIG_WCE (write-back, so
 * the guest sends flushes), MQ, DISCARD and WRITE_ZEROES (each as the
 * storage back end allows) and RO for a read-only disk; the protocol
 * features MQ, REPLY_ACK, CONFIG, CONFIGURE_MEM_SLOTS (so that a
 * hot-added DIMM arrives as ADD_MEM_REG) and LOG_SHMFD with the device
 * feature VHOST_F_LOG_ALL: the dirty log (vu_log.h), without which QEMU
 * refuses to migrate the VM; and INFLIGHT_SHMFD: each queue's in-flight log
 * (vu_ring.h) lives in a memfd that QEMU keeps, so that a back end started
 * again after the agent died serves again what was taken and not answered
 * (QEMU reconnects to the socket: its chardev has `reconnect`). A
 * migration needs no log, since every request is answered before a ring
 * stops (below).
 *
 * Before guest memory is unmapped or replaced (SET_MEM_TABLE,
 * REM_MEM_REG, RESET_OWNER, the end) and before a ring is stopped
 * (GET_VRING_BASE), every request in flight is waited for: the storage
 * back end may be writing into guest memory. A ring that starts (again)
 * is served at once, kicked or not: what the guest made available while
 * it was stopped is taken from where GET_VRING_BASE left it.
 */
#include "vu_blk.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "vu_blkcfg.h"
#include "vu_inflight.h"
#include "vu_msg.h"

/* virtio-blk feature bits. */
enum {
	F_SIZE_MAX = 1,
	F_SEG_MAX = 2,
	F_RO = 5,
	F_BLK_SIZE = 6,
	F_FLUSH = 9,
	F_CONFIG_WCE = 11,
	F_MQ = 12,
	F_DISCARD = 13,
	F_WRITE_ZEROES = 14,
};

enum { ST_OK = 0, ST_IOERR = 1, ST_UNSUPP = 2 };

#define SECTOR 512u
#define ID_BYTES 20u

struct vu_blk {
	int sock;
	int stop_fd;             /* eventfd: vu_blk_stop */
	struct vu_blk_conf conf;
	const struct vu_blk_store_ops *ops;
	void *store;
	uint64_t features, protocol_features;
	bool owned;
	uint8_t writeback;       /* the guest's cache mode (CONFIG_WCE) */
	struct vu_mem mem;
	struct vu_log log;       /* SET_LOG_BASE's bitmap, used while VHOST_F_LOG_ALL is on */
	struct vu_ring rings[VU_BLK_MAX_QUEUES];
	bool look[VU_BLK_MAX_QUEUES];  /* a ring (re)started: serve what it has, kicked or not */
	struct vu_inflight infl; /* the queues' in-flight logs (GET_ or SET_INFLIGHT_FD) */
	struct vu_blk_stats stats;
};

static uint64_t bit(unsigned b)
{
	return 1ull << b;
}

static uint64_t dev_features(const struct vu_blk *d)
{
	uint64_t f = bit(VU_F_VERSION_1) | bit(VU_F_INDIRECT_DESC) | bit(VU_FEAT_PROTOCOL_FEATURES) |
		     bit(VU_FEAT_LOG_ALL) | bit(F_SEG_MAX) | bit(F_BLK_SIZE) | bit(F_FLUSH) |
		     bit(F_CONFIG_WCE) | bit(F_MQ);

	if (d->conf.readonly)
		f |= bit(F_RO);
	if (d->conf.discard && !d->conf.readonly)
		f |= bit(F_DISCARD);
	if (d->conf.write_zeroes && !d->conf.readonly)
		f |= bit(F_WRITE_ZEROES);
	return f;
}

static const uint64_t proto_features = 1ull << VU_PF_MQ | 1ull << VU_PF_LOG_SHMFD |
				       1ull << VU_PF_REPLY_ACK | 1ull << VU_PF_CONFIG |
				       1ull << VU_PF_INFLIGHT_SHMFD | 1ull << VU_PF_CONFIGURE_MEM_SLOTS;

const struct vu_blk_stats *vu_blk_stats(const struct vu_blk *d)
{
	return &d->stats;
}

/* ---- requests ------------------------------------------------------------------ */

static bool logging(const struct vu_blk *d)
{
	return (d->features & bit(VU_FEAT_LOG_ALL)) && d->log.bits;
}

/* The rings log their used entries while the dirty log is on. */
static void log_sync(struct vu_blk *d)
{
	for (unsigned i = 0; i < VU_BLK_MAX_QUEUES; i++)
		d->rings[i].log = logging(d) ? &d->log : NULL;
}

/* Log the guest's writable buffers of a chain (what the device may have written). */
static void log_in_bufs(const struct vu_blk *d, const struct vu_chain *c)
{
	if (!logging(d))
		return;
	for (unsigned i = c->nout; i < c->nout + c->nin; i++)
		vu_log_write(&d->log, c->gpa[i], c->iov[i].iov_len);
}

void vu_blk_io_done(struct vu_blk_io *io, int err)
{
	struct vu_blk *d = io->dev;
	struct vu_ring *r = &d->rings[io->queue];
	uint8_t st = err == 0 ? ST_OK : err == -EOPNOTSUPP ? ST_UNSUPP : ST_IOERR;

	if (err == -EOPNOTSUPP)
		d->stats.unsupported++;
	else if (err < 0)
		d->stats.errors++;
	else if (io->type == VU_BLK_T_IN)
		d->stats.bytes_read += io->len;
	else if (io->type == VU_BLK_T_OUT)
		d->stats.bytes_written += io->len;
	if (err < 0 && err != -EOPNOTSUPP)
		log_debug("virtio-blk request type %u at %llu (%llu bytes): %s", io->type,
			  (unsigned long long)io->offset, (unsigned long long)io->len,
			  strerror(-err));
	*io->status = st;
	if (io->type != VU_BLK_T_IN || err < 0)
		io->used_len = 1;    /* only the status byte was written */
	log_in_bufs(d, &io->chain);
	vu_ring_push(r, io->head, io->used_len);
	free(io);
}

void vu_blk_io_drop(struct vu_blk_io *io)
{
	struct vu_ring *r = &io->dev->rings[io->queue];

	if (r->inflight)
		r->inflight--;
	free(io);
}

/* Copy up to n bytes from the start of an iovec array. */
static size_t iov_copy_out(const struct iovec *iov, unsigned n, void *dst, size_t len)
{
	size_t got = 0;

	for (unsigned i = 0; i < n && got < len; i++) {
		size_t k = MIN(iov[i].iov_len, len - got);

		memcpy((uint8_t *)dst + got, iov[i].iov_base, k);
		got += k;
	}
	return got;
}

/* io->data = src[0..n) without its first `skip` and last `trim` bytes; its byte count. */
static uint64_t iov_slice(struct vu_blk_io *io, const struct iovec *src, unsigned n, size_t skip,
			  size_t trim)
{
	uint64_t total = 0, want;

	io->niov = 0;
	io->iov = io->data;
	for (unsigned i = 0; i < n; i++)
		total += src[i].iov_len;
	if (total < (uint64_t)skip + trim)
		return UINT64_MAX;
	want = total - skip - trim;
	total = want;
	for (unsigned i = 0; i < n && want; i++) {
		uint8_t *p = src[i].iov_base;
		size_t len = src[i].iov_len;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		p += skip;
		len -= skip;
		skip = 0;
		if (len > want)
			len = (size_t)want;
		io->data[io->niov++] = (struct iovec){ p, len };
		want -= len;
	}
	return total;
}

static int check_range(const struct vu_blk *d, uint64_t sector, uint64_t len)
{
	uint64_t off = sector * SECTOR;

	if (sector > UINT64_MAX / SECTOR || len % SECTOR || off > d->conf.capacity ||
	    len > d->conf.capacity - off)
		return -EIO;
	return 0;
}

/* Fill io from its chain: 0 to submit, 1 answered here, < 0 the chain is broken. */
static int req_parse(struct vu_blk *d, struct vu_blk_io *io)
{
	struct vu_chain *c = &io->chain;
	struct iovec *last;
	uint8_t hdr[16], seg[16];
	uint32_t type, flags, nsec;
	uint64_t sector;

	if (c->nin == 0 || iov_copy_out(c->iov, c->nout, hdr, sizeof(hdr)) < sizeof(hdr))
		return -EBADMSG;
	last = &c->iov[c->nout + c->nin - 1];
	if (last->iov_len == 0)
		return -EBADMSG;
	io->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	io->type = type;
	if (type < ARRAY_SIZE(d->stats.requests))
		d->stats.requests[type]++;
	switch (type) {
	case VU_BLK_T_IN:
		io->len = iov_slice(io, c->iov + c->nout, c->nin, 0, 1);
		if (io->len == UINT64_MAX)
			return -EBADMSG;
		io->used_len = (uint32_t)MIN(io->len + 1, (uint64_t)UINT32_MAX);
		break;
	case VU_BLK_T_OUT:
		io->len = iov_slice(io, c->iov, c->nout, sizeof(hdr), 0);
		if (io->len == UINT64_MAX)
			return -EBADMSG;
		if (d->conf.readonly)
			return vu_blk_io_done(io, -EIO), 1;
		break;
	case VU_BLK_T_FLUSH:
		io->len = 0;
		return 0;
	case VU_BLK_T_GET_ID: {
		char id[ID_BYTES] = { 0 };
		uint64_t room = iov_slice(io, c->iov + c->nout, c->nin, 0, 1);

		if (room == UINT64_MAX)
			return -EBADMSG;
		strncpy(id, d->conf.serial ? d->conf.serial : "", sizeof(id));
		for (unsigned i = 0, off = 0; i < io->niov && off < ID_BYTES; i++) {
			size_t k = MIN(io->data[i].iov_len, ID_BYTES - off);

			memcpy(io->data[i].iov_base, id + off, k);
			off += (unsigned)k;
		}
		io->used_len = (uint32_t)MIN(room, (uint64_t)ID_BYTES) + 1;
		*io->status = ST_OK;
		log_in_bufs(d, c);
		vu_ring_push(&d->rings[io->queue], io->head, io->used_len);
		free(io);
		return 1;
	}
	case VU_BLK_T_DISCARD:
	case VU_BLK_T_WRITE_ZEROES:
		if (!(d->features & bit(type == VU_BLK_T_DISCARD ? F_DISCARD : F_WRITE_ZEROES)))
			return vu_blk_io_done(io, -EOPNOTSUPP), 1;
		/* One segment (max_*_seg is 1): sector, sectors, flags. */
		if (iov_slice(io, c->iov, c->nout, sizeof(hdr), 0) != sizeof(seg) ||
		    iov_copy_out(io->data, io->niov, seg, sizeof(seg)) != sizeof(seg))
			return vu_blk_io_done(io, -EIO), 1;
		memcpy(&sector, seg, 8);
		memcpy(&nsec, seg + 8, 4);
		memcpy(&flags, seg + 12, 4);
		if (nsec == 0 || nsec > VU_BLK_MAX_DZ_SECTORS || (flags & ~1u) ||
		    (type == VU_BLK_T_DISCARD && flags))
			return vu_blk_io_done(io, -EOPNOTSUPP), 1;
		io->len = (uint64_t)nsec * SECTOR;
		io->unmap = flags & 1;
		io->niov = 0;
		break;
	default:
		return vu_blk_io_done(io, -EOPNOTSUPP), 1;
	}
	if (check_range(d, sector, io->len) < 0)
		return vu_blk_io_done(io, -EIO), 1;
	io->offset = sector * SECTOR;
	return 0;
}

/* Take every chain the guest made available on queue q. */
static int queue_serve(struct vu_blk *d, unsigned q)
{
	struct vu_ring *r = &d->rings[q];

	while (r->started && r->enabled) {
		struct vu_blk_io *io = calloc(1, sizeof(*io));
		int k;

		if (!io)
			return -ENOMEM;
		k = vu_ring_pop(r, &d->mem, &io->chain);
		if (k <= 0) {
			free(io);
			if (k < 0) {
				d->stats.bad_chains++;
				log_warn("virtqueue %u is broken (%s): not serving it any more", q,
					 strerror(-k));
				r->started = false;
			}
			return 0;
		}
		io->dev = d;
		io->queue = q;
		io->head = io->chain.head;
		k = req_parse(d, io);
		if (k < 0) {
			/* A malformed request: answer what can be answered, drop the rest. */
			d->stats.bad_chains++;
			log_warn("virtqueue %u: a malformed request (head %u)", q, io->head);
			if (io->status)
				vu_blk_io_done(io, -EIO);
			else {
				vu_ring_push(r, io->head, 0);
				free(io);
			}
			continue;
		}
		if (k == 0) {
			k = d->ops->submit(d->store, io);
			if (k < 0)
				vu_blk_io_done(io, k);
		}
	}
	return 0;
}

/*
 * Wait until the storage back end holds no request: guest memory may go
 * after. A device that goes away (vu_blk_free, after at most grace_ms),
 * is stopped meanwhile (vu_blk_stop: the VM is deleted, the agent leaves)
 * or whose QEMU hung up (it quit, or was killed while it waited for
 * GET_VRING_BASE's answer) waits no more for a device node that does not
 * answer: what is left is abandoned, flagged in QEMU's in-flight log.
 */
static void drain(struct vu_blk *d, bool going, unsigned grace_ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (d->ops->inflight(d->store)) {
		struct pollfd p[3] = { { .fd = d->ops->poll_fd(d->store), .events = POLLIN },
				       { .fd = d->stop_fd, .events = POLLIN },
				       { .fd = d->sock, .events = POLLRDHUP } };

		(void)poll(p, 3, 100);
		clock_gettime(CLOCK_MONOTONIC, &t);
		going |= (p[1].revents & POLLIN) || (p[2].revents & (POLLRDHUP | POLLHUP | POLLERR));
		if (d->ops->abandon && going &&
		    (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= grace_ms) {
			log_warn("%u requests not answered and the device goes: abandoned (QEMU's "
				 "in-flight log keeps them for the next back end)",
				 d->ops->inflight(d->store));
			d->ops->abandon(d->store);
			return;
		}
		d->ops->poll(d->store);
	}
}

/* ---- messages ------------------------------------------------------------------------ */

static struct vu_ring *ring_of(struct vu_blk *d, uint32_t index)
{
	return index < d->conf.num_queues ? &d->rings[index] : NULL;
}

static void rings_remap(struct vu_blk *d)
{
	for (unsigned i = 0; i < d->conf.num_queues; i++)
		if (d->rings[i].addr_set && d->rings[i].num && vu_ring_map(&d->rings[i], &d->mem) < 0)
			d->rings[i].desc = NULL, d->rings[i].avail = NULL, d->rings[i].used = NULL;
}

static int mem_table(struct vu_blk *d, struct vu_msg *m)
{
	drain(d, false, 0);
	vu_mem_clear(&d->mem);
	for (uint32_t i = 0; i < m->mem.n; i++) {
		int fd = vu_msg_take_fd(m, i);
		int r = vu_mem_add(&d->mem, &m->mem.r[i], fd);

		close(fd);
		if (r < 0)
			return r;
	}
	rings_remap(d);
	return 0;
}

static int vring_fd(struct vu_blk *d, struct vu_msg *m)
{
	struct vu_ring *r = ring_of(d, (uint32_t)(m->u64 & VU_VRING_IDX_MASK));
	int fd = m->u64 & VU_VRING_NOFD ? -1 : vu_msg_take_fd(m, 0);
	int *slot;

	if (!r) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	slot = m->request == VU_SET_VRING_KICK ? &r->kick_fd :
	       m->request == VU_SET_VRING_CALL ? &r->call_fd : &r->err_fd;
	if (*slot >= 0)
		close(*slot);
	*slot = fd;
	if (m->request == VU_SET_VRING_KICK) {
		unsigned q = (unsigned)(r - d->rings);
		int again;

		r->infl = vu_inflight_queue(&d->infl, q, r->num);
		if (vu_ring_start(r, &d->mem, &again) < 0)
			return -EFAULT;
		if (again > 0)
			log_info("virtqueue %u: %d requests taken before the back end restarted are "
				 "served again", q, again);
		else if (again < 0)
			log_warn("virtqueue %u: its in-flight log does not fit the ring (%s): not used",
				 q, strerror(-again));
		if (!(d->features & bit(VU_FEAT_PROTOCOL_FEATURES)))
			r->enabled = true;
		d->look[r - d->rings] = true;
	}
	return 0;
}

/* SET_ or GET_INFLIGHT_FD: nothing in flight while the logs change; rings find theirs at start. */
static void infl_drop(struct vu_blk *d)
{
	drain(d, false, 0);
	for (unsigned i = 0; i < VU_BLK_MAX_QUEUES; i++)
		d->rings[i].infl = NULL;
}

/* Handle one message; rep and *replen: a reply of its own (GET_*), else none. */
static int handle(struct vu_blk *d, struct vu_msg *m, uint8_t *rep, uint32_t *replen,
		  int *ret_fd)
{
	struct vu_ring *r;
	uint64_t u;

	*replen = 0;
	switch (m->request) {
	case VU_GET_INFLIGHT_FD:
		if (!(d->protocol_features & bit(VU_PF_INFLIGHT_SHMFD)))
			return -EPROTO;
		infl_drop(d);
		*replen = VU_INFLIGHT_REPLY;
		return vu_inflight_new(&d->infl, m, d->conf.num_queues, rep, ret_fd);
	case VU_SET_INFLIGHT_FD: {
		int fd = vu_msg_take_fd(m, 0), k = -EPROTO;

		if (d->protocol_features & bit(VU_PF_INFLIGHT_SHMFD)) {
			infl_drop(d);
			k = vu_inflight_map(&d->infl, m, fd, d->conf.num_queues);
		}
		close(fd);
		return k;
	}
	case VU_GET_FEATURES:
		u = dev_features(d);
		goto reply_u64;
	case VU_SET_FEATURES:
		if (m->u64 & ~dev_features(d))
			return -EINVAL;
		d->features = m->u64;
		log_sync(d);
		log_debug("features %#llx acked", (unsigned long long)m->u64);
		return 0;
	case VU_GET_PROTOCOL_FEATURES:
		u = proto_features;
		goto reply_u64;
	case VU_SET_PROTOCOL_FEATURES:
		if (m->u64 & ~proto_features)
			return -EINVAL;
		d->protocol_features = m->u64;
		return 0;
	case VU_SET_OWNER:
		d->owned = true;
		return 0;
	case VU_SET_LOG_BASE: {
		int fd = vu_msg_take_fd(m, 0), k;

		if (!(d->protocol_features & bit(VU_PF_LOG_SHMFD))) {
			close(fd);
			return -EPROTO;
		}
		k = vu_log_set(&d->log, fd, m->log.mmap_size, m->log.mmap_offset);
		close(fd);
		log_sync(d);
		log_debug("dirty log: %llu bytes: %d", (unsigned long long)m->log.mmap_size, k);
		return k;   /* the answer is the same request, empty */
	}
	case VU_RESET_OWNER:
		drain(d, false, 0);
		for (unsigned i = 0; i < VU_BLK_MAX_QUEUES; i++) {
			vu_ring_stop(&d->rings[i]);
			vu_ring_init(&d->rings[i]);
		}
		log_sync(d);
		d->owned = false;
		return 0;
	case VU_GET_QUEUE_NUM:
		u = d->conf.num_queues;
		goto reply_u64;
	case VU_GET_MAX_MEM_SLOTS:
		u = VU_MAX_MEM_SLOTS;
		goto reply_u64;
	case VU_SET_MEM_TABLE:
		return mem_table(d, m);
	case VU_ADD_MEM_REG: {
		int fd = vu_msg_take_fd(m, 0), k = vu_mem_add(&d->mem, &m->region, fd);

		log_debug("region: guest %#llx size %#llx user %#llx offset %#llx: %d",
			  (unsigned long long)m->region.guest_addr, (unsigned long long)m->region.size,
			  (unsigned long long)m->region.user_addr,
			  (unsigned long long)m->region.mmap_offset, k);

		close(fd);
		if (k == 0)
			rings_remap(d);
		return k;
	}
	case VU_REM_MEM_REG:
		drain(d, false, 0);
		u = (uint64_t)vu_mem_remove(&d->mem, &m->region);
		rings_remap(d);
		return (int)u;
	case VU_SET_VRING_NUM:
		r = ring_of(d, m->state.index);
		if (!r || m->state.num == 0 || m->state.num > VU_RING_MAX)
			return -EINVAL;
		r->num = m->state.num;
		return 0;
	case VU_SET_VRING_ADDR:
		r = ring_of(d, m->addr.index);
		if (!r)
			return -EINVAL;
		r->addr = m->addr;
		r->addr_set = true;
		log_debug("ring %u: desc %#llx avail %#llx used %#llx flags %#x", m->addr.index,
			  (unsigned long long)m->addr.desc, (unsigned long long)m->addr.avail,
			  (unsigned long long)m->addr.used, m->addr.flags);
		return 0;
	case VU_SET_VRING_BASE:
		r = ring_of(d, m->state.index);
		if (!r || m->state.num > UINT16_MAX)
			return -EINVAL;
		r->last_avail = (uint16_t)m->state.num;
		return 0;
	case VU_GET_VRING_BASE:
		r = ring_of(d, m->state.index);
		if (!r)
			return -EINVAL;
		drain(d, false, 0);
		vu_ring_kick_guest(r);
		u = (uint64_t)m->state.index | (uint64_t)r->last_avail << 32;
		vu_ring_stop(r);
		r->enabled = false;
		goto reply_u64;
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		return vring_fd(d, m);
	case VU_SET_VRING_ENABLE:
		r = ring_of(d, m->state.index);
		if (!r)
			return -EINVAL;
		r->enabled = m->state.num != 0;
		d->look[r - d->rings] = r->enabled;
		return 0;
	case VU_GET_CONFIG: {
		uint8_t cfg[VU_MAX_CONFIG];

		vu_blk_config(cfg, d->conf.capacity, (uint16_t)d->conf.num_queues, d->writeback);
		memcpy(rep, &m->config.offset, 4);
		memcpy(rep + 4, &m->config.size, 4);
		memcpy(rep + 8, &m->config.flags, 4);
		memcpy(rep + 12, cfg + m->config.offset, m->config.size);
		*replen = 12 + m->config.size;
		return 0;
	}
	case VU_SET_CONFIG:
		/* Only the cache mode is the guest's to change. */
		if (m->config.offset != 32 || m->config.size != 1)
			return -EINVAL;
		d->writeback = m->config.data[0] ? 1 : 0;
		return 0;
	default:
		return -EOPNOTSUPP;
	}
reply_u64:
	memcpy(rep, &u, 8);
	*replen = 8;
	return 0;
}

static bool has_own_reply(uint32_t req)
{
	return req == VU_GET_FEATURES || req == VU_GET_PROTOCOL_FEATURES ||
	       req == VU_GET_QUEUE_NUM || req == VU_GET_MAX_MEM_SLOTS ||
	       req == VU_GET_VRING_BASE || req == VU_GET_CONFIG || req == VU_SET_LOG_BASE ||
	       req == VU_GET_INFLIGHT_FD;
}

/* One message from QEMU: 0, or -errno to hang up (EOF: -ECONNRESET). */
static int on_message(struct vu_blk *d)
{
	uint8_t rep[12 + VU_MAX_CONFIG];
	struct vu_msg m;
	uint32_t replen = 0;
	int k = vu_msg_recv(d->sock, &m), fd = -1;

	if (k == 0)
		return -ECONNRESET;
	if (k == -EOPNOTSUPP) {
		log_warn("vhost-user: request %u is not supported", m.request);
	} else if (k < 0) {
		return k;
	} else {
		log_debug("vhost-user: %s", vu_request_name(m.request));
		k = handle(d, &m, rep, &replen, &fd);
		if (k < 0)
			log_warn("vhost-user: %s failed: %s", vu_request_name(m.request),
				 strerror(-k));
		vu_msg_close_fds(&m);
	}
	if (has_own_reply(m.request) && k >= 0) {
		k = vu_msg_reply(d->sock, m.request, rep, replen, fd);
		if (fd >= 0)
			close(fd);
		return k;
	}
	if ((m.flags & VU_F_NEED_REPLY) && (d->protocol_features & bit(VU_PF_REPLY_ACK))) {
		uint64_t ack = k < 0 ? 1 : 0;

		return vu_msg_reply(d->sock, m.request, &ack, sizeof(ack), -1);
	}
	/* A GET that failed: QEMU waits for its answer; without one the link is useless. */
	return has_own_reply(m.request) ? k : 0;
}

/* ---- the loop -------------------------------------------------------------------------- */

int vu_blk_new(int sock, const struct vu_blk_conf *conf, const struct vu_blk_store_ops *ops,
	       void *store, struct vu_blk **ret)
{
	struct vu_blk *d;

	if (!conf || !ops || conf->capacity % SECTOR || !conf->num_queues ||
	    conf->num_queues > VU_BLK_MAX_QUEUES)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->stop_fd < 0) {
		free(d);
		return -errno;
	}
	d->sock = sock;
	d->conf = *conf;
	d->ops = ops;
	d->store = store;
	d->mem.ops = conf->mem_ops;
	d->mem.opaque = conf->mem_opaque;
	d->writeback = 1;
	for (unsigned i = 0; i < VU_BLK_MAX_QUEUES; i++)
		vu_ring_init(&d->rings[i]);
	*ret = d;
	return 0;
}

void vu_blk_stop(struct vu_blk *d)
{
	uint64_t one = 1;

	(void)!write(d->stop_fd, &one, sizeof(one));
}

int vu_blk_run(struct vu_blk *d)
{
	for (;;) {
		struct pollfd p[3 + VU_BLK_MAX_QUEUES];
		unsigned n = 0, qbase;
		int k;

		p[n++] = (struct pollfd){ .fd = d->sock, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = d->stop_fd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = d->ops->poll_fd(d->store), .events = POLLIN };
		qbase = n;
		for (unsigned q = 0; q < d->conf.num_queues; q++) {
			struct vu_ring *r = &d->rings[q];

			p[n++] = (struct pollfd){ .fd = r->started && r->enabled ? r->kick_fd : -1,
						  .events = POLLIN };
		}
		k = poll(p, n, -1);
		if (k < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents)
			break;
		if (p[2].revents)
			d->ops->poll(d->store);
		for (unsigned q = 0; q < d->conf.num_queues; q++) {
			uint64_t v;

			if (!(p[qbase + q].revents & POLLIN))
				continue;
			(void)!read(d->rings[q].kick_fd, &v, sizeof(v));
			k = queue_serve(d, q);
			if (k < 0)
				return k;
		}
		if (p[0].revents) {
			k = on_message(d);
			if (k == -ECONNRESET)
				break;
			if (k < 0)
				return k;
		}
		/*
		 * A ring that starts again (after GET_VRING_BASE stopped it: a
		 * migration that failed, a device reset) may hold requests the
		 * guest kicked for while it was disabled: that kick died with
		 * the old eventfd, and the guest will not kick for them again.
		 */
		for (unsigned q = 0; q < d->conf.num_queues; q++) {
			if (!d->look[q] || !d->rings[q].started || !d->rings[q].enabled)
				continue;
			d->look[q] = false;
			k = queue_serve(d, q);
			if (k < 0)
				return k;
		}
		/* One interrupt per queue for everything that completed in this round. */
		for (unsigned q = 0; q < d->conf.num_queues; q++) {
			if (d->rings[q].notify)
				d->stats.interrupts++;
			vu_ring_kick_guest(&d->rings[q]);
		}
	}
	return 0;
}

void vu_blk_free(struct vu_blk *d)
{
	if (!d)
		return;
	drain(d, true, VU_BLK_FREE_WAIT_MS);
	for (unsigned i = 0; i < VU_BLK_MAX_QUEUES; i++)
		vu_ring_stop(&d->rings[i]);
	vu_mem_clear(&d->mem);
	vu_log_clear(&d->log);
	vu_inflight_unmap(&d->infl);
	close(d->stop_fd);
	close(d->sock);
	free(d);
}
