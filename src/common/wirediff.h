/* SPDX-License-Identifier: MIT */
/*
 * WRITE_DIFF frames (include/disagg/proto.h, docs/protocol.md): the byte
 * runs in which a page differs from its twin. The compute side encodes one
 * page's diff at a time (wire_diff_page_encode); the memory node validates
 * a whole request before it touches memory (wire_diff_decode) and then
 * applies it (wire_diff_apply). Decoding returns -EBADMSG (malformed: short,
 * trailing bytes, a run empty, overlapping, out of order or past the page,
 * reserved fields or unknown flags set, a PROTO_DIFF_ONCE id of 0 or a
 * frame past PROTO_DIFF_ONCE_FRAMES), -E2BIG (too many pages or runs) or -ERANGE (a page
 * outside the section), like the other wire_* decoders.
 */
#ifndef DISAGG_WIREDIFF_H
#define DISAGG_WIREDIFF_H

#include <stddef.h>
#include <stdint.h>

#include "disagg/proto.h"

/* The largest encoding of one page's diff: every other byte changed. */
#define WIRE_DIFF_PAGE_MAX (sizeof(struct proto_diff_page) + \
			    PROTO_MAX_DIFF_RUNS * sizeof(struct proto_diff_run) + PROTO_PAGE_SIZE)

/* A validated WRITE_DIFF request, pointing into the caller's payload. */
struct wire_diff {
	struct proto_grant grant;      /* host byte order */
	uint32_t npages;
	struct proto_diff_once once;   /* stream 0: not PROTO_DIFF_ONCE */
	uint64_t bytes;                /* changed bytes over all pages */
	const uint8_t *body;           /* the page diffs */
	size_t len;                    /* their length */
};

int wire_diff_decode(const void *payload, size_t len, uint32_t section_pages, uint32_t max_pages,
		     struct wire_diff *ret);

/*
 * Check `npages` page diffs (a request's body, `len` bytes) by the rules
 * of wire_diff_decode: 0 and *ret_bytes (may be NULL) their changed bytes,
 * or -EBADMSG, -E2BIG, -ERANGE.
 */
int wire_diff_body_check(const void *body, size_t len, uint32_t npages, uint32_t section_pages,
			 uint64_t *ret_bytes);

/* Apply a validated request to the section at `base` (its lock held). */
void wire_diff_apply(const struct wire_diff *d, uint8_t *base);

/*
 * The checked page diff at p: its runs copied into the page at dst (NULL:
 * none), its page into *ret_page (may be NULL). Returns its encoded length.
 */
size_t wire_diff_page_apply(const uint8_t *p, uint8_t *dst, uint32_t *ret_page);

/*
 * Encode the diff of page `page` (section-relative): the bytes of `now`
 * that differ from `twin` (NULL: every byte of the page, one run) into
 * `out`, which has room for WIRE_DIFF_PAGE_MAX bytes. Returns the bytes
 * written, 0 when nothing changed; *ret_changed (may be NULL) gets the
 * changed bytes.
 */
size_t wire_diff_page_encode(uint32_t page, const uint8_t *twin, const uint8_t *now, uint8_t *out,
			     uint64_t *ret_changed);

/*
 * The request header of a WRITE_DIFF of npages page diffs, little-endian,
 * into out: 112 bytes, or 136 with `once` (PROTO_DIFF_ONCE). Returns its size.
 */
#define WIRE_DIFF_HEAD_MAX (sizeof(struct proto_diff_req) + sizeof(struct proto_diff_once))
size_t wire_diff_req_encode(const struct proto_grant *g, uint32_t npages,
			    const struct proto_diff_once *once, void *out);

#endif /* DISAGG_WIREDIFF_H */
