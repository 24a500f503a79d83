// SPDX-License-Identifier: MIT
/*
 * userfaultfd and tmpfs file operations, with no policy: open, probe and
 * register a uffd; read its messages; the ioctls that resolve faults
 * (COPY, ZEROPAGE, WRITEPROTECT, WAKE); PAGEMAP_SCAN; and the operations on
 * the mapping's tmpfs file (punch, SEEK_DATA/SEEK_HOLE). Everything is in
 * bytes: nothing here knows pages states, regions or sections (cache.h has
 * the per-region wrappers). Returns are >= 0 or -errno.
 */
#ifndef DISAGG_PAGER_UFFD_H
#define DISAGG_PAGER_UFFD_H

#include <stdbool.h>
#include <stdint.h>

#include "types.h"

struct uffd_msg;
struct page_region;

/* Features the running kernel offers (probe through a throw-away uffd). */
int pager_uffd_probe(uint64_t *ret_features);
/*
 * Open a uffd (O_CLOEXEC|O_NONBLOCK) and negotiate what the pager needs for
 * `mode`: MISSING and WP on shmem, EVENT_REMOVE, THREAD_ID, and WP_ASYNC for
 * the async mode. -EOPNOTSUPP if the kernel lacks a required feature.
 */
int pager_uffd_open(enum pager_dirty_mode mode, int *ret_fd, uint64_t *ret_features);
/* Register [addr, addr+len) for MISSING|WP. */
int pager_uffd_register(int uffd, uint64_t addr, uint64_t len);

/* Read up to max messages (non-blocking uffd): how many were read, 0 if none. */
unsigned uffd_read(int uffd, struct uffd_msg *msgs, unsigned max);
int uffd_wake(int uffd, uint64_t start, uint64_t len);
int uffd_writeprotect(int uffd, uint64_t start, uint64_t len, bool protect);
/* Un-protect [start, start+len) without waking its waiters (uffd_wake does, later). */
int uffd_unprotect_nowake(int uffd, uint64_t start, uint64_t len);
/*
 * UFFDIO_COPY of len bytes from src to dst (mode: 0 or
 * UFFDIO_COPY_MODE_WP, with UFFDIO_COPY_MODE_DONTWAKE or not), or
 * UFFDIO_ZEROPAGE of [dst, dst+len). *ret_done is
 * what the kernel reports: the bytes filled (also when it stopped early),
 * or a negative errno.
 */
int uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len, uint64_t mode,
	      int64_t *ret_done);
int uffd_zeropage(int uffd, uint64_t dst, uint64_t len, int64_t *ret_done);
/*
 * PAGEMAP_SCAN of [start, end) for written pages, re-protecting them
 * (WP_ASYNC): the number of vec entries filled, or -errno. *ret_walk_end:
 * where the walk stopped.
 */
long uffd_scan_written(int pagemap_fd, uint64_t start, uint64_t end, struct page_region *vec,
		       unsigned nvec, uint64_t *ret_walk_end);

/* fallocate(PUNCH_HOLE|KEEP_SIZE) of [off, off+len). */
int uffd_file_punch(int fd, uint64_t off, uint64_t len);
/* Does the file hold data in [off, off+len)? (tmpfs: exact per page) */
bool uffd_file_has_data(int fd, uint64_t off, uint64_t len);
/* The first offset >= off with data (data) or in a hole: -ENXIO if none, -errno. */
int64_t uffd_file_seek(int fd, uint64_t off, bool data);

#endif /* DISAGG_PAGER_UFFD_H */
