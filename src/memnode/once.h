/* SPDX-License-Identifier: MIT */
/*
 * WRITE_DIFF frames applied at most once (PROTO_DIFF_ONCE, once.c;
 * docs/protocol.md, "WRITE_DIFF"). Per section the node keeps, for up to
 * MN_ONCE_WRITERS writers (the grant's holder node and the frame's stream),
 * the newest batch it saw and which of its frames it applied. A frame
 * applied before, or of an older batch, is not applied again. A section
 * freed and allocated again (a new generation) starts empty; when a
 * seventeenth writer comes, the one seen longest ago is forgotten.
 *
 * A pool that outlives the process (tmpfs or file backing) keeps the table
 * beside it (its name with ".once" appended, native byte order), in a
 * shared mapping: a killed or restarted node still knows which frames it
 * applied. An anonymous pool's table is in memory only.
 */
#ifndef DISAGG_MEMNODE_ONCE_H
#define DISAGG_MEMNODE_ONCE_H

#include <stdbool.h>
#include <stdint.h>

#include "disagg/proto.h"

#define MN_ONCE_WRITERS 16u   /* as many as a directory's holders */

struct mn_once;

/* The table of `nsections` sections: beside pool_path, or in memory (NULL). 0 or -errno. */
int mn_once_open(const char *pool_path, uint32_t nsections, struct mn_once **ret);
void mn_once_free(struct mn_once *o);

/*
 * Frame `id` of writer `holder` comes for section idx of `generation`:
 * true if it is to be applied, false if it was applied before or its batch
 * is older than the writer's newest. The section's entry stays locked
 * until mn_once_end(), which records an applied frame: apply in between,
 * so that a copy of the frame that comes at the same time waits and is
 * then not applied, and a process killed before the record applies it
 * again rather than never.
 */
bool mn_once_begin(struct mn_once *o, uint32_t idx, uint32_t generation, uint64_t holder,
		   const struct proto_diff_once *id);
void mn_once_end(struct mn_once *o, uint32_t idx, uint64_t holder,
		 const struct proto_diff_once *id, bool applied);

#endif /* DISAGG_MEMNODE_ONCE_H */
