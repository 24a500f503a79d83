// SPDX-License-Identifier: MIT
/*
 * FENCE for the memory-node client library (mnclient.h): make a memory
 * node learn a section's new ownership epoch, so that it refuses every
 * write through a grant of an older one (docs/protocol.md, "FENCE").
 * The grant presented is the proof that the epoch was handed out; how it
 * is signed is auth.c's business, not this file's.
 */
#include <errno.h>

#include "mnclient.h"
#include "wire.h"

int mnc_fence(struct mnc *c, const struct proto_grant *g, uint32_t *ret_epoch)
{
	struct proto_grant le;
	struct proto_fence_rep rep;
	int r;

	if (!c || !g)
		return -EINVAL;
	if (!(mnc_info(c)->features & PROTO_FEAT_FENCE))
		return -EOPNOTSUPP;
	le = *g;
	wire_grant_swap(&le);
	r = mnc_call(c, PROTO_OP_FENCE, &le, sizeof(le), &rep, sizeof(rep));
	if (r < 0)
		return r;
	wire_fence_rep_swap(&rep);
	if (ret_epoch)
		*ret_epoch = rep.epoch;
	return 0;
}
