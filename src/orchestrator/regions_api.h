/* SPDX-License-Identifier: MIT */
/*
 * Shared regions, as main.c starts them (regions_api.c): the table of
 * struct orch_regions that the rest of the orchestrator calls through.
 */
#ifndef DISAGG_ORCH_REGIONS_API_H
#define DISAGG_ORCH_REGIONS_API_H

#include "orch.h"

/* Settle the regions a restart interrupted (asking the agents), then set o->regions. */
void regions_start(struct orch *o);

#endif /* DISAGG_ORCH_REGIONS_API_H */
