// SPDX-License-Identifier: MIT
/*
 * Serving one write-protect fault (serve.h), for the fault threads
 * (fault.c): mark the page dirty and un-protect it (under the lock, so an
 * eviction that starts later sees the page dirty), with a window ahead
 * for a sequential writer (wp_run). A page of a release region keeps its
 * twin first and is un-protected alone (release.h).
 */
#include "serve_wp.h"

#include "cache.h"
#include "net.h"
#include "relfault.h"
#include "uffd_compat.h"

static bool wp_extends(const struct pager_region *r, uint64_t pg)
{
	uint8_t s = st_get(r, pg);

	return (s & (ST_PRESENT | ST_DIRTY | ST_BUSY | ST_DISCARD | ST_RMV)) == ST_PRESENT &&
	       (r->hist[pg] & HIST_WRITTEN) && (r->hist[pg] & HIST_LEVEL);
}

/* A resident page that a sequential writer's window may make writable. */
static bool wp_seq_extends(const struct pager_region *r, uint64_t pg)
{
	return (st_get(r, pg) & (ST_PRESENT | ST_BUSY | ST_DISCARD | ST_RMV)) == ST_PRESENT;
}

/*
 * A write-protect fault on pg makes [*a, *b) writable.
 *
 * A sequential writer (this fault is on the page where the last window
 * ended) gets a window forward that doubles with each such fault, from a
 * cluster up to pager_write_ahead() (the prefetch window, max_window; a
 * cluster in a shared region), over the resident pages
 * from pg on, as a MISSING fault's fetch window does: a guest that rewrites
 * a run of pages written back (and so write-protected) by the cleaner pays
 * a fault per window, not per page. The window's end becomes the next
 * expected fault; *win its size.
 *
 * Otherwise, with no budget pressure, the run around pg within its aligned
 * cluster of resident clean pages that the guest keeps rewriting (cache.h:
 * written again soon after an earlier write-back, HIST_LEVEL >= 1). Those
 * were write-protected only by a write-back, and a guest that rewrites its
 * memory writes them next.
 *
 * Either way the price of a wrong guess is the write-back of pages that
 * did not change: up to a window past the end of a sequential write.
 * Pages written once, or only read, and away from a sequential writer
 * stay protected, so a sparse writer's dirty set (and a compute
 * migration's flush) stays exact. p->lock held.
 */
static void wp_run(struct pager *p, struct pager_region *r, uint64_t pg, uint64_t *a,
		   uint64_t *b, uint32_t *win)
{
	uint64_t s0 = pg - pg % p->sec_pages, s1 = MIN(s0 + p->sec_pages, r->npages);
	uint64_t c0 = MAX(pg - pg % p->cluster, s0), c1 = MIN(c0 + p->cluster, s1);
	uint64_t bud = atomic_load(&p->budget_pages);

	*a = pg;
	*b = pg + 1;
	if (pg == atomic_load_explicit(&r->wp_next, memory_order_relaxed)) {
		uint32_t w = atomic_load_explicit(&r->wp_window, memory_order_relaxed);
		uint64_t end;

		*win = MIN(MAX(w * 2, p->cluster), pager_write_ahead(p, r));
		end = MIN(pg + *win, s1);
		while (*b < end && wp_seq_extends(r, *b))
			(*b)++;
		return;
	}
	*win = 1;
	if (bud != UINT64_MAX && atomic_load(&p->resident) + p->cluster > bud)
		return;         /* eviction may be near: make dirty only what is written */
	while (*a > c0 && wp_extends(r, *a - 1))
		(*a)--;
	while (*b < c1 && wp_extends(r, *b))
		(*b)++;
}

void pager_serve_wp(struct pager_fault_ctx *t, struct pager_region *r, uint64_t addr)
{
	struct pager *p = t->p;
	uint64_t pg = (addr - r->base) / PS, a, b;
	uint32_t win;
	unsigned tries = 0;

	CTR_ADD(p, faults_wp, 1);
	if (atomic_load(&r->dead) || pager_sec_fenced(r, pg / p->sec_pages))
		return;    /* parked: see pager_serve_missing */
	if (!pager_sec_remote(p, r, pg)) {
		(void)pager_uffd_wp(r, pg, 1, false);
		return;
	}
	for (;;) {
		uint8_t s;
		int rc;

		pthread_mutex_lock(&p->lock);
		s = st_get(r, pg);
		if (s & ST_BUSY) {
			/* Being evicted or flushed: its owner wakes the writer afterwards. */
			uint64_t none = 0;

			pthread_mutex_unlock(&p->lock);
			(void)atomic_compare_exchange_strong(&p->busy_wait_ns, &none, now_ns());
			return;
		}
		if (!(s & ST_PRESENT)) {
			pthread_mutex_unlock(&p->lock);
			(void)pager_uffd_wake(r, pg, 1);  /* refaults as MISSING */
			return;
		}
		if (pager_ctl_page(r, pg) && r->release) {
			pager_release_ctl_fault(p, r, pg);   /* unlocks */
			return;
		}
		if (pager_ctl_page(r, pg)) {
			bool lock = pg + 2 == r->npages, held = !atomic_load(&r->readonly);

			if (lock != held) {
				/* Ask for the change; the write waits until it is done (share.h). */
				pthread_mutex_unlock(&p->lock);
				CTR_ADD(p, shared_writes_waited, 1);
				if (p->cfg.on_control)
					p->cfg.on_control(p->cfg.opaque, (int)r->idx,
							  lock ? PAGER_CTL_LOCK : PAGER_CTL_UNLOCK);
				return;
			}
			/* Done already: the write lands, never written back (share.h). */
			rc = pager_uffd_wp(r, pg, 1, false);
			pthread_mutex_unlock(&p->lock);
			if (rc < 0)
				(void)pager_uffd_wake(r, pg, 1);
			return;
		}
		if (atomic_load(&r->readonly)) {
			/* Another VM may write this shared region: wait until this one holds it (share.h). */
			pthread_mutex_unlock(&p->lock);
			CTR_ADD(p, shared_writes_waited, 1);
			return;
		}
		/* Un-protect under the lock: an eviction that starts later sees DIRTY. */
		if (r->release) {
			/* Its twin first, while the page is still as fetched (release.h). */
			a = pg;
			b = pg + 1;
			win = 1;
			rc = pager_release_twin_locked(r, pg);
			if (rc == 0)
				/* Before the write lands: then the guest may store to RELEASE. */
				pager_release_arm_locked(r, 0);
			if (rc == 0)
				rc = pager_uffd_wp(r, pg, 1, false);
		} else {
			wp_run(p, r, pg, &a, &b, &win);
			rc = pager_uffd_wp(r, a, b - a, false);
		}
		if (rc == 0) {
			uint64_t made = 0;   /* neighbours that were write-protected */

			for (uint64_t i = a; i < b; i++) {
				uint8_t sv = st_get(r, i);

				made += i != pg && !(sv & ST_DIRTY);
				st_set(r, i, sv | ST_DIRTY | (i == pg ? ST_REF : 0));
			}
			CTR_ADD(p, pages_unprotected, made);
			atomic_store_explicit(&r->wp_next, b, memory_order_relaxed);
			atomic_store_explicit(&r->wp_window, win, memory_order_relaxed);
		}
		pthread_mutex_unlock(&p->lock);
		if (rc != -EAGAIN || ++tries > 1000) {
			if (rc < 0) {
				pager_count_error(p, rc, "un-protecting a page");
				(void)pager_uffd_wake(r, pg, 1);
			}
			return;
		}
		CTR_ADD(p, eagain, 1);
		t->drain(t, r);
	}
}
