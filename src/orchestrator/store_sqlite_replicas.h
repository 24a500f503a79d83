/* SPDX-License-Identifier: MIT */
/*
 * The SQLite store's replicas of sections (store.h, struct
 * store_replica_ops): store_sqlite_replicas.c. A separate step from
 * store_sqlite_open(), as the volume catalog, so that a program without
 * replicas (the API fuzzer) links without it.
 */
#ifndef DISAGG_ORCH_STORE_SQLITE_REPLICAS_H
#define DISAGG_ORCH_STORE_SQLITE_REPLICAS_H

#include "store.h"

/* Give a store opened by store_sqlite_open() its replica operations (s->rep). */
void store_sqlite_replicas(struct store *s);

#endif /* DISAGG_ORCH_STORE_SQLITE_REPLICAS_H */
