// SPDX-License-Identifier: MIT
/*
 * Shared regions (share.h). A region is read-only while r->readonly is
 * set: write-protect faults on it leave the writer blocked (serve_wp.c)
 * and MISSING write faults install the page write-protected (serve.c).
 * readonly changes under p->lock, where a write-protect fault checks it
 * and un-protects its page: a fault either saw it set and waits, or made
 * its page dirty before the release's flush, which then writes it back.
 */
#include "share.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "answers.h"
#include "budget.h"
#include "cache.h"
#include "flush.h"
#include "log.h"
#include "pager_adopt.h"
#include "rcu.h"
#include "region.h"
#include "twin.h"

struct pager_region *pager_shared_get(struct pager *p, int region, int *ret_err)
{
	struct pager_region *r;

	if (!p || region < 0 || region >= PAGER_MAX_REGIONS) {
		*ret_err = -EINVAL;
		return NULL;
	}
	pthread_mutex_lock(&p->admin_lock);
	r = atomic_load(&p->regions[region]);
	*ret_err = pager_on_thread(p) ? -EDEADLK : !r ? -ENOENT : !r->shared ? -EINVAL :
		   p->mode != PAGER_DIRTY_SYNC_WP ? -EOPNOTSUPP : 0;
	if (*ret_err < 0) {
		pthread_mutex_unlock(&p->admin_lock);
		return NULL;
	}
	return r;
}

static void set_readonly(struct pager *p, struct pager_region *r, bool ro)
{
	pthread_mutex_lock(&p->lock);
	atomic_store(&r->readonly, ro);
	/* The LOCK page traps again from now on (a write landed there while held). */
	if (ro && r->control && (st_get(r, r->npages - 2) & ST_PRESENT))
		(void)pager_uffd_wp(r, r->npages - 2, 1, true);
	pthread_mutex_unlock(&p->lock);
	if (!ro)
		(void)pager_uffd_wake(r, 0, r->npages);   /* the writes that waited refault */
	else if (r->control)
		(void)pager_uffd_wake(r, r->npages - 1, 1);   /* an UNLOCK write that waited */
}

int pager_shared_flush(struct pager *p, struct pager_region *r, uint64_t *ret_flushed)
{
	uint64_t before;
	int rc;

	/*
	 * The cleaner and eviction hold io_lock too: the counts move only by
	 * this flush (a release region's publishes its diffs: reldiff.c).
	 */
	pthread_mutex_lock(&p->io_lock);
	before = atomic_load(&p->c.pages_written_back) + atomic_load(&p->c.release_pages_published);
	rc = pager_flush_region_locked(p, r);
	*ret_flushed = atomic_load(&p->c.pages_written_back) +
		       atomic_load(&p->c.release_pages_published) - before;
	pthread_mutex_unlock(&p->io_lock);
	return rc;
}

int pager_shared_release(struct pager *p, int region, uint64_t *ret_flushed)
{
	struct pager_region *r;
	int rc;

	r = pager_shared_get(p, region, &rc);
	if (!r)
		return rc;
	set_readonly(p, r, true);
	rc = pager_shared_flush(p, r, ret_flushed);
	if (rc < 0) {
		log_warn("pager %s: region %d: release: write-back failed (%s); it stays writable",
			 p->name, region, strerror(-rc));
		set_readonly(p, r, false);
	}
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

/*
 * Release region: drop page pg if it is clean (not the control pages, not
 * dirty, discarded or busy; p->lock held). Its twin, if a failed fault
 * left one, goes with it. True if dropped.
 */
static bool drop_clean(struct pager_region *r, uint64_t pg)
{
	uint8_t s = st_get(r, pg);

	if (pager_ctl_page(r, pg) ||
	    (s & (ST_PRESENT | ST_DIRTY | ST_BUSY | ST_DISCARD | ST_RMV)) != ST_PRESENT)
		return false;
	st_set(r, pg, 0);
	pager_twin_drop(r->twins, pg, 1);
	return true;
}

/* A strict page this node owns and changed since its last write-back. */
static bool kept_page(uint8_t s)
{
	return (s & (ST_PRESENT | ST_OWNED | ST_DIRTY | ST_BUSY)) == (ST_PRESENT | ST_OWNED | ST_DIRTY);
}

/*
 * Keep every kept_page() of r on the region's answers' file (answers.h),
 * write-protected first (p->lock held, r fenced, no fault thread inside
 * it: a guest write from now on waits). Nothing stays in memory: the
 * recall thread hands them back from the file, one at a time. Returns how
 * many were kept; one that cannot be written is lost with the drop, and
 * said so.
 */
static size_t keep_pages(struct pager *p, struct pager_region *r)
{
	uint8_t buf[PS];
	size_t n = 0, lost = 0;
	int err = 0;

	for (uint64_t pg = 0; pg < r->npages; pg++) {
		ssize_t got;
		int rc;

		if (!kept_page(st_get(r, pg)))
			continue;
		rc = pager_uffd_wp(r, pg, 1, true);
		got = rc < 0 ? -1 : pread(r->file_fd, buf, PS, (off_t)(r->file_offset + pg * PS));
		if (rc == 0)
			rc = got == (ssize_t)PS ? 0 : got < 0 ? -errno : -EIO;
		if (rc == 0)
			rc = pager_kept_write(r->answers_fd, pg, buf);
		if (rc < 0) {
			lost++;
			err = rc;
			continue;
		}
		n++;
	}
	if (lost)
		log_warn("pager %s: region %u: %zu changed strict pages could not be kept (%s): "
			 "their writes are lost", p->name, r->idx, lost, strerror(-err));
	return n;
}

/*
 * Pages [a, b) of an adopted strict region have data in the file: each
 * counts as owned and changed (pager_strict_adopt). Returns how many were
 * not PRESENT.
 */
static uint64_t mark_adopted(struct pager *p, struct pager_region *r, uint64_t a, uint64_t b)
{
	return pager_adopt_mark(p, r, a, b, ST_OWNED | ST_DIRTY);
}

/*
 * pager_shared_drop, keeping the strict pages this node changed first when
 * keep is set; adopt: every page with data in the file counts as changed.
 */
static int64_t shared_drop(struct pager *p, struct pager_region *r, bool clean_only, bool adopt,
			   size_t *nkeep)
{
	int64_t dropped = 0;
	uint64_t stale = 0, run = 0;

	pthread_mutex_lock(&p->io_lock);
	for (uint32_t s = 0; s < r->nsections; s++)
		__atomic_store_n(&r->fence[s], 1, __ATOMIC_SEQ_CST);
	/* No fault thread is inside r now, and new faults on it wait (fenced). */
	pager_rcu_synchronize(&p->rcu);
	if (adopt)
		pager_resident_add(p, (int64_t)pager_file_runs(p, r, 0, r->npages, true,
							       mark_adopted));
	pthread_mutex_lock(&p->lock);
	if (nkeep)
		*nkeep = keep_pages(p, r);
	for (uint64_t pg = 0; pg < r->npages; pg++) {
		uint8_t s = st_get(r, pg);

		if (clean_only) {
			/* Punched run by run: the pages that stay keep their content. */
			if (drop_clean(r, pg)) {
				dropped++;
				run++;
				continue;
			}
			if (run)
				(void)pager_punch(r, pg - run, run);
			run = 0;
			continue;
		}
		dropped += (s & ST_PRESENT) != 0;
		stale += st_needs_wb(s);
		if (s)
			st_set(r, pg, 0);
		if (r->release)   /* a twin goes with its page (a release region's fault that failed) */
			pager_twin_drop(r->twins, pg, 1);
	}
	if (run)
		(void)pager_punch(r, r->npages - run, run);
	pthread_mutex_unlock(&p->lock);
	if (!clean_only)
		(void)pager_punch(r, 0, r->npages);
	for (uint32_t s = 0; s < r->nsections; s++) {
		__atomic_add_fetch(&r->resets[s], 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&r->fence[s], 0, __ATOMIC_SEQ_CST);
	}
	pthread_mutex_unlock(&p->io_lock);
	if (stale)
		log_warn("pager %s: region %u: %llu pages changed while read-only were dropped",
			 p->name, r->idx, (unsigned long long)stale);
	if (dropped) {
		pager_resident_add(p, -dropped);
		CTR_ADD(p, pages_dropped, (uint64_t)dropped);
		CTR_ADD(p, shared_pages_dropped, (uint64_t)dropped);
	}
	return dropped;
}

int64_t pager_shared_drop(struct pager *p, struct pager_region *r, bool clean_only)
{
	return shared_drop(p, r, clean_only, false, NULL);
}

static int invalidate(struct pager *p, int region, bool acquire, uint64_t *ret_dropped)
{
	struct pager_region *r;
	int rc;

	r = pager_shared_get(p, region, &rc);
	if (!r)
		return rc;
	if (r->strict) {
		pthread_mutex_unlock(&p->admin_lock);
		return -EINVAL;   /* its directory keeps it coherent page by page */
	}
	if (!atomic_load(&r->readonly)) {
		pthread_mutex_unlock(&p->admin_lock);
		return acquire ? 0 : -EBUSY;   /* held already: its pages are the newest */
	}
	*ret_dropped = (uint64_t)pager_shared_drop(p, r, false);
	if (acquire)
		set_readonly(p, r, false);
	else
		(void)pager_uffd_wake(r, 0, r->npages);   /* faults that met the fence */
	pthread_mutex_unlock(&p->admin_lock);
	return 0;
}

int pager_strict_reset(struct pager *p, int region, uint64_t *ret_dropped)
{
	return pager_strict_keep(p, region, NULL, ret_dropped);
}

/*
 * An adopted region's answers on file (answers.h) that go back with its
 * kept pages: those of pages not kept. keep_pages has just written the
 * pages of the region's file over the pages kept there before (its channel
 * had broken), so the kept pages are the newest of each page: a page in
 * the region's file came back after it was kept or given up in an answer,
 * and a kept page was owned after its answer.
 */
static int with_answers(struct pager *p, struct pager_region *r, struct pager_kept **ret,
			size_t *ret_n)
{
	_cleanup_free_ struct pager_kept *a = NULL;
	size_t na = 0, n = 0;
	uint64_t next = 0;
	int rc = pager_answers_read(r->answers_fd, &a, &na, &next);

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&p->lock);
	r->answers_n = MAX(r->answers_n, next);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < na; i++) {
		uint64_t pg = (uint64_t)a[i].section * p->sec_pages + a[i].page;

		if (pg < r->npages && !pager_kept_has(r->answers_fd, pg))
			a[n++] = a[i];
	}
	*ret = n ? TAKE_PTR(a) : NULL;
	*ret_n = n;
	return 0;
}

static int strict_keep(struct pager *p, int region, bool adopt, struct pager_kept **ret_answers,
		       size_t *ret_nanswers, size_t *ret_kept, uint64_t *ret_dropped)
{
	struct pager_region *r;
	int rc;

	*ret_dropped = 0;
	if (ret_kept)
		*ret_kept = 0;
	if (ret_answers) {
		*ret_answers = NULL;
		*ret_nanswers = 0;
	}
	r = pager_shared_get(p, region, &rc);
	if (!r)
		return rc;
	if (!r->strict) {
		pthread_mutex_unlock(&p->admin_lock);
		return -EINVAL;
	}
	*ret_dropped = (uint64_t)shared_drop(p, r, false, adopt, ret_kept);
	if (adopt && (rc = with_answers(p, r, ret_answers, ret_nanswers)) < 0)
		log_warn("pager %s: region %d: its recall answers on file cannot be read (%s): "
			 "they are lost", p->name, region, strerror(-rc));
	/* A new attachment: the directory counts its answers from 0 again. */
	for (uint32_t s = 0; s < r->nsections; s++)
		atomic_store(&r->dir_rx[s], 0);
	(void)pager_uffd_wake(r, 0, r->npages);   /* faults that met the fence ask again */
	pthread_mutex_unlock(&p->admin_lock);
	return 0;
}

int pager_strict_keep(struct pager *p, int region, size_t *ret_kept, uint64_t *ret_dropped)
{
	return strict_keep(p, region, false, NULL, NULL, ret_kept, ret_dropped);
}

int pager_strict_adopt(struct pager *p, int region, struct pager_kept **ret_answers,
		       size_t *ret_nanswers, size_t *ret_kept, uint64_t *ret_dropped)
{
	if (!ret_answers || !ret_nanswers || !ret_kept)
		return -EINVAL;
	return strict_keep(p, region, true, ret_answers, ret_nanswers, ret_kept, ret_dropped);
}

int pager_strict_kept_next(struct pager *p, int region, uint64_t *pos, struct pager_kept *out)
{
	struct pager_region *r;
	int rc;

	r = pager_shared_get(p, region, &rc);
	if (!r)
		return rc;
	rc = r->strict ? pager_kept_next(r->answers_fd, p->sec_pages, pos, out) : -EINVAL;
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int pager_strict_answers_clear(struct pager *p, int region)
{
	struct pager_region *r;
	int rc;

	r = pager_shared_get(p, region, &rc);
	if (!r)
		return rc;
	rc = r->strict ? pager_answers_clear(r->answers_fd) : -EINVAL;
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int pager_shared_invalidate(struct pager *p, int region, uint64_t *ret_dropped)
{
	*ret_dropped = 0;
	return invalidate(p, region, false, ret_dropped);
}

int pager_shared_acquire(struct pager *p, int region, uint64_t *ret_dropped)
{
	*ret_dropped = 0;
	return invalidate(p, region, true, ret_dropped);
}

bool pager_shared_writable(struct pager *p, int region)
{
	struct pager_region *r;
	bool w;

	if (!p || region < 0 || region >= PAGER_MAX_REGIONS)
		return false;
	pthread_mutex_lock(&p->admin_lock);
	r = atomic_load(&p->regions[region]);
	w = r && r->shared && !atomic_load(&r->readonly);
	pthread_mutex_unlock(&p->admin_lock);
	return w;
}
