/* SPDX-License-Identifier: MIT */
/*
 * The SQLite store's volume catalog (store.h, struct store_volume_ops):
 * store_sqlite_volumes.c. A separate step from store_sqlite_open(), so
 * that a program without volumes (the API fuzzer) links without it.
 */
#ifndef DISAGG_ORCH_STORE_SQLITE_VOLUMES_H
#define DISAGG_ORCH_STORE_SQLITE_VOLUMES_H

#include "store.h"

/* Give a store opened by store_sqlite_open() its volume catalog (s->vol). */
void store_sqlite_volumes(struct store *s);

#endif /* DISAGG_ORCH_STORE_SQLITE_VOLUMES_H */
