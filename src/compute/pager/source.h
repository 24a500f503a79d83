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

struct pager_region;

/*
 * The same for section `sec` of region r (its descriptor r->sections[sec]),
 * replicated or not. A replicated section (replica.h) is read from its
 * in-replicas in position order, one attempt each (one reconnect allowed,
 * cfg.replica_timeout_ms at most when the backend can): a transport error
 * takes that replica out and the next one is asked at once. The last
 * in-replica is read as an unreplicated section is (retried). *ret_view
 * (may be NULL): the descriptor of the replica asked last, for
 * pager_node_failed() when the fetch failed.
 */
int pager_source_fetch_sec(struct pager *p, void **connp, struct pager_region *r, unsigned sec,
			   uint32_t page, uint32_t npages, void *buf, bool (*cancelled)(void *arg),
			   void *arg, struct pager_section *ret_view);

/* Is err a transport failure (the node may answer later), not an answer? */
bool pager_err_transport(int err);
/* 0 if memory node id answers, else the -errno that marked it down. Lock-free. */
int pager_node_down(struct pager *p, uint64_t memnode_id);
/*
 * Is section sec of r on a memory node that is down? 0 if not, else the
 * node's -errno. A replicated section is down only when one replica is in
 * and its node is down. Lock-free.
 */
int pager_sec_down(struct pager *p, const struct pager_region *r, unsigned sec);
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
