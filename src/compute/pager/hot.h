// SPDX-License-Identifier: MIT
/*
 * Hot pages and prefetch, for compute migration (hot.c): the source
 * exports the pages its recent faults fetched; the destination queues them
 * and its fault threads fetch them between faults.
 */
#ifndef DISAGG_PAGER_HOT_H
#define DISAGG_PAGER_HOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

struct pager_region;

/*
 * Hot pages, for a compute migration's destination: the clusters the last
 * PAGER_HOT_RING faults fetched, the pages of them that are resident now,
 * as runs within sections (sorted, at most max_pages pages). *ret is
 * malloc'd.
 */
int pager_hot_export(struct pager *p, uint64_t max_pages, struct pager_hot_run **ret,
		     size_t *ret_n);

/*
 * Fetch pages [page, page + count) of section `index` of `region` ahead of
 * faults: queued, and served by the fault threads between faults, one
 * window at a time; pages already resident or in flight are skipped, and
 * nothing is fetched beyond the budget. Errors only drop the run (a fault
 * on the page will fetch it, or fail, as usual). -EINVAL, -ENOENT, -ERANGE,
 * -ENOSPC (queue full).
 */
int pager_prefetch(struct pager *p, int region, unsigned index, uint32_t page, uint32_t count);

/* ---- for the pager's own layers ------------------------------------------- */

/* A run of pages to prefetch. */
struct pager_pf {
	unsigned region;
	uint32_t gen;                  /* the region's generation when queued */
	uint64_t pg, n;
};

int pager_hot_new(struct pager *p);
void pager_hot_free(struct pager *p);
/* Remember a faulting page (fault threads; lock-free, overwrites the oldest). */
void pager_hot_note(struct pager *p, const struct pager_region *r, uint64_t pg);
/* The prefetch queue's eventfd (readable: the queue has work). */
int pager_pf_fd(struct pager *p);
/* Take up to max pages of the oldest queued run: true if *ret has some. */
bool pager_pf_take(struct pager *p, uint64_t max, struct pager_pf *ret);
bool pager_pf_pending(struct pager *p);

#endif /* DISAGG_PAGER_HOT_H */
