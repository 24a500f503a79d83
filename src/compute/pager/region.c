// SPDX-License-Identifier: MIT
/*
 * Regions and their sections (region.h): a mapping is added; it goes (its
 * mapping was unmapped: a DIMM unplugged, a VM stopping); one of its
 * sections gets a new backing (virtio-mem plug and unplug, a renewed
 * grant) or a local section becomes remote (evacuation). Each change
 * unpublishes what it changes (empty slot, dead region, fenced section),
 * waits for a grace period of the fault threads (rcu.h) and holds io_lock
 * so that no write-back batch is in flight; docs/pager.md, "Hotplug".
 * These calls are serialized by admin_lock and refuse to run on a pager
 * thread (-EDEADLK: they would wait for themselves).
 */
#include "region.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>   /* memfd_create */
#include <unistd.h>

#include "atrest.h"
#include "budget.h"
#include "cache.h"
#include "fault.h"
#include "flush.h"
#include "log.h"
#include "net.h"
#include "reljournal.h"
#include "replica.h"
#include "sink.h"
#include "twin.h"
#include "uffd_compat.h"

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

/* Region `region` with section `index` (admin_lock held), or NULL with *ret_err. */
struct pager_region *pager_region_get(struct pager *p, int region, unsigned index, int *ret_err)
{
	struct pager_region *r;

	if (region < 0 || region >= PAGER_MAX_REGIONS) {
		*ret_err = -EINVAL;
		return NULL;
	}
	if (pager_on_thread(p)) {
		*ret_err = -EDEADLK;
		return NULL;
	}
	r = atomic_load(&p->regions[region]);
	if (!r) {
		*ret_err = -ENOENT;
		return NULL;
	}
	if (index >= r->nsections) {
		*ret_err = -ERANGE;
		return NULL;
	}
	return r;
}

/* Watch (on) or unwatch the uffd of every alias of r (alias.h) in the fault threads' epoll set. */
static void aliases_watch(struct pager *p, struct pager_region *r, bool on)
{
	for (unsigned i = 0; i < PAGER_MAX_ALIASES; i++) {
		struct pager_alias *a = atomic_load(&r->alias[i]);

		if (a && on)
			(void)pager_fault_watch_fd(p, r, a->uffd);
		else if (a)
			pager_fault_unwatch_fd(p, a->uffd);
	}
}

void pager_region_free(struct pager_region *r)
{
	if (!r)
		return;
	for (unsigned i = 0; i < PAGER_MAX_ALIASES; i++)
		free(atomic_exchange(&r->alias[i], NULL));   /* their uffds are their owners' */
	for (uint32_t i = 0; r->tee && i < r->nsections; i++)
		pager_tee_drop(r->owner, r, i);
	for (uint32_t i = 0; r->rout && i < r->nsections; i++)
		pager_rep_reset(r->owner, r, i);     /* its replicas out no longer count */
	free((void *)r->rout);
	free((void *)r->rerr);
	free(r->tee);
	free(r->sections);
	free(r->st);
	free(r->dep);
	free(r->hist);
	free(r->fence);
	free(r->resets);
	free((void *)r->dir_rx);
	free(r->snaps);
	pager_reljournal_close(r->journal);
	pager_twins_free(r->twins);
	if (r->answers_fd >= 0)
		close(r->answers_fd);
	free(r);
}

/* ---- adding a region ---------------------------------------------------------- */

int pager_add_region(struct pager *p, const struct pager_region_config *rc)
{
	struct pager_region *r;
	uint64_t secbytes = (uint64_t)p->sec_pages * PS;
	unsigned idx;
	int fl, e;

	if (!rc || rc->length == 0 || rc->length % secbytes || rc->base % PS || !rc->sections ||
	    rc->uffd < 0 || rc->file_fd < 0)
		return -EINVAL;
	for (uint64_t i = 0; i < rc->length / secbytes; i++) {
		if (!pager_sec_valid(&rc->sections[i]) ||
		    rc->sections[i].nrep > PAGER_MAX_REPLICAS)
			return -EINVAL;
		/* Shared regions (directories, diffs) have one copy of each section. */
		if (rc->shared && pager_rep_replicated(&rc->sections[i]))
			return -EOPNOTSUPP;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->answers_fd = -1;
	r->uffd = rc->uffd;
	r->features = rc->uffd_features;
	r->file_fd = rc->file_fd;
	r->pagemap_fd = rc->pagemap_fd;
	r->file_offset = rc->file_offset;
	r->base = rc->base;
	r->length = rc->length;
	r->npages = rc->length / PS;
	r->nsections = (uint32_t)(rc->length / secbytes);
	r->sections = calloc(r->nsections, sizeof(*r->sections));
	r->st = calloc(r->npages, 1);
	r->dep = calloc(r->npages, sizeof(*r->dep));
	r->hist = calloc(r->npages, 1);
	r->fence = calloc(r->nsections, 1);
	r->resets = calloc(r->nsections, sizeof(*r->resets));
	r->dir_rx = calloc(r->nsections, sizeof(*r->dir_rx));
	r->tee = calloc(r->nsections, sizeof(*r->tee));
	r->rout = calloc(r->nsections, sizeof(*r->rout));
	r->rerr = calloc((size_t)r->nsections * PAGER_MAX_REPLICAS, sizeof(*r->rerr));
	r->owner = p;
	if (!r->sections || !r->st || !r->dep || !r->hist || !r->fence || !r->resets || !r->tee ||
	    !r->dir_rx || !r->rout || !r->rerr) {
		pager_region_free(r);
		return -ENOMEM;
	}
	memcpy(r->sections, rc->sections, r->nsections * sizeof(*r->sections));
	for (uint32_t i = 0; i < r->nsections; i++)
		pager_rep_mark_recorded(p, r, i);   /* replicas a record names as out */
	r->next_seq = UINT64_MAX;
	r->slot_page = rc->slot_page;
	r->shared = rc->shared;
	r->strict = rc->shared && rc->strict;
	r->control = rc->shared && !rc->strict && rc->control && r->npages >= 4;
	if (r->strict && !p->cfg.backend->ops->dir_fetch) {
		pager_region_free(r);
		return -EOPNOTSUPP;   /* no coherence directory behind this backend */
	}
	if (r->strict) {
		r->snaps = calloc(PAGER_STRICT_SNAPS, sizeof(*r->snaps));
		if (!r->snaps) {
			pager_region_free(r);
			return -ENOMEM;
		}
		for (unsigned i = 0; i < PAGER_STRICT_SNAPS; i++)
			r->snaps[i].pg = UINT64_MAX;
	}
	/* Without a file of the caller's, one in memory: kept pages always go to a file (share.c). */
	r->answers_fd = !rc->strict ? -1 :
			rc->answers_fd > 0 ? fcntl(rc->answers_fd, F_DUPFD_CLOEXEC, 3) :
					     memfd_create("answers", MFD_CLOEXEC);
	if (rc->strict && r->answers_fd < 0) {
		e = -errno;
		pager_region_free(r);
		return e;
	}
	r->release = rc->shared && !rc->strict && rc->release;
	r->ctl_armed[0] = r->ctl_armed[1] = true;   /* absent: a store faults */
	if (r->release) {
		/* A backend without diffs cannot publish a release region. */
		e = !p->cfg.backend->ops->diff_submit ? -EOPNOTSUPP :
		    pager_twins_new(rc->twin_fd > 0 ? rc->twin_fd : -1, r->npages, &r->twins);
		if (e == 0)
			e = pager_reljournal_open(r->twins, &r->journal);
		if (e < 0) {
			pager_region_free(r);
			return e;
		}
	}
	atomic_store(&r->readonly, rc->shared && rc->readonly);
	if (pager_rcrypt(p, r) && rc->slot_page + r->npages > pager_crypt_npages(p->cfg.crypt)) {
		pager_region_free(r);
		return -ERANGE;   /* outside the slot's page-metadata table */
	}
	if (rc->fresh)
		pager_meta_fresh(p, r);

	pthread_mutex_lock(&p->admin_lock);
	for (idx = 0; idx < PAGER_MAX_REGIONS && atomic_load(&p->regions[idx]); idx++)
		;
	if (idx >= PAGER_MAX_REGIONS) {
		e = -ENOSPC;
		goto fail;
	}
	/* The dirty mode follows the uffd of the first region: WP_ASYNC means async. */
	if (!p->mode_set) {
		p->mode = (rc->uffd_features & UFFD_FEATURE_WP_ASYNC) ? PAGER_DIRTY_ASYNC_WP
								       : PAGER_DIRTY_SYNC_WP;
	} else if (((rc->uffd_features & UFFD_FEATURE_WP_ASYNC) != 0) !=
		   (p->mode == PAGER_DIRTY_ASYNC_WP)) {
		e = -EINVAL;
		goto fail;
	}
	if ((rc->uffd_features & UFFD_FEATURE_WP_ASYNC) && rc->pagemap_fd < 0) {
		e = -EINVAL;
		goto fail;
	}
	r->idx = idx;
	r->gen = ++p->next_gen;

	fl = fcntl(r->uffd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(r->uffd, F_SETFL, fl | O_NONBLOCK);
	for (uint32_t i = 0; i < r->nsections; i++)
		if (r->sections[i].kind == PAGER_SEC_REMOTE)
			atomic_fetch_add(&p->remote_pages, p->sec_pages);
	/* Publish before the epoll ADD: an event must find the region. */
	atomic_store(&p->regions[idx], r);
	if (idx + 1 > atomic_load(&p->nslots))
		atomic_store(&p->nslots, idx + 1);
	e = pager_fault_watch(p, r);
	if (e < 0) {
		atomic_store(&p->regions[idx], NULL);
		for (uint32_t i = 0; i < r->nsections; i++)
			if (r->sections[i].kind == PAGER_SEC_REMOTE)
				atomic_fetch_sub(&p->remote_pages, p->sec_pages);
		/* A fault thread may have picked it up in its spin loop. */
		pager_rcu_synchronize(&p->rcu);
		goto fail;
	}
	p->mode_set = true;
	pthread_mutex_unlock(&p->admin_lock);
	/* The evictor opens its write-back connection to the region's nodes now (pager_wb_warm). */
	atomic_store(&p->wb_warm, true);
	pthread_cond_signal(&p->evict_cond);
	return (int)idx;
fail:
	pthread_mutex_unlock(&p->admin_lock);
	pager_region_free(r);
	return e;
}

/* ---- removing a region -------------------------------------------------------- */

/*
 * Read what is queued on the uffd of a region that no fault thread serves
 * any more. Events are handled: their senders (madvise) wait until the
 * event is read. Faults are dropped: their threads stay blocked, as for
 * any fault on a removed region.
 */
static void drain_unserved(struct pager *p, struct pager_region *r)
{
	struct uffd_msg msgs[16];

	for (unsigned round = 0; round < 4096; round++) {
		unsigned n = uffd_read(r->uffd, msgs, ARRAY_SIZE(msgs));

		if (!n)
			break;
		for (unsigned i = 0; i < n; i++)
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
	pager_fault_unwatch(p, r);
	aliases_watch(p, r, false);
	/* 3. Grace period: every fault thread has let go of r. */
	pager_rcu_synchronize(&p->rcu);
	/* From here on this thread is r's only user. */
	drain_unserved(p, r);
	if (writeback) {
		rc = pager_flush_region_locked(p, r);
		if (rc < 0) {
			/* Nothing is removed: serve the region again, wake what was parked. */
			int e;

			atomic_store(&r->dead, false);
			atomic_store(&p->regions[region], r);
			e = pager_fault_watch(p, r);
			if (e < 0)
				log_debug("pager %s: region %d: epoll re-add: %s", p->name, region,
					  strerror(-e));
			aliases_watch(p, r, true);
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
	/* A tee of one of its sections (a migration) ends with it (abort semantics). */
	for (uint32_t sec = 0; sec < r->nsections; sec++)
		pager_tee_drop(p, r, sec);
	pthread_mutex_unlock(&p->io_lock);
	CTR_ADD(p, regions_removed, 1);
	log_debug("pager %s: region %d removed (%lld resident pages dropped)", p->name, region,
		  (long long)dropped);
	pager_region_free(r);
	pthread_mutex_unlock(&p->admin_lock);
	return 0;
}

/* ---- changing a section ------------------------------------------------------- */

int pager_region_set_section(struct pager *p, int region, unsigned index,
			     const struct pager_section *sec, bool discard)
{
	struct pager_region *r;
	uint64_t pg0, n;
	int64_t dropped = 0;
	bool same, busy = false;
	int rc = 0;

	if (!p || !sec || region < 0 || region >= PAGER_MAX_REGIONS || !pager_sec_valid(sec) ||
	    sec->nrep > PAGER_MAX_REPLICAS)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	r = atomic_load(&p->regions[region]);
	if (pager_on_thread(p) || !r || index >= r->nsections) {
		pthread_mutex_unlock(&p->admin_lock);
		return pager_on_thread(p) ? -EDEADLK : r ? -ERANGE : -ENOENT;
	}
	if (r->shared && pager_rep_replicated(sec)) {
		pthread_mutex_unlock(&p->admin_lock);
		return -EOPNOTSUPP;   /* shared regions are not replicated */
	}
	pg0 = (uint64_t)index * p->sec_pages;
	n = p->sec_pages;
	/* No eviction/flush batch in flight; fence; wait out the fault threads. */
	pthread_mutex_lock(&p->io_lock);
	__atomic_store_n(&r->fence[index], 1, __ATOMIC_SEQ_CST);
	pager_rcu_synchronize(&p->rcu);
	/* Nobody claims, installs or reads the section's descriptor now. */

	same = pager_same_section(&r->sections[index], sec);
	/*
	 * The same section with renewed grants keeps its pages: its replicas
	 * must be the same ones too (a new replica would be read without
	 * holding the data; a replica moves only by memory migration).
	 */
	for (unsigned k = 0; same && k < MAX(pager_rep_n(sec), pager_rep_n(&r->sections[index]));
	     k++) {
		struct pager_section v;

		pager_rep_view(sec, k, &v);
		if (pager_rep_n(sec) != pager_rep_n(&r->sections[index]) ||
		    !pager_rep_is(&r->sections[index], k, &v))
			rc = -EINVAL;
	}
	if (rc < 0) {
		/* nothing changes */
	} else if (pager_tee_get(r, index) && !same && !discard) {
		rc = -EBUSY;        /* being migrated: commit or abort first */
	} else if (pager_tee_get(r, index) && !same) {
		pager_tee_drop(p, r, index);  /* discarded: nothing left to move */
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
			/* A fault thread's stash (stash.h) holds none of these pages any more. */
			__atomic_add_fetch(&r->resets[index], 1, __ATOMIC_SEQ_CST);
			for (uint64_t pg = pg0; pg < pg0 + n; pg++) {
				if (was_remote && (st_get(r, pg) & ST_PRESENT))
					dropped++;
				st_set(r, pg, 0);
			}
		}
		r->sections[index] = *sec;
		/*
		 * Another section: every replica is in. The same one (renewed
		 * grants): the replicas that are out stay out (they are stale).
		 */
		if (!same)
			pager_rep_reset(p, r, index);
		pager_rep_mark_recorded(p, r, index);
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

int pager_section_find(struct pager *p, const struct pager_section *match, int *ret_region,
		       unsigned *ret_index)
{
	int rc = -ENOENT;

	if (!p || !match || match->kind != PAGER_SEC_REMOTE)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	for (unsigned ri = 0; ri < atomic_load(&p->nslots) && rc < 0; ri++) {
		struct pager_region *r = atomic_load(&p->regions[ri]);

		for (uint32_t i = 0; r && i < r->nsections; i++)
			if (pager_same_section(&r->sections[i], match)) {
				*ret_region = (int)ri;
				*ret_index = i;
				rc = 0;
				break;
			}
	}
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

/* ---- replicas (replica.h): finding, dropping, listing -------------------------------- */

static int find_locked(struct pager *p, const struct pager_section *s, int *ret_region,
		       unsigned *ret_index, unsigned *ret_replica)
{
	for (unsigned ri = 0; ri < atomic_load(&p->nslots); ri++) {
		struct pager_region *r = atomic_load(&p->regions[ri]);

		for (uint32_t i = 0; r && i < r->nsections; i++)
			for (unsigned k = 0; k < pager_rep_n(&r->sections[i]); k++)
				if (pager_rep_is(&r->sections[i], k, s)) {
					*ret_region = (int)ri;
					*ret_index = i;
					*ret_replica = k;
					return 0;
				}
	}
	return -ENOENT;
}

int pager_section_find_replica(struct pager *p, const struct pager_section *s, int *ret_region,
			       unsigned *ret_index, unsigned *ret_replica)
{
	int region, rc;
	unsigned index, replica;

	if (!p || !s || s->kind != PAGER_SEC_REMOTE)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	rc = find_locked(p, s, &region, &index, &replica);
	pthread_mutex_unlock(&p->admin_lock);
	if (rc < 0)
		return rc;
	if (ret_region)
		*ret_region = region;
	if (ret_index)
		*ret_index = index;
	if (ret_replica)
		*ret_replica = replica;
	return 0;
}

int pager_replica_drop(struct pager *p, const struct pager_section *replica)
{
	int region, rc;
	unsigned index, k;

	if (!p || !replica || replica->kind != PAGER_SEC_REMOTE)
		return -EINVAL;
	if (pager_on_thread(p))
		return -EDEADLK;
	pthread_mutex_lock(&p->admin_lock);
	rc = find_locked(p, replica, &region, &index, &k);
	if (rc == 0) {
		struct pager_region *r = atomic_load(&p->regions[region]);

		rc = pager_rep_n(&r->sections[index]) < 2 ? -EBUSY
							  : pager_rep_take_out(p, r, index, k, -ECANCELED);
		if (rc == -EALREADY)
			rc = 0;
	}
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int pager_replicas_out(struct pager *p, struct pager_replica_out *ret, size_t max)
{
	size_t n = 0;

	if (!p || (!ret && max))
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	for (unsigned ri = 0; ri < atomic_load(&p->nslots) && n < max; ri++) {
		struct pager_region *r = atomic_load(&p->regions[ri]);

		for (uint32_t i = 0; r && i < r->nsections && n < max; i++) {
			unsigned out = pager_rep_out(r, i);

			for (unsigned k = 0; k < pager_rep_n(&r->sections[i]) && n < max; k++) {
				if (!(out & (1u << k)))
					continue;
				ret[n].region = (int)ri;
				ret[n].index = i;
				ret[n].replica = k;
				pager_rep_view(&r->sections[i], k, &ret[n].view);
				ret[n].err = atomic_load(&r->rerr[i * PAGER_MAX_REPLICAS + k]);
				n++;
			}
		}
	}
	pthread_mutex_unlock(&p->admin_lock);
	return (int)n;
}

void pager_replicas_settled(struct pager *p)
{
	pager_hold_release(p, PAGER_HOLD_REPLICAS);
}

bool pager_replicas_pending(struct pager *p)
{
	return atomic_load(&p->hold) & PAGER_HOLD_REPLICAS;
}

/* ---- evacuation: a local section becomes remote --------------------------------- */

/* Pages [a, b) of r have data in the file: PRESENT|DIRTY. Fenced, io_lock held. */
static uint64_t mark_dirty(struct pager *p, struct pager_region *r, uint64_t a, uint64_t b)
{
	pthread_mutex_lock(&p->lock);
	for (uint64_t pg = a; pg < b; pg++)
		st_set(r, pg, ST_PRESENT | ST_DIRTY);
	pthread_mutex_unlock(&p->lock);
	return b - a;
}

int pager_section_evacuate(struct pager *p, int region, unsigned index,
			   const struct pager_section *target, uint64_t *ret_pages)
{
	struct pager_region *r;
	uint64_t n = 0;
	int rc = 0;

	if (!p || !target || target->kind != PAGER_SEC_REMOTE)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	r = pager_region_get(p, region, index, &rc);
	if (!r)
		goto out;
	if (r->sections[index].kind != PAGER_SEC_LOCAL) {
		rc = -EALREADY;
		goto out;
	}
	/*
	 * No batch in flight, the section fenced, no fault thread in it: the
	 * kind changes, and fault threads read it outside a fault too
	 * (REMOVE events), hence the full grace period.
	 */
	pthread_mutex_lock(&p->io_lock);
	__atomic_store_n(&r->fence[index], 1, __ATOMIC_SEQ_CST);
	pager_rcu_synchronize(&p->rcu);
	/*
	 * A local section has no page state: the file says what the guest
	 * touched. Those pages stay where they are and become dirty pages of
	 * the remote section, so the cleaner, the evictor or a flush writes
	 * them to it (WP-protecting each before it is read, as for any dirty
	 * page). The others read as the fresh section's zeros.
	 */
	n = pager_file_runs(p, r, (uint64_t)index * p->sec_pages, p->sec_pages, true, mark_dirty);
	pthread_mutex_lock(&p->lock);
	r->sections[index] = *target;
	pager_rep_reset(p, r, index);
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_add(&p->remote_pages, p->sec_pages);
	__atomic_store_n(&r->fence[index], 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&p->io_lock);
	pager_resident_add(p, (int64_t)n);
	pthread_cond_signal(&p->evict_cond);     /* over budget now? */
	(void)pager_uffd_wake(r, (uint64_t)index * p->sec_pages, p->sec_pages);
	log_debug("pager %s: region %d section %u evacuated to %s: %llu pages to write back",
		  p->name, region, index, target->addr, (unsigned long long)n);
	if (ret_pages)
		*ret_pages = n;
out:
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}
