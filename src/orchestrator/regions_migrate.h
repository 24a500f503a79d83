/* SPDX-License-Identifier: MIT */
/*
 * Shared regions in a compute migration (regions_migrate.c): the hooks
 * migrate_begin and migrate_end of struct orch_regions, and what they
 * share with attach and lock (regions_flow.c): fencing a region's
 * sections at its epoch.
 */
#ifndef DISAGG_ORCH_REGIONS_MIGRATE_H
#define DISAGG_ORCH_REGIONS_MIGRATE_H

#include "orch.h"

/*
 * Fence every section of r at r->epoch (no raise): how many could not be
 * fenced (an event for each), or -errno when the store cannot be read.
 */
int regions_fence(struct orch *o, const struct region_rec *r);

/* struct orch_regions: migrate_begin, migrate_end. */
int regions_migrate_begin(struct orch *o, const struct slot_rec *s, const struct node_rec *dst,
			  json_t **ret_regions, struct http_resp *resp);
void regions_migrate_end(struct orch *o, const struct slot_rec *s, bool moved, uint64_t from,
			 uint64_t to);

#endif /* DISAGG_ORCH_REGIONS_MIGRATE_H */
