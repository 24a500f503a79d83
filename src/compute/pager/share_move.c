// SPDX-License-Identifier: MIT
/*
 * Moving a shared region to other sections (share_move.h): write back
 * ahead, park, switch, unpark. A parked region (r->parked) is fenced as a whole: every fault
 * on it returns unserved before touching anything (pager_sec_fenced), so
 * its vCPU stays blocked in the hypervisor until the region is woken.
 *
 * Park sets the flag, waits until no fault thread is inside the region
 * (a grace period: a fault that saw it unparked finishes first), writes
 * back every page that needs it under io_lock (each page is
 * write-protected before it is read for the write-back, and a write
 * fault on it now waits) and drops every page. From then on the memory
 * node holds the region's only copy and nothing here can change it: the
 * caller may copy the sections elsewhere, and switch. Only then does it
 * unpark: the faults that waited refault and fetch from the sections the
 * region has then.
 */
#include "share_move.h"

#include <string.h>

#include "budget.h"
#include "cache.h"
#include "log.h"
#include "rcu.h"
#include "region.h"
#include "share.h"

int pager_shared_writeback(struct pager *p, int region, uint64_t *ret_flushed)
{
	struct pager_region *r;
	int rc;

	*ret_flushed = 0;
	r = pager_shared_get(p, region, &rc);
	if (!r)
		return rc;
	rc = pager_shared_flush(p, r, ret_flushed);
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int pager_shared_park(struct pager *p, int region, uint64_t *ret_flushed,
		      uint64_t *ret_dropped)
{
	struct pager_region *r;
	int rc;

	*ret_flushed = *ret_dropped = 0;
	r = pager_shared_get(p, region, &rc);
	if (!r)
		return rc;
	atomic_store(&r->parked, true);
	/* A fault that passed its fence check before finishes before the write-back. */
	pager_rcu_synchronize(&p->rcu);
	rc = pager_shared_flush(p, r, ret_flushed);
	if (rc < 0) {
		log_warn("pager %s: region %d: park: write-back failed (%s); unparked", p->name,
			 region, strerror(-rc));
		atomic_store(&r->parked, false);
		(void)pager_uffd_wake(r, 0, r->npages);
		pthread_mutex_unlock(&p->admin_lock);
		return rc;
	}
	*ret_dropped = (uint64_t)pager_shared_drop(p, r, false);
	pthread_mutex_unlock(&p->admin_lock);
	return 0;
}

int pager_shared_switch(struct pager *p, int region, const struct pager_section *secs,
			unsigned n)
{
	struct pager_region *r;
	int64_t dropped = 0;
	int rc;

	r = pager_shared_get(p, region, &rc);
	if (!r)
		return rc;
	rc = !atomic_load(&r->parked) ? -ENOTCONN : n != r->nsections ? -EINVAL : 0;
	for (unsigned k = 0; rc == 0 && k < n; k++)
		if (!pager_sec_valid(&secs[k]) || secs[k].kind != PAGER_SEC_REMOTE)
			rc = -EINVAL;
		else if (secs[k].nrep >= 2)
			rc = -EOPNOTSUPP;   /* shared regions are not replicated (region.c) */
	if (rc < 0) {
		pthread_mutex_unlock(&p->admin_lock);
		return rc;
	}
	pthread_mutex_lock(&p->io_lock);
	/* Parked: no fault is served; the grace period waits for one on its way out. */
	pager_rcu_synchronize(&p->rcu);
	pthread_mutex_lock(&p->lock);
	for (unsigned k = 0; k < n; k++) {
		uint64_t pg0 = (uint64_t)k * p->sec_pages;

		if (!pager_same_section(&r->sections[k], &secs[k])) {
			/* A fault thread's stash holds none of the old section's pages any more. */
			__atomic_add_fetch(&r->resets[k], 1, __ATOMIC_SEQ_CST);
			for (uint64_t pg = pg0; pg < pg0 + p->sec_pages; pg++) {
				dropped += (st_get(r, pg) & ST_PRESENT) != 0;
				st_set(r, pg, 0);
			}
		}
		r->sections[k] = secs[k];
	}
	pthread_mutex_unlock(&p->lock);
	(void)pager_punch(r, 0, r->npages);
	pthread_mutex_unlock(&p->io_lock);
	if (dropped) {
		/* Parking dropped them: a page here was installed behind the park. */
		log_warn("pager %s: region %d: %lld pages were resident at the switch", p->name,
			 region, (long long)dropped);
		pager_resident_add(p, -dropped);
	}
	pthread_mutex_unlock(&p->admin_lock);
	return 0;
}

int pager_shared_unpark(struct pager *p, int region)
{
	struct pager_region *r;
	int rc;

	r = pager_shared_get(p, region, &rc);
	if (!r)
		return rc;
	/*
	 * Strict: it left its directory when it parked and attached again
	 * since (the caller's recall channel), which counts its answers from 0
	 * (as pager_strict_reset): no fault asked it yet.
	 */
	if (r->strict && atomic_load(&r->parked))
		for (uint32_t s = 0; s < r->nsections; s++)
			atomic_store(&r->dir_rx[s], 0);
	rc = atomic_exchange(&r->parked, false);
	(void)pager_uffd_wake(r, 0, r->npages);   /* the faults that waited refault */
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}
