// SPDX-License-Identifier: MIT
/*
 * The local-file storage back end of vhost-user-blk (vu_file.h).
 */
#include "vu_file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

/* preadv/pwritev of the whole request, resuming short transfers. */
static int file_rw(int fd, struct vu_blk_io *io, bool write)
{
	struct iovec iov[VU_MAX_SEGS];
	unsigned n = io->niov, first = 0;
	uint64_t off = io->offset, left = io->len;

	for (unsigned i = 0; i < n; i++)
		iov[i] = io->iov[i];
	while (left) {
		ssize_t k = write ? pwritev(fd, iov + first, (int)(n - first), (off_t)off)
				  : preadv(fd, iov + first, (int)(n - first), (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;     /* past the end of the file */
		off += (uint64_t)k;
		left -= (uint64_t)k;
		while (k > 0 && first < n) {
			if ((size_t)k >= iov[first].iov_len) {
				k -= (ssize_t)iov[first].iov_len;
				first++;
			} else {
				iov[first].iov_base = (uint8_t *)iov[first].iov_base + k;
				iov[first].iov_len -= (size_t)k;
				k = 0;
			}
		}
	}
	return 0;
}

static int file_submit(void *store, struct vu_blk_io *io)
{
	struct vu_file *f = store;
	int r;

	switch (io->type) {
	case VU_BLK_T_IN:
	case VU_BLK_T_OUT:
		r = file_rw(f->fd, io, io->type == VU_BLK_T_OUT);
		break;
	case VU_BLK_T_FLUSH:
		r = fdatasync(f->fd) < 0 ? -errno : 0;
		break;
	case VU_BLK_T_DISCARD:
		r = fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)io->offset,
			      (off_t)io->len) < 0 ? -errno : 0;
		break;
	case VU_BLK_T_WRITE_ZEROES:
		r = fallocate(f->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)io->offset,
			      (off_t)io->len) < 0 ? -errno : 0;
		if (r == -EOPNOTSUPP)
			r = fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)io->offset, (off_t)io->len) < 0 ? -errno : 0;
		break;
	default:
		r = -EOPNOTSUPP;
		break;
	}
	vu_blk_io_done(io, r);
	return 0;
}

static int file_poll_fd(void *store)
{
	return -1;
}

static void file_poll(void *store)
{
}

static unsigned file_inflight(void *store)
{
	return 0;
}

const struct vu_blk_store_ops vu_file_ops = {
	.submit = file_submit,
	.poll_fd = file_poll_fd,
	.poll = file_poll,
	.inflight = file_inflight,
};
