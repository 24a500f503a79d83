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

#define UMSG_BATCH   16
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

/* A fault that cannot be served: report, and signal the thread if asked to. */
void pager_fail(struct pager *p, int err, uint64_t addr, uint32_t tid)
{
	int expected = 0;

	CTR_ADD(p, errors, 1);
	if (atomic_compare_exchange_strong(&p->failed, &expected, err))
		log_debug("pager %s: failed: %s", p->name, strerror(-err));
	if (p->cfg.on_fail)
		p->cfg.on_fail(p->cfg.opaque, err, addr, tid);
	if (p->cfg.fail_mode == PAGER_FAIL_SIGBUS && tid)
		syscall(SYS_tgkill, p->cfg.fail_pid ? p->cfg.fail_pid : getpid(), (pid_t)tid,
			SIGBUS);
}

/* ---- events --------------------------------------------------------------- */

static void handle_remove(struct pager *p, struct pager_region *r, uint64_t start, uint64_t end)
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
	struct uffd_msg msgs[UMSG_BATCH];

	while (t->nbacklog < BACKLOG_MAX - UMSG_BATCH) {
		ssize_t n = read(r->uffd, msgs, sizeof(msgs));

		if (n <= 0)
			break;
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event == UFFD_EVENT_REMOVE) {
				handle_remove(t->p, r, msgs[i].arg.remove.start, msgs[i].arg.remove.end);
			} else {
				t->backlog_r[t->nbacklog] = r;
				t->backlog[t->nbacklog++] = msgs[i];
			}
		}
	}
}

/* ---- installing pages ---------------------------------------------------- */

/*
 * UFFDIO_COPY pages [pg, pg+n) from src. Pages that turn out to exist
 * already are flagged in exists[] (relative to `base_pg`) and skipped.
 */
static int install(struct pager_thread *t, struct pager_region *r, uint64_t pg, uint64_t n,
		   const uint8_t *src, uint64_t mode, uint8_t *exists, uint64_t base_pg)
{
	uint64_t i = 0;
	unsigned spins = 0;

	while (i < n) {
		struct uffdio_copy c = {
			.dst = r->base + (pg + i) * PS,
			.src = (uintptr_t)(src + i * PS),
			.len = (n - i) * PS,
			.mode = mode,
		};
		int rc = ioctl(r->uffd, UFFDIO_COPY, &c), e = errno;

		if (c.copy > 0)
			i += (uint64_t)c.copy / PS;
		if (rc == 0)
			break;
		if (c.copy > 0 && e == EAGAIN)
			continue;                     /* partial progress */
		if (e == EEXIST) {
			CTR_ADD(t->p, eexist, 1);
			exists[pg + i - base_pg] = 1;
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

static int zeropage(struct pager_thread *t, struct pager_region *r, uint64_t pg, uint64_t n,
		    bool *ret_fault_exists, uint64_t fault_pg)
{
	uint64_t i = 0;
	unsigned spins = 0;

	while (i < n) {
		struct uffdio_zeropage z = {
			.range = { .start = r->base + (pg + i) * PS, .len = (n - i) * PS },
		};
		int rc = ioctl(r->uffd, UFFDIO_ZEROPAGE, &z), e = errno;

		if (z.zeropage > 0)
			i += (uint64_t)z.zeropage / PS;
		if (rc == 0)
			break;
		if (z.zeropage > 0 && e == EAGAIN)
			continue;
		if (e == EEXIST) {
			CTR_ADD(t->p, eexist, 1);
			if (pg + i == fault_pg)
				*ret_fault_exists = true;
			i++;
		} else if (e == EAGAIN) {
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
	struct fetch_arg a;
};

static int fetch_cb(void *conn, void *arg)
{
	struct fetch_ctx *f = arg;

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
	while (!atomic_load(&p->stop) && !atomic_load(&p->failed) &&
	       atomic_load(&p->resident) > pager_hard_limit(p))
		if (pthread_cond_timedwait(&p->space_cond, &p->lock, &ts) != 0)
			break;
	pthread_mutex_unlock(&p->lock);
}

static void handle_missing(struct pager_thread *t, struct pager_region *r, uint64_t addr,
			   bool write, uint32_t tid)
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

	CTR_ADD(p, faults_missing, 1);
	if (s->kind == PAGER_SEC_LOCAL) {
		serve_local(t, r, pg);
		return;
	}
	if (atomic_load(&p->failed)) {
		pager_fail(p, atomic_load(&p->failed), addr, tid);
		return;
	}
	wait_for_space(p);

	/* Window: aligned cluster, extended forward while access is sequential. */
	sequential = pg == atomic_load_explicit(&r->next_seq, memory_order_relaxed);
	win = atomic_load_explicit(&r->window, memory_order_relaxed);
	budget = atomic_load(&p->budget_pages);
	{
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
				st_set(r, i, st_get(r, i) & ~(ST_BUSY | ST_RMV));
		pthread_mutex_unlock(&p->lock);
		pager_fail(p, rc, addr, tid);
		return;
	}

	/* Zeros for discarded pages (and for pages removed while we fetched). */
	for (i = start; i < end; i++)
		if (t->claimed[i - start] && (st_get(r, i) & (ST_DISCARD | ST_RMV)))
			memset(t->buf + (i - start) * PS, 0, PS);

	CTR_ADD(p, pages_fetched, nfetch_claimed);
	CTR_ADD(p, pages_zero, nclaimed - nfetch_claimed);
	if (end > start + p->cluster)
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
			if (rc < 0) {
				/* Not installed (or unknown): release, let the thread refault. */
				st_set(r, i, sv & ~(ST_BUSY | ST_RMV));
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

	atomic_store_explicit(&r->next_seq, end, memory_order_relaxed);
	atomic_store_explicit(&r->window, win, memory_order_relaxed);
	hist_observe(&p->h_fault, now_ns() - t0);
}

static void handle_wp(struct pager_thread *t, struct pager_region *r, uint64_t addr)
{
	struct pager *p = t->p;
	uint64_t pg = (addr - r->base) / PS;
	unsigned tries = 0;

	CTR_ADD(p, faults_wp, 1);
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
		if (fl & UFFD_PAGEFAULT_FLAG_WP)
			handle_wp(t, r, addr);
		else
			handle_missing(t, r, addr, fl & UFFD_PAGEFAULT_FLAG_WRITE,
				       m->arg.pagefault.feat.ptid);
	} else if (m->event == UFFD_EVENT_REMOVE) {
		handle_remove(t->p, r, m->arg.remove.start, m->arg.remove.end);
	}
}

/* Read and serve what r's uffd has. Returns messages handled. */
static int serve_region(struct pager_thread *t, struct pager_region *r)
{
	struct uffd_msg msgs[UMSG_BATCH];
	ssize_t n = read(r->uffd, msgs, sizeof(msgs));
	int k = 0;

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
		unsigned nr = atomic_load(&p->nregions);
		uint64_t deadline = p->cfg.spin_us ? now_ns() + p->cfg.spin_us * 1000ull : 0;
		int n, got;

		/* Spin: poll every uffd without sleeping, restart the spin on work. */
		do {
			got = 0;
			for (unsigned i = 0; i < nr; i++)
				got += serve_region(t, p->regions[i]);
			if (got && p->cfg.spin_us)
				deadline = now_ns() + p->cfg.spin_us * 1000ull;
		} while ((got || now_ns() < deadline) && !atomic_load(&p->stop));

		n = epoll_wait(p->epfd, ev, ARRAY_SIZE(ev), -1);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u32 == UINT32_MAX)
				continue;                 /* stop */
			serve_region(t, p->regions[ev[i].data.u32]);
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
	p->epfd = p->stopfd = -1;
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
	p->nthreads = cfg->fault_threads ? cfg->fault_threads : 1;
	atomic_store(&p->budget_pages, cfg->budget == UINT64_MAX ? UINT64_MAX : cfg->budget / PS);
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->io_lock, NULL);
	pthread_cond_init(&p->evict_cond, NULL);
	pthread_cond_init(&p->space_cond, NULL);
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	p->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->epfd < 0 || p->stopfd < 0) {
		int e = -errno;
		pager_free(p);
		return e;
	}
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = UINT32_MAX };
		epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->stopfd, &ev);
	}
	*ret = p;
	return 0;
}

int pager_add_region(struct pager *p, const struct pager_region_config *rc)
{
	struct pager_region *r;
	uint64_t secbytes = (uint64_t)p->sec_pages * PS;
	unsigned idx;
	int fl;

	if (!rc || rc->length == 0 || rc->length % secbytes || rc->base % PS || !rc->sections)
		return -EINVAL;
	idx = atomic_load(&p->nregions);
	if (idx >= PAGER_MAX_REGIONS)
		return -ENOSPC;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->idx = idx;
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
	if (!r->sections || !r->st) {
		free(r->sections);
		free(r->st);
		free(r);
		return -ENOMEM;
	}
	memcpy(r->sections, rc->sections, r->nsections * sizeof(*r->sections));
	r->next_seq = UINT64_MAX;
	for (uint32_t i = 0; i < r->nsections; i++)
		if (r->sections[i].kind == PAGER_SEC_REMOTE)
			atomic_fetch_add(&p->remote_pages, p->sec_pages);

	/* The dirty mode follows the uffd: WP_ASYNC means the async mode. */
	if (idx == 0)
		p->mode = (rc->uffd_features & UFFD_FEATURE_WP_ASYNC) ? PAGER_DIRTY_ASYNC_WP
								       : PAGER_DIRTY_SYNC_WP;
	else if (((rc->uffd_features & UFFD_FEATURE_WP_ASYNC) != 0) !=
		 (p->mode == PAGER_DIRTY_ASYNC_WP))
		goto inval;
	if (p->mode == PAGER_DIRTY_ASYNC_WP && rc->pagemap_fd < 0)
		goto inval;

	fl = fcntl(r->uffd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(r->uffd, F_SETFL, fl | O_NONBLOCK);
	p->regions[idx] = r;
	atomic_store(&p->nregions, idx + 1);
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = idx };

		if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, r->uffd, &ev) < 0) {
			int e = -errno;
			atomic_store(&p->nregions, idx);
			p->regions[idx] = NULL;
			free(r->sections);
			free(r->st);
			free(r);
			return e;
		}
	}
	return (int)idx;
inval:
	free(r->sections);
	free(r->st);
	free(r);
	return -EINVAL;
}

int pager_start(struct pager *p)
{
	int rc;

	if (p->started)
		return -EALREADY;
	if (p->mode == PAGER_DIRTY_ASYNC_WP && !p->cfg.allow_async_evict &&
	    atomic_load(&p->budget_pages) != UINT64_MAX)
		return -EOPNOTSUPP;
	p->threads = calloc(p->nthreads, sizeof(*p->threads));
	if (!p->threads)
		return -ENOMEM;
	p->started = true;
	rc = pthread_create(&p->evictor, NULL, pager_evictor_main, p);
	if (rc)
		return -rc;
	p->evictor_started = true;
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
	for (unsigned i = 0; i < atomic_load(&p->nregions); i++) {
		free(p->regions[i]->sections);
		free(p->regions[i]->st);
		free(p->regions[i]);
	}
	free(p->threads);
	if (p->epfd >= 0)
		close(p->epfd);
	if (p->stopfd >= 0)
		close(p->stopfd);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->io_lock);
	pthread_cond_destroy(&p->evict_cond);
	pthread_cond_destroy(&p->space_cond);
	free(p);
}
