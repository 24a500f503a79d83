// SPDX-License-Identifier: MIT
/*
 * Changes to the page-state table (cache.h) that do not come from a fault:
 *
 * UFFD_EVENT_REMOVE (MADV_DONTNEED, MADV_REMOVE, balloon, virtio-mem): the
 * range becomes absent zero pages ("discarded"), dirty state is dropped so
 * nothing stale is written back, and the file range is punched.
 *
 * Reconciliation: a punch of the file behind the pager's back (fallocate
 * from the mapping's process) sends no uffd event. A page punched that way
 * is found by its next MISSING fault (serve.c); one that is never touched
 * again would stay counted as resident, so the idle evictor (every
 * reconcile_ms, one section per hold of io_lock) compares the PRESENT pages
 * with the file's holes (SEEK_HOLE/SEEK_DATA) and un-counts the punched
 * ones. pager_flush() does not: a punched dirty page reads as zeros from
 * the file, which is what its write-back must send.
 */
#include "cache.h"

#include "budget.h"

/* ---- events --------------------------------------------------------------- */

void pager_handle_remove(struct pager *p, struct pager_region *r, uint64_t start, uint64_t end)
{
	uint64_t a, b, pg;
	int64_t dropped = 0;

	CTR_ADD(p, remove_events, 1);
	if (end <= r->base || start >= r->base + r->length)
		return;
	start = MAX(start, r->base);
	end = MIN(end, r->base + r->length);
	a = (start - r->base) / PS;
	b = (end - r->base + PS - 1) / PS;

	pthread_mutex_lock(&p->lock);
	for (pg = a; pg < b; pg++) {
		uint8_t s;

		if (!pager_sec_remote(p, r, pg))
			continue;
		s = st_get(r, pg);
		if (s & ST_BUSY) {
			st_set(r, pg, (uint8_t)((s | ST_RMV) & ~(ST_DIRTY | ST_SNAP)));
		} else {
			if (s & ST_PRESENT)
				dropped++;
			st_set(r, pg, ST_DISCARD);
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (dropped)
		pager_resident_add(p, -dropped);
	/* The range reads as zeros from now on, whatever the caller's madvise did. */
	(void)pager_punch(r, a, b - a);
}

/* ---- the file ------------------------------------------------------------- */

uint64_t pager_file_runs(struct pager *p, struct pager_region *r, uint64_t pg0, uint64_t n,
			 bool data, pager_run_fn fn)
{
	int64_t end = (int64_t)(r->file_offset + (pg0 + n) * PS);
	int64_t off = (int64_t)(r->file_offset + pg0 * PS);
	uint64_t sum = 0;

	while (off < end) {
		int64_t a = uffd_file_seek(r->file_fd, (uint64_t)off, data), b;

		if (a < 0 || a >= end)
			break;
		b = uffd_file_seek(r->file_fd, (uint64_t)a, !data);
		if (b < 0 || b > end)
			b = end;
		sum += fn(p, r, ((uint64_t)a - r->file_offset) / PS,
			  ((uint64_t)b - r->file_offset + PS - 1) / PS);
		off = b;
	}
	return sum;
}

/* ---- reconciliation with the file ------------------------------------------ */

/*
 * Pages [a, b) of r are holes in the file (per SEEK_HOLE): un-count the
 * ones the state has as resident. Each candidate is re-checked under the
 * lock: a PRESENT page that is not BUSY has finished its install, so a hole
 * then means a punch behind our back, not an install in progress.
 */
static uint64_t reconcile_holes(struct pager *p, struct pager_region *r, uint64_t a, uint64_t b)
{
	uint64_t n = 0;

	pthread_mutex_lock(&p->lock);
	for (uint64_t pg = a; pg < b; pg++) {
		uint8_t s = st_get(r, pg);

		if ((s & (ST_PRESENT | ST_BUSY)) != ST_PRESENT || pager_file_has_data(r, pg, 1))
			continue;
		/* Clean: the memory node has it. Dirty: lost, the file says zeros. */
		st_set(r, pg, (s & (ST_DIRTY | ST_DISCARD)) ? ST_DISCARD : 0);
		n++;
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Compare section `sec` of r with the file's holes; io_lock held. */
static uint64_t reconcile_section(struct pager *p, struct pager_region *r, uint32_t sec)
{
	uint64_t n;

	if (r->sections[sec].kind != PAGER_SEC_REMOTE)
		return 0;
	n = pager_file_runs(p, r, (uint64_t)sec * p->sec_pages, p->sec_pages, false,
			    reconcile_holes);
	if (n) {
		pager_resident_add(p, -(int64_t)n);
		CTR_ADD(p, pages_punched, n);
	}
	return n;
}

/*
 * One step of the idle evictor's reconciliation: the next remote section,
 * io_lock held. A section of a fully resident 128 MiB region costs a few ms
 * of SEEK_HOLE; a whole 2 GiB guest about 100 ms, too long to keep io_lock
 * (flushes, evictions and memory-migration commits wait for it), so a pass
 * goes one section at a time. True when the pass is complete.
 */
bool pager_reconcile_step(struct pager *p, struct pager_recon *rc)
{
	unsigned nslots = atomic_load(&p->nslots);

	for (; rc->region < nslots; rc->region++, rc->sec = 0) {
		struct pager_region *r = atomic_load(&p->regions[rc->region]);

		if (!r || rc->sec >= r->nsections)
			continue;
		(void)reconcile_section(p, r, rc->sec++);
		return false;
	}
	rc->region = 0;
	rc->sec = 0;
	return true;
}
