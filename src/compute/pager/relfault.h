// SPDX-License-Identifier: MIT
/*
 * Release regions, the fault side (relfault.c), for the fault threads
 * (serve.c, serve_wp.c) and the publish (reldiff.c). p->lock held.
 */
#ifndef DISAGG_PAGER_RELFAULT_H
#define DISAGG_PAGER_RELFAULT_H

#include <stdint.h>

#include "cache.h"

/* The control page k (0 RELEASE, 1 ACQUIRE) of release region r. */
static inline uint64_t pager_release_ctl_pg(const struct pager_region *r, unsigned k)
{
	return r->npages - 2 + k;
}

/* Keep page pg's twin if it has none (the page present and protected). */
int pager_release_twin_locked(struct pager_region *r, uint64_t pg);
/*
 * There is work for control page k (0 RELEASE: a page became dirty; 1
 * ACQUIRE: a page is cached): protect it again if a store to it landed.
 */
void pager_release_arm_locked(struct pager_region *r, unsigned k);
/* A write-protect fault on control page pg (released on return). */
void pager_release_ctl_fault(struct pager *p, struct pager_region *r, uint64_t pg);

#endif /* DISAGG_PAGER_RELFAULT_H */
