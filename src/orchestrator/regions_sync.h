/* SPDX-License-Identifier: MIT */
/*
 * The sync points of shared regions in mode release (regions_sync.c):
 * POST /v1/regions/NAME/release and /acquire {"slot": "S"}.
 */
#ifndef DISAGG_REGIONS_SYNC_H
#define DISAGG_REGIONS_SYNC_H

#include "orch.h"

void regions_release(struct orch *o, const char *name, const struct http_req *req,
		     struct http_resp *resp);
void regions_acquire(struct orch *o, const char *name, const struct http_req *req,
		     struct http_resp *resp);

#endif
