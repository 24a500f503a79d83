/* SPDX-License-Identifier: MIT */
/*
 * The operator's edits of nodes that replicated far memory relies on
 * (replicas_nodes.c): labels (a memory node's zone) and removal.
 */
#ifndef DISAGG_ORCH_REPLICAS_NODES_H
#define DISAGG_ORCH_REPLICAS_NODES_H

#include "replicas_repair.h"

/* Every hook of struct orch_replicas outside replicas.c, for replicas_start (main.c). */
void replicas_nodes_hooks(struct orch_replicas *ops);

#endif /* DISAGG_ORCH_REPLICAS_NODES_H */
