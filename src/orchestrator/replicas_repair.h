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
 * The hooks of struct orch_replicas that are this file's (recover,
 * memmig_check, memmig), for replicas_start.
 */
void replicas_repair_hooks(struct orch_replicas *ops);
/* Take out now the in-replicas on memory nodes down or drained (as each tick does). */
void replicas_take_out_lost(struct orch *o);

#endif /* DISAGG_ORCH_REPLICAS_REPAIR_H */
