/* SPDX-License-Identifier: MIT */
/*
 * A vhost-user-blk storage back end on a local file or block device
 * (vu_file.c): synchronous preadv/pwritev, fdatasync for FLUSH, and
 * fallocate for DISCARD and WRITE_ZEROES. Every request completes inside
 * submit. It is the local baseline of the remote one (vu_devnode.h), and
 * what the tests check the vhost-user path with on its own.
 */
#ifndef DISAGG_VU_FILE_H
#define DISAGG_VU_FILE_H

#include "vu_blk.h"

extern const struct vu_blk_store_ops vu_file_ops;

/* The store's state: the fd (not owned). */
struct vu_file {
	int fd;
};

#endif /* DISAGG_VU_FILE_H */
