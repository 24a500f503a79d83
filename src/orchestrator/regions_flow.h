/* SPDX-License-Identifier: MIT */
/*
 * The multi-step operations on shared regions (regions_flow.c): attach,
 * detach, lock and unlock through the compute agents, and what slot
 * delete, migration and the monitor ask of regions (struct orch_regions).
 */
#ifndef DISAGG_ORCH_REGIONS_FLOW_H
#define DISAGG_ORCH_REGIONS_FLOW_H

#include "orch.h"

/* POST /v1/regions/NAME/{attach,detach,lock,unlock} {"slot": "S"} */
void regions_attach(struct orch *o, const char *name, const struct http_req *req,
		    struct http_resp *resp);
void regions_detach(struct orch *o, const char *name, const struct http_req *req,
		    struct http_resp *resp);
void regions_lock(struct orch *o, const char *name, const struct http_req *req,
		  struct http_resp *resp);
/*
 * POST /v1/nodes/ID/regions/NAME/lock|unlock {"slot": S} with node ID's
 * token: a guest wrote a control page of the region (docs/sharing.md); S
 * must run on node ID (else 403). Then as lock and unlock.
 */
void regions_node_lock(struct orch *o, uint64_t node, const char *name, bool lock,
		       const struct http_req *req, struct http_resp *resp);
void regions_unlock(struct orch *o, const char *name, const struct http_req *req,
		    struct http_resp *resp);

/* struct orch_regions: slot_deleting, upkeep. */
int regions_slot_deleting(struct orch *o, const struct slot_rec *s, const char *was,
			  struct http_resp *resp);
void regions_upkeep(struct orch *o);

#endif /* DISAGG_ORCH_REGIONS_FLOW_H */
