/* SPDX-License-Identifier: MIT */
/*
 * The SQLite implementation of the store (store.h): opening it. Kept out
 * of store.h so that the files that use a store, the store's own among
 * them, do not depend on this one.
 */
#ifndef DISAGG_ORCH_STORE_SQLITE_H
#define DISAGG_ORCH_STORE_SQLITE_H

#include "store.h"

/* Open (creating and migrating) the SQLite store at `path`. */
int store_sqlite_open(const char *path, struct store **ret);

#endif /* DISAGG_ORCH_STORE_SQLITE_H */
