// SPDX-License-Identifier: MIT
/*
 * Background write-back (clean.h), like the kernel's dirty-page flusher:
 * the evictor thread writes back pages that have been dirty for at least
 * writeback_delay_ms while there is no budget pressure (sync mode only).
 * They stay resident, clean and write-protected. Why: a dirty page exists
 * only here until it is written back (a compute node crash loses it), and
 * a compute migration's flush at the switchover writes back whatever is
 * dirty then.
 *
 * Age: an epoch counter (p->wb_epoch) advances every writeback_delay_ms /
 * CLEAN_EPOCHS; st_set() stamps a page with the epoch when it becomes
 * dirty. A step claims up to CLEAN_BATCH eligible pages in cursor order
 * (regions without dirty pages, local sections and sections of down memory
 * nodes are skipped) and writes them back with the flush's batch under
 * io_lock. A sweep that finds nothing makes the cleaner idle until the next
 * epoch; a failed batch leaves the pages dirty, retried in the next epoch.
 */
#include "clean.h"

#include "cache.h"
#include "net.h"
#include "source.h"

#define CLEAN_BATCH 256u        /* pages per cleaner batch (io_lock held that long) */
#define CLEAN_SCAN  16384u      /* page states looked at per p->lock hold */
/*
 * The age clock: p->wb_epoch advances every writeback_delay_ms /
 * CLEAN_EPOCHS. A page stamped with epoch E (st_set) is written back from
 * epoch E + (CLEAN_EPOCHS << level) + 1 on, where level is its write
 * history (cache.h): a page written once waits the delay (and at most
 * 1 + 1/CLEAN_EPOCHS of it, plus the evictor's wake-up lag); a page that
 * the guest writes again each time soon after it was written back waits
 * up to 2^HIST_LEVEL_MAX times longer, so a guest that keeps rewriting its
 * memory does not take a write-protect fault on every page at each delay.
 */
#define CLEAN_EPOCHS HIST_EPOCHS

static uint64_t epoch_ns(const struct pager *p)
{
	/* A page is eligible CLEAN_EPOCHS + 1 epochs after the one it became dirty in. */
	return MAX((uint64_t)p->cfg.writeback_delay_ms * 1000000 / CLEAN_EPOCHS, 1000000ull);
}

static bool cleaner_on(const struct pager *p)
{
	return p->cfg.writeback_delay_ms > 0 && p->mode == PAGER_DIRTY_SYNC_WP;
}

/*
 * The region's floor (cache.h) goes down one level when no rewrite has
 * set it for HIST_SOON times its delay: the guest stopped rewriting, and
 * its dirty pages are written back at the per-page pace again. p->lock.
 */
static void floor_decay(struct pager_region *r, uint16_t epoch)
{
	if (r->wb_floor &&
	    (uint16_t)(epoch - r->wb_floor_epoch) > HIST_SOON * (CLEAN_EPOCHS << r->wb_floor)) {
		r->wb_floor--;
		r->wb_floor_epoch = epoch;
		r->wb_redirty = r->wb_wasted = 0;
		atomic_store_explicit(&r->owner->cleaner_floor, r->wb_floor,
				      memory_order_relaxed);
	}
}

/* How long page pg waits: its own level, or the region's floor for a rewrite. */
static unsigned level(const struct pager_region *r, uint64_t pg)
{
	uint8_t h = r->hist[pg];

	return h & HIST_REWRITTEN ? MAX(h & HIST_LEVEL, r->wb_floor) : h & HIST_LEVEL;
}

/*
 * Claim up to `max` pages, in cursor order (sorted by region and page),
 * that need writing back and became dirty more than CLEAN_EPOCHS << level epochs
 * before the current one (dirty for writeback_delay_ms at least). Looks
 * at CLEAN_SCAN page states at most; regions without dirty pages and local
 * sections are skipped whole. io_lock held. *wrapped: the sweep is over.
 */
static unsigned claim_old(struct pager *p, struct pager_cleaner *c, struct pager_victim *v,
			  unsigned max, bool *wrapped)
{
	unsigned nr = atomic_load(&p->nslots), n = 0;
	uint16_t epoch = (uint16_t)atomic_load(&p->wb_epoch);
	uint64_t scanned = 0;

	*wrapped = false;
	pthread_mutex_lock(&p->lock);
	while (n < max && scanned < CLEAN_SCAN) {
		struct pager_region *r;
		uint8_t s;

		if (c->region >= nr) {
			c->region = 0;
			c->page = 0;
			*wrapped = true;
			break;
		}
		r = atomic_load(&p->regions[c->region]);
		/* A release region publishes diffs at its releases, never whole pages. */
		if (!r || c->page >= r->npages || !atomic_load(&r->ndirty) || r->release) {
			c->region++;
			c->page = 0;
			continue;
		}
		if (c->page == 0)
			floor_decay(r, epoch);
		scanned++;
		if (!pager_sec_remote(p, r, c->page) ||
		    pager_sec_down(p, r, (unsigned)(c->page / p->sec_pages))) {
			/* Local, or its memory node is down: nothing to write now. */
			c->page = (c->page / p->sec_pages + 1) * p->sec_pages;
			continue;
		}
		s = st_get(r, c->page);
		if (st_needs_wb(s) && !(s & ST_BUSY) &&
		    (uint16_t)(epoch - r->dep[c->page]) > CLEAN_EPOCHS << level(r, c->page)) {
			v[n++] = (struct pager_victim){ r, c->page, s, true };
			st_set(r, c->page, s | ST_BUSY);
		}
		c->page++;
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

/*
 * One step of background write-back; io_lock held. Returns pages written
 * back (> 0: call again soon), 0 if nothing was eligible in this step, or
 * -errno. The pages stay resident and clean (write-protected): the next
 * write to one takes a WP fault and makes it dirty again.
 */
int pager_cleaner_step(struct pager *p, struct pager_cleaner *c)
{
	bool wrapped;
	unsigned n = claim_old(p, c, c->b.v, CLEAN_BATCH, &wrapped);
	int w;

	if (n)
		c->found = true;
	if (wrapped) {
		if (!c->found) {
			c->idle = true;
			c->idle_epoch = atomic_load(&p->wb_epoch);
		}
		c->found = false;
	}
	if (!n)
		return 0;
	w = pager_wb_batch(p, c->b.v, n, false, false, &c->b);
	if (w > 0)
		CTR_ADD(p, pages_cleaned, (uint64_t)w);
	if (w < 0) {
		/* The pages stay dirty; try again in the next epoch. */
		c->idle = true;
		c->idle_epoch = atomic_load(&p->wb_epoch);
	}
	return w;
}

/* Advance the age clock; each pass of the evictor's loop. */
void pager_cleaner_tick(struct pager *p, struct pager_cleaner *c)
{
	uint64_t t = now_ns();

	if (!cleaner_on(p))
		return;
	if (t - c->last_bump >= epoch_ns(p)) {
		atomic_fetch_add(&p->wb_epoch, 1);
		/* Keep the period (the evictor wakes late); never bump twice at once. */
		c->last_bump += epoch_ns(p);
		if (t - c->last_bump >= epoch_ns(p))
			c->last_bump = t;
	}
}

/* Called by the evictor with p->lock held when there is no budget pressure. */
bool pager_cleaner_due(struct pager *p, struct pager_cleaner *c)
{
	if (!cleaner_on(p))
		return false;
	if (c->idle && atomic_load(&p->wb_epoch) == c->idle_epoch)
		return false;   /* nothing new can be old enough before the next epoch */
	c->idle = false;
	return atomic_load(&p->dirty_pages) != 0 && !atomic_load(&p->failed);
}

int pager_cleaner_init(struct pager *p, struct pager_cleaner *c)
{
	*c = (struct pager_cleaner){ .last_bump = now_ns() };
	return pager_wb_bufs_alloc(&c->b, CLEAN_BATCH);
}

void pager_cleaner_fini(struct pager_cleaner *c)
{
	pager_wb_bufs_free(&c->b);
}

long pager_cleaner_idle_ms(const struct pager *p)
{
	if (p->cfg.writeback_delay_ms <= 0)
		return 100;
	return (long)MIN(MAX(epoch_ns(p) / 1000000 / 2, 1ull), 100ull);
}
