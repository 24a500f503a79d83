/* SPDX-License-Identifier: MIT */
/*
 * The SQLite store's shared regions (store.h, "Shared regions"): the
 * operations of store_sqlite_regions.c, which store_sqlite.c puts in its
 * ops table.
 */
#ifndef DISAGG_ORCH_STORE_SQLITE_REGIONS_H
#define DISAGG_ORCH_STORE_SQLITE_REGIONS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

int sq_region_insert(struct store *s, struct region_rec *rec);
int sq_region_get(struct store *s, const char *name, struct region_rec *ret);
int sq_region_list(struct store *s, struct region_rec **ret, size_t *ret_n);
int sq_region_update(struct store *s, const struct region_rec *rec);
int sq_region_delete(struct store *s, int64_t id);
int sq_region_section_add(struct store *s, const struct region_section_rec *rec);
int sq_region_section_list(struct store *s, int64_t region_id, uint64_t memnode,
			   struct region_section_rec **ret, size_t *ret_n);
int sq_attach_put(struct store *s, const struct region_attach_rec *rec);
int sq_attach_remove(struct store *s, int64_t region_id, int64_t slot_id);
int sq_attach_list(struct store *s, int64_t region_id, int64_t slot_id,
		   struct region_attach_rec **ret, size_t *ret_n);

#endif /* DISAGG_ORCH_STORE_SQLITE_REGIONS_H */
