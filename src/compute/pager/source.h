// SPDX-License-Identifier: MIT
/*
 * The source: pages come from the backend's fetch (retried, cancellable),
 * and each memory node has a failure state (source.c). A node that stops
 * answering is "down": faults on its sections park until the health
 * thread sees it answer again.
 */
#ifndef DISAGG_PAGER_SOURCE_H
#define DISAGG_PAGER_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

/*
 * Read npages pages from `page` of section s into buf on *connp (opened
 * if NULL), retried as backend.h says. cancelled(arg), if given, is asked
 * before every attempt: true makes the fetch return -ECANCELED.
 */
int pager_source_fetch(struct pager *p, void **connp, const struct pager_section *s,
		       uint32_t page, uint32_t npages, void *buf, bool (*cancelled)(void *arg),
		       void *arg);

/* Is err a transport failure (the node may answer later), not an answer? */
bool pager_err_transport(int err);
/* 0 if memory node id answers, else the -errno that marked it down. Lock-free. */
int pager_node_down(struct pager *p, uint64_t memnode_id);
static inline bool pager_sec_down(struct pager *p, const struct pager_section *s)
{
	return s->kind == PAGER_SEC_REMOTE && pager_node_down(p, s->grant.memnode_id) != 0;
}
/* A transfer with section s failed with a transport error after its retries. */
void pager_node_failed(struct pager *p, const struct pager_section *s, int err);
/* The memory nodes that are down now: how many were written to ret (at most max). */
int pager_nodes_state(struct pager *p, struct pager_node_state *ret, size_t max);
/* How many memory nodes are down now. */
unsigned pager_nodes_down(struct pager *p);

/* Lifecycle (pager.c): the table, the health thread. */
int pager_nodes_new(struct pager *p);
int pager_nodes_start(struct pager *p);
void pager_nodes_stop(struct pager *p);
void pager_nodes_free(struct pager *p);

#endif /* DISAGG_PAGER_SOURCE_H */
