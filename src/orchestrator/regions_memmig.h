/* SPDX-License-Identifier: MIT */
/*
 * Memory migration of a shared region (regions_memmig.c): the region's
 * sections move to another memory node while slots map it.
 */
#ifndef DISAGG_ORCH_REGIONS_MEMMIG_H
#define DISAGG_ORCH_REGIONS_MEMMIG_H

#include "orch.h"

/*
 * POST /v1/regions/NAME/migrate {"to": MEMNODE}: quiesce every user,
 * COPY, switch every user, record, resume, free the old sections
 * (docs/api.md). 200 with the region and the move's numbers; on a
 * failure the region stays where it was, `ready`.
 */
void regions_memmig(struct orch *o, const char *name, const struct http_req *req,
		    struct http_resp *resp);

/*
 * At start, before regions_recover: every region an orchestrator restart
 * caught `moving` is settled (its users on the recorded sections, resumed).
 */
void regions_memmig_recover(struct orch *o);

#endif /* DISAGG_ORCH_REGIONS_MEMMIG_H */
