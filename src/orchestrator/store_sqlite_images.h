/* SPDX-License-Identifier: MIT */
/*
 * Images in the SQLite store (store_sqlite_images.c): the image_*
 * operations of the volume catalog's ops table (store_sqlite_volumes.c).
 */
#ifndef DISAGG_ORCH_STORE_SQLITE_IMAGES_H
#define DISAGG_ORCH_STORE_SQLITE_IMAGES_H

#include "store.h"

/* struct store_volume_ops's image_* (store.h). */
int store_sqlite_image_insert(struct store *s, struct image_rec *rec);
int store_sqlite_image_get(struct store *s, const char *name, struct image_rec *ret);
int store_sqlite_image_list(struct store *s, struct image_rec **ret, size_t *ret_n);
int store_sqlite_image_update(struct store *s, const struct image_rec *rec);
int store_sqlite_image_delete(struct store *s, int64_t id);

#endif /* DISAGG_ORCH_STORE_SQLITE_IMAGES_H */
