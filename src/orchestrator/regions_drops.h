/* SPDX-License-Identifier: MIT */
/*
 * Strict-region holders that a memory node's directory lost
 * (regions_drops.c): the orch_regions hook dir_drops.
 */
#ifndef DISAGG_ORCH_REGIONS_DROPS_H
#define DISAGG_ORCH_REGIONS_DROPS_H

#include "orch.h"

/* struct orch_regions: dir_drops (drops: the heartbeat's "dir_drops", or NULL). */
void regions_dir_drops(struct orch *o, const struct node_rec *mn, json_t *drops);

#endif /* DISAGG_ORCH_REGIONS_DROPS_H */
