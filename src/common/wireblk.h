/* SPDX-License-Identifier: MIT */
/*
 * Encoding and validation of the device node's frames (BLK_* and VOL_*,
 * include/disagg/proto.h), in the manner of wire.h: every length, count
 * and range is checked before anyone else looks at a payload, and the
 * results are in host byte order.
 */
#ifndef DISAGG_WIREBLK_H
#define DISAGG_WIREBLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disagg/proto.h"

void wire_blk_open_req_swap(struct proto_blk_open_req *m);
void wire_blk_open_rep_swap(struct proto_blk_open_rep *m);
void wire_blk_io_swap(struct proto_blk_io *m);
void wire_blk_handle_swap(struct proto_blk_handle *m);
void wire_vol_req_swap(struct proto_vol_req *m);
void wire_volume_swap(struct proto_volume *m);

/*
 * A volume name field (PROTO_VOL_NAME_SIZE bytes, NUL-padded) as a C
 * string: -EBADMSG unless it is 1-63 of [a-z0-9_-] starting with a letter
 * or a digit, followed only by NULs.
 */
int wire_vol_name(const char field[PROTO_VOL_NAME_SIZE], char ret[PROTO_VOL_NAME_SIZE]);
/* Put a name (at most 63 bytes) into a field: -EINVAL if it is too long. */
int wire_vol_name_put(char field[PROTO_VOL_NAME_SIZE], const char *name);

/* BLK_OPEN: exact size, known flags, rsvd 0, a valid name (*ret_name). */
int wire_blk_open_decode(const void *payload, size_t len, struct proto_blk_open_req *ret,
			 char ret_name[PROTO_VOL_NAME_SIZE]);
/*
 * BLK_READ, BLK_WRITE, BLK_DISCARD, BLK_WRITE_ZEROES (op): the request,
 * and for a write its data (*ret_data, exactly `len` bytes; NULL for the
 * others). Sector alignment, len >= 1 sector, no 64-bit overflow, and
 * READ/WRITE at most PROTO_BLK_MAX_IO (-E2BIG). The volume's size is the
 * caller's to check.
 */
int wire_blk_io_decode(uint16_t op, const void *payload, size_t len, struct proto_blk_io *ret,
		       const uint8_t **ret_data);
/* BLK_FLUSH, BLK_CLOSE: exact size, rsvd 0. */
int wire_blk_handle_decode(const void *payload, size_t len, struct proto_blk_handle *ret);
/*
 * VOL_CREATE/DELETE/RESIZE/CLONE/STAT (op): exact size, rsvd 0, a valid
 * name; CLONE a valid src, the others an empty one; flags only
 * PROTO_VOL_SHRINK and only for RESIZE; size only for CREATE and RESIZE,
 * there a multiple of PROTO_BLK_SECTOR (0 is refused for CREATE).
 * *ret_name, *ret_src: the names as C strings (src "" unless CLONE).
 */
int wire_vol_req_decode(uint16_t op, const void *payload, size_t len, struct proto_vol_req *ret,
			char ret_name[PROTO_VOL_NAME_SIZE], char ret_src[PROTO_VOL_NAME_SIZE]);

/* A volume's key as the grant's section (low half) and generation (high half). */
static inline uint64_t wire_vol_key_of_grant(const struct proto_grant *g)
{
	return (uint64_t)g->generation << 32 | g->section;
}

#endif /* DISAGG_WIREBLK_H */
