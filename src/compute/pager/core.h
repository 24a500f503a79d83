// SPDX-License-Identifier: MIT
/*
 * The pager object: the state that the layers share. Each layer's own
 * state is private to its file (source.c: the memory nodes; hot.c: hot
 * pages and the prefetch queue; memmig.c: migrations), and struct pager
 * holds only an opaque pointer to it. Regions and their page state are in
 * cache.h. No functions here: docs/pager.md, "Layers", shows which file
 * owns which step.
 *
 * Locks, in the order they are taken (a lock is never taken while one
 * further down the list is held):
 *   admin_lock  regions and sections change: add/remove region,
 *               set_section, evacuate, adopt, memory migration begin,
 *               commit and abort, pager_start; hot export and prefetch.
 *   io_lock     one write-back batch at a time: eviction, cleaning, flush,
 *               reconciliation, a migration's re-send and commit; also held
 *               by whoever changes a region, so no batch is in flight.
 *   lock        page state (every st_set), the CLOCK hand, evict_cond and
 *               space_cond. Held briefly, never across I/O (a fault thread
 *               un-protects a page under it: one ioctl).
 *   leaf locks  source.c's node lock, hot.c's prefetch-queue lock, the
 *               local backend's lock, replica.c's report-queue lock:
 *               nothing is taken while one is held.
 * A replica's out bit (replica.h) is set lock-free, by a CAS.
 * Fault threads take only `lock` (and the leaf locks); regions reach them
 * through RCU (rcu.h), not through admin_lock or io_lock.
 */
#ifndef DISAGG_PAGER_CORE_H
#define DISAGG_PAGER_CORE_H

#include <pthread.h>
#include <stdatomic.h>

#include <string.h>

#include "log.h"
#include "macro.h"
#include "metrics.h"
#include "rcu.h"
#include "types.h"

#define PS PAGER_PAGE_SIZE

struct pager_region;
struct pager_nodes;
struct pager_hot;
struct pager_mm;
struct pager_repl;

struct pager_ctr {
	_Atomic uint64_t faults, faults_missing, faults_wp, faults_local, faults_alias;
	_Atomic uint64_t pages_fetched, pages_prefetched, pages_zero;
	_Atomic uint64_t pages_evicted, pages_written_back, remove_events;
	_Atomic uint64_t errors, eexist, eagain, flushes;
	_Atomic uint64_t pages_punched, pages_dropped, regions_removed;
	_Atomic uint64_t memmig_started, memmig_committed, memmig_aborted, memmig_failed;
	_Atomic uint64_t memmig_pages_dual, memmig_pages_resent;
	_Atomic uint64_t pages_cleaned;
	_Atomic uint64_t pages_unprotected;
	_Atomic uint64_t pages_hot_prefetched;
	_Atomic uint64_t faults_parked, node_down_events, node_up_events;
	_Atomic uint64_t writebacks_fenced;
	_Atomic uint64_t shared_writes_waited;
	_Atomic uint64_t shared_pages_dropped;
	_Atomic uint64_t strict_reads, strict_writes, strict_recalls, strict_taken, strict_held,
			 strict_grace_waits, strict_taken_clean, strict_held_taken;
	_Atomic uint64_t release_pages_published, release_diff_bytes, release_batches_resent;
	_Atomic uint64_t integrity_failures, pages_sealed;
	_Atomic uint64_t pages_stashed, pages_stash_opened, pages_stash_dropped;
	_Atomic uint64_t replica_failovers, replica_pages_written;
};

#define CTR_ADD(p, f, n) atomic_fetch_add_explicit(&(p)->c.f, (n), memory_order_relaxed)

/*
 * Count one error in `errors` (a backend attempt retried, a fault that
 * could not be served now) and say what it was: the first
 * PAGER_ERRORS_LOGGED of a pager, then every 1000th, so that a counted
 * error can always be traced in the log.
 */
#define PAGER_ERRORS_LOGGED 32
#define pager_count_error(p, err, what)                                                   \
	do {                                                                              \
		uint64_t n_ = atomic_fetch_add_explicit(&(p)->c.errors, 1,                \
							memory_order_relaxed) + 1;        \
		if (n_ <= PAGER_ERRORS_LOGGED || n_ % 1000 == 0)                          \
			log_warn("pager %s: error %llu: %s: %s", (p)->name,               \
				 (unsigned long long)n_, (what), strerror(-(err)));        \
	} while (0)

/* What a compute migration's destination waits for (struct pager.hold). */
#define PAGER_HOLD_META     1u   /* the source's page-metadata table (atrest.h) */
#define PAGER_HOLD_REPLICAS 2u   /* the replicas the source took out (region.h) */

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
	struct pager_rcu rcu;          /* readers: the fault threads (set up by pager_start) */

	int epfd, stopfd;              /* the fault threads' epoll set (fault.c) */
	pthread_t *threads;
	unsigned nthreads;
	pthread_t evictor;
	bool started, evictor_started;
	_Atomic bool stop;
	void *evict_conn;              /* write-back connection (evictor, flush, memmig): io_lock */
	_Atomic bool wb_warm;          /* a region was added: the evictor opens evict_conn's nodes */

	_Atomic uint64_t resident, max_resident, budget_pages, remote_pages;
	_Atomic int failed;            /* the evictor cannot run (-ENOMEM): nothing is evicted */
	_Atomic uint64_t dirty_pages;  /* pages that need write-back, all regions (st_set) */
	_Atomic uint64_t busy_pages;   /* pages BUSY, all regions (st_set) */
	_Atomic uint32_t wb_epoch;     /* background write-back age clock (clean.c) */
	_Atomic uint8_t cleaner_floor; /* a region's wb_floor, as last set (cache.h, stats) */

	unsigned hand_region;          /* CLOCK hand (evict.c), under lock */
	uint64_t hand_page;

	struct pager_nodes *nodes;     /* memory nodes' failure state (source.c) */
	struct pager_hot *hot;         /* hot pages and prefetch queue (hot.c) */
	struct pager_mm *mm;           /* memory migrations (memmig.c) */
	struct pager_repl *repl;       /* replicas taken out, to report (replica.c) */
	_Atomic uint64_t replicas_out; /* replicas out now, all regions (replica.c) */
	/*
	 * A compute migration's destination waits for the source's hand-over
	 * (PAGER_HOLD_*: its page-metadata table, its replicas' final state):
	 * faults on remote pages park while any bit is set (pager_hold_release).
	 */
	_Atomic unsigned hold;

	struct pager_ctr c;
	struct hist h_fault, h_fetch, h_evict, h_writeback, h_memmig_pause;
	struct hist h_strict;          /* strict faults that asked the directory */
	struct hist h_recall;          /* strict recalls served, the hold window included */
	struct hist h_space;           /* a fault's wait for cache space (budget.c) */
	struct hist h_busy;            /* a write's wait for a write-back in flight (writeback.c) */
	_Atomic uint64_t busy_wait_ns; /* when the first write waiting for one began (0: none) */
};

#endif /* DISAGG_PAGER_CORE_H */
