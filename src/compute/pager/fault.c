// SPDX-License-Identifier: MIT
/*
 * The fault threads: they read the uffd messages of every region, decode
 * them and hand each to serve.c (MISSING, WP) or cache.c (REMOVE); between
 * faults they take windows of the prefetch queue (hot.c).
 *
 * One epoll set per pager holds every region's uffd (tagged with the
 * region's slot and generation), an eventfd to stop, and the prefetch
 * queue's eventfd. A fault thread never waits for another thread on the
 * fast path; it spins on its uffds for cfg.spin_us before it sleeps in
 * epoll_wait, which is a quiescent state (rcu.h): a region pointer is used
 * only between pager_rcu_enter() and pager_rcu_exit(), so region.c can
 * remove a region after a grace period.
 *
 * Up to 16 messages are read at once. While an install waits for the
 * mapping to settle (EAGAIN), the thread reads the region's pending events
 * (drain_events): REMOVEs are handled at once (a madvise waits for them),
 * faults are kept in a backlog and served in order afterwards.
 *
 * On a sealed slot a thread may hold sealed neighbours of earlier random
 * faults (stash.h). With nothing to read it yields the CPU once (a guest
 * thread woken on this CPU runs first), reads again, and only then opens
 * and installs one stash entry; it never sleeps in epoll_wait holding one.
 */
#include "fault.h"

#include <sched.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cache.h"
#include "hot.h"
#include "log.h"
#include "net.h"
#include "serve.h"
#include "serve_strict.h"
#include "serve_wp.h"
#include "uffd_compat.h"
#include "thread.h"

#define BACKLOG_MAX 256
#define PAGER_UMSG_BATCH 16u        /* uffd messages read at once */
#define TAG_STOP UINT64_MAX         /* epoll tag of the stop eventfd */
#define TAG_PF (UINT64_MAX - 1)     /* epoll tag of the prefetch queue's eventfd */

struct pager_thread {
	struct pager_fault_ctx c;
	unsigned idx;                /* reader index in p->rcu */
	struct uffd_msg backlog[BACKLOG_MAX];
	unsigned nbacklog;
	struct pager_region *backlog_r[BACKLOG_MAX];
};

static uint64_t epoll_tag(const struct pager_region *r)
{
	return (uint64_t)r->gen << 32 | r->idx;
}

/* Read what is pending on r->uffd: events are handled now, faults kept for later. */
static void drain_events(struct pager_fault_ctx *c, struct pager_region *r)
{
	struct pager_thread *t = container_of(c, struct pager_thread, c);
	struct uffd_msg msgs[PAGER_UMSG_BATCH];

	while (t->nbacklog < BACKLOG_MAX - PAGER_UMSG_BATCH) {
		unsigned n = uffd_read(r->uffd, msgs, PAGER_UMSG_BATCH);

		if (!n)
			break;
		for (unsigned i = 0; i < n; i++) {
			if (msgs[i].event == UFFD_EVENT_REMOVE) {
				pager_handle_remove(c->p, r, msgs[i].arg.remove.start,
						    msgs[i].arg.remove.end);
			} else {
				t->backlog_r[t->nbacklog] = r;
				t->backlog[t->nbacklog++] = msgs[i];
			}
		}
	}
}

/*
 * One window of the prefetch queue (hot.c), from the fault loop when its
 * eventfd fires. Real faults are served between two calls.
 */
static void prefetch_step(struct pager_thread *t)
{
	struct pager *p = t->c.p;
	struct pager_region *r;
	struct pager_pf w;
	uint64_t v;

	(void)!read(pager_pf_fd(p), &v, sizeof(v));
	if (!pager_pf_take(p, p->max_window, &w))
		return;
	pager_rcu_enter(&p->rcu, t->idx);
	r = atomic_load(&p->regions[w.region]);
	if (r && r->strict)
		r = NULL;   /* strict pages come from their directory one fault at a time */
	for (uint64_t pg = w.pg; r && r->gen == w.gen && pg < w.pg + w.n && pg < r->npages; pg++) {
		if (st_get(r, pg) & (ST_PRESENT | ST_BUSY))
			continue;   /* serve.c checks again under the lock */
		/* Seen by memory-migration commits, as a fault would be. */
		pager_rcu_set_key(&p->rcu, t->idx, pager_sec_key(r, pg / p->sec_pages));
		pager_serve_missing(&t->c, r, r->base + pg * PS, false, 0, w.pg + w.n);
		pager_rcu_set_key(&p->rcu, t->idx, 0);
		if (!(st_get(r, pg) & (ST_PRESENT | ST_BUSY)))
			break;      /* not fetched (budget, failure, fence): drop the rest */
	}
	pager_rcu_exit(&p->rcu, t->idx);
	if (pager_pf_pending(p)) {
		uint64_t one = 1;

		(void)!write(pager_pf_fd(p), &one, sizeof(one));
	}
}

/*
 * One message of r's uffd, or of its alias a's (alias.h): an alias's fault
 * is served as a fault on the same page of r. Its thread is not QEMU's,
 * so it never gets a SIGBUS (tid 0), and nothing madvises an alias.
 */
static void handle_msg(struct pager_thread *t, struct pager_region *r,
		       const struct pager_alias *a, const struct uffd_msg *m)
{
	struct pager *p = t->c.p;

	if (m->event == UFFD_EVENT_PAGEFAULT) {
		uint64_t addr = m->arg.pagefault.address & ~((uint64_t)PS - 1);
		uint64_t fl = m->arg.pagefault.flags;
		uint32_t tid = m->arg.pagefault.feat.ptid;

		CTR_ADD(p, faults, 1);
		if (a) {
			CTR_ADD(p, faults_alias, 1);
			if (addr < a->base || addr >= a->base + a->npages * PS)
				return;
			addr = r->base + (a->pg0 + (addr - a->base) / PS) * PS;
			tid = 0;
		}
		if (addr < r->base || addr >= r->base + r->length)
			return;
		/* Before any fence check (pager_rcu_synchronize_key). */
		pager_rcu_set_key(&p->rcu, t->idx,
				  pager_sec_key(r, (addr - r->base) / PS / p->sec_pages));
		pager_hot_note(p, r, (addr - r->base) / PS);
		if (r->strict)
			pager_serve_strict(&t->c, r, addr, fl & UFFD_PAGEFAULT_FLAG_WP,
					   fl & UFFD_PAGEFAULT_FLAG_WRITE);
		else if (fl & UFFD_PAGEFAULT_FLAG_WP)
			pager_serve_wp(&t->c, r, addr);
		else
			pager_serve_missing(&t->c, r, addr, fl & UFFD_PAGEFAULT_FLAG_WRITE, tid, 0);
		pager_rcu_set_key(&p->rcu, t->idx, 0);
	} else if (m->event == UFFD_EVENT_REMOVE && !a) {
		pager_handle_remove(p, r, m->arg.remove.start, m->arg.remove.end);
	}
}

/* Serve the faults read while draining events, in order. Returns how many. */
static int serve_backlog(struct pager_thread *t)
{
	int k = 0;

	while (t->nbacklog) {
		/* Faults read while draining events; serve them in order. */
		unsigned nb = t->nbacklog;
		struct uffd_msg tmp[BACKLOG_MAX];
		struct pager_region *tr[BACKLOG_MAX];

		memcpy(tmp, t->backlog, nb * sizeof(tmp[0]));
		memcpy(tr, t->backlog_r, nb * sizeof(tr[0]));
		t->nbacklog = 0;
		for (unsigned i = 0; i < nb; i++, k++)
			handle_msg(t, tr[i], NULL, &tmp[i]);
	}
	return k;
}

/* Read and serve what r's uffd has. Returns messages handled. */
static int serve_region(struct pager_thread *t, struct pager_region *r)
{
	struct uffd_msg msgs[PAGER_UMSG_BATCH];
	unsigned n;
	int k = 0;

	if (atomic_load(&r->dead))
		return 0;
	n = uffd_read(r->uffd, msgs, PAGER_UMSG_BATCH);
	for (unsigned i = 0; i < n; i++, k++)
		handle_msg(t, r, NULL, &msgs[i]);
	for (unsigned j = 0; atomic_load_explicit(&r->nalias, memory_order_acquire) &&
			     j < PAGER_MAX_ALIASES; j++) {
		const struct pager_alias *a = atomic_load(&r->alias[j]);

		n = a ? uffd_read(a->uffd, msgs, PAGER_UMSG_BATCH) : 0;
		for (unsigned i = 0; i < n; i++, k++)
			handle_msg(t, r, a, &msgs[i]);
	}
	return k + serve_backlog(t);
}

/* Read and serve every region's uffd once. Returns messages handled. */
static int serve_all(struct pager_thread *t)
{
	struct pager *p = t->c.p;
	unsigned nr = atomic_load(&p->nslots);
	int got = 0;

	for (unsigned i = 0; i < nr; i++) {
		struct pager_region *r;

		pager_rcu_enter(&p->rcu, t->idx);
		r = atomic_load(&p->regions[i]);
		if (r)
			got += serve_region(t, r);
		pager_rcu_exit(&p->rcu, t->idx);
	}
	return got;
}

/*
 * Open and install the oldest entry of the thread's stash of sealed
 * neighbours (stash.h), as a fault on its section would be: seen by fences.
 */
static void stash_step(struct pager_thread *t)
{
	struct pager *p = t->c.p;
	struct pager_stash_ent *e = pager_stash_oldest(t->c.stash);
	struct pager_region *r;

	if (!e)
		return;
	pager_rcu_enter(&p->rcu, t->idx);
	r = atomic_load(&p->regions[e->region]);
	if (r && r->gen == e->gen) {
		pager_rcu_set_key(&p->rcu, t->idx, pager_sec_key(r, e->sec));
		pager_stash_install(&t->c, r, e);
		pager_rcu_set_key(&p->rcu, t->idx, 0);
		(void)serve_backlog(t);   /* faults read while an install waited */
	} else {
		pager_stash_install(&t->c, NULL, e);
	}
	pager_rcu_exit(&p->rcu, t->idx);
}

static void thread_free(struct pager_thread *t)
{
	pager_stash_free(t->c.stash);
	free(t->c.buf);
	free(t->c.claimed);
	free(t);
}

static void *fault_thread_main(void *arg)
{
	struct pager_thread *t = arg;
	struct pager *p = t->c.p;
	int rc;

	thread_start("pager-fault", THREAD_QUICK_SLICE_NS);
	if (p->cfg.cpu_mask) {
		cpu_set_t set;

		CPU_ZERO(&set);
		for (unsigned c = 0; c < 8 * sizeof(p->cfg.cpu_mask); c++)
			if (p->cfg.cpu_mask & (1ul << c))
				CPU_SET(c, &set);
		(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	rc = p->cfg.backend->ops->conn_open(p->cfg.backend->priv, &t->c.conn);
	if (rc < 0) {
		log_debug("pager %s: fault thread connection: %s", p->name, strerror(-rc));
		t->c.conn = NULL;
	}
	while (!atomic_load(&p->stop)) {
		struct epoll_event ev[8];
		uint64_t deadline = p->cfg.spin_us ? now_ns() + p->cfg.spin_us * 1000ull : 0;
		int n, got;

		/*
		 * Spin: poll every uffd without sleeping, restart the spin on work.
		 * A region pointer is only used between pager_rcu_enter and _exit.
		 */
		do {
			got = serve_all(t);
			if (!got && pager_stash_pending(t->c.stash)) {
				/*
				 * Sealed neighbours wait (stash.h): first let a
				 * guest thread woken on this CPU run (it may fault
				 * again at once), then open one entry if nothing
				 * came. Never sleep with one held.
				 */
				sched_yield();
				got = serve_all(t);
				if (!got)
					stash_step(t);
				got = 1;
			}
			if (got && p->cfg.spin_us)
				deadline = now_ns() + p->cfg.spin_us * 1000ull;
		} while ((got || now_ns() < deadline) && !atomic_load(&p->stop));

		/* Sleeping here is a quiescent state: no region pointer is held. */
		n = epoll_wait(p->epfd, ev, ARRAY_SIZE(ev), -1);
		for (int i = 0; i < n; i++) {
			uint32_t idx = (uint32_t)ev[i].data.u64, gen = (uint32_t)(ev[i].data.u64 >> 32);
			struct pager_region *r;

			if (ev[i].data.u64 == TAG_PF) {
				prefetch_step(t);
				continue;
			}
			if (ev[i].data.u64 == TAG_STOP || idx >= PAGER_MAX_REGIONS)
				continue;                 /* stop */
			pager_rcu_enter(&p->rcu, t->idx);
			/* The event may predate a removal (and a reuse of the slot). */
			r = atomic_load(&p->regions[idx]);
			if (r && r->gen == gen)
				serve_region(t, r);
			pager_rcu_exit(&p->rcu, t->idx);
		}
	}
	if (t->c.conn)
		p->cfg.backend->ops->conn_close(t->c.conn);
	thread_free(t);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------ */

int pager_fault_init(struct pager *p)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_STOP };
	struct epoll_event pf = { .events = EPOLLIN, .data.u64 = TAG_PF };

	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		return -errno;
	p->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->stopfd < 0)
		return -errno;
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->stopfd, &ev) < 0 ||
	    epoll_ctl(p->epfd, EPOLL_CTL_ADD, pager_pf_fd(p), &pf) < 0)
		return -errno;
	return 0;
}

int pager_fault_start(struct pager *p)
{
	for (unsigned i = 0; i < p->nthreads; i++) {
		struct pager_thread *t = calloc(1, sizeof(*t));
		uint32_t maxp = PROTO_MAX_PAGES;
		int rc;

		if (!t)
			return -ENOMEM;
		t->c.p = p;
		t->c.drain = drain_events;
		t->idx = i;
		t->c.rcu_idx = i;
		t->c.buf = aligned_alloc(PS, (size_t)maxp * PS);
		t->c.claimed = calloc(maxp, 1);
		if (!t->c.buf || !t->c.claimed ||
		    (p->cfg.crypt && pager_stash_new(&t->c.stash) < 0)) {
			thread_free(t);
			return -ENOMEM;
		}
		rc = pthread_create(&p->threads[i], NULL, fault_thread_main, t);
		if (rc) {
			thread_free(t);
			return -rc;
		}
	}
	return 0;
}

void pager_fault_stop(struct pager *p)
{
	if (p->stopfd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(p->stopfd, &one, sizeof(one));
		(void)w;
	}
	for (unsigned i = 0; p->threads && i < p->nthreads; i++) {
		void *tv = NULL;

		if (!p->threads[i])
			continue;
		pthread_join(p->threads[i], &tv);
	}
}

void pager_fault_fini(struct pager *p)
{
	if (p->epfd >= 0)
		close(p->epfd);
	if (p->stopfd >= 0)
		close(p->stopfd);
	p->epfd = p->stopfd = -1;
}

int pager_fault_watch_fd(struct pager *p, struct pager_region *r, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = epoll_tag(r) };

	return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void pager_fault_unwatch_fd(struct pager *p, int fd)
{
	(void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int pager_fault_watch(struct pager *p, struct pager_region *r)
{
	return pager_fault_watch_fd(p, r, r->uffd);
}

void pager_fault_unwatch(struct pager *p, struct pager_region *r)
{
	pager_fault_unwatch_fd(p, r->uffd);
}
