// SPDX-License-Identifier: MIT
/*
 * Flush (flush.h): write back every page that needs it, with the
 * write-back batch (writeback.c) and without the punch: dirty pages are
 * re-protected, written back and marked clean. It also writes zeros for
 * discarded pages, so that after a flush the memory node holds the truth
 * (migration relies on that). In the WP_ASYNC mode it finds dirty pages
 * with PAGEMAP_SCAN (which re-protects them atomically) instead of state
 * bits. It takes io_lock, so flushes and eviction batches never
 * interleave, and it returns at once when nothing needs writing back.
 */
#include "flush.h"

#include <unistd.h>

#include "cache.h"
#include "log.h"
#include "net.h"
#include "reldiff.h"
#include "uffd_compat.h"
#include "writeback.h"

/*
 * Called with p->lock held. A BUSY page during a flush is a fetch in flight
 * (evictions hold io_lock, as the flush does): its final state may need a
 * write-back (installed writable, or a discarded page whose zeros the node
 * has not got). Wait for it: as long as a fetch may retry (fail_timeout_ms)
 * and a second more. Returns the state; still BUSY means the flush fails.
 */
static uint8_t wait_not_busy(struct pager *p, struct pager_region *r, uint64_t pg)
{
	uint8_t s = st_get(r, pg);
	uint64_t end = 0;
	unsigned us = 20;

	while (s & ST_BUSY) {
		uint64_t now = now_ns();

		if (!end)
			end = now + ((uint64_t)p->cfg.fail_timeout_ms + 1000) * 1000000ull;
		else if (now > end)
			break;
		pthread_mutex_unlock(&p->lock);
		usleep(us);
		us = MIN(us * 2, 1000u);
		pthread_mutex_lock(&p->lock);
		s = st_get(r, pg);
	}
	return s;
}

/*
 * Claim up to `max` pages of r from *pg on that need writing back (sync
 * mode). *ret_err: -EBUSY if a page stayed BUSY too long (never skipped
 * silently: the flush would claim a success it has not got).
 */
static unsigned claim_dirty(struct pager *p, struct pager_region *r, uint64_t *pg,
			    struct pager_victim *v, unsigned max, int *ret_err)
{
	unsigned n = 0;

	pthread_mutex_lock(&p->lock);
	for (; *pg < r->npages && n < max; (*pg)++) {
		uint8_t s;

		if (!pager_sec_remote(p, r, *pg)) {
			*pg = (*pg / p->sec_pages + 1) * p->sec_pages - 1;
			continue;
		}
		s = wait_not_busy(p, r, *pg);
		if (s & ST_BUSY) {
			*ret_err = -EBUSY;
			break;
		}
		if (((s & ST_PRESENT) && (s & ST_DIRTY)) || (s & ST_DISCARD)) {
			v[n++] = (struct pager_victim){ r, *pg, s, true };
			st_set(r, *pg, s | ST_BUSY);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

/*
 * Async mode: PAGEMAP_SCAN finds written pages of one section and
 * re-protects them atomically. No max_pages limit: every page the kernel
 * re-protects must reach us (a page re-protected but not reported would be
 * lost), so the victim array holds a whole section.
 */
static int scan_written(struct pager *p, struct pager_region *r, uint64_t *pg,
			struct pager_victim *v, unsigned *ret_n)
{
	static const unsigned nvec = 256;
	_cleanup_free_ struct page_region *vec = calloc(nvec, sizeof(*vec));
	uint64_t sec_end = (*pg / p->sec_pages + 1) * p->sec_pages;
	uint64_t start = r->base + *pg * PS, walk_end = 0;
	long nreg;
	unsigned n = 0;

	if (!vec)
		return -ENOMEM;
	nreg = uffd_scan_written(r->pagemap_fd, start, r->base + sec_end * PS, vec, nvec, &walk_end);
	if (nreg < 0)
		return (int)nreg;
	pthread_mutex_lock(&p->lock);
	for (long i = 0; i < nreg; i++)
		for (uint64_t ad = vec[i].start; ad < vec[i].end; ad += PS) {
			uint64_t q = (ad - r->base) / PS;
			uint8_t s = wait_not_busy(p, r, q);

			if (s & ST_BUSY)
				continue;
			v[n++] = (struct pager_victim){ r, q, (uint8_t)(s | ST_DIRTY), true };
			st_set(r, q, s | ST_BUSY);
		}
	pthread_mutex_unlock(&p->lock);
	*pg = walk_end > r->base ? (walk_end - r->base) / PS : sec_end;
	if (*pg <= (start - r->base) / PS)
		*pg = sec_end;
	*ret_n = n;
	return 0;
}

/*
 * Sync mode, io_lock held: nothing of r to write back? No page needs it
 * and none is BUSY (a fetch in flight may be about to record a write fault's
 * page as dirty; evictions and the cleaner are excluded by io_lock).
 */
static bool region_clean(struct pager *p, struct pager_region *r)
{
	return p->mode == PAGER_DIRTY_SYNC_WP && !atomic_load(&r->ndirty) &&
	       !atomic_load(&r->nbusy);
}

static int flush_region(struct pager *p, struct pager_region *r, struct pager_wb_bufs *b)
{
	uint64_t pg;
	int rc = 0;

	if (region_clean(p, r))
		return 0;
	if (r->release)
		return pager_release_publish_locked(p, r, NULL, NULL);   /* diffs, not pages */

	/*
	 * No reconciliation here: it walks every resident page of the file
	 * (about 100 ms for 1.5 GiB) and a flush does not need it. A dirty
	 * page punched behind our back reads as zeros from the file, so its
	 * write-back sends the zeros the punch left, as the DISCARD rule
	 * would; it then stays counted as resident until the idle evictor's
	 * reconciliation finds it.
	 */
	if (p->mode == PAGER_DIRTY_ASYNC_WP) {
		_cleanup_free_ struct pager_victim *sv = calloc(p->sec_pages, sizeof(*sv));

		if (!sv)
			rc = -ENOMEM;
		for (pg = 0; pg < r->npages && rc >= 0;) {
			unsigned n = 0;

			if (!pager_sec_remote(p, r, pg)) {
				pg = (pg / p->sec_pages + 1) * p->sec_pages;
				continue;
			}
			rc = scan_written(p, r, &pg, sv, &n);
			for (unsigned k = 0; k < n; k += p->batch) {
				int w = pager_wb_batch(p, sv + k, MIN(p->batch, n - k), false, true, b);
				if (w < 0 && rc >= 0)
					rc = w;
			}
		}
	}
	/* Sync mode dirty pages, and discarded pages in both modes. */
	for (pg = 0; pg < r->npages && rc >= 0;) {
		int busy = 0;
		unsigned n = claim_dirty(p, r, &pg, b->v, p->batch, &busy);

		if (n)
			rc = pager_wb_batch(p, b->v, n, false, false, b);
		if (busy && rc >= 0) {
			log_warn("pager %s: flush: a page stayed busy for %d ms", p->name,
				 p->cfg.fail_timeout_ms + 1000);
			rc = busy;
		}
		if (!n)
			break;
	}
	return rc < 0 ? rc : 0;
}

int pager_flush_region_locked(struct pager *p, struct pager_region *r)
{
	struct pager_wb_bufs b = { 0 };
	int rc;

	if (pager_wb_bufs_alloc(&b, p->batch) < 0) {
		pager_wb_bufs_free(&b);
		return -ENOMEM;
	}
	rc = flush_region(p, r, &b);
	CTR_ADD(p, flushes, 1);
	pager_wb_bufs_free(&b);
	return rc;
}

int pager_flush(struct pager *p)
{
	struct pager_wb_bufs b = { 0 };
	int rc = 0;

	pthread_mutex_lock(&p->io_lock);
	/*
	 * A WP fault un-protects (and so wakes the writer) and records DIRTY
	 * under p->lock: passing through the lock makes every write that
	 * completed before this call visible in the counts.
	 */
	pthread_mutex_lock(&p->lock);
	pthread_mutex_unlock(&p->lock);
	/*
	 * Nothing dirty and no fetch in flight (evictions and the cleaner hold
	 * io_lock): nothing to walk. Async mode tracks writes in the page
	 * tables, not in the state: always scan there.
	 */
	if (p->mode == PAGER_DIRTY_SYNC_WP && !atomic_load(&p->dirty_pages) &&
	    !atomic_load(&p->busy_pages)) {
		pthread_mutex_unlock(&p->io_lock);
		CTR_ADD(p, flushes, 1);
		return 0;
	}
	if (pager_wb_bufs_alloc(&b, p->batch) < 0) {
		pthread_mutex_unlock(&p->io_lock);
		pager_wb_bufs_free(&b);
		return -ENOMEM;
	}
	for (unsigned ri = 0; ri < atomic_load(&p->nslots) && rc >= 0; ri++) {
		struct pager_region *r = atomic_load(&p->regions[ri]);

		if (r)
			rc = flush_region(p, r, &b);
	}
	pthread_mutex_unlock(&p->io_lock);
	CTR_ADD(p, flushes, 1);
	pager_wb_bufs_free(&b);
	return rc < 0 ? rc : 0;
}
