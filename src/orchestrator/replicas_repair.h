/* SPDX-License-Identifier: MIT */
/*
 * The repair of replicated far memory (replicas_repair.c): a thread that
 * takes out the replicas of memory nodes that are down or drained (and
 * tells the agents to drop them) and repairs out replicas one at a time,
 * and the settling of a repair that an orchestrator restart interrupted.
 */
#ifndef DISAGG_ORCH_REPLICAS_REPAIR_H
#define DISAGG_ORCH_REPLICAS_REPAIR_H

#include "replicas.h"

/* Start the repair thread (main.c, after replicas_start). 0 or -errno. */
int replicas_repair_start(struct orch *o);
/* Stop it (accepts a thread never started). */
void replicas_repair_stop(struct orch *o);
/*
 * Slot s was left `migrating` by a repair (its op has kind "repair"):
 * settle it from the agent's view (orch_replicas.recover). 0, or -ENOENT
 * when its op is not a repair's.
 */
int replicas_repair_recover(struct orch *o, struct slot_rec *s);

#endif /* DISAGG_ORCH_REPLICAS_REPAIR_H */
