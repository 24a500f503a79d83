// SPDX-License-Identifier: MIT
/*
 * Serving one fault (serve.h), for the fault threads (fault.c).
 *
 * MISSING fault on a remote section: claim (BUSY) the absent pages of an
 * aligned cluster around the faulting page, extended forward by the
 * sequential-prefetch window; fetch them from the source (source.c) in one
 * round trip on the thread's own connection; install each run of claimed
 * pages with UFFDIO_COPY (write-protected, except the faulting page and,
 * for a sequential writer, the pages after it, which go in writable and
 * dirty); record their state (cache.h) and count them (budget.h). Present
 * pages are never overwritten: only claimed pages are copied, and an
 * EEXIST (someone else installed the page) is skipped and woken.
 * MISSING on a local section: UFFDIO_ZEROPAGE of the cluster.
 * WP faults are served in serve_wp.c.
 *
 * A MISSING fault on a page the pager has as PRESENT is either stale (the
 * page was installed after the fault was queued) or the page was punched
 * behind the pager's back (fallocate on the file sends no uffd event): the
 * file says which (SEEK_DATA), and a punched page is served again.
 *
 * A fault on a dead region or a fenced section is left parked (region.c,
 * memmig.c wake it); one on a memory node that is down is parked until the
 * node answers (source.c).
 */
#include "serve.h"

#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "atrest.h"
#include "budget.h"
#include "cache.h"
#include "log.h"
#include "net.h"
#include "relfault.h"
#include "source.h"
#include "uffd_compat.h"

/*
 * A fault that cannot be served now: report, and signal the thread if asked
 * to. The fault stays parked; nothing is sticky (source.c).
 */
static void fail_fault(struct pager *p, int err, uint64_t addr, uint32_t tid)
{
	pager_count_error(p, err, "a fault not served now (parked)");
	log_debug("pager %s: fault at 0x%llx: %s", p->name, (unsigned long long)addr,
		  strerror(-err));
	if (p->cfg.on_fail)
		p->cfg.on_fail(p->cfg.opaque, err, addr, tid);
	if (p->cfg.fail_mode == PAGER_FAIL_SIGBUS && tid)
		syscall(SYS_tgkill, p->cfg.fail_pid ? p->cfg.fail_pid : getpid(), (pid_t)tid,
			SIGBUS);
}

/* ---- installing pages ---------------------------------------------------- */

/*
 * Fill pages [pg, pg+n): UFFDIO_COPY from src, or UFFDIO_ZEROPAGE when src is
 * NULL. Pages that turn out to exist already are skipped, flagged in
 * exists[] (relative to base_pg) when given, and *ret_watch_exists is set if
 * one of them is watch_pg. EAGAIN (the mapping is changing) is retried
 * after reading the pending events.
 */
static int mfill_region(struct pager_fault_ctx *t, struct pager_region *r, uint64_t pg,
			uint64_t n, const uint8_t *src, uint64_t mode, uint8_t *exists,
			uint64_t base_pg, uint64_t watch_pg, bool *ret_watch_exists)
{
	uint64_t i = 0;
	unsigned spins = 0;

	while (i < n) {
		uint64_t start = r->base + (pg + i) * PS, len = (n - i) * PS;
		int64_t done;
		int rc, e;

		if (src)
			rc = uffd_copy(r->uffd, start, src + i * PS, len, mode, &done);
		else
			rc = uffd_zeropage(r->uffd, start, len, &done);
		e = -rc;
		if (done > 0)
			i += (uint64_t)done / PS;
		if (rc == 0)
			break;
		if (done > 0 && e == EAGAIN)
			continue;                     /* partial progress */
		if (e == EEXIST) {
			CTR_ADD(t->p, eexist, 1);
			if (exists)
				exists[pg + i - base_pg] = 1;
			if (ret_watch_exists && pg + i == watch_pg)
				*ret_watch_exists = true;
			i++;
		} else if (e == EAGAIN) {
			/* The mapping is changing: an event waits to be read. */
			CTR_ADD(t->p, eagain, 1);
			t->drain(t, r);
			if (++spins > 1000)
				return -EAGAIN;
			if (spins > 10)
				usleep(50);
		} else {
			return -e;
		}
	}
	return 0;
}

/*
 * The same, and then the threads that faulted on those pages through an
 * alias (alias.h) are woken: the pages are in the file now, so they map
 * them without another fault. UFFDIO_COPY woke only the region's.
 */
static int mfill(struct pager_fault_ctx *t, struct pager_region *r, uint64_t pg, uint64_t n,
		 const uint8_t *src, uint64_t mode, uint8_t *exists, uint64_t base_pg,
		 uint64_t watch_pg, bool *ret_watch_exists)
{
	int rc = mfill_region(t, r, pg, n, src, mode, exists, base_pg, watch_pg, ret_watch_exists);

	if (atomic_load_explicit(&r->nalias, memory_order_acquire))
		(void)pager_alias_apply(r, pg, n, -1);
	return rc;
}

static int install(struct pager_fault_ctx *t, struct pager_region *r, uint64_t pg, uint64_t n,
		   const uint8_t *src, uint64_t mode, uint8_t *exists, uint64_t base_pg)
{
	return mfill(t, r, pg, n, src, mode, exists, base_pg, 0, NULL);
}

int pager_install_pages(struct pager_fault_ctx *t, struct pager_region *r, uint64_t pg,
			uint64_t n, const uint8_t *src, uint64_t mode)
{
	uint8_t exists = 0;
	int rc = n == 1 ? mfill(t, r, pg, 1, src, mode, &exists, pg, 0, NULL) : -EINVAL;

	return rc == 0 && exists ? -EEXIST : rc;
}

static int zeropage(struct pager_fault_ctx *t, struct pager_region *r, uint64_t pg, uint64_t n,
		    bool *ret_fault_exists, uint64_t fault_pg)
{
	return mfill(t, r, pg, n, NULL, 0, NULL, 0, fault_pg, ret_fault_exists);
}

/* ---- faults ---------------------------------------------------------------- */

static void serve_local(struct pager_fault_ctx *t, struct pager_region *r, uint64_t pg)
{
	struct pager *p = t->p;
	uint64_t sec_end = (pg / p->sec_pages + 1) * p->sec_pages;
	uint64_t start = pg - pg % p->cluster, n = MIN((uint64_t)p->cluster, sec_end - start);
	bool fault_exists = false;
	int rc;

	CTR_ADD(p, faults_local, 1);
	rc = zeropage(t, r, start, n, &fault_exists, pg);
	if (rc < 0 || fault_exists)
		(void)pager_uffd_wake(r, pg, 1);
	if (rc == 0)
		CTR_ADD(p, pages_zero, n);
}

struct fetch_where {
	struct pager_region *r;
	uint64_t sec;
};

/* The region is being removed or the section changed: stop retrying. */
static bool fetch_cancelled(struct pager_region *r, uint64_t sec)
{
	return atomic_load(&r->dead) || pager_sec_fenced(r, sec);
}

static bool fetch_cancelled_cb(void *arg)
{
	struct fetch_where *w = arg;

	return fetch_cancelled(w->r, w->sec);
}

/* State of a claimed page given up uninstalled: a REMOVE meanwhile means zeros. */
static uint8_t release_claim(uint8_t sv)
{
	return (sv & ST_RMV) ? ST_DISCARD : (uint8_t)(sv & ~ST_BUSY);
}

/* ---- sealed neighbours (stash.h) ---------------------------------------------- */

/*
 * Are e's claims still ours? Not once its section's page states were reset
 * (pager_region_set_section with another section): those pages may have
 * been claimed again since, by anyone.
 */
static bool stash_owned(struct pager *p, const struct pager_region *r,
			const struct pager_stash_ent *e)
{
	return __atomic_load_n(&r->resets[e->sec], __ATOMIC_SEQ_CST) == e->resets;
}

/* Claimed pages of e. */
static uint64_t stash_count(const struct pager_stash_ent *e)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < e->n; i++)
		n += e->claimed[i] != 0;
	return n;
}

/*
 * Give up e's pages unopened: their claims are released (r NULL: the
 * region is gone; not ours any more: left alone).
 */
static void stash_drop(struct pager_fault_ctx *t, struct pager_region *r,
		       struct pager_stash_ent *e)
{
	struct pager *p = t->p;

	CTR_ADD(p, pages_stash_dropped, stash_count(e));
	if (r && !stash_owned(p, r, e)) {
		(void)pager_uffd_wake(r, e->start, e->n);
	} else if (r) {
		pthread_mutex_lock(&p->lock);
		for (uint64_t i = 0; i < e->n; i++)
			if (e->claimed[i]) {
				st_set(r, e->start + i, release_claim(st_get(r, e->start + i)));
				r->hist[e->start + i] |= HIST_DROPPED;
			}
		pthread_mutex_unlock(&p->lock);
		t->stash->drops++;
	}
	pager_stash_put(t->stash, e);
}

/* The region of e, if it is still there (RCU read section held). */
static struct pager_region *stash_region(struct pager *p, const struct pager_stash_ent *e)
{
	struct pager_region *r = atomic_load(&p->regions[e->region]);

	return r && r->gen == e->gen ? r : NULL;
}

void pager_stash_install(struct pager_fault_ctx *t, struct pager_region *r,
			 struct pager_stash_ent *e)
{
	struct pager *p = t->p;
	uint8_t exists[PAGER_STASH_PAGES];
	uint64_t i, n = e->n, opened = 0, held = stash_count(e);
	int64_t added = 0;
	bool wake = p->nthreads > 1;
	int rc = 0;

	if (!r || r->gen != e->gen) {
		/* Removed: its page state went with it. */
		CTR_ADD(p, pages_stash_dropped, held);
		pager_stash_put(t->stash, e);
		return;
	}
	if (!stash_owned(p, r, e)) {
		/* The section changed under it: a fault there is served afresh. */
		CTR_ADD(p, pages_stash_dropped, held);
		pager_stash_put(t->stash, e);
		(void)pager_uffd_wake(r, e->start, n);
		return;
	}
	if (atomic_load(&r->dead) || pager_sec_fenced(r, e->sec)) {
		/* Being removed or changed: a fault on these pages is served afresh. */
		stash_drop(t, r, e);
		(void)pager_uffd_wake(r, e->start, n);
		return;
	}
	for (i = 0; i < n; i++) {
		if (!e->claimed[i])
			continue;
		if (st_get(r, e->start + i) & (ST_DISCARD | ST_RMV)) {
			memset(e->buf + i * PS, 0, PS);   /* zeros, as a fetch would give */
		} else if (pager_open_page(p, r, e->start + i, e->buf + i * PS) < 0) {
			/* Never installed: a fault on it finds it bad again, and parks. */
			pthread_mutex_lock(&p->lock);
			st_set(r, e->start + i, release_claim(st_get(r, e->start + i)));
			pthread_mutex_unlock(&p->lock);
			e->claimed[i] = 0;
			wake = true;
		}
	}
	/* Runs of what is left, write-protected (read neighbours of a fault). */
	memset(exists, 0, n);
	for (i = 0; i < n && rc == 0;) {
		uint64_t j = i;

		if (!e->claimed[i]) {
			i++;
			continue;
		}
		while (j < n && e->claimed[j])
			j++;
		rc = install(t, r, e->start + i, j - i, e->buf + i * PS, UFFDIO_COPY_MODE_WP,
			     exists, e->start);
		i = j;
	}
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < n; i++) {
		uint64_t pg = e->start + i;
		uint8_t sv, nv;

		if (!e->claimed[i])
			continue;
		sv = st_get(r, pg);
		if (rc < 0 && !pager_file_has_data(r, pg, 1)) {
			st_set(r, pg, release_claim(sv));
			continue;
		}
		if (rc < 0) {
			/* Installed before the COPY failed: see pager_serve_missing. */
			st_set(r, pg, (sv & ST_DISCARD) | (sv & ST_RMV ? ST_DISCARD | ST_RMV : 0) |
					      ST_PRESENT | ST_DIRTY);
		} else if (exists[i]) {
			st_set(r, pg, (sv & ~(ST_BUSY | ST_RMV)) | ST_PRESENT | ST_DIRTY);
			wake = true;
		} else {
			nv = (sv & ST_DISCARD) | ST_PRESENT | ST_REF;
			if (sv & ST_RMV)
				nv |= ST_DISCARD | ST_RMV;   /* punched below */
			st_set(r, pg, nv);
			opened++;
		}
		added++;
	}
	pthread_mutex_unlock(&p->lock);
	if (added)
		pager_resident_add(p, added);
	CTR_ADD(p, pages_stash_opened, opened);
	CTR_ADD(p, pages_stash_dropped, held - opened);   /* failed, or installed by another */
	for (i = 0; i < n; i++) {
		if (!e->claimed[i] || !(st_get(r, e->start + i) & ST_RMV))
			continue;
		pthread_mutex_lock(&p->lock);
		st_set(r, e->start + i, ST_DISCARD);
		pthread_mutex_unlock(&p->lock);
		(void)pager_punch(r, e->start + i, 1);
		pager_resident_add(p, -1);
	}
	if (rc < 0) {
		pager_count_error(p, rc, "installing pages from the stash");
		wake = true;
	}
	if (wake)
		(void)pager_uffd_wake(r, e->start, n);
	pager_stash_put(t->stash, e);
}

uint32_t pager_write_ahead(const struct pager *p, const struct pager_region *r)
{
	return r->shared ? p->cluster : p->max_window;
}

/* A MISSING fault at addr, or a prefetch window (pf_end: fault.c's prefetch_step). */
void pager_serve_missing(struct pager_fault_ctx *t, struct pager_region *r, uint64_t addr,
			 bool write, uint32_t tid, uint64_t pf_end)
{
	struct pager *p = t->p;
	uint64_t pg = (addr - r->base) / PS;
	uint64_t sec = pg / p->sec_pages, sec_start = sec * p->sec_pages;
	uint64_t sec_end = sec_start + p->sec_pages;
	const struct pager_section *s = &r->sections[sec];
	uint32_t maxp = p->cfg.backend->ops->max_pages(t->conn);
	uint64_t start, end, first = UINT64_MAX, last = 0, i, budget;
	uint32_t win, nclaimed = 0, nfetch_claimed = 0;
	uint64_t wr_end = pg + 1;
	bool sequential, fault_wake = false, early = false;
	struct pager_stash_ent *se = NULL;  /* this fault's neighbours stay sealed in it */
	struct pager_section fetched_from;  /* the replica asked last (source.h) */
	uint8_t *buf = t->buf;
	int64_t added = 0;
	uint64_t t0 = now_ns();
	int rc = 0;

	if (!pf_end)
		CTR_ADD(p, faults_missing, 1);
	/*
	 * Region being removed or section being changed: leave the fault
	 * blocked. pager_region_set_section() wakes the section when it is
	 * done (the thread refaults and is served by the new section).
	 */
	if (atomic_load(&r->dead) || pager_sec_fenced(r, sec))
		return;
	if (s->kind == PAGER_SEC_LOCAL) {
		if (!pf_end)
			serve_local(t, r, pg);
		return;
	}
	/*
	 * A shared region this VM may not write, its control page, or a
	 * release region (its first write keeps a twin): in write-protected.
	 */
	if (write && (atomic_load(&r->readonly) || pager_ctl_page(r, pg) || r->release))
		write = false;
	if (!r->shared && atomic_load_explicit(&p->hold, memory_order_acquire)) {
		/* Parked until the migration source's hand-over is here (pager_hold_release). */
		if (!pf_end)
			CTR_ADD(p, faults_parked, 1);
		return;
	}
	if ((rc = pager_sec_down(p, r, (unsigned)sec)) != 0) {
		/* Parked: woken when the node answers again (source.c). */
		if (!pf_end) {
			CTR_ADD(p, faults_parked, 1);
			if (p->cfg.fail_mode == PAGER_FAIL_SIGBUS)
				fail_fault(p, rc, addr, tid);
		}
		return;
	}
	if (!pf_end && pager_stash_pending(t->stash) &&
	    atomic_load(&p->budget_pages) != UINT64_MAX &&
	    atomic_load(&p->resident) + p->cluster > atomic_load(&p->budget_pages)) {
		/*
		 * Never wait for space holding claims (a flush waits for them),
		 * and neighbours installed now would only be evicted: give
		 * them up.
		 */
		struct pager_stash_ent *e;

		while ((e = pager_stash_oldest(t->stash)))
			stash_drop(t, stash_region(p, e), e);
	}
	if (!pf_end)
		pager_budget_wait_space(p);
	if (pager_sec_fenced(r, sec))
		return;   /* fenced while we waited: parked until the section is woken */

	/* Window: aligned cluster, extended forward while access is sequential. */
	sequential = pg == atomic_load_explicit(&r->next_seq, memory_order_relaxed);
	win = atomic_load_explicit(&r->window, memory_order_relaxed);
	budget = atomic_load(&p->budget_pages);
	if (pf_end) {
		/* Prefetch: the run from here, as far as one request goes. */
		start = pg;
		end = MIN(pf_end, pg + p->max_window);
	} else {
		/*
		 * Under budget pressure a random fault's neighbours mostly
		 * evict pages that will be needed again: fetch a smaller cluster.
		 */
		uint32_t clu = p->cluster;

		if (!sequential && budget != UINT64_MAX &&
		    atomic_load(&p->resident) + p->cluster > budget)
			clu = p->pcluster;
		win = sequential ? MIN(MAX(win * 2, p->cluster), p->max_window) : clu;
		start = pg - pg % clu;
		end = MAX(start + clu, pg + win);
	}
	if (pf_end && budget != UINT64_MAX) {
		/* Prefetch never evicts what the guest has: only the room left. */
		uint64_t res = atomic_load(&p->resident);

		if (res >= budget)
			return;
		end = MIN(end, start + (budget - res));
	}
	if (budget != UINT64_MAX)
		end = MIN(end, pg + MAX(budget / 4, 1));
	end = MIN(end, MIN(sec_end, start + MIN(maxp, p->max_window)));
	if (end <= pg)
		end = pg + 1;
	if (sequential && write)
		wr_end = MIN(end, pg + pager_write_ahead(p, r));
	if (t->stash && !pf_end) {
		/* A sealed neighbour we hold (BUSY, ours): the guest is back in its cluster. */
		struct pager_stash_ent *e = pager_stash_find(t->stash, r->idx, r->gen, pg);

		if (e) {
			pager_stash_install(t, r, e);
			return;
		}
	}
	/*
	 * A random fault on a sealed slot: its neighbours will stay sealed in
	 * a stash entry, fetched straight into its buffer. All held: the
	 * oldest is given up unopened.
	 */
	if (pager_rcrypt(p, r) && t->stash && !pf_end && !sequential && end - start <= PAGER_STASH_PAGES) {
		se = pager_stash_unused(t->stash);
		if (!se) {
			struct pager_region *or;

			se = pager_stash_oldest(t->stash);
			or = stash_region(p, se);
			if (or && pager_stash_keep(t->stash)) {
				/* The guest comes back to neighbours: open them (on this fault's time). */
				pager_rcu_set_key(&p->rcu, t->rcu_idx, pager_sec_key(or, se->sec));
				pager_stash_install(t, or, se);
				pager_rcu_set_key(&p->rcu, t->rcu_idx, pager_sec_key(r, sec));
			} else {
				stash_drop(t, or, se);
			}
		}
		buf = se->buf;
	}

	pthread_mutex_lock(&p->lock);
	{
		uint8_t sf = st_get(r, pg);

		if ((sf & (ST_BUSY | ST_PRESENT)) == ST_PRESENT && !pager_file_has_data(r, pg, 1)) {
			/*
			 * PRESENT but a hole: punched behind our back (fallocate
			 * sends no event). A clean page comes back from the memory
			 * node, as after an eviction; a dirty one never reached it,
			 * so its content is what the punch left: zeros (DISCARD).
			 */
			st_set(r, pg, (sf & (ST_DIRTY | ST_DISCARD)) ? ST_DISCARD : 0);
			added--;
			CTR_ADD(p, pages_punched, 1);
			sf = st_get(r, pg);
		}
		if (sf & (ST_BUSY | ST_PRESENT)) {
			pthread_mutex_unlock(&p->lock);
			/* BUSY: the owner wakes it. PRESENT: installed meanwhile. */
			if (sf & ST_PRESENT)
				(void)pager_uffd_wake(r, pg, 1);
			return;
		}
	}
	memset(t->claimed, 0, end - start);
	for (i = start; i < end; i++) {
		uint8_t sv = st_get(r, i);

		if (sv & (ST_BUSY | ST_PRESENT))
			continue;
		if (pager_rcrypt(p, r) && (r->hist[i] & HIST_DROPPED)) {
			r->hist[i] &= (uint8_t)~HIST_DROPPED;
			if (i == pg && t->stash && !pf_end)
				t->stash->regrets++;   /* a neighbour given up was needed */
		}
		st_set(r, i, sv | ST_BUSY);
		t->claimed[i - start] = 1;
		nclaimed++;
		if (!(sv & ST_DISCARD)) {
			first = MIN(first, i);
			last = i;
			nfetch_claimed++;
		}
	}
	/*
	 * Cached pages soon: an acquire has work. Before any is installed (the
	 * install wakes the guest, which may store to ACQUIRE at once).
	 */
	if (r->release && nclaimed)
		pager_release_arm_locked(r, 1);
	pthread_mutex_unlock(&p->lock);

	/* One round trip for every claimed page that needs data. */
	if (nfetch_claimed) {
		struct fetch_where w = { r, sec };
		uint64_t f0 = now_ns();

		rc = pager_source_fetch_sec(p, &t->conn, r, (unsigned)sec,
					    (uint32_t)(first - sec_start),
					    (uint32_t)(last - first + 1), buf + (first - start) * PS,
					    fetch_cancelled_cb, &w, &fetched_from);
		hist_observe(&p->h_fetch, now_ns() - f0);
		if (rc == -EBADMSG)
			rc = -EPROTO;   /* a malformed reply: a transport error, not a bad page */
		/*
		 * Sealed pages: open (authenticate) every claimed page that came
		 * from the node before it is installed. A random fault opens its
		 * own page first and installs it alone (below): the faulting
		 * thread does not wait for the cipher's work on its neighbours,
		 * which stay sealed in the stash (stash.h) or, for a range too
		 * long for it, are opened after the wake. A sequential fault's
		 * window is all needed next: opened in one pass, installed at once.
		 */
		early = pager_rcrypt(p, r) && !pf_end && !sequential && t->claimed[pg - start];
		for (i = first; rc >= 0 && pager_rcrypt(p, r) && i <= last; i++)
			if (t->claimed[i - start] && !(st_get(r, i) & ST_DISCARD) &&
			    (!early || i == pg))
				rc = pager_open_page(p, r, i, buf + (i - start) * PS);
	}
	if (rc == -EBADMSG) {
		/*
		 * A memory node changed, moved or replayed a page: nothing of
		 * this fetch is installed and the fault stays parked; the VM is
		 * told (on_fail) and goes degraded.
		 */
		pthread_mutex_lock(&p->lock);
		for (i = start; i < end; i++)
			if (t->claimed[i - start])
				st_set(r, i, release_claim(st_get(r, i)));
		pthread_mutex_unlock(&p->lock);
		if (added)
			pager_resident_add(p, added);
		if (!pf_end) {
			CTR_ADD(p, faults_parked, 1);
			fail_fault(p, rc, addr, tid);
		}
		return;
	}
	if (rc < 0) {
		pthread_mutex_lock(&p->lock);
		for (i = start; i < end; i++)
			if (t->claimed[i - start])
				st_set(r, i, release_claim(st_get(r, i)));
		pthread_mutex_unlock(&p->lock);
		if (added)
			pager_resident_add(p, added);
		if (rc == -ECANCELED && (fetch_cancelled(r, sec) || atomic_load(&p->stop)))
			return;   /* removal/section change: the fault stays parked */
		if (pager_err_transport(rc))
			pager_node_failed(p, &fetched_from, rc);   /* later faults on it park at once */
		if (pf_end) {
			log_debug("pager %s: prefetch: %s", p->name, strerror(-rc));
			return;   /* a fault on these pages fetches (or parks) as usual */
		}
		CTR_ADD(p, faults_parked, 1);
		fail_fault(p, rc, addr, tid);
		return;   /* parked: the node's recovery wakes it */
	}

	/* Zeros for discarded pages (and for pages removed while we fetched). */
	for (i = start; i < end; i++)
		if (t->claimed[i - start] && (st_get(r, i) & (ST_DISCARD | ST_RMV)))
			memset(buf + (i - start) * PS, 0, PS);

	CTR_ADD(p, pages_fetched, nfetch_claimed);
	CTR_ADD(p, pages_zero, nclaimed - nfetch_claimed);
	if (pf_end)
		CTR_ADD(p, pages_hot_prefetched, nfetch_claimed);
	else if (end > start + p->cluster)
		CTR_ADD(p, pages_prefetched, end - (start + p->cluster));

	/* Install runs of claimed pages; exists[] flags pages someone else installed. */
	{
		uint8_t exists[PROTO_MAX_PAGES];

		memset(exists, 0, end - start);
		if (early) {
			rc = install(t, r, pg, 1, buf + (pg - start) * PS,
				     write ? 0 : UFFDIO_COPY_MODE_WP, exists, start);
			t->claimed[pg - start] = 2;   /* installed: in no run below */
			wr_end = pg + 1;
			if (se && rc == 0) {
				/* The rest stays sealed, BUSY, in se (stash.h). */
				uint64_t n = 0;

				memset(se->claimed, 0, sizeof(se->claimed));
				for (i = start; i < end; i++)
					if (t->claimed[i - start] == 1) {
						se->claimed[i - start] = 1;
						t->claimed[i - start] = 0;
						n++;
					}
				if (n) {
					se->region = r->idx;
					se->gen = r->gen;
					se->start = start;
					se->n = end - start;
					se->sec = sec;
					se->resets = __atomic_load_n(&r->resets[sec],
								     __ATOMIC_SEQ_CST);
					pager_stash_hold(t->stash, se);
					CTR_ADD(p, pages_stashed, n);
				}
			}
			for (i = first; rc == 0 && !se && i <= last; i++) {
				if (t->claimed[i - start] != 1 || (st_get(r, i) & ST_DISCARD) ||
				    pager_open_page(p, r, i, buf + (i - start) * PS) == 0)
					continue;
				/* Not installed: a fault on it finds it bad again, and parks. */
				pthread_mutex_lock(&p->lock);
				st_set(r, i, release_claim(st_get(r, i)));
				pthread_mutex_unlock(&p->lock);
				t->claimed[i - start] = 0;
			}
		}
		for (i = start; i < end && rc == 0;) {
			uint64_t j = i, split;

			if (t->claimed[i - start] != 1) {
				i++;
				continue;
			}
			while (j < end && t->claimed[j - start] == 1)
				j++;
			/* [i, j): WP before the writer's range, writable inside it, WP after. */
			split = i;
			if (write && pg >= i && pg < j) {
				if (pg > i)
					rc = install(t, r, i, pg - i, buf + (i - start) * PS,
						     UFFDIO_COPY_MODE_WP, exists, start);
				split = MIN(wr_end, j);
				if (rc == 0)
					rc = install(t, r, pg, split - pg, buf + (pg - start) * PS,
						     0, exists, start);
			}
			if (rc == 0 && split < j)
				rc = install(t, r, split, j - split, buf + (split - start) * PS,
					     UFFDIO_COPY_MODE_WP, exists, start);
			i = j;
		}

		pthread_mutex_lock(&p->lock);
		for (i = start; i < end; i++) {
			uint8_t sv;

			if (!t->claimed[i - start])
				continue;
			sv = st_get(r, i);
			if (rc < 0 && !pager_file_has_data(r, i, 1)) {
				/* Not installed: release, let the thread refault. */
				st_set(r, i, release_claim(sv));
				continue;
			}
			if (rc < 0) {
				/*
				 * Installed before the COPY failed (a partial
				 * copy): resident, and dirty, since whether it
				 * went in write-protected is not known. A REMOVE
				 * meanwhile makes it zeros (punched below).
				 */
				st_set(r, i, (sv & ST_DISCARD) | (sv & ST_RMV ? ST_DISCARD | ST_RMV : 0) |
						     ST_PRESENT | ST_DIRTY);
				added++;
				continue;
			}
			if (exists[i - start]) {
				/* Someone else put it there: its content is unknown to us. */
				st_set(r, i, (sv & ~(ST_BUSY | ST_RMV)) | ST_PRESENT | ST_DIRTY);
			} else {
				uint8_t nv = (sv & ST_DISCARD) | ST_PRESENT | ST_REF;

				if (write && i >= pg && i < wr_end)
					nv |= ST_DIRTY;
				if (sv & ST_RMV)
					nv |= ST_DISCARD | ST_RMV; /* punched below */
				st_set(r, i, nv);
			}
			added++;
		}
		pthread_mutex_unlock(&p->lock);
		if (rc < 0 || exists[pg - start] || !t->claimed[pg - start])
			fault_wake = true;
	}
	if (added)
		pager_resident_add(p, added);

	/* A REMOVE raced with us: make sure those pages read as zeros. */
	for (i = start; i < end; i++) {
		if (!t->claimed[i - start] || !(st_get(r, i) & ST_RMV))
			continue;
		pthread_mutex_lock(&p->lock);
		st_set(r, i, ST_DISCARD);
		pthread_mutex_unlock(&p->lock);
		(void)pager_punch(r, i, 1);
		pager_resident_add(p, -1);
	}
	if (p->nthreads > 1)
		/*
		 * Another fault thread may have deferred a fault on one of our
		 * BUSY pages (a WP fault on a page we installed but had not yet
		 * recorded): the COPY's own wake came too early for it.
		 */
		(void)pager_uffd_wake(r, start, end - start);
	else if (fault_wake)
		(void)pager_uffd_wake(r, pg, 1);
	if (rc < 0)
		pager_count_error(p, rc, pf_end ? "prefetch window" : "serving a missing fault");

	if (pf_end)
		return;   /* the guest's sequential detection and latencies are its own */
	if (write && rc == 0)
		/* A writer goes on at the first page installed write-protected. */
		atomic_store_explicit(&r->wp_next, wr_end, memory_order_relaxed);
	atomic_store_explicit(&r->next_seq, end, memory_order_relaxed);
	atomic_store_explicit(&r->window, win, memory_order_relaxed);
	hist_observe(&p->h_fault, now_ns() - t0);
}
