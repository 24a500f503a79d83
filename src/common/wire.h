/* SPDX-License-Identifier: MIT */
/*
 * Encoding, decoding and validation of wire frames (include/disagg/proto.h).
 *
 * Everything a peer sends passes through these functions before any other
 * code looks at it: they check every length, count and range, convert from
 * little-endian, and return -EBADMSG (malformed), -E2BIG (over a limit),
 * -ERANGE (outside the section) or -EPROTONOSUPPORT (version) without
 * touching memory outside the buffer they are given.
 */
#ifndef DISAGG_WIRE_H
#define DISAGG_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disagg/proto.h"

/* Header <-> bytes. decode validates; encode never fails. */
void wire_hdr_encode(const struct proto_hdr *h, void *buf);
int wire_hdr_decode(const void *buf, size_t len, struct proto_hdr *ret);

/* A validated READ or WRITE request, pointing into the caller's payload. */
struct wire_io {
	struct proto_grant grant;      /* host byte order */
	uint32_t nextents;
	uint32_t npages;               /* total over all extents */
	const uint8_t *extents;        /* raw little-endian extents */
	const uint8_t *data;           /* WRITE: npages pages; READ: NULL */
};

/*
 * Validate a READ (write=false) or WRITE payload against the limits and a
 * section of `section_pages` pages, with at most `max_pages` pages in all.
 */
int wire_io_decode(const void *payload, size_t len, bool write, uint32_t section_pages,
		   uint32_t max_pages, struct wire_io *ret);
/* Extent `i` of a validated request (host byte order). */
struct proto_extent wire_io_extent(const struct wire_io *io, uint32_t i);

/* Size of a READ/WRITE request payload with n extents and p pages of data. */
static inline size_t wire_io_size(uint32_t nextents, uint32_t data_pages)
{
	return sizeof(struct proto_io_req) + (size_t)nextents * sizeof(struct proto_extent) +
	       (size_t)data_pages * PROTO_PAGE_SIZE;
}

/* Fixed-size payload structs: byte-order conversion in place (no-ops on LE). */
void wire_grant_swap(struct proto_grant *g);
void wire_hello_req_swap(struct proto_hello_req *m);
void wire_hello_rep_swap(struct proto_hello_rep *m);
void wire_alloc_req_swap(struct proto_alloc_req *m);
void wire_section_swap(struct proto_section *m);
void wire_free_req_swap(struct proto_free_req *m);
void wire_list_req_swap(struct proto_list_req *m);
void wire_list_rep_swap(struct proto_list_rep *m);
void wire_atomic_req_swap(struct proto_atomic_req *m);
void wire_u64_swap(uint64_t *v);
void wire_copy_req_swap(struct proto_copy_req *m);
void wire_copy_rep_swap(struct proto_copy_rep *m);
void wire_fence_rep_swap(struct proto_fence_rep *m);
void wire_stats_rep_swap(struct proto_stats_rep *m);
void wire_extent_swap(struct proto_extent *e);
void wire_dir_req_swap(struct proto_dir_req *m);
void wire_dir_write_rep_swap(struct proto_dir_write_rep *m);
void wire_dir_recall_swap(struct proto_dir_recall *m);
void wire_dir_ack_swap(struct proto_dir_ack *m);

/*
 * Directory frames (host order out): DIR_READ/DIR_WRITE requests (exact
 * size, rsvd 0); DIR_RECALL (exact size, a known mode); and
 * DIR_RECALL_ACK, whose page (*ret_page, NULL when clean) follows only
 * with PROTO_DIR_DIRTY; PROTO_DIR_QUIET is its only other flag (whether
 * the connection negotiated it is the handler's check).
 */
int wire_dir_req_decode(const void *payload, size_t len, struct proto_dir_req *ret);
/*
 * DIR_RECLAIM: a proto_dir_req, then with PROTO_DIR_REQ_VERSION (only with
 * RECALLED) a proto_dir_version (*ret_version; 0 without), then the page
 * (*ret_page) unless PROTO_DIR_REQ_DONE; RECALLED only with a page.
 */
int wire_dir_reclaim_decode(const void *payload, size_t len, struct proto_dir_req *ret,
			    uint32_t *ret_version, const uint8_t **ret_page);
/* DIR_ATTACH and DIR_DETACH: a grant, then optionally a proto_dir_who (tag 0 without). */
int wire_dir_who_decode(const void *payload, size_t len, struct proto_grant *ret_grant,
			uint16_t *ret_tag);
int wire_dir_recall_decode(const void *payload, size_t len, struct proto_dir_recall *ret);
int wire_dir_ack_decode(const void *payload, size_t len, struct proto_dir_ack *ret,
			const uint8_t **ret_page);

/*
 * Copy a fixed-size payload out of a frame: fails with -EBADMSG unless
 * len == size exactly.
 */
int wire_fixed(const void *payload, size_t len, void *ret, size_t size);

/* Status codes. */
int proto_status_to_errno(uint32_t st);
uint32_t proto_errno_to_status(int err);
const char *proto_status_str(uint32_t st);
const char *proto_op_name(uint32_t op);

#endif /* DISAGG_WIRE_H */
