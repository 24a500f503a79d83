// SPDX-License-Identifier: MIT
/*
 * Adoption: the pager of a restarted agent takes over a region that an
 * earlier pager served (pager_adopt.h). The page state of that pager is
 * gone with it; the file and the uffd are not. The file says which pages
 * are resident (tmpfs: SEEK_DATA is exact per page); their state on the
 * memory node is unknown, so they are dirty until written back. A page
 * that the earlier pager was evicting is either still in the file (dirty
 * here, written back again) or punched (fetched again): either way the
 * guest reads what it wrote last, because nothing is dropped before the
 * memory node acknowledged it.
 *
 * Like evacuation (region.c), the state is set with the remote
 * sections fenced, no write-back batch in flight (io_lock) and after a
 * grace period of the fault threads, which may have served faults on the
 * region since it was added.
 */
#include "pager_adopt.h"

#include "budget.h"
#include "cache.h"
#include "log.h"
#include "region.h"
#include "relfault.h"
#include "twin.h"

uint64_t pager_adopt_mark(struct pager *p, struct pager_region *r, uint64_t a, uint64_t b,
			  uint8_t bits)
{
	uint64_t n = 0;

	pthread_mutex_lock(&p->lock);
	for (uint64_t pg = a; pg < b && pg < r->npages; pg++) {
		uint8_t s = st_get(r, pg);

		if (s & ST_BUSY)
			continue;   /* its owner decides (none is left after the grace period) */
		if (!(s & ST_PRESENT))
			n++;
		st_set(r, pg, (uint8_t)((s & ST_REF) | ST_PRESENT | bits));
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Pages [a, b) of r have data in the file: PRESENT|DIRTY. */
static uint64_t mark_resident(struct pager *p, struct pager_region *r, uint64_t a, uint64_t b)
{
	return pager_adopt_mark(p, r, a, b, ST_DIRTY);
}

/*
 * Release region: pages [a, b) have data in the file. Those with a twin
 * were written since their last release: PRESENT|DIRTY, published as
 * diffs at the next release. The others (and the control pages) are a
 * clean cache that may be stale by now: dropped, fetched again. Returns
 * how many were not PRESENT among those kept.
 */
static uint64_t mark_release(struct pager *p, struct pager_region *r, uint64_t a, uint64_t b)
{
	uint64_t n = 0, run = 0, pg;
	int64_t gone = 0;

	pthread_mutex_lock(&p->lock);
	for (pg = a; pg < b && pg < r->npages; pg++) {
		uint8_t s = st_get(r, pg);
		bool keep = !(s & ST_BUSY) && pager_twin_has(r->twins, pg) && !pager_ctl_page(r, pg);

		if (keep || (s & ST_BUSY)) {
			if (run)
				(void)pager_punch(r, pg - run, run);
			run = 0;
		}
		if (s & ST_BUSY)
			continue;   /* its owner decides (none is left after the grace period) */
		if (keep) {
			n += !(s & ST_PRESENT);
			st_set(r, pg, (uint8_t)((s & ST_REF) | ST_PRESENT | ST_DIRTY));
			pager_release_arm_locked(r, 0);   /* a RELEASE has work */
			continue;
		}
		gone += (s & ST_PRESENT) != 0;   /* installed since the add, and counted */
		st_set(r, pg, 0);
		run++;
	}
	if (run)
		(void)pager_punch(r, pg - run, run);
	pthread_mutex_unlock(&p->lock);
	if (gone)
		pager_resident_add(p, -gone);
	return n;
}

/* Release region: twins of pages that have no data (nothing to diff against them). */
static void drop_orphan_twins(struct pager *p, struct pager_region *r)
{
	pthread_mutex_lock(&p->lock);
	for (uint64_t pg = 0; pager_twin_count(r->twins) && pg < r->npages; pg++)
		if (!(st_get(r, pg) & (ST_PRESENT | ST_BUSY)) && pager_twin_has(r->twins, pg))
			pager_twin_drop(r->twins, pg, 1);
	pthread_mutex_unlock(&p->lock);
}

int pager_adopt_region(struct pager *p, int region, uint64_t *ret_pages)
{
	struct pager_region *r;
	uint64_t n = 0;
	int rc = 0;

	if (!p || region < 0 || region >= PAGER_MAX_REGIONS)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	/* -EDEADLK on a pager thread, -ENOENT; every region has a section 0. */
	r = pager_region_get(p, region, 0, &rc);
	if (!r) {
		pthread_mutex_unlock(&p->admin_lock);
		return rc;
	}
	pthread_mutex_lock(&p->io_lock);
	for (uint32_t sec = 0; sec < r->nsections; sec++)
		if (r->sections[sec].kind == PAGER_SEC_REMOTE)
			__atomic_store_n(&r->fence[sec], 1, __ATOMIC_SEQ_CST);
	/* Faults served since the region was added are over; new ones park. */
	pager_rcu_synchronize(&p->rcu);
	for (uint32_t sec = 0; sec < r->nsections; sec++)
		if (r->sections[sec].kind == PAGER_SEC_REMOTE)
			n += pager_file_runs(p, r, (uint64_t)sec * p->sec_pages, p->sec_pages, true,
					     r->release ? mark_release : mark_resident);
	if (r->release)
		drop_orphan_twins(p, r);
	for (uint32_t sec = 0; sec < r->nsections; sec++)
		if (r->sections[sec].kind == PAGER_SEC_REMOTE)
			__atomic_store_n(&r->fence[sec], 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&p->io_lock);
	if (n)
		pager_resident_add(p, (int64_t)n);
	pthread_mutex_lock(&p->lock);
	pthread_cond_signal(&p->evict_cond);     /* over budget, or dirty: work for the evictor */
	pthread_mutex_unlock(&p->lock);
	/* Parked faults, and those the earlier pager read and never served. */
	(void)pager_uffd_wake(r, 0, r->npages);
	pthread_mutex_unlock(&p->admin_lock);
	log_debug("pager %s: region %d adopted: %llu resident pages of remote sections, dirty",
		  p->name, region, (unsigned long long)n);
	if (ret_pages)
		*ret_pages = n;
	return 0;
}
