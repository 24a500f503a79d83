// SPDX-License-Identifier: MIT
/*
 * Block I/O on volumes through io_uring (blkio.h). Each request has a
 * slot; the slot's index is the SQE's user_data, so a completion finds
 * its request without a search, and a short transfer or a zero-range (a
 * punch) the filesystem or device refuses is prepared again from the slot,
 * as a punch (a zero-range).
 */
#include "blkio.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

#define DEPTH_MAX 4096u

struct slot {
	struct dn_blk_req rq;
	uint32_t moved;              /* READ, WRITE: bytes done so far */
	bool fallback;               /* WRITE_ZEROES: a punch; DISCARD: a zero-range */
};

struct dn_blkio {
	struct io_uring ring;
	unsigned depth;
	struct slot *slots;
	unsigned *free;              /* a stack of free slot indices */
	unsigned nfree;
};

int dn_blkio_new(unsigned depth, struct dn_blkio **ret)
{
	struct dn_blkio *b;
	int r;

	if (depth == 0 || depth > DEPTH_MAX)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->slots = calloc(depth, sizeof(*b->slots));
	b->free = calloc(depth, sizeof(*b->free));
	if (!b->slots || !b->free) {
		r = -ENOMEM;
		goto fail;
	}
	r = io_uring_queue_init(depth, &b->ring, 0);
	if (r < 0)
		goto fail;
	b->depth = depth;
	for (unsigned i = 0; i < depth; i++)
		b->free[b->nfree++] = depth - 1 - i;
	*ret = b;
	return 0;
fail:
	free(b->slots);
	free(b->free);
	free(b);
	return r == -EPERM ? -ENOSYS : r;
}

void dn_blkio_free(struct dn_blkio *b)
{
	if (!b)
		return;
	io_uring_queue_exit(&b->ring);
	free(b->slots);
	free(b->free);
	free(b);
}

static bool req_valid(const struct dn_blk_req *rq)
{
	switch (rq->op) {
	case DN_BLK_READ:
	case DN_BLK_WRITE:
		if (!rq->buf)
			return false;
		/* fall through */
	case DN_BLK_DISCARD:
	case DN_BLK_WRITE_ZEROES:
		return rq->fd >= 0 && rq->len > 0 && rq->off <= (uint64_t)INT64_MAX - rq->len;
	case DN_BLK_FLUSH:
		return rq->fd >= 0;
	}
	return false;
}

/* An SQE for slot i, from where it stands; -EBUSY if the SQ is full. */
static int prep(struct dn_blkio *b, unsigned i)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
	struct slot *s = &b->slots[i];
	const struct dn_blk_req *rq = &s->rq;

	if (!sqe) {
		(void)io_uring_submit(&b->ring);
		sqe = io_uring_get_sqe(&b->ring);
		if (!sqe)
			return -EBUSY;
	}
	switch (rq->op) {
	case DN_BLK_READ:
		io_uring_prep_read(sqe, rq->fd, (uint8_t *)rq->buf + s->moved, rq->len - s->moved,
				   rq->off + s->moved);
		break;
	case DN_BLK_WRITE:
		io_uring_prep_write(sqe, rq->fd, (uint8_t *)rq->buf + s->moved, rq->len - s->moved,
				    rq->off + s->moved);
		break;
	case DN_BLK_FLUSH:
		io_uring_prep_fsync(sqe, rq->fd, IORING_FSYNC_DATASYNC);
		break;
	case DN_BLK_DISCARD:
	case DN_BLK_WRITE_ZEROES:
		/*
		 * On a block device too: a punch is a discard that reads back as
		 * zeros (BLKDISCARD's effect, where the device can), a zero-range
		 * is BLKZEROOUT (the kernel writes zeros where it cannot offload).
		 */
		io_uring_prep_fallocate(sqe, rq->fd,
					((rq->op == DN_BLK_DISCARD) != s->fallback
						 ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) |
						FALLOC_FL_KEEP_SIZE,
					(off_t)rq->off, (off_t)rq->len);
		break;
	}
	io_uring_sqe_set_data64(sqe, i);
	return 0;
}

int dn_blkio_queue(struct dn_blkio *b, const struct dn_blk_req *rq)
{
	unsigned i;
	int r;

	if (!req_valid(rq))
		return -EINVAL;
	if (!b->nfree)
		return -EAGAIN;
	i = b->free[--b->nfree];
	b->slots[i] = (struct slot){ .rq = *rq };
	r = prep(b, i);
	if (r < 0)
		b->free[b->nfree++] = i;
	return r;
}

int dn_blkio_submit(struct dn_blkio *b)
{
	int r = io_uring_submit(&b->ring);

	return r < 0 ? r : 0;
}

unsigned dn_blkio_inflight(const struct dn_blkio *b)
{
	return b->depth - b->nfree;
}

/*
 * One completion of slot i: true with *res if the request is answered,
 * false if it went back to the kernel (a short transfer, a zero-range the
 * filesystem does not have).
 */
static bool complete(struct dn_blkio *b, unsigned i, int cres, int *res)
{
	struct slot *s = &b->slots[i];
	bool rw = s->rq.op == DN_BLK_READ || s->rq.op == DN_BLK_WRITE;

	if (rw && cres > 0 && s->moved + (uint32_t)cres < s->rq.len) {
		s->moved += (uint32_t)cres;
		if (prep(b, i) == 0)
			return false;
		*res = -EIO;
		return true;
	}
	if ((s->rq.op == DN_BLK_WRITE_ZEROES || s->rq.op == DN_BLK_DISCARD) && !s->fallback &&
	    (cres == -EOPNOTSUPP || cres == -EINVAL)) {
		s->fallback = true;
		if (prep(b, i) == 0)
			return false;
		*res = -EIO;
		return true;
	}
	if (rw)
		*res = cres < 0 ? cres : cres == 0 ? -EIO : (int)s->rq.len;
	else
		*res = cres;
	return true;
}

int dn_blkio_fd(const struct dn_blkio *b)
{
	return b->ring.ring_fd;
}

int dn_blkio_reap(struct dn_blkio *b, struct dn_blk_done *done, unsigned max, bool wait)
{
	unsigned n = 0;

	while (n < max) {
		struct io_uring_cqe *cqe;
		bool again = false;
		int r = io_uring_peek_cqe(&b->ring, &cqe);

		if (r == -EAGAIN) {
			if (!wait || n > 0 || dn_blkio_inflight(b) == 0)
				break;
			r = io_uring_wait_cqe(&b->ring, &cqe);
			if (r == -EINTR)
				continue;
		}
		if (r < 0)
			return n ? (int)n : r;
		do {
			unsigned i = (unsigned)io_uring_cqe_get_data64(cqe);
			int res;

			if (i < b->depth && complete(b, i, cqe->res, &res)) {
				done[n++] = (struct dn_blk_done){ b->slots[i].rq.cookie, res };
				b->free[b->nfree++] = i;
			} else {
				again = true;
			}
			io_uring_cqe_seen(&b->ring, cqe);
		} while (n < max && io_uring_peek_cqe(&b->ring, &cqe) == 0);
		if (again)
			(void)io_uring_submit(&b->ring);
	}
	return (int)n;
}
