/* SPDX-License-Identifier: MIT */
/*
 * Regions a VM maps that its slot is not attached to (regions_strays.c):
 * the orch_regions hook slot_back, and the monitor's part of upkeep.
 */
#ifndef DISAGG_ORCH_REGIONS_STRAYS_H
#define DISAGG_ORCH_REGIONS_STRAYS_H

#include "orch.h"

/* struct orch_regions: slot_back (s runs again after it was lost). */
void regions_slot_back(struct orch *o, const struct slot_rec *s);
/* From regions_upkeep: unplug the stray regions of the slots that came back. */
void regions_strays_upkeep(struct orch *o);

#endif /* DISAGG_ORCH_REGIONS_STRAYS_H */
