/* SPDX-License-Identifier: MIT */
/*
 * Block I/O on volumes through io_uring (blkio.c; docs/devnode.md): one
 * ring per user (a device-node connection), at most `depth` requests in
 * flight, each answered once with the caller's cookie.
 *
 *     dn_blkio_new(32, &b);
 *     dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_READ, fd, off, len, buf, 7 });
 *     dn_blkio_submit(b);                 // one system call for everything queued
 *     n = dn_blkio_reap(b, done, 32, true);   // done[i].cookie, done[i].res
 *
 * - READ and WRITE move `len` bytes or fail: a short transfer is resumed
 *   where it stopped, and a read that meets the end of the file is -EIO.
 *   res is `len` on success.
 * - FLUSH is fdatasync: it covers every write that completed before it
 *   was queued (virtio-blk's rule), not the ones still in flight.
 * - DISCARD punches a hole, or zeroes the range where the filesystem or
 *   device cannot punch; WRITE_ZEROES zeroes the range in place
 *   (FALLOC_FL_ZERO_RANGE), or punches it where the filesystem cannot
 *   (tmpfs): either way the range reads as zeros and the size stays. On
 *   a block device the kernel turns a punch into a discard that reads back
 *   as zeros and a zero-range into BLKZEROOUT.
 * - res < 0 is -errno from the kernel, per request; the ring goes on.
 *
 * Not thread-safe: one thread uses a ring.
 */
#ifndef DISAGG_DEVNODE_BLKIO_H
#define DISAGG_DEVNODE_BLKIO_H

#include <stdbool.h>
#include <stdint.h>

enum dn_blk_op {
	DN_BLK_READ,
	DN_BLK_WRITE,
	DN_BLK_FLUSH,
	DN_BLK_DISCARD,
	DN_BLK_WRITE_ZEROES,
};

struct dn_blk_req {
	enum dn_blk_op op;
	int fd;
	uint64_t off;
	uint32_t len;                /* bytes; 0 for FLUSH */
	void *buf;                   /* READ, WRITE: len bytes, valid until answered */
	uint64_t cookie;
};

struct dn_blk_done {
	uint64_t cookie;
	int res;                     /* len (READ, WRITE), 0, or -errno */
};

struct dn_blkio;

/* A ring for up to depth (1-4096) requests in flight: -ENOSYS if io_uring is off. */
int dn_blkio_new(unsigned depth, struct dn_blkio **ret);
void dn_blkio_free(struct dn_blkio *b);

/* Queue one request: -EAGAIN when depth are in flight, -EINVAL for a bad one. */
int dn_blkio_queue(struct dn_blkio *b, const struct dn_blk_req *rq);
/* Hand what was queued to the kernel: 0 or -errno. */
int dn_blkio_submit(struct dn_blkio *b);
/*
 * Up to max answers into done; with wait, block until at least one
 * (unless none is in flight). Returns how many, or -errno.
 */
int dn_blkio_reap(struct dn_blkio *b, struct dn_blk_done *done, unsigned max, bool wait);
/* The ring's fd: poll(2) says POLLIN when an answer is there to reap. */
int dn_blkio_fd(const struct dn_blkio *b);
/* Requests queued or in flight, not yet reaped. */
unsigned dn_blkio_inflight(const struct dn_blkio *b);

#endif /* DISAGG_DEVNODE_BLKIO_H */
