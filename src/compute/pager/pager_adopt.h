/* SPDX-License-Identifier: MIT */
/*
 * Adoption in the pager (pager_adopt.c): a region whose mapping an earlier
 * pager served, handed over again after the agent restarted.
 */
#ifndef DISAGG_PAGER_ADOPT_H
#define DISAGG_PAGER_ADOPT_H

#include <stdint.h>

#include "types.h"

struct pager_region;

/*
 * Region `region` (just added with pager_add_region) maps a file that an
 * earlier pager served, and its uffd is the one that pager read: pages of
 * remote sections that are in the file are resident, and nobody knows
 * whether the memory node has their content. Each becomes PRESENT|DIRTY
 * (counted in the budget, written back by the cleaner, the evictor or a
 * flush before it is ever dropped). Faults the earlier pager read and
 * never served are lost: the whole region is woken, so every thread
 * blocked in a fault on it faults again and is served now.
 *
 * A release region (twin.h) keeps only the pages that have a twin in its
 * twins' file: written since their last release, they are DIRTY and go
 * out as diffs at the next release (never whole). Its other pages are a
 * clean cache that may be stale: dropped. A twin without its page is
 * dropped too.
 *
 * *ret_pages (may be NULL): the pages found resident (and kept).
 * -EINVAL, -ENOENT (no such region), -EDEADLK (from a pager thread).
 */
int pager_adopt_region(struct pager *p, int region, uint64_t *ret_pages);

/*
 * Pages [a, b) of r have data in the file: PRESENT, with `bits` (ST_*) as
 * well, unless BUSY (for the pager's layers that adopt a region their own
 * way, share.c). Returns how many were not PRESENT. Takes p->lock.
 */
uint64_t pager_adopt_mark(struct pager *p, struct pager_region *r, uint64_t a, uint64_t b,
			  uint8_t bits);

#endif /* DISAGG_PAGER_ADOPT_H */
