/* SPDX-License-Identifier: MIT */
/*
 * WRITE_DIFF frames applied at most once (PROTO_DIFF_ONCE, once.c;
 * docs/protocol.md, "WRITE_DIFF"). Per section the node keeps, for up to
 * MN_ONCE_WRITERS writers (the grant's holder node and the frame's stream),
 * the newest batch it saw and which of its frames it applied. A frame
 * applied before, or of an older batch, is not applied again. A section
 * freed and allocated again (a new generation) starts empty; when a
 * seventeenth writer comes, the one seen longest ago is forgotten. The table is in
 * memory only: a restarted node applies a frame sent again.
 */
#ifndef DISAGG_MEMNODE_ONCE_H
#define DISAGG_MEMNODE_ONCE_H

#include <stdbool.h>
#include <stdint.h>

#include "disagg/proto.h"

#define MN_ONCE_WRITERS 16u   /* as many as a directory's holders */

struct mn_once;

int mn_once_new(uint32_t nsections, struct mn_once **ret);
void mn_once_free(struct mn_once *o);

/*
 * Frame `id` of writer `holder` for section idx of `generation` comes:
 * true if it is to be applied (and it now counts as applied), false if it
 * was applied before or its batch is older than the writer's newest. The
 * section's entry stays locked until mn_once_end(), so that a copy of the
 * frame that comes at the same time waits for the apply and is then not
 * applied. -ENOMEM is not possible: a section's table is allocated here
 * or the frame is applied as without PROTO_DIFF_ONCE (returns true).
 */
bool mn_once_begin(struct mn_once *o, uint32_t idx, uint32_t generation, uint64_t holder,
		   const struct proto_diff_once *id);
void mn_once_end(struct mn_once *o, uint32_t idx);

#endif /* DISAGG_MEMNODE_ONCE_H */
