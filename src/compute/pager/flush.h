// SPDX-License-Identifier: MIT
/*
 * Flush (flush.c): write back every dirty and discarded page, and wait for
 * the acknowledgements.
 */
#ifndef DISAGG_PAGER_FLUSH_H
#define DISAGG_PAGER_FLUSH_H

struct pager;
struct pager_region;

/* Write back every dirty page; returns once all are acknowledged. */
int pager_flush(struct pager *p);
/* Write back r's dirty and discarded pages; io_lock held. */
int pager_flush_region_locked(struct pager *p, struct pager_region *r);

#endif /* DISAGG_PAGER_FLUSH_H */
