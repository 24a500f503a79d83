// SPDX-License-Identifier: MIT
/*
 * Serving one MISSING fault (serve.c): claim, fetch, install, record.
 * WP faults are serve_wp.h's. The fault threads (fault.c) decode the uffd
 * messages and call these.
 */
#ifndef DISAGG_PAGER_SERVE_H
#define DISAGG_PAGER_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "stash.h"

struct pager;
struct pager_region;

/* What a fault thread lends to the code that serves its faults. */
struct pager_fault_ctx {
	struct pager *p;
	void *conn;                  /* the thread's own backend connection */
	uint8_t *buf;                /* PROTO_MAX_PAGES pages */
	uint8_t *claimed;            /* PROTO_MAX_PAGES flags */
	struct pager_stash *stash;   /* sealed slots: a random fault's neighbours (stash.h) */
	unsigned rcu_idx;            /* the thread's reader index in p->rcu */
	/* The mapping is changing (EAGAIN): read r's pending events now. */
	void (*drain)(struct pager_fault_ctx *c, struct pager_region *r);
};

/*
 * A MISSING fault at addr (a write fault if write; tid from
 * UFFD_FEATURE_THREAD_ID, for on_fail and SIGBUS). pf_end != 0: a prefetch
 * of [page of addr, pf_end) that no thread waits for (hot.c): no wait for
 * space, no fault statistics, and a failure drops the prefetch instead of
 * reporting a failed fault.
 */
void pager_serve_missing(struct pager_fault_ctx *c, struct pager_region *r, uint64_t addr,
			 bool write, uint32_t tid, uint64_t pf_end);
/*
 * Open and install the sealed neighbours held in e (stash.h), then let e
 * go; r is e's region (NULL: it was removed, nothing to do but forget e).
 * Under the thread's RCU read section, with its key set to e's section.
 */
void pager_stash_install(struct pager_fault_ctx *c, struct pager_region *r,
			 struct pager_stash_ent *e);
/*
 * How many pages a sequential writer's window may make writable ahead of
 * it, from its fault on (MISSING here, WP in serve_wp.c): pages made
 * writable count as written, and are written back, whether the guest
 * writes them or not. The prefetch window (max_window) for memory; a
 * cluster for a shared region, where a hand-over writes back everything
 * dirty (share.h): a window doubled to 256 pages past the end of a 1 MiB
 * write made its release write back 1.9 MiB.
 */
uint32_t pager_write_ahead(const struct pager *p, const struct pager_region *r);
/* Install one page (n == 1) from src with UFFDIO_COPY `mode`: -EEXIST if it is there already. */
int pager_install_pages(struct pager_fault_ctx *c, struct pager_region *r, uint64_t pg,
			uint64_t n, const uint8_t *src, uint64_t mode);

#endif /* DISAGG_PAGER_SERVE_H */
