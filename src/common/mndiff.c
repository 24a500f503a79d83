// SPDX-License-Identifier: MIT
/*
 * WRITE_DIFF for the memory-node client library (mnclient.h): a release
 * region's diffs, byte runs of pages (docs/protocol.md, "WRITE_DIFF";
 * wirediff.h encodes them). Pipelined like WRITE: the caller's encoded
 * page diffs are sent from its buffer, not copied.
 */
#include <errno.h>
#include <string.h>

#include "mnconn.h"
#include "mndiff.h"
#include "wirediff.h"

int mnc_write_diff_async(struct mnc *c, const struct proto_grant *g, uint32_t npages,
			 const struct proto_diff_once *once, const void *body, size_t len,
			 mnc_done_fn done, void *opaque)
{
	struct mnc_req *r;
	size_t head;
	int k;

	if (!c || !g || !body || !npages)
		return -EINVAL;
	if (!(c->info.features & PROTO_FEAT_DIFF))
		return -EOPNOTSUPP;
	if (!(c->info.features & PROTO_FEAT_DIFF_ONCE))
		once = NULL;   /* an older node: applied as often as it comes */
	if (npages > c->info.max_pages || len > PROTO_MAX_PAYLOAD - WIRE_DIFF_HEAD_MAX)
		return -E2BIG;
	k = mnconn_get_slot(c, &r);
	if (k < 0)
		return k;
	r->done = done;
	r->opaque = opaque;
	r->exact = true;   /* empty reply */
	head = wire_diff_req_encode(g, npages, once, r->head + PROTO_HDR_SIZE);
	return mnconn_submit(c, r, PROTO_OP_WRITE_DIFF, head, body, len);
}

int mnc_write_diff(struct mnc *c, const struct proto_grant *g, uint32_t npages,
		   const struct proto_diff_once *once, const void *body, size_t len)
{
	struct mnconn_sync w = { 0 };
	int r = mnc_write_diff_async(c, g, npages, once, body, len, mnconn_sync_done, &w);

	return r < 0 ? r : mnconn_sync_wait(c, &w, c->timeout_ms);
}
