// SPDX-License-Identifier: MIT
/*
 * The page cache of the pager: regions and the page-state table.
 *
 * Page state is one byte per page of a remote section (local sections have
 * no state). Read-modify-write of a state byte happens under pager.lock;
 * lock-free reads use __atomic loads and are hints only.
 *   PRESENT  the page is in the file (counted in `resident`, budget.h)
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
 * and pager_add_region() reuses (region.c). Fault threads reach a region
 * only inside a read-side critical section (rcu.h); removal and section
 * changes unpublish first, then wait for a grace period before they touch
 * or free what fault threads might be using. The evictor and flush use
 * regions only under io_lock, which the writers hold. docs/pager.md,
 * "Hotplug", explains the protocol.
 *
 * cache.c handles what changes the table outside a fault: REMOVE events,
 * and reconciliation with the file (pages punched behind the pager's back).
 */
#ifndef DISAGG_PAGER_CACHE_H
#define DISAGG_PAGER_CACHE_H

#include "core.h"
#include "uffd.h"

struct pager_tee;

/* An alias of a region's pages (alias.h): another mapping the pager serves alike. */
#define PAGER_MAX_ALIASES 8

struct pager_alias {
	int uffd;                 /* the caller's: registered MISSING|WP on [base, base + n pages) */
	uint64_t base;            /* address, in this process, of region page pg0 */
	uint64_t pg0, npages;     /* the region's pages it maps */
	uint32_t serial;          /* in its region: part of its id (alias.c) */
};

enum {
	ST_PRESENT = 1u << 0,
	ST_DIRTY   = 1u << 1,
	ST_BUSY    = 1u << 2,
	ST_DISCARD = 1u << 3,
	ST_REF     = 1u << 4,
	ST_RMV     = 1u << 5,
	ST_OWNED   = 1u << 6,   /* strict shared region: the directory made this node the writer */
	ST_SNAP    = 1u << 7,   /* strict: taken writable, its content as given kept (r->snaps) */
};

/*
 * Strict regions: a page the directory gave this node is kept at least
 * PAGER_STRICT_HOLD_NS before a recall takes it (serve_strict.c), for the
 * last PAGER_STRICT_HELD pages given; a taken page (ST_SNAP), instead,
 * until it is written, up to PAGER_STRICT_TAKEN_HOLD_NS.
 */
#define PAGER_STRICT_HELD    8
#define PAGER_STRICT_HOLD_NS 50000ull
#define PAGER_STRICT_TAKEN_HOLD_NS 300000ull

/*
 * Strict regions: a page the directory gives with ownership for a read (a
 * migratory page) is installed writable, and its content as given is kept
 * (ST_SNAP) for the last PAGER_STRICT_SNAPS pages taken (serve_strict.c,
 * "Taken pages").
 */
#define PAGER_STRICT_SNAPS 16

struct pager_snap {
	uint64_t pg;                 /* UINT64_MAX: free */
	uint8_t data[PAGER_PAGE_SIZE];
};

struct pager_twins;
struct pager_reljournal;

struct pager_region {
	unsigned idx;
	int uffd, file_fd, pagemap_fd;
	uint64_t features;
	uint64_t file_offset, base, length, npages;
	uint32_t nsections;
	struct pager_section *sections;
	uint8_t *st;
	uint8_t *fence;              /* per section: being changed, fault threads keep off */
	uint32_t *resets;            /* per section: page states reset (set_section), atomic */
	struct pager_tee **tee;      /* per section: a second sink on it (sink.h) or NULL (io_lock) */
	_Atomic uint8_t *rout;       /* per section: replica positions out, bit k (replica.h) */
	_Atomic int *rerr;           /* per section and position: why it went out (replica.h) */
	uint32_t gen;                /* slot generation (tags epoll events) */
	_Atomic bool dead;           /* being removed: cancel fetches, serve nothing new */
	_Atomic uint64_t next_seq;   /* end page of the last fetch (sequential detection) */
	_Atomic uint32_t window;     /* current prefetch window, pages */
	_Atomic uint64_t wp_next;    /* end page of the last write-protect window (serve.c) */
	_Atomic uint32_t wp_window;  /* its size, pages */
	struct pager *owner;
	uint64_t slot_page;          /* slot page index of page 0 (crypt.h) */
	bool shared;                 /* a shared region (share.h): pages in clear */
	bool strict;                 /* shared, mode strict: faults go to the directory (serve_strict.c) */
	_Atomic uint32_t *dir_rx;    /* strict, per section: directory answers taken (serve_strict.c) */
	_Atomic bool dir_detached;   /* strict: the directory said DIR_DETACHED (attach again) */
	/* strict: the last pages the directory gave us, and when (the hold window, p->lock) */
	uint64_t held_pg[PAGER_STRICT_HELD], held_ns[PAGER_STRICT_HELD];
	unsigned held_next;
	struct pager_snap *snaps;    /* strict: PAGER_STRICT_SNAPS of them (p->lock) */
	unsigned snap_next;
	bool control;                /* shared: pages npages-2 (LOCK), npages-1 (UNLOCK) (share.h) */
	bool release;                /* shared, mode release: twins and diffs (release.c) */
	/*
	 * release: the twins, each page's content when first written since
	 * its last release (twin.c): page pg's at pg * PS of a file that
	 * outlives the agent when the VM gives one (p->lock).
	 */
	struct pager_twins *twins;
	/* release: the batch of diffs being published, after the twins (reljournal.h). */
	struct pager_reljournal *journal;
	/*
	 * strict: the changed pages given up in recall answers, on a file
	 * that outlives the agent (answers.h), -1: none; the next answer's
	 * number (p->lock).
	 */
	int answers_fd;
	uint64_t answers_n;
	/* release, per control page (0 RELEASE, 1 ACQUIRE), under p->lock (release.c): */
	bool ctl_armed[2];           /* write-protected: a store traps */
	bool ctl_req[2];             /* a guest's store waits for the operation */
	bool ctl_done[2];            /* done: the store lands when it traps again */
	bool ctl_work[2];            /* work since the last operation began (a page fetched, written) */
	_Atomic bool readonly;       /* shared: writes wait (changed under p->lock) */
	_Atomic bool parked;         /* shared, moving memory nodes: every fault waits (share_move.c) */
	uint16_t *dep;               /* per page: write-back epoch it became dirty (or clean) in */
	uint8_t *hist;               /* per page: write history, HIST_* (st_set) */
	/* The cleaner's floor for the whole region (hist_floor; p->lock): */
	uint8_t wb_floor;            /* a page waits delay << max(its level, this) */
	uint16_t wb_floor_epoch;     /* when it was last set (clean.c lowers it after a while) */
	uint32_t wb_redirty;         /* written-back pages written again, since then */
	uint32_t wb_wasted;          /* ... of which within their delay */
	_Atomic uint64_t ndirty;     /* pages that need write-back (st_needs_wb) */
	_Atomic uint64_t nbusy;      /* pages BUSY */
	/* Other mappings of its pages that the pager serves too (alias.h). */
	struct pager_alias *_Atomic alias[PAGER_MAX_ALIASES];
	_Atomic unsigned nalias;     /* non-NULL entries of alias[] */
	uint32_t alias_gen;          /* tags alias ids (admin_lock) */
};

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
 * Write history of a resident page (r->hist), for background write-back
 * (clean.c) and write-protect faults (serve.c):
 *   HIST_WRITTEN  the page has been dirty since it became resident
 *   HIST_LEVEL    how often it was written again soon after a write-back:
 *                 the cleaner waits writeback_delay << level before it
 *                 writes the page back (and write-protects it) again.
 * A page that becomes dirty again within HIST_SOON times its own delay of
 * being cleaned (dep, stamped when it became clean) goes one level up, two
 * if within its delay itself, to HIST_LEVEL_MAX at most; one that stayed
 * clean longer goes one level down. A guest that rewrites a page every T
 * seconds so climbs until its delay exceeds T, and the page is no longer
 * written back (nor write-protected) between two rewrites. The history is
 * forgotten when the page leaves the cache.
 *
 * The guest's allocator hands a program different physical pages from one
 * run to the next, so a guest that keeps rewriting its memory also writes
 * pages with no history. The region keeps a floor for them (hist_floor):
 * when half of HIST_FLOOR_SAMPLES rewrites of written-back pages came
 * within their delay, every page of the region that is dirty again
 * (HIST_REWRITTEN: written back at least once since it came in) waits at
 * least delay << wb_floor (up to HIST_FLOOR_MAX). A page written for the
 * first time since it came in is not held by the floor: a guest that
 * fills its memory once has it written back after the delay, so that a
 * compute migration finds little to flush. Under one in eight the floor
 * goes down, and the cleaner lowers it when no rewrite has set it for
 * HIST_SOON times its delay (clean.c).
 *
 * HIST_DROPPED marks an absent page that was fetched as a sealed fault's
 * neighbour and given up unopened (stash.h); the next claim clears it, and
 * a fault on it tells the stash that giving neighbours up costs fetches.
 */
enum {
	HIST_LEVEL     = 0x07,
	HIST_LEVEL_MAX = 4,
	HIST_REWRITTEN = 0x20,
	HIST_DROPPED   = 0x40,
	HIST_WRITTEN   = 0x80,
};
#define HIST_EPOCHS 4u      /* write-back epochs per writeback_delay_ms (clean.c) */
#define HIST_SOON 8u
#define HIST_FLOOR_SAMPLES 256u
#define HIST_FLOOR_MAX HIST_LEVEL_MAX

/* One rewrite of a written-back page of r: wasted if within its delay. */
static inline void hist_floor(struct pager_region *r, bool wasted, uint16_t epoch)
{
	r->wb_redirty++;
	r->wb_wasted += wasted;
	if (r->wb_redirty < HIST_FLOOR_SAMPLES)
		return;
	if (r->wb_wasted * 2 >= r->wb_redirty)
		r->wb_floor = (uint8_t)MIN(r->wb_floor + 1u, HIST_FLOOR_MAX);
	else if (r->wb_wasted * 8 < r->wb_redirty && r->wb_floor)
		r->wb_floor--;
	r->wb_redirty = r->wb_wasted = 0;
	r->wb_floor_epoch = epoch;
	atomic_store_explicit(&r->owner->cleaner_floor, r->wb_floor, memory_order_relaxed);
}

static inline void hist_dirty(struct pager_region *r, uint64_t pg, uint16_t epoch)
{
	uint16_t since = (uint16_t)(epoch - r->dep[pg]);
	uint8_t h = r->hist[pg], lvl = h & HIST_LEVEL;

	if (!(h & HIST_WRITTEN)) {
		r->hist[pg] = HIST_WRITTEN;   /* first write since it came in: no history */
		r->dep[pg] = epoch;
		return;
	}
	hist_floor(r, since <= (HIST_EPOCHS << MAX(lvl, r->wb_floor)), epoch);
	if (since <= (HIST_EPOCHS << lvl))
		/* Dirty again within its own delay: that write-back was wasted at once. */
		lvl = MIN(lvl + 2, HIST_LEVEL_MAX);
	else if (since <= HIST_SOON * (HIST_EPOCHS << lvl))
		lvl = lvl < HIST_LEVEL_MAX ? lvl + 1 : lvl;
	else if (lvl)
		lvl--;
	r->hist[pg] = (uint8_t)(HIST_WRITTEN | HIST_REWRITTEN | lvl);
	r->dep[pg] = epoch;
}

/*
 * Every state change goes through here, under p->lock: it keeps the
 * dirty (needs write-back) and BUSY counts of the region and the pager
 * exact, stamps a page that becomes dirty or clean with the write-back
 * epoch and keeps its write history.
 */
static inline void st_set(struct pager_region *r, uint64_t pg, uint8_t v)
{
	uint8_t old = __atomic_load_n(&r->st[pg], __ATOMIC_RELAXED);
	bool was = st_needs_wb(old), now = st_needs_wb(v);
	bool wbusy = (old & ST_BUSY) != 0, nbusy = (v & ST_BUSY) != 0;
	struct pager *p = r->owner;

	if (was != now) {
		uint16_t e = (uint16_t)atomic_load_explicit(&p->wb_epoch, memory_order_relaxed);

		if (now) {
			hist_dirty(r, pg, e);
			atomic_fetch_add(&r->ndirty, 1);
			atomic_fetch_add(&p->dirty_pages, 1);
		} else {
			r->dep[pg] = e;
			atomic_fetch_sub(&r->ndirty, 1);
			atomic_fetch_sub(&p->dirty_pages, 1);
		}
	}
	if (!(v & ST_PRESENT) && (old & ST_PRESENT))
		r->hist[pg] = 0;
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

/* Is pg one of shared region r's control pages (LOCK, UNLOCK)? */
static inline bool pager_ctl_page(const struct pager_region *r, uint64_t pg)
{
	return r->control && pg + 2 >= r->npages;
}

/* The cipher for r's pages: the slot's, or none (a shared region's pages travel in clear). */
static inline struct pager_crypt *pager_rcrypt(const struct pager *p, const struct pager_region *r)
{
	return r->shared ? NULL : p->cfg.crypt;
}

static inline bool pager_sec_remote(const struct pager *p, const struct pager_region *r,
				    uint64_t pg)
{
	return r->sections[pg / p->sec_pages].kind == PAGER_SEC_REMOTE;
}

/* Is section `sec` of r being changed (pager_region_set_section), or r parked (share_move.c)? */
static inline bool pager_sec_fenced(const struct pager_region *r, uint64_t sec)
{
	return __atomic_load_n(&r->fence[sec], __ATOMIC_SEQ_CST) != 0 ||
	       atomic_load(&r->parked);
}

/* The RCU key of section `sec` of r (a fault thread serving a fault there shows it). */
static inline uint64_t pager_sec_key(const struct pager_region *r, uint64_t sec)
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

static inline bool pager_sec_valid(const struct pager_section *s)
{
	return s->kind == PAGER_SEC_LOCAL || s->kind == PAGER_SEC_REMOTE;
}

/* ---- uffd and file operations on pages of a region (uffd.h) ---------------- */

/*
 * Apply a wake (protect < 0) or a write-protect change to r's aliases
 * over [pg, pg+n) (alias.h: whoever reads r->alias[] is in a read-side
 * section, or holds io_lock or admin_lock). The first error.
 */
static inline int pager_alias_apply(struct pager_region *r, uint64_t pg, uint64_t n, int protect)
{
	int rc = 0;

	for (unsigned i = 0; i < PAGER_MAX_ALIASES; i++) {
		struct pager_alias *a = atomic_load(&r->alias[i]);
		uint64_t lo, hi;
		int e;

		if (!a)
			continue;
		lo = MAX(pg, a->pg0);
		hi = MIN(pg + n, a->pg0 + a->npages);
		if (lo >= hi)
			continue;
		if (protect < 0)
			e = uffd_wake(a->uffd, a->base + (lo - a->pg0) * PS, (hi - lo) * PS);
		else
			e = uffd_writeprotect(a->uffd, a->base + (lo - a->pg0) * PS, (hi - lo) * PS,
					      protect != 0);
		if (e < 0 && rc == 0)
			rc = e;
	}
	return rc;
}

/*
 * Write-protect (or un-protect) [pg, pg+n) of r and of its aliases, in
 * the order that never leaves a writable mapping of a page the caller will
 * not mark dirty: protecting, the region first; un-protecting, the aliases
 * first, and they are protected again if the region's change fails.
 */
static inline int pager_alias_wp_all(struct pager_region *r, uint64_t pg, uint64_t n, bool protect)
{
	int rc;

	if (protect) {
		rc = uffd_writeprotect(r->uffd, r->base + pg * PS, n * PS, true);
		return rc < 0 ? rc : pager_alias_apply(r, pg, n, 1);
	}
	rc = pager_alias_apply(r, pg, n, 0);
	if (rc == 0)
		rc = uffd_writeprotect(r->uffd, r->base + pg * PS, n * PS, false);
	if (rc < 0)
		(void)pager_alias_apply(r, pg, n, 1);   /* nothing writable that is not dirty */
	return rc;
}

/* The region's mapping and its aliases (alias.h) alike. */
static inline int pager_uffd_wake(struct pager_region *r, uint64_t pg, uint64_t npages)
{
	int rc = uffd_wake(r->uffd, r->base + pg * PS, npages * PS);

	if (atomic_load_explicit(&r->nalias, memory_order_acquire))
		(void)pager_alias_apply(r, pg, npages, -1);
	return rc;
}

static inline int pager_uffd_wp(struct pager_region *r, uint64_t pg, uint64_t npages, bool protect)
{
	if (atomic_load_explicit(&r->nalias, memory_order_acquire))
		return pager_alias_wp_all(r, pg, npages, protect);
	return uffd_writeprotect(r->uffd, r->base + pg * PS, npages * PS, protect);
}

/*
 * Un-protect [pg, pg+n) and leave its waiters asleep until pager_uffd_wake:
 * a fault thread that wakes a vCPU before it has recorded the page's new
 * state can be preempted by that vCPU on its own CPU and leave the state
 * unrecorded (a recall waiting on it) until the next tick. The aliases'
 * waiters are woken at once (rare: see alias.h).
 */
static inline int pager_uffd_unprotect_quiet(struct pager_region *r, uint64_t pg, uint64_t npages)
{
	if (atomic_load_explicit(&r->nalias, memory_order_acquire))
		return pager_alias_wp_all(r, pg, npages, false);
	return uffd_unprotect_nowake(r->uffd, r->base + pg * PS, npages * PS);
}

static inline int pager_punch(struct pager_region *r, uint64_t pg, uint64_t npages)
{
	return uffd_file_punch(r->file_fd, r->file_offset + pg * PS, npages * PS);
}

/* Does the file hold data in pages [pg, pg+npages)? */
static inline bool pager_file_has_data(struct pager_region *r, uint64_t pg, uint64_t npages)
{
	return uffd_file_has_data(r->file_fd, r->file_offset + pg * PS, npages * PS);
}

/* ---- cache.c ---------------------------------------------------------------- */

/* UFFD_EVENT_REMOVE of [start, end): those pages become absent zero pages. */
void pager_handle_remove(struct pager *p, struct pager_region *r, uint64_t start, uint64_t end);
/*
 * For each run [a, b) of pages of r within [pg0, pg0 + n) that has data in
 * the file (data true) or is a hole (false): fn(p, r, a, b). The sum of
 * what fn returned.
 */
typedef uint64_t (*pager_run_fn)(struct pager *p, struct pager_region *r, uint64_t a, uint64_t b);
uint64_t pager_file_runs(struct pager *p, struct pager_region *r, uint64_t pg0, uint64_t n,
			 bool data, pager_run_fn fn);

/* Where a reconciliation pass is (the evictor's). */
struct pager_recon {
	unsigned region;
	uint32_t sec;
	bool running;                /* a pass is under way */
};
/*
 * One step of reconciliation with the file: the next remote section,
 * io_lock held. True when the pass is complete.
 */
bool pager_reconcile_step(struct pager *p, struct pager_recon *rc);

#endif /* DISAGG_PAGER_CACHE_H */
