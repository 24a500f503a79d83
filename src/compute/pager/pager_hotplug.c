// SPDX-License-Identifier: MIT
/*
 * Hotplug in the pager: a region goes (its mapping was unmapped: a DIMM
 * unplugged, a VM stopping), or one of its sections gets a new backing
 * (virtio-mem plug and unplug, a renewed grant). Both unpublish what they
 * change (empty slot, dead region, fenced section), wait for a grace
 * period of the fault threads (pager_synchronize) and hold io_lock so that
 * no eviction or flush batch is in flight; docs/pager.md, "Hotplug".
 */
#include "pager_internal.h"

#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

/* Called from a pager thread (on_fail)? It would wait for itself. admin_lock held. */
bool pager_on_thread(struct pager *p)
{
	pthread_t self = pthread_self();

	if (p->evictor_started && pthread_equal(self, p->evictor))
		return true;
	for (unsigned i = 0; p->threads && i < p->nthreads; i++)
		if (p->threads[i] && pthread_equal(self, p->threads[i]))
			return true;
	return false;
}

/*
 * Read what is queued on the uffd of a region that no fault thread serves
 * any more. Events are handled: their senders (madvise) wait until the
 * event is read. Faults are dropped: their threads stay blocked, as for
 * any fault on a removed region.
 */
static void drain_unserved(struct pager *p, struct pager_region *r)
{
	struct uffd_msg msgs[PAGER_UMSG_BATCH];

	for (unsigned round = 0; round < 4096; round++) {
		ssize_t n = read(r->uffd, msgs, sizeof(msgs));

		if (n <= 0)
			break;
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			if (msgs[i].event == UFFD_EVENT_REMOVE)
				pager_handle_remove(p, r, msgs[i].arg.remove.start, msgs[i].arg.remove.end);
	}
}

int pager_remove_region(struct pager *p, int region, bool writeback)
{
	struct pager_region *r;
	uint64_t remote = 0;
	int64_t dropped = 0;
	int rc = 0;

	if (!p || region < 0 || region >= PAGER_MAX_REGIONS)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	if (pager_on_thread(p)) {
		pthread_mutex_unlock(&p->admin_lock);
		return -EDEADLK;
	}
	r = atomic_load(&p->regions[region]);
	if (!r) {
		pthread_mutex_unlock(&p->admin_lock);
		return -ENOENT;
	}
	/* 1. No eviction or flush batch is in flight while we hold io_lock. */
	pthread_mutex_lock(&p->io_lock);
	/* 2. Unpublish: fetches on r cancel, new fault-thread passes skip it. */
	atomic_store(&r->dead, true);
	atomic_store(&p->regions[region], NULL);
	(void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, r->uffd, NULL);
	/* 3. Grace period: every fault thread has let go of r. */
	pager_synchronize(p);
	/* From here on this thread is r's only user. */
	drain_unserved(p, r);
	if (writeback) {
		rc = pager_flush_region_locked(p, r);
		if (rc < 0) {
			/* Nothing is removed: serve the region again, wake what was parked. */
			struct epoll_event ev = { .events = EPOLLIN, .data.u64 = pager_region_epoll_data(r) };

			atomic_store(&r->dead, false);
			atomic_store(&p->regions[region], r);
			if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, r->uffd, &ev) < 0)
				log_debug("pager %s: region %d: epoll re-add: %s", p->name, region,
					  strerror(errno));
			pthread_mutex_unlock(&p->io_lock);
			(void)pager_uffd_wake(r, 0, r->npages);
			pthread_mutex_unlock(&p->admin_lock);
			return rc;
		}
	}
	/* 4. Drop the region's pages from the accounting; dirty ones are discarded. */
	pthread_mutex_lock(&p->lock);
	for (uint32_t sec = 0; sec < r->nsections; sec++) {
		if (r->sections[sec].kind != PAGER_SEC_REMOTE)
			continue;
		remote++;
		for (uint64_t pg = (uint64_t)sec * p->sec_pages; pg < (uint64_t)(sec + 1) * p->sec_pages;
		     pg++)
			if (st_get(r, pg) & ST_PRESENT)
				dropped++;
	}
	/* Its dirty pages are discarded (or were written back above). */
	atomic_fetch_sub(&p->dirty_pages, atomic_exchange(&r->ndirty, 0));
	atomic_fetch_sub(&p->busy_pages, atomic_exchange(&r->nbusy, 0));
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_sub(&p->remote_pages, remote * p->sec_pages);
	if (dropped) {
		pager_resident_add(p, -dropped);
		CTR_ADD(p, pages_dropped, (uint64_t)dropped);
	}
	/*
	 * 5. Leave no remote page in the file: a later region over the same
	 * file must not find pages it never fetched (they would be mapped
	 * without a fault, so never checked). Local sections are the caller's.
	 */
	for (uint32_t sec = 0; sec < r->nsections; sec++)
		if (r->sections[sec].kind == PAGER_SEC_REMOTE)
			(void)pager_punch(r, (uint64_t)sec * p->sec_pages, p->sec_pages);
	/* A migration of one of its sections ends with it (abort semantics). */
	for (uint32_t sec = 0; sec < r->nsections; sec++)
		pager_memmig_drop(p, r, sec, false);
	pthread_mutex_unlock(&p->io_lock);
	CTR_ADD(p, regions_removed, 1);
	log_debug("pager %s: region %d removed (%lld resident pages dropped)", p->name, region,
		  (long long)dropped);
	pager_region_free(r);
	pthread_mutex_unlock(&p->admin_lock);
	return 0;
}

int pager_region_set_section(struct pager *p, int region, unsigned index,
			     const struct pager_section *sec, bool discard)
{
	struct pager_region *r;
	uint64_t pg0, n;
	int64_t dropped = 0;
	bool same, busy = false;
	int rc = 0;

	if (!p || !sec || region < 0 || region >= PAGER_MAX_REGIONS || !pager_sec_valid(sec))
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	r = atomic_load(&p->regions[region]);
	if (pager_on_thread(p) || !r || index >= r->nsections) {
		pthread_mutex_unlock(&p->admin_lock);
		return pager_on_thread(p) ? -EDEADLK : r ? -ERANGE : -ENOENT;
	}
	pg0 = (uint64_t)index * p->sec_pages;
	n = p->sec_pages;
	/* No eviction/flush batch in flight; fence; wait out the fault threads. */
	pthread_mutex_lock(&p->io_lock);
	__atomic_store_n(&r->fence[index], 1, __ATOMIC_SEQ_CST);
	pager_synchronize(p);
	/* Nobody claims, installs or reads the section's descriptor now. */

	same = pager_same_section(&r->sections[index], sec);
	if (r->mig[index] && !same && !discard) {
		rc = -EBUSY;        /* being migrated: commit or abort first */
	} else if (r->mig[index] && !same) {
		pager_memmig_drop(p, r, index, false);  /* discarded: nothing left to move */
	}
	if (!same && rc == 0) {
		pthread_mutex_lock(&p->lock);
		for (uint64_t pg = pg0; pg < pg0 + n && !busy; pg++)
			busy = (st_get(r, pg) & (ST_PRESENT | ST_DIRTY | ST_BUSY)) != 0;
		pthread_mutex_unlock(&p->lock);
		/* Local sections have no page state: the file says what is there. */
		if (!busy)
			busy = pager_file_has_data(r, pg0, n);
		if (busy && !discard)
			rc = -EBUSY;
		else if (busy)
			rc = pager_punch(r, pg0, n);
	}
	if (rc == 0) {
		bool was_remote = r->sections[index].kind == PAGER_SEC_REMOTE;
		bool now_remote = sec->kind == PAGER_SEC_REMOTE;

		pthread_mutex_lock(&p->lock);
		if (!same) {
			for (uint64_t pg = pg0; pg < pg0 + n; pg++) {
				if (was_remote && (st_get(r, pg) & ST_PRESENT))
					dropped++;
				st_set(r, pg, 0);
			}
		}
		r->sections[index] = *sec;
		pthread_mutex_unlock(&p->lock);
		if (was_remote && !now_remote)
			atomic_fetch_sub(&p->remote_pages, p->sec_pages);
		else if (!was_remote && now_remote)
			atomic_fetch_add(&p->remote_pages, p->sec_pages);
	}
	__atomic_store_n(&r->fence[index], 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&p->io_lock);
	if (dropped) {
		pager_resident_add(p, -dropped);
		CTR_ADD(p, pages_dropped, (uint64_t)dropped);
	}
	/* Faults parked while fenced refault now and meet the new section. */
	(void)pager_uffd_wake(r, pg0, n);
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}
