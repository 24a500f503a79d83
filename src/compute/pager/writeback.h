// SPDX-License-Identifier: MIT
/*
 * A write-back batch (writeback.c): write-protect, read from the file,
 * write through the sink and wait for the acknowledgements, then punch
 * (eviction) or mark clean (cleaner, flush). The policies that choose the
 * pages are evict.c, clean.c and flush.c.
 */
#ifndef DISAGG_PAGER_WRITEBACK_H
#define DISAGG_PAGER_WRITEBACK_H

#include <stdbool.h>
#include <stdint.h>

#include "sink.h"

/* A page of a batch, claimed (BUSY) by the batch's owner. */
struct pager_victim {
	struct pager_region *r;
	uint64_t pg;
	uint8_t st;       /* its state when claimed */
	bool wb;          /* write back (else an eviction only punches it: clean) */
};

/* Buffers for batches of up to n pages. */
struct pager_wb_bufs {
	uint8_t *buf;                  /* n pages */
	struct pager_wb_group *groups; /* n */
	struct pager_victim *v, *tmp;  /* n each */
};

int pager_wb_bufs_alloc(struct pager_wb_bufs *b, unsigned n);
void pager_wb_bufs_free(struct pager_wb_bufs *b);

/* Write-protect n pages of r from pg on, retrying while the mapping changes (-EAGAIN). */
int pager_wb_protect(struct pager_region *r, uint64_t pg, uint64_t n);
/* Read n pages of r from pg on into d (the file's content); past the end of the file, zeros. */
int pager_wb_read_run(struct pager_region *r, uint64_t pg, unsigned n, uint8_t *d);

/*
 * Write back (v[i].wb) and, for an eviction, punch a batch of BUSY victims
 * sorted by region and page; io_lock held. skip_wp: the pages are already
 * write-protected (async mode: PAGEMAP_SCAN did it). Returns pages written
 * back or -errno (then nothing is dropped: the victims are released).
 */
int pager_wb_batch(struct pager *p, struct pager_victim *v, unsigned nv, bool evict, bool skip_wp,
		   struct pager_wb_bufs *b);

/*
 * Open the write-back connection to every memory node of every region now
 * (the backend's connect op; io_lock held, the evictor's thread), so that
 * the first write-back after a region is added does not pay the connection
 * and its handshakes: an exclusive region's first unlock, a release
 * region's first release (bench/README, "The first hand-over each way").
 * Best effort: it stops at the first node that does not answer within
 * PAGER_WB_WARM_MS, whose write-back will connect (and retry) as before.
 * The evictor does it only while the pager is within its budget: evicting
 * comes first.
 */
#define PAGER_WB_WARM_MS 300
void pager_wb_warm(struct pager *p);

#endif /* DISAGG_PAGER_WRITEBACK_H */
