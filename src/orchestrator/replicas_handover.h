/* SPDX-License-Identifier: MIT */
/*
 * A compute migration's hand-over of the replicas the source took out
 * (replicas_handover.c; docs/replication.md, "Compute migration"): the
 * hooks hand_over and after_move of struct orch_replicas.
 */
#ifndef DISAGG_ORCH_REPLICAS_HANDOVER_H
#define DISAGG_ORCH_REPLICAS_HANDOVER_H

#include "replicas.h"

/* Fill in hand_over and after_move (replicas_nodes_hooks). */
void replicas_handover_hooks(struct orch_replicas *ops);

#endif /* DISAGG_ORCH_REPLICAS_HANDOVER_H */
