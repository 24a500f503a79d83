/* SPDX-License-Identifier: MIT */
/*
 * Volumes attached to slots as disks (volumes_disks.c; docs/api.md,
 * "Disks"): what volumes_api.c puts in the struct orch_volumes table.
 */
#ifndef DISAGG_ORCH_VOLUMES_DISKS_H
#define DISAGG_ORCH_VOLUMES_DISKS_H

#include "orch.h"

/* GET, POST /v1/slots/NAME/disks; GET, DELETE /v1/slots/NAME/disks/VOLUME. */
enum orch_route disks_route(struct orch *o, const char *slot, const char *rest,
			    const struct http_req *req, struct http_resp *resp);
/* struct orch_volumes.slot_json: "disks" of slot s, when it has any. */
void disks_slot_json(struct orch *o, const struct slot_rec *s, json_t *j);
/* struct orch_volumes.slot_deleting: 409 busy while a volume of s is in an operation. */
int disks_slot_deleting(struct orch *o, const struct slot_rec *s, struct http_resp *resp);

#endif /* DISAGG_ORCH_VOLUMES_DISKS_H */
