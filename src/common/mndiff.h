/* SPDX-License-Identifier: MIT */
/*
 * WRITE_DIFF for the memory-node client library (mndiff.c): a release
 * region's diffs (docs/protocol.md, "WRITE_DIFF").
 */
#ifndef DISAGG_MNDIFF_H
#define DISAGG_MNDIFF_H

#include <stddef.h>
#include <stdint.h>

#include "mnclient.h"

/*
 * WRITE_DIFF (mndiff.c): `npages` page diffs of the grant's section,
 * encoded with wire_diff_page_encode() one after the other in `body`
 * (`len` bytes, sent from there: it lives until the completion).
 * -EOPNOTSUPP if the node does not offer it. `once` (may be NULL) makes
 * the node apply the frame at most once (PROTO_DIFF_ONCE); a node without
 * PROTO_FEAT_DIFF_ONCE gets the frame without it.
 */
int mnc_write_diff_async(struct mnc *c, const struct proto_grant *g, uint32_t npages,
			 const struct proto_diff_once *once, const void *body, size_t len,
			 mnc_done_fn done, void *opaque);
int mnc_write_diff(struct mnc *c, const struct proto_grant *g, uint32_t npages,
		   const struct proto_diff_once *once, const void *body, size_t len);
#endif
