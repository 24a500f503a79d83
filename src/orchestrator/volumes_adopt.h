/* SPDX-License-Identifier: MIT */
/*
 * Volumes the catalog did not make (volumes_adopt.c): adopting a volume a
 * device node has already, and forgetting a block device's volume.
 */
#ifndef DISAGG_ORCH_VOLUMES_ADOPT_H
#define DISAGG_ORCH_VOLUMES_ADOPT_H

#include "volumes.h"

/*
 * POST /v1/volumes/NAME/adopt {"devnode": ID, "epoch": N}: 201 with the
 * volume, or 400, 404 (no such device node, or it has no volume NAME),
 * 409 exists (the catalog has NAME), 503 node_unreachable or 502.
 */
void volumes_adopt(struct orch *o, const char *name, const struct http_req *req,
		   struct http_resp *resp);
/*
 * Inside the store transaction of an operation on block volume v
 * (volumes_begin): drop its row with the event volume_forgotten, and
 * answer 200 {"name", "devnode", "forgotten": true, "epoch", "message"}: the
 * epoch to adopt it again with; the device
 * node, which cannot delete a block device, is not asked.
 */
void volumes_forget(struct orch *o, const struct volume_rec *v, struct http_resp *resp);

#endif /* DISAGG_ORCH_VOLUMES_ADOPT_H */
