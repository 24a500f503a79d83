// SPDX-License-Identifier: MIT
/*
 * The pager's fault path: fault threads read uffd messages and serve them.
 *
 * MISSING fault on a remote section: claim (BUSY) the absent pages of an
 * aligned cluster around the faulting page, extended forward by the
 * sequential-prefetch window; fetch them from the backend in one round trip
 * on the thread's own connection; install each run of claimed pages with
 * UFFDIO_COPY (write-protected, except the faulting page and, for a
 * sequential writer, the pages after it, which go in writable and dirty).
 * Present pages are never overwritten: only claimed pages are copied, and
 * an EEXIST (someone else installed the page) is skipped and woken.
 * MISSING on a local section: UFFDIO_ZEROPAGE of the cluster.
 * WP fault: mark dirty and un-protect (under the lock, so an eviction that
 * starts later sees the page dirty). REMOVE event: the range becomes absent
 * zero pages ("discarded"), the file range is punched, dirty state dropped.
 *
 * The fault thread never waits for another thread on the fast path; it
 * spins on its uffds for cfg.spin_us before it sleeps in epoll_wait.
 *
 * A MISSING fault on a page the pager has as PRESENT is either stale (the
 * page was installed after the fault was queued) or the page was punched
 * behind the pager's back (fallocate on the file sends no uffd event): the
 * file says which (SEEK_DATA), and a punched page is served again.
 *
 * Hotplug: pager_remove_region() and pager_region_set_section()
 * (pager_hotplug.c) unpublish what they change (empty slot, dead region,
 * fenced section), wait for a grace period of the fault threads
 * (pager_synchronize: every thread has left the critical section it was
 * in), and hold io_lock so that no eviction or flush batch is in flight.
 */
#include "pager_internal.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include "log.h"
#include "net.h"

#define BACKLOG_MAX 256

struct pager_thread {
	struct pager *p;
	unsigned idx;
	void *conn;
	uint8_t *buf;
	uint8_t *claimed;
	struct uffd_msg backlog[BACKLOG_MAX];
	unsigned nbacklog;
	struct pager_region *backlog_r[BACKLOG_MAX];
};

/* ---- small uffd/file helpers ---------------------------------------------- */

int pager_uffd_wake(struct pager_region *r, uint64_t pg, uint64_t npages)
{
	struct uffdio_range rg = { .start = r->base + pg * PS, .len = npages * PS };

	return ioctl(r->uffd, UFFDIO_WAKE, &rg) < 0 ? -errno : 0;
}

int pager_uffd_wp(struct pager_region *r, uint64_t pg, uint64_t npages, bool protect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = r->base + pg * PS, .len = npages * PS },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0, /* WP|DONTWAKE is EINVAL */
	};

	return ioctl(r->uffd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

int pager_punch(struct pager_region *r, uint64_t pg, uint64_t npages)
{
	int rc = fallocate(r->file_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			   (off_t)(r->file_offset + pg * PS), (off_t)(npages * PS));

	return rc < 0 ? -errno : 0;
}

/* Does the file hold data in pages [pg, pg+npages)? (tmpfs: exact per page) */
bool pager_file_has_data(struct pager_region *r, uint64_t pg, uint64_t npages)
{
	off_t off = (off_t)(r->file_offset + pg * PS);
	off_t d = lseek(r->file_fd, off, SEEK_DATA);

	if (d < 0)
		return errno != ENXIO;   /* ENXIO: only holes up to EOF; else assume data */
	return (uint64_t)d < r->file_offset + (pg + npages) * PS;
}

uint64_t pager_file_runs(struct pager *p, struct pager_region *r, uint64_t pg0, uint64_t n,
			 bool data, pager_run_fn fn)
{
	off_t end = (off_t)(r->file_offset + (pg0 + n) * PS);
	off_t off = (off_t)(r->file_offset + pg0 * PS);
	uint64_t sum = 0;

	while (off < end) {
		off_t a = lseek(r->file_fd, off, data ? SEEK_DATA : SEEK_HOLE), b;

		if (a < 0 || a >= end)
			break;
		b = lseek(r->file_fd, a, data ? SEEK_HOLE : SEEK_DATA);
		if (b < 0 || b > end)
			b = end;
		sum += fn(p, r, ((uint64_t)a - r->file_offset) / PS,
			  ((uint64_t)b - r->file_offset + PS - 1) / PS);
		off = b;
	}
	return sum;
}

/*
 * Grace period: wait until every fault thread that was inside a read-side
 * critical section when we were called has left it. Callers unpublish first
 * (slot, dead, fence: seq_cst stores), so a thread entering later sees that.
 */
void pager_synchronize(struct pager *p)
{
	uint64_t snap[64], *sp = snap;
	_cleanup_free_ uint64_t *heap = NULL;

	if (!p->qs)
		return;
	/*
	 * A fault thread waiting for budget space (up to 200 ms) is inside its
	 * critical section, and the caller may hold io_lock, which the evictor
	 * needs to make space: tell such threads to stop waiting.
	 */
	atomic_fetch_add(&p->sync_req, 1);
	pthread_mutex_lock(&p->lock);
	pthread_cond_broadcast(&p->space_cond);
	pthread_mutex_unlock(&p->lock);
	if (p->nthreads > ARRAY_SIZE(snap)) {
		heap = calloc(p->nthreads, sizeof(*heap));
		if (!heap) {
			/* No memory for snapshots: wait for each thread to be outside. */
			for (unsigned i = 0; i < p->nthreads; i++)
				while (atomic_load(&p->qs[i].seq) & 1)
					usleep(50);
			atomic_fetch_sub(&p->sync_req, 1);
			return;
		}
		sp = heap;
	}
	for (unsigned i = 0; i < p->nthreads; i++)
		sp[i] = atomic_load(&p->qs[i].seq);
	for (unsigned i = 0; i < p->nthreads; i++) {
		unsigned us = 10;

		if (!(sp[i] & 1))
			continue;
		while (atomic_load(&p->qs[i].seq) == sp[i]) {
			usleep(us);
			us = MIN(us * 2, 1000u);
		}
	}
	atomic_fetch_sub(&p->sync_req, 1);
}

/*
 * Grace period for one section of r, whose fence the caller has raised
 * (seq_cst): wait only for the fault threads serving a fault in that
 * section. A fault thread publishes the section (seq_cst) before it checks
 * the fence, so either it sees the fence and keeps off, or we see it and
 * wait for it. Faults on other sections go on meanwhile (memory migration
 * pauses one section, not the VM).
 */
static bool section_in_use(struct pager *p, uint64_t key)
{
	for (unsigned i = 0; i < p->nthreads; i++)
		if (atomic_load(&p->qs[i].sec) == key)
			return true;
	return false;
}

void pager_synchronize_section(struct pager *p, struct pager_region *r, uint64_t sec)
{
	uint64_t key = pager_qs_key(r, sec);
	unsigned us = 10;

	if (!p->qs)
		return;
	atomic_fetch_add(&p->sync_req, 1);   /* cut short a wait for budget space */
	pthread_mutex_lock(&p->lock);
	pthread_cond_broadcast(&p->space_cond);
	pthread_mutex_unlock(&p->lock);
	while (section_in_use(p, key)) {
		usleep(us);
		us = MIN(us * 2, 1000u);
	}
	atomic_fetch_sub(&p->sync_req, 1);
}

bool pager_wait_section_quiet(struct pager *p, struct pager_region *r, uint64_t sec,
			      unsigned max_ms)
{
	uint64_t key = pager_qs_key(r, sec), end = now_ns() + max_ms * 1000000ull;

	if (!p->qs)
		return true;
	while (section_in_use(p, key)) {
		if (now_ns() > end)
			return false;
		usleep(20);
	}
	return true;
}

void pager_resident_add(struct pager *p, int64_t n)
{
	uint64_t v = atomic_fetch_add(&p->resident, (uint64_t)n) + (uint64_t)n;

	if (n > 0) {
		uint64_t m = atomic_load(&p->max_resident);
		while (v > m && !atomic_compare_exchange_weak(&p->max_resident, &m, v))
			;
		if (v > atomic_load(&p->budget_pages))
			pthread_cond_signal(&p->evict_cond);
	} else {
		pthread_cond_broadcast(&p->space_cond);
	}
}

/*
 * A fault that cannot be served now: report, and signal the thread if asked
 * to. The fault stays parked; nothing is sticky (pager_nodes.c).
 */
void pager_fail(struct pager *p, int err, uint64_t addr, uint32_t tid)
{
	CTR_ADD(p, errors, 1);
	log_debug("pager %s: fault at 0x%llx: %s", p->name, (unsigned long long)addr,
		  strerror(-err));
	if (p->cfg.on_fail)
		p->cfg.on_fail(p->cfg.opaque, err, addr, tid);
	if (p->cfg.fail_mode == PAGER_FAIL_SIGBUS && tid)
		syscall(SYS_tgkill, p->cfg.fail_pid ? p->cfg.fail_pid : getpid(), (pid_t)tid,
			SIGBUS);
}

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
			st_set(r, pg, (uint8_t)((s | ST_RMV) & ~ST_DIRTY));
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

/* Read what is pending on r->uffd: events are handled now, faults kept for later. */
static void drain_events(struct pager_thread *t, struct pager_region *r)
{
	struct uffd_msg msgs[PAGER_UMSG_BATCH];

	while (t->nbacklog < BACKLOG_MAX - PAGER_UMSG_BATCH) {
		ssize_t n = read(r->uffd, msgs, sizeof(msgs));

		if (n <= 0)
			break;
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event == UFFD_EVENT_REMOVE) {
				pager_handle_remove(t->p, r, msgs[i].arg.remove.start, msgs[i].arg.remove.end);
			} else {
				t->backlog_r[t->nbacklog] = r;
				t->backlog[t->nbacklog++] = msgs[i];
			}
		}
	}
}

/* ---- installing pages ---------------------------------------------------- */

/*
 * Fill pages [pg, pg+n): UFFDIO_COPY from src, or UFFDIO_ZEROPAGE when src is
 * NULL. Pages that turn out to exist already are skipped, flagged in
 * exists[] (relative to base_pg) when given, and *ret_watch_exists is set if
 * one of them is watch_pg. EAGAIN (the mapping is changing) is retried
 * after reading the pending events.
 */
static int mfill(struct pager_thread *t, struct pager_region *r, uint64_t pg, uint64_t n,
		 const uint8_t *src, uint64_t mode, uint8_t *exists, uint64_t base_pg,
		 uint64_t watch_pg, bool *ret_watch_exists)
{
	uint64_t i = 0;
	unsigned spins = 0;

	while (i < n) {
		uint64_t start = r->base + (pg + i) * PS, len = (n - i) * PS;
		int64_t done;
		int rc, e;

		if (src) {
			struct uffdio_copy c = {
				.dst = start, .src = (uintptr_t)(src + i * PS), .len = len, .mode = mode,
			};

			rc = ioctl(r->uffd, UFFDIO_COPY, &c);
			e = errno;
			done = c.copy;
		} else {
			struct uffdio_zeropage z = { .range = { .start = start, .len = len } };

			rc = ioctl(r->uffd, UFFDIO_ZEROPAGE, &z);
			e = errno;
			done = z.zeropage;
		}
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
			drain_events(t, r);
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

static int install(struct pager_thread *t, struct pager_region *r, uint64_t pg, uint64_t n,
		   const uint8_t *src, uint64_t mode, uint8_t *exists, uint64_t base_pg)
{
	return mfill(t, r, pg, n, src, mode, exists, base_pg, 0, NULL);
}

static int zeropage(struct pager_thread *t, struct pager_region *r, uint64_t pg, uint64_t n,
		    bool *ret_fault_exists, uint64_t fault_pg)
{
	return mfill(t, r, pg, n, NULL, 0, NULL, 0, fault_pg, ret_fault_exists);
}

/* ---- faults ---------------------------------------------------------------- */

static void serve_local(struct pager_thread *t, struct pager_region *r, uint64_t pg)
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

struct fetch_arg {
	const struct pager_section *s;
	uint32_t page, npages;
	void *buf;
};

struct fetch_ctx {
	struct pager *p;
	struct pager_region *r;
	uint64_t sec;
	struct fetch_arg a;
};

/* The region is being removed or the section changed: stop retrying. */
static bool fetch_cancelled(struct pager_region *r, uint64_t sec)
{
	return atomic_load(&r->dead) || pager_sec_fenced(r, sec);
}

static int fetch_cb(void *conn, void *arg)
{
	struct fetch_ctx *f = arg;

	if (fetch_cancelled(f->r, f->sec))
		return -ECANCELED;
	return f->p->cfg.backend->ops->fetch(conn, f->a.s, f->a.page, f->a.npages, f->a.buf);
}

/* Wait (bounded) while the resident set is over the hard limit. */
static void wait_for_space(struct pager *p)
{
	struct timespec ts;

	if (atomic_load(&p->resident) <= pager_hard_limit(p))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 200 * 1000 * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&p->lock);
	pthread_cond_signal(&p->evict_cond);
	while (!atomic_load(&p->stop) && !atomic_load(&p->sync_req) &&
	       atomic_load(&p->resident) > pager_hard_limit(p))
		if (pthread_cond_timedwait(&p->space_cond, &p->lock, &ts) != 0)
			break;
	pthread_mutex_unlock(&p->lock);
}

/* State of a claimed page given up uninstalled: a REMOVE meanwhile means zeros. */
static uint8_t release_claim(uint8_t sv)
{
	return (sv & ST_RMV) ? ST_DISCARD : (uint8_t)(sv & ~ST_BUSY);
}

/*
 * A MISSING fault at addr. pf_end != 0: a prefetch of [page of addr,
 * pf_end) that no thread waits for (prefetch_step): no wait for space, no
 * fault statistics, and a failure drops the prefetch instead of failing
 * the pager.
 */
static void handle_missing(struct pager_thread *t, struct pager_region *r, uint64_t addr,
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
	bool sequential, fault_wake = false;
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
	if (pager_sec_down(p, s)) {
		/* Parked: woken when the node answers again (pager_nodes.c). */
		if (!pf_end) {
			CTR_ADD(p, faults_parked, 1);
			if (p->cfg.fail_mode == PAGER_FAIL_SIGBUS)
				pager_fail(p, pager_node_down(p, s->grant.memnode_id), addr, tid);
		}
		return;
	}
	if (!pf_end)
		wait_for_space(p);
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
		wr_end = end;

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
		st_set(r, i, sv | ST_BUSY);
		t->claimed[i - start] = 1;
		nclaimed++;
		if (!(sv & ST_DISCARD)) {
			first = MIN(first, i);
			last = i;
			nfetch_claimed++;
		}
	}
	pthread_mutex_unlock(&p->lock);

	/* One round trip for every claimed page that needs data. */
	if (nfetch_claimed) {
		struct fetch_ctx f = {
			.p = p,
			.r = r,
			.sec = sec,
			.a = { s, (uint32_t)(first - sec_start), (uint32_t)(last - first + 1),
			       t->buf + (first - start) * PS },
		};
		uint64_t f0 = now_ns();

		rc = pager_retry_io(p, &t->conn, fetch_cb, &f);
		hist_observe(&p->h_fetch, now_ns() - f0);
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
			pager_node_failed(p, s, rc);   /* later faults on it park at once */
		if (pf_end) {
			log_debug("pager %s: prefetch: %s", p->name, strerror(-rc));
			return;   /* a fault on these pages fetches (or parks) as usual */
		}
		CTR_ADD(p, faults_parked, 1);
		pager_fail(p, rc, addr, tid);
		return;   /* parked: the node's recovery wakes it */
	}

	/* Zeros for discarded pages (and for pages removed while we fetched). */
	for (i = start; i < end; i++)
		if (t->claimed[i - start] && (st_get(r, i) & (ST_DISCARD | ST_RMV)))
			memset(t->buf + (i - start) * PS, 0, PS);

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
		for (i = start; i < end && rc == 0;) {
			uint64_t j = i, split;

			if (!t->claimed[i - start]) {
				i++;
				continue;
			}
			while (j < end && t->claimed[j - start])
				j++;
			/* [i, j): WP before the writer's range, writable inside it, WP after. */
			split = i;
			if (write && pg >= i && pg < j) {
				if (pg > i)
					rc = install(t, r, i, pg - i, t->buf + (i - start) * PS,
						     UFFDIO_COPY_MODE_WP, exists, start);
				split = MIN(wr_end, j);
				if (rc == 0)
					rc = install(t, r, pg, split - pg, t->buf + (pg - start) * PS,
						     0, exists, start);
			}
			if (rc == 0 && split < j)
				rc = install(t, r, split, j - split, t->buf + (split - start) * PS,
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
		CTR_ADD(p, errors, 1);

	if (pf_end)
		return;   /* the guest's sequential detection and latencies are its own */
	atomic_store_explicit(&r->next_seq, end, memory_order_relaxed);
	atomic_store_explicit(&r->window, win, memory_order_relaxed);
	hist_observe(&p->h_fault, now_ns() - t0);
}

/*
 * One window of the prefetch queue (pager_hot.c), from the fault loop when
 * pf_efd fires. Real faults are served between two calls.
 */
static void prefetch_step(struct pager_thread *t)
{
	struct pager *p = t->p;
	struct pager_region *r;
	struct pager_pf w;
	uint64_t v;

	(void)!read(p->pf_efd, &v, sizeof(v));
	if (!pager_pf_take(p, p->max_window, &w))
		return;
	pager_qs_enter(p, t->idx);
	r = atomic_load(&p->regions[w.region]);
	for (uint64_t pg = w.pg; r && r->gen == w.gen && pg < w.pg + w.n && pg < r->npages; pg++) {
		if (st_get(r, pg) & (ST_PRESENT | ST_BUSY))
			continue;   /* handle_missing checks again under the lock */
		/* Seen by memory-migration commits, as a fault would be. */
		atomic_store(&p->qs[t->idx].sec, pager_qs_key(r, pg / p->sec_pages));
		handle_missing(t, r, r->base + pg * PS, false, 0, w.pg + w.n);
		atomic_store(&p->qs[t->idx].sec, 0);
		if (!(st_get(r, pg) & (ST_PRESENT | ST_BUSY)))
			break;      /* not fetched (budget, failure, fence): drop the rest */
	}
	pager_qs_exit(p, t->idx);
	if (pager_pf_pending(p)) {
		uint64_t one = 1;

		(void)!write(p->pf_efd, &one, sizeof(one));
	}
}

static void handle_wp(struct pager_thread *t, struct pager_region *r, uint64_t addr)
{
	struct pager *p = t->p;
	uint64_t pg = (addr - r->base) / PS;
	unsigned tries = 0;

	CTR_ADD(p, faults_wp, 1);
	if (atomic_load(&r->dead) || pager_sec_fenced(r, pg / p->sec_pages))
		return;    /* parked: see handle_missing */
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
			pthread_mutex_unlock(&p->lock);
			return;
		}
		if (!(s & ST_PRESENT)) {
			pthread_mutex_unlock(&p->lock);
			(void)pager_uffd_wake(r, pg, 1);  /* refaults as MISSING */
			return;
		}
		/* Un-protect under the lock: an eviction that starts later sees DIRTY. */
		rc = pager_uffd_wp(r, pg, 1, false);
		if (rc == 0)
			st_set(r, pg, s | ST_DIRTY | ST_REF);
		pthread_mutex_unlock(&p->lock);
		if (rc != -EAGAIN || ++tries > 1000) {
			if (rc < 0) {
				CTR_ADD(p, errors, 1);
				(void)pager_uffd_wake(r, pg, 1);
			}
			return;
		}
		CTR_ADD(p, eagain, 1);
		drain_events(t, r);
	}
}

static void handle_msg(struct pager_thread *t, struct pager_region *r, const struct uffd_msg *m)
{
	if (m->event == UFFD_EVENT_PAGEFAULT) {
		uint64_t addr = m->arg.pagefault.address & ~((uint64_t)PS - 1);
		uint64_t fl = m->arg.pagefault.flags;

		CTR_ADD(t->p, faults, 1);
		if (addr < r->base || addr >= r->base + r->length)
			return;
		/* Before any fence check (pager_synchronize_section). */
		atomic_store(&t->p->qs[t->idx].sec,
			     pager_qs_key(r, (addr - r->base) / PS / t->p->sec_pages));
		pager_hot_note(t->p, r, (addr - r->base) / PS);
		if (fl & UFFD_PAGEFAULT_FLAG_WP)
			handle_wp(t, r, addr);
		else
			handle_missing(t, r, addr, fl & UFFD_PAGEFAULT_FLAG_WRITE,
				       m->arg.pagefault.feat.ptid, 0);
		atomic_store(&t->p->qs[t->idx].sec, 0);
	} else if (m->event == UFFD_EVENT_REMOVE) {
		pager_handle_remove(t->p, r, m->arg.remove.start, m->arg.remove.end);
	}
}

/* Read and serve what r's uffd has. Returns messages handled. */
static int serve_region(struct pager_thread *t, struct pager_region *r)
{
	struct uffd_msg msgs[PAGER_UMSG_BATCH];
	ssize_t n;
	int k = 0;

	if (atomic_load(&r->dead))
		return 0;
	n = read(r->uffd, msgs, sizeof(msgs));
	if (n <= 0)
		return 0;
	for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++, k++)
		handle_msg(t, r, &msgs[i]);
	while (t->nbacklog) {
		/* Faults read while draining events; serve them in order. */
		unsigned nb = t->nbacklog;
		struct uffd_msg tmp[BACKLOG_MAX];
		struct pager_region *tr[BACKLOG_MAX];

		memcpy(tmp, t->backlog, nb * sizeof(tmp[0]));
		memcpy(tr, t->backlog_r, nb * sizeof(tr[0]));
		t->nbacklog = 0;
		for (unsigned i = 0; i < nb; i++, k++)
			handle_msg(t, tr[i], &tmp[i]);
	}
	return k;
}

static void *fault_thread_main(void *arg)
{
	struct pager_thread *t = arg;
	struct pager *p = t->p;
	int rc;

	if (p->cfg.cpu_mask) {
		cpu_set_t set;

		CPU_ZERO(&set);
		for (unsigned c = 0; c < 8 * sizeof(p->cfg.cpu_mask); c++)
			if (p->cfg.cpu_mask & (1ul << c))
				CPU_SET(c, &set);
		(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	rc = p->cfg.backend->ops->conn_open(p->cfg.backend->priv, &t->conn);
	if (rc < 0) {
		log_debug("pager %s: fault thread connection: %s", p->name, strerror(-rc));
		t->conn = NULL;
	}
	while (!atomic_load(&p->stop)) {
		struct epoll_event ev[8];
		unsigned nr = atomic_load(&p->nslots);
		uint64_t deadline = p->cfg.spin_us ? now_ns() + p->cfg.spin_us * 1000ull : 0;
		int n, got;

		/*
		 * Spin: poll every uffd without sleeping, restart the spin on work.
		 * A region pointer is only used inside qs_enter/qs_exit.
		 */
		do {
			got = 0;
			for (unsigned i = 0; i < nr; i++) {
				struct pager_region *r;

				pager_qs_enter(p, t->idx);
				r = atomic_load(&p->regions[i]);
				if (r)
					got += serve_region(t, r);
				pager_qs_exit(p, t->idx);
			}
			if (got && p->cfg.spin_us)
				deadline = now_ns() + p->cfg.spin_us * 1000ull;
		} while ((got || now_ns() < deadline) && !atomic_load(&p->stop));

		/* Sleeping here is a quiescent state: no region pointer is held. */
		n = epoll_wait(p->epfd, ev, ARRAY_SIZE(ev), -1);
		for (int i = 0; i < n; i++) {
			uint32_t idx = (uint32_t)ev[i].data.u64, gen = (uint32_t)(ev[i].data.u64 >> 32);
			struct pager_region *r;

			if (ev[i].data.u64 == PAGER_PF_TAG) {
				prefetch_step(t);
				continue;
			}
			if (ev[i].data.u64 == UINT64_MAX || idx >= PAGER_MAX_REGIONS)
				continue;                 /* stop */
			pager_qs_enter(p, t->idx);
			/* The event may predate a removal (and a reuse of the slot). */
			r = atomic_load(&p->regions[idx]);
			if (r && r->gen == gen)
				serve_region(t, r);
			pager_qs_exit(p, t->idx);
		}
	}
	if (t->conn)
		p->cfg.backend->ops->conn_close(t->conn);
	free(t->buf);
	free(t->claimed);
	free(t);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------ */

int pager_new(const struct pager_config *cfg, struct pager **ret)
{
	struct pager *p;

	if (!cfg || !cfg->backend || !ret)
		return -EINVAL;
	if (cfg->section_size && (cfg->section_size % PS || cfg->section_size / PS > UINT32_MAX))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->epfd = p->stopfd = p->pf_efd = -1;
	p->cfg = *cfg;
	snprintf(p->name, sizeof(p->name), "%s", cfg->name ? cfg->name : "pager");
	p->cfg.name = p->name;
	p->sec_pages = (uint32_t)((cfg->section_size ? cfg->section_size : PAGER_DEFAULT_SECTION) / PS);
	p->cluster = cfg->cluster_pages ? cfg->cluster_pages : 16;
	p->max_window = cfg->max_window_pages ? cfg->max_window_pages : 256;
	p->max_window = MIN(MAX(p->max_window, p->cluster), (uint32_t)PROTO_MAX_PAGES);
	p->cluster = MIN(p->cluster, p->max_window);
	p->pcluster = cfg->pressure_cluster_pages ? cfg->pressure_cluster_pages : 4;
	p->pcluster = MIN(p->pcluster, p->cluster);
	p->batch = cfg->evict_batch ? MIN(cfg->evict_batch, 1024u) : 64;
	if (!p->cfg.fail_timeout_ms)
		p->cfg.fail_timeout_ms = 10000;
	if (!p->cfg.writeback_delay_ms)
		p->cfg.writeback_delay_ms = 1000;
	if (!p->cfg.reconcile_ms)
		p->cfg.reconcile_ms = 10000;
	p->nthreads = cfg->fault_threads ? cfg->fault_threads : 1;
	atomic_store(&p->budget_pages, cfg->budget == UINT64_MAX ? UINT64_MAX : cfg->budget / PS);
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->io_lock, NULL);
	pthread_mutex_init(&p->admin_lock, NULL);
	pthread_cond_init(&p->evict_cond, NULL);
	pthread_cond_init(&p->space_cond, NULL);
	pthread_mutex_init(&p->pf_lock, NULL);
	pthread_mutex_init(&p->node_lock, NULL);
	pthread_cond_init(&p->node_cond, NULL);
	if (p->cfg.probe_ms <= 0)
		p->cfg.probe_ms = 250;
	p->hot = calloc(PAGER_HOT_RING, sizeof(*p->hot));
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	p->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->pf_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->epfd < 0 || p->stopfd < 0 || p->pf_efd < 0 || !p->hot) {
		int e = p->hot ? -errno : -ENOMEM;
		pager_free(p);
		return e;
	}
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = UINT64_MAX };
		struct epoll_event pf = { .events = EPOLLIN, .data.u64 = PAGER_PF_TAG };

		epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->stopfd, &ev);
		epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->pf_efd, &pf);
	}
	*ret = p;
	return 0;
}

void pager_region_free(struct pager_region *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; r->mig && i < r->nsections; i++)
		pager_memmig_free(r->mig[i]);
	free(r->mig);
	free(r->sections);
	free(r->st);
	free(r->dep);
	free(r->fence);
	free(r);
}


int pager_add_region(struct pager *p, const struct pager_region_config *rc)
{
	struct pager_region *r;
	uint64_t secbytes = (uint64_t)p->sec_pages * PS;
	unsigned idx;
	int fl, e;

	if (!rc || rc->length == 0 || rc->length % secbytes || rc->base % PS || !rc->sections ||
	    rc->uffd < 0 || rc->file_fd < 0)
		return -EINVAL;
	for (uint64_t i = 0; i < rc->length / secbytes; i++)
		if (!pager_sec_valid(&rc->sections[i]))
			return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
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
	r->dep = calloc(r->npages, 1);
	r->fence = calloc(r->nsections, 1);
	r->mig = calloc(r->nsections, sizeof(*r->mig));
	r->owner = p;
	if (!r->sections || !r->st || !r->dep || !r->fence || !r->mig) {
		pager_region_free(r);
		return -ENOMEM;
	}
	memcpy(r->sections, rc->sections, r->nsections * sizeof(*r->sections));
	r->next_seq = UINT64_MAX;

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
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = pager_region_epoll_data(r) };

		if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, r->uffd, &ev) < 0) {
			e = -errno;
			atomic_store(&p->regions[idx], NULL);
			for (uint32_t i = 0; i < r->nsections; i++)
				if (r->sections[i].kind == PAGER_SEC_REMOTE)
					atomic_fetch_sub(&p->remote_pages, p->sec_pages);
			/* A fault thread may have picked it up in its spin loop. */
			pager_synchronize(p);
			goto fail;
		}
	}
	p->mode_set = true;
	pthread_mutex_unlock(&p->admin_lock);
	return (int)idx;
fail:
	pthread_mutex_unlock(&p->admin_lock);
	pager_region_free(r);
	return e;
}

static int start_locked(struct pager *p);

int pager_start(struct pager *p)
{
	int rc;

	pthread_mutex_lock(&p->admin_lock);
	rc = start_locked(p);
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

static int start_locked(struct pager *p)
{
	int rc;

	if (p->started)
		return -EALREADY;
	if (p->mode == PAGER_DIRTY_ASYNC_WP && !p->cfg.allow_async_evict &&
	    atomic_load(&p->budget_pages) != UINT64_MAX)
		return -EOPNOTSUPP;
	p->threads = calloc(p->nthreads, sizeof(*p->threads));
	p->qs = calloc(p->nthreads, sizeof(*p->qs));
	if (!p->threads || !p->qs)
		return -ENOMEM;
	p->started = true;
	rc = pthread_create(&p->evictor, NULL, pager_evictor_main, p);
	if (rc)
		return -rc;
	p->evictor_started = true;
	rc = pager_nodes_start(p);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < p->nthreads; i++) {
		struct pager_thread *t = calloc(1, sizeof(*t));
		uint32_t maxp = PROTO_MAX_PAGES;

		if (!t)
			return -ENOMEM;
		t->p = p;
		t->idx = i;
		t->buf = aligned_alloc(PS, (size_t)maxp * PS);
		t->claimed = calloc(maxp, 1);
		if (!t->buf || !t->claimed) {
			free(t->buf);
			free(t->claimed);
			free(t);
			return -ENOMEM;
		}
		rc = pthread_create(&p->threads[i], NULL, fault_thread_main, t);
		if (rc) {
			free(t->buf);
			free(t->claimed);
			free(t);
			return -rc;
		}
	}
	return 0;
}

void pager_free(struct pager *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, true);
	if (p->stopfd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(p->stopfd, &one, sizeof(one));
		(void)w;
	}
	pthread_mutex_lock(&p->lock);
	pthread_cond_broadcast(&p->evict_cond);
	pthread_cond_broadcast(&p->space_cond);
	pthread_mutex_unlock(&p->lock);
	if (p->threads) {
		for (unsigned i = 0; i < p->nthreads; i++) {
			void *tv = NULL;

			if (!p->threads[i])
				continue;
			pthread_join(p->threads[i], &tv);
		}
	}
	if (p->evictor_started)
		pthread_join(p->evictor, NULL);
	pager_nodes_stop(p);
	if (p->mig_conn)
		p->cfg.backend->ops->conn_close(p->mig_conn);
	for (unsigned i = 0; i < PAGER_MAX_REGIONS; i++)
		pager_region_free(atomic_load(&p->regions[i]));
	free(p->threads);
	free(p->qs);
	if (p->epfd >= 0)
		close(p->epfd);
	if (p->stopfd >= 0)
		close(p->stopfd);
	if (p->pf_efd >= 0)
		close(p->pf_efd);
	free(p->pf);
	free(p->hot);
	pthread_mutex_destroy(&p->pf_lock);
	pthread_mutex_destroy(&p->node_lock);
	pthread_cond_destroy(&p->node_cond);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->io_lock);
	pthread_mutex_destroy(&p->admin_lock);
	pthread_cond_destroy(&p->evict_cond);
	pthread_cond_destroy(&p->space_cond);
	free(p);
}
