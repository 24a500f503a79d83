// SPDX-License-Identifier: MIT
/*
 * The "local" backend: sections live in anonymous memory of this process
 * (allocated on first use, zero-filled). It is the benchmark's "uffd floor"
 * (the same fault path with no network), and it lets tests inject errors
 * and delays.
 */
#ifndef DISAGG_PAGER_BACKEND_LOCAL_H
#define DISAGG_PAGER_BACKEND_LOCAL_H

#include "types.h"

int pager_backend_local_new(size_t section_size, struct pager_backend **ret);
/* Make every later fetch/write fail with err (0: work again). For tests. */
void pager_backend_local_set_error(struct pager_backend *be, int err);
/* Add delay_us to every fetch and write (0: none). */
void pager_backend_local_set_delay(struct pager_backend *be, unsigned delay_us);
/* Only the sections of memory node `memnode_id` fail with err (0: work again). For tests. */
void pager_backend_local_set_node_error(struct pager_backend *be, uint64_t memnode_id, int err);

#endif /* DISAGG_PAGER_BACKEND_LOCAL_H */
