/* SPDX-License-Identifier: MIT */
/*
 * GET /v1/events and its long poll, and the table (struct orch_web) through
 * which api.c reaches it, the web view (ui.h) and a slot's pager figures
 * (slotpager.h).
 */
#ifndef DISAGG_ORCH_EVENTS_H
#define DISAGG_ORCH_EVENTS_H

#include "orch.h"

/*
 * Wrap o->store's ops so that every recorded event wakes the long polls,
 * and set o->web. Call once, after the store is open.
 */
void events_start(struct orch *o);

#endif /* DISAGG_ORCH_EVENTS_H */
