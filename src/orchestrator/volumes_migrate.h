/* SPDX-License-Identifier: MIT */
/*
 * Disks in a compute migration (volumes_migrate.c): the hooks
 * migrate_begin and migrate_end of struct orch_volumes.
 */
#ifndef DISAGG_ORCH_VOLUMES_MIGRATE_H
#define DISAGG_ORCH_VOLUMES_MIGRATE_H

#include "orch.h"

/* struct orch_volumes: migrate_begin, migrate_end. */
int volumes_migrate_begin(struct orch *o, const struct slot_rec *s, const struct node_rec *dst,
			  json_t **ret_disks, struct http_resp *resp);
void volumes_migrate_end(struct orch *o, const struct slot_rec *s, bool moved, uint64_t from,
			 uint64_t to);

#endif /* DISAGG_ORCH_VOLUMES_MIGRATE_H */
