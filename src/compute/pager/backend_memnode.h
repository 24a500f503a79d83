// SPDX-License-Identifier: MIT
/*
 * The "memnode" backend: sections on memory nodes, through mnclient. Each
 * connection (one per pager thread) holds one mnc per memory node address.
 * `spin_us` busy-polls for a fetch reply that long before blocking.
 */
#ifndef DISAGG_PAGER_BACKEND_MEMNODE_H
#define DISAGG_PAGER_BACKEND_MEMNODE_H

#include "types.h"

int pager_backend_memnode_new(const struct auth_key *key, uint64_t node_id, int timeout_ms,
			      unsigned spin_us, struct pager_backend **ret);

#endif /* DISAGG_PAGER_BACKEND_MEMNODE_H */
