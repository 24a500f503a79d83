// SPDX-License-Identifier: MIT
/*
 * Internals shared by the pager's source files: per-page state, regions,
 * counters, and the functions one file calls in another.
 *
 * Page state is one byte per page of a remote section (local sections have
 * no state). Read-modify-write of a state byte happens under pager.lock;
 * lock-free reads use __atomic loads and are hints only.
 *   PRESENT  the page is in the file (counted in `resident`)
 *   DIRTY    sync mode: the page is writable (not write-protected), so its
 *            content may differ from the memory node's
 *   BUSY     a fetch, eviction or flush owns the page; that owner wakes
 *            any thread that faulted on it meanwhile
 *   DISCARD  the content is zeros (UFFD_EVENT_REMOVE); the memory node's
 *            copy is stale until the page is written back
 *   REF      second-chance bit of the CLOCK eviction policy
 *   RMV      a REMOVE event arrived while the page was BUSY; the owner
 *            turns the page into an absent DISCARD page when it finishes
 *
 * Regions live in slots (p->regions[]) that pager_remove_region() empties
 * and pager_add_region() reuses. Fault threads reach a region only inside a
 * read-side critical section (pager_qs_enter/exit around each use); removal
 * and section changes unpublish first, then wait for a grace period
 * (pager_synchronize) before they touch or free what fault threads might be
 * using. The evictor and flush use regions only under io_lock, which the
 * writers hold. docs/pager.md, "Hotplug", explains the protocol.
 *
 * Memory migration (pager_memmig.c): a section being moved to another
 * memory node has a struct pager_memmig in r->mig[section]. It is created,
 * read and freed only under io_lock, which every write-back holds, so a
 * write-back batch sees one consistent migration state.
 */
#ifndef DISAGG_PAGER_INTERNAL_H
#define DISAGG_PAGER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "pager.h"
#include "uffd_compat.h"

#define PS PAGER_PAGE_SIZE

enum {
	ST_PRESENT = 1u << 0,
	ST_DIRTY   = 1u << 1,
	ST_BUSY    = 1u << 2,
	ST_DISCARD = 1u << 3,
	ST_REF     = 1u << 4,
	ST_RMV     = 1u << 5,
};

/*
 * A section moving to another memory node (pager_memmig.c). Under io_lock.
 * While it exists, every write-back of the section goes to the source and
 * to `target`; the pages written back before the COPY is over are flagged
 * in `resend` and sent to the target again at commit (the COPY may have
 * overwritten them with older content).
 */
struct pager_memmig {
	struct pager_section target;
	uint8_t *resend;             /* per page of the section: send to the target at commit */
	uint64_t nresend;            /* pages flagged in resend[] */
	bool copy_done;              /* commit began: the COPY is over */
	int err;                     /* the target failed: 0 or -errno (migration is dead) */
	uint64_t begin_ns;
	uint64_t pages_dual;         /* pages written to both during the window */
};

struct pager_region {
	unsigned idx;
	int uffd, file_fd, pagemap_fd;
	uint64_t features;
	uint64_t file_offset, base, length, npages;
	uint32_t nsections;
	struct pager_section *sections;
	uint8_t *st;
	uint8_t *fence;              /* per section: being changed, fault threads keep off */
	struct pager_memmig **mig;   /* per section: migration in progress or NULL (io_lock) */
	uint32_t gen;                /* slot generation (tags epoll events) */
	_Atomic bool dead;           /* being removed: cancel fetches, serve nothing new */
	_Atomic uint64_t next_seq;   /* end page of the last fetch (sequential detection) */
	_Atomic uint32_t window;     /* current prefetch window, pages */
	struct pager *owner;
	uint8_t *dep;                /* per page: write-back epoch it became dirty in (st_set) */
	_Atomic uint64_t ndirty;     /* pages that need write-back (st_needs_wb) */
	_Atomic uint64_t nbusy;      /* pages BUSY */
};

struct pager_ctr {
	_Atomic uint64_t faults, faults_missing, faults_wp, faults_local;
	_Atomic uint64_t pages_fetched, pages_prefetched, pages_zero;
	_Atomic uint64_t pages_evicted, pages_written_back, remove_events;
	_Atomic uint64_t errors, eexist, eagain, flushes;
	_Atomic uint64_t pages_punched, pages_dropped, regions_removed;
	_Atomic uint64_t memmig_started, memmig_committed, memmig_aborted, memmig_failed;
	_Atomic uint64_t memmig_pages_dual, memmig_pages_resent;
	_Atomic uint64_t pages_cleaned;
	_Atomic uint64_t pages_hot_prefetched;
	_Atomic uint64_t faults_parked, node_down_events, node_up_events;
};

/*
 * One per fault thread. seq is odd while the thread may hold region
 * pointers; sec is the section whose fault it is serving (pager_qs_key;
 * 0: none), for grace periods of one section (pager_synchronize_section).
 */
struct pager_qs {
	_Atomic uint64_t seq;
	_Atomic uint64_t sec;
	char pad[64 - 2 * sizeof(uint64_t)];
};

/* A memory node this pager has seen fail (pager_nodes.c). */
struct pager_node {
	uint64_t id;                   /* memory node id; set once, before nnodes counts it */
	_Atomic int down;              /* 0: answers; else the -errno that marked it down */
	struct pager_section probe;    /* a section of it to probe while down (node_lock) */
	uint64_t down_ns;
};

#define PAGER_MAX_NODES 64

struct pager {
	struct pager_config cfg;
	char name[64];
	enum pager_dirty_mode mode;
	uint32_t sec_pages;
	uint32_t cluster, max_window, batch, pcluster;

	pthread_mutex_t lock;          /* page state, clock hand, conditions */
	pthread_cond_t evict_cond;     /* evictor: work to do */
	pthread_cond_t space_cond;     /* resident went down */
	pthread_mutex_t io_lock;       /* one write-back batch at a time (evictor vs flush) */
	pthread_mutex_t admin_lock;    /* add/remove region, set section, start */

	struct pager_region *_Atomic regions[PAGER_MAX_REGIONS]; /* NULL: free slot */
	_Atomic unsigned nslots;       /* slots ever used (high-water mark) */
	uint32_t next_gen;             /* under admin_lock */
	bool mode_set;                 /* the first region fixed the dirty mode */
	struct pager_qs *qs;           /* [nthreads], set before the threads start */
	_Atomic unsigned sync_req;     /* a grace period is waited for: don't wait for space */

	int epfd, stopfd;
	pthread_t *threads;
	unsigned nthreads;
	pthread_t evictor;
	bool started, evictor_started;
	_Atomic bool stop;
	void *evict_conn;              /* evictor's backend connection; flush borrows it under io_lock */
	void *mig_conn;                /* connection to migration targets; under io_lock */
	_Atomic int memmig_active;     /* migrations in progress */
	_Atomic int memmig_last_err;   /* why the last migration failed (0: none yet) */

	_Atomic uint64_t resident, max_resident, budget_pages, remote_pages;
	_Atomic int failed;            /* the evictor cannot run (-ENOMEM): nothing is evicted */

	/* Per-memory-node failure state (pager_nodes.c). */
	pthread_mutex_t node_lock;     /* adds to nodes[], the health thread's sleep */
	pthread_cond_t node_cond;      /* a node went down, or stop */
	struct pager_node nodes[PAGER_MAX_NODES];
	_Atomic unsigned nnodes;
	_Atomic unsigned ndown;        /* nodes down now */
	pthread_t health;
	bool health_started;
	_Atomic uint64_t dirty_pages;  /* pages that need write-back, all regions (st_set) */
	_Atomic uint64_t busy_pages;   /* pages BUSY, all regions (st_set) */
	_Atomic uint32_t wb_epoch;     /* background write-back age clock (evictor) */

	unsigned hand_region;          /* CLOCK hand, under lock */
	uint64_t hand_page;

	/* Hot pages (pager_hot.c): the pages of the last faults, newest last. */
	uint64_t *hot;                 /* [PAGER_HOT_RING] (region << 40 | page) + 1; 0: empty */
	_Atomic uint64_t hot_head;
	/* Prefetch queue (pager_hot.c), served by the fault threads between faults. */
	pthread_mutex_t pf_lock;
	struct pager_pf *pf;           /* runs to fetch, oldest first: [pf_head, pf_n) */
	unsigned pf_head, pf_n, pf_cap;
	int pf_efd;                    /* in epfd: the queue has work */

	struct pager_ctr c;
	struct hist h_fault, h_fetch, h_evict, h_writeback, h_memmig_pause;
};

#define PAGER_UMSG_BATCH 16u        /* uffd messages read at once */
#define PAGER_HOT_RING 4096u        /* faults remembered for a migration's destination */
#define PAGER_PF_TAG (UINT64_MAX - 1) /* epoll tag of pf_efd */

/* A run of pages to prefetch (pager_hot.c). */
struct pager_pf {
	unsigned region;
	uint32_t gen;                  /* the region's generation when queued */
	uint64_t pg, n;
};

/* Remember a faulting page (fault threads; lock-free, overwrites the oldest). */
static inline void pager_hot_note(struct pager *p, const struct pager_region *r, uint64_t pg)
{
	uint64_t h = atomic_fetch_add_explicit(&p->hot_head, 1, memory_order_relaxed);

	if (p->hot)
		__atomic_store_n(&p->hot[h % PAGER_HOT_RING], ((uint64_t)r->idx << 40 | pg) + 1,
				 __ATOMIC_RELAXED);
}

/* Take up to max pages of the oldest queued run: true if *ret has some. */
bool pager_pf_take(struct pager *p, uint64_t max, struct pager_pf *ret);
bool pager_pf_pending(struct pager *p);

static inline uint8_t st_get(const struct pager_region *r, uint64_t pg)
{
	return __atomic_load_n(&r->st[pg], __ATOMIC_RELAXED);
}

/*
 * Does a page in state s need writing back? Exactly what pager_flush()
 * claims: a present dirty page, or a discarded one (the memory node's copy
 * is stale until zeros are written).
 */
static inline bool st_needs_wb(uint8_t s)
{
	return (s & ST_DISCARD) || (s & (ST_PRESENT | ST_DIRTY)) == (ST_PRESENT | ST_DIRTY);
}

/*
 * Every state change goes through here, under p->lock: it keeps the
 * dirty (needs write-back) and BUSY counts of the region and the pager
 * exact, and stamps a page that becomes dirty with the write-back epoch.
 */
static inline void st_set(struct pager_region *r, uint64_t pg, uint8_t v)
{
	uint8_t old = __atomic_load_n(&r->st[pg], __ATOMIC_RELAXED);
	bool was = st_needs_wb(old), now = st_needs_wb(v);
	bool wbusy = (old & ST_BUSY) != 0, nbusy = (v & ST_BUSY) != 0;
	struct pager *p = r->owner;

	if (was != now) {
		if (now) {
			r->dep[pg] = (uint8_t)atomic_load_explicit(&p->wb_epoch,
								   memory_order_relaxed);
			atomic_fetch_add(&r->ndirty, 1);
			atomic_fetch_add(&p->dirty_pages, 1);
		} else {
			atomic_fetch_sub(&r->ndirty, 1);
			atomic_fetch_sub(&p->dirty_pages, 1);
		}
	}
	if (wbusy != nbusy) {
		if (nbusy) {
			atomic_fetch_add(&r->nbusy, 1);
			atomic_fetch_add(&p->busy_pages, 1);
		} else {
			atomic_fetch_sub(&r->nbusy, 1);
			atomic_fetch_sub(&p->busy_pages, 1);
		}
	}
	__atomic_store_n(&r->st[pg], v, __ATOMIC_RELAXED);
}

static inline bool pager_sec_remote(const struct pager *p, const struct pager_region *r,
				    uint64_t pg)
{
	return r->sections[pg / p->sec_pages].kind == PAGER_SEC_REMOTE;
}

/* Is section `sec` of r being changed (pager_region_set_section)? */
static inline bool pager_sec_fenced(const struct pager_region *r, uint64_t sec)
{
	return __atomic_load_n(&r->fence[sec], __ATOMIC_SEQ_CST) != 0;
}

/* Read-side critical section of fault thread i (see pager_synchronize). */
static inline void pager_qs_enter(struct pager *p, unsigned i)
{
	atomic_fetch_add(&p->qs[i].seq, 1);
}

static inline void pager_qs_exit(struct pager *p, unsigned i)
{
	atomic_fetch_add(&p->qs[i].seq, 1);
}

static inline uint64_t pager_qs_key(const struct pager_region *r, uint64_t sec)
{
	return ((uint64_t)r->idx << 32 | sec) + 1;
}

/* The same remote section (memory node, section, generation), whatever the grant's other fields. */
static inline bool pager_same_section(const struct pager_section *a, const struct pager_section *b)
{
	return a->kind == PAGER_SEC_REMOTE && b->kind == PAGER_SEC_REMOTE &&
	       a->grant.memnode_id == b->grant.memnode_id && a->grant.section == b->grant.section &&
	       a->grant.generation == b->grant.generation;
}

static inline uint64_t pager_hard_limit(const struct pager *p)
{
	uint64_t b = atomic_load(&p->budget_pages);
	uint64_t slack = MAX((uint64_t)p->batch * 2, (uint64_t)p->max_window + p->cluster);

	return b > UINT64_MAX - slack ? UINT64_MAX : b + slack;
}

#define CTR_ADD(p, f, n) atomic_fetch_add_explicit(&(p)->c.f, (n), memory_order_relaxed)

/* pager.c */
int pager_uffd_wake(struct pager_region *r, uint64_t pg, uint64_t npages);
int pager_uffd_wp(struct pager_region *r, uint64_t pg, uint64_t npages, bool protect);
int pager_punch(struct pager_region *r, uint64_t pg, uint64_t npages);
void pager_fail(struct pager *p, int err, uint64_t addr, uint32_t tid);
void pager_resident_add(struct pager *p, int64_t n);
void pager_synchronize(struct pager *p);
void pager_handle_remove(struct pager *p, struct pager_region *r, uint64_t start, uint64_t end);
void pager_region_free(struct pager_region *r);

static inline bool pager_sec_valid(const struct pager_section *s)
{
	return s->kind == PAGER_SEC_LOCAL || s->kind == PAGER_SEC_REMOTE;
}

static inline uint64_t pager_region_epoll_data(const struct pager_region *r)
{
	return (uint64_t)r->gen << 32 | r->idx;
}
void pager_synchronize_section(struct pager *p, struct pager_region *r, uint64_t sec);
/* Wait (up to max_ms) until no fault thread serves a fault in that section: true if so. */
bool pager_wait_section_quiet(struct pager *p, struct pager_region *r, uint64_t sec,
			      unsigned max_ms);
bool pager_file_has_data(struct pager_region *r, uint64_t pg, uint64_t npages);
/*
 * For each run [a, b) of pages of r within [pg0, pg0 + n) that has data in
 * the file (data true) or is a hole (false): fn(p, r, a, b). The sum of
 * what fn returned.
 */
typedef uint64_t (*pager_run_fn)(struct pager *p, struct pager_region *r, uint64_t a, uint64_t b);
uint64_t pager_file_runs(struct pager *p, struct pager_region *r, uint64_t pg0, uint64_t n,
			 bool data, pager_run_fn fn);
/* Is the caller a pager thread (it must not wait for the pager's threads)? admin_lock held. */
bool pager_on_thread(struct pager *p);

/* pager_nodes.c */
/* Is err a transport failure (the node may answer later), not an answer? */
bool pager_err_transport(int err);
/* 0 if memory node id answers, else the -errno that marked it down. Lock-free. */
int pager_node_down(struct pager *p, uint64_t memnode_id);
static inline bool pager_sec_down(struct pager *p, const struct pager_section *s)
{
	return s->kind == PAGER_SEC_REMOTE && pager_node_down(p, s->grant.memnode_id) != 0;
}
/* A transfer with section s failed with a transport error after its retries. */
void pager_node_failed(struct pager *p, const struct pager_section *s, int err);
int pager_nodes_start(struct pager *p);
void pager_nodes_stop(struct pager *p);

/* pager_evict.c */
void *pager_evictor_main(void *arg);
int pager_retry_io(struct pager *p, void **connp, int (*fn)(void *conn, void *arg), void *arg);
/* Write back r's dirty and discarded pages; io_lock held. */
int pager_flush_region_locked(struct pager *p, struct pager_region *r);
/* Un-count resident pages of r that are holes in the file; io_lock held. */

/* pager_memmig.c */
/* One write of a write-back batch: extents of one section (evict.c builds them). */
struct pager_wb_group {
	const struct pager_section *s;
	struct pager_memmig *mig;    /* the section's migration, or NULL */
	struct proto_extent ext[PROTO_MAX_EXTENTS];
	uint32_t next, npages;
	const uint8_t *data;
	bool dual;                   /* also submitted to mig->target */
};
/* Submit the migrating groups to their targets (after the source writes were queued). */
void pager_memmig_submit(struct pager *p, struct pager_wb_group *g, unsigned ng);
/* Wait for those target writes; a failure kills the migrations involved. */
void pager_memmig_wait(struct pager *p, struct pager_wb_group *g, unsigned ng);
/* The batch is acknowledged by the source: flag what the target must get again. */
void pager_memmig_written(struct pager *p, struct pager_wb_group *g, unsigned ng);
void pager_memmig_free(struct pager_memmig *m);
/* Forget the migration of r's section `index` (abort or failure); io_lock held. */
void pager_memmig_drop(struct pager *p, struct pager_region *r, unsigned index, bool failed);

#endif /* DISAGG_PAGER_INTERNAL_H */
