// SPDX-License-Identifier: MIT
/*
 * The pager's public types: sections, the backend ops table, the
 * configuration, and what the API returns (stats, migration results, hot
 * runs, node states). No functions: every layer includes this, and the
 * API's functions are declared in each layer's own header (pager.h lists
 * them).
 */
#ifndef DISAGG_PAGER_TYPES_H
#define DISAGG_PAGER_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth.h"
#include "metrics.h"
#include "disagg/proto.h"

#define PAGER_PAGE_SIZE      4096u
#define PAGER_MAX_REGIONS    64
#define PAGER_DEFAULT_SECTION (128u << 20)
#define PAGER_MAX_REPLICAS   3     /* replica positions of one section (replica.h) */

struct pager;
struct pager_crypt;

/* ---- sections ----------------------------------------------------------- */

enum pager_sec_kind {
	PAGER_SEC_LOCAL  = 0,
	PAGER_SEC_REMOTE = 1,
};

/* One more replica of a remote section (positions 1.. of struct pager_section). */
struct pager_replica {
	char addr[PROTO_MAX_ADDR];
	struct proto_grant grant;
};

struct pager_section {
	enum pager_sec_kind kind;
	char addr[PROTO_MAX_ADDR];  /* memory node "host:port" (memnode backend) */
	struct proto_grant grant;   /* names memnode, section and generation */
	uint16_t dir_tag;           /* strict regions: this VM's holder tag at the directory */
	/*
	 * Replicated sections (replica.h, docs/pager.md "Replicated
	 * sections"): replicas in all. 0 or 1: not replicated (addr/grant
	 * only). >= 2: addr/grant is position 0 and more[i] is position i + 1.
	 */
	uint8_t nrep;
	/*
	 * Positions known to be out (bit k: position k), from a record (the
	 * agent's vm.json, an incoming migration's map): they missed writes.
	 * The pager takes them out when the section is added or set, and
	 * never puts them in again except by a memory migration of that
	 * position. The pager's own view is pager_replicas_out().
	 */
	uint8_t out;
	struct pager_replica more[PAGER_MAX_REPLICAS - 1];
};

/* ---- backends ----------------------------------------------------------- */

/*
 * A backend moves pages between this node and wherever remote sections
 * live. It is both halves of the pager's I/O: the source (fetch, used by
 * source.c) and the sink (write_submit then write_wait, used by sink.c).
 * Every thread of the pager opens its own connection (`conn`), so
 * implementations need no locking on a conn. backend_local.c and
 * backend_memnode.c implement it.
 */
struct pager_backend_ops {
	const char *name;
	int (*conn_open)(void *be, void **ret_conn);
	void (*conn_close)(void *conn);
	/* Read npages pages from `page` of section s into buf: one round trip. */
	int (*fetch)(void *conn, const struct pager_section *s, uint32_t page, uint32_t npages,
		     void *buf);
	/* Queue a write of the extents' pages (data in extent order). data lives until write_wait. */
	int (*write_submit)(void *conn, const struct pager_section *s,
			    const struct proto_extent *ext, uint32_t next, const void *data);
	/*
	 * Wait for every queued write: 0 when all acknowledged, else the first
	 * error; -EKEYREVOKED or -ESTALE only when the other writes succeeded
	 * and the memory node refused some because this node no longer owns
	 * their section (a newer ownership epoch, a new generation).
	 */
	int (*write_wait)(void *conn);
	/* Forget a broken connection; the next call reconnects. */
	void (*reset)(void *conn);
	/* Largest page count of one fetch or one write_submit. */
	uint32_t (*max_pages)(void *conn);
	/*
	 * Strict shared regions (share.h), through the section's coherence
	 * directory: a read copy of one page (write false) or its only
	 * writable copy (write true). *ret_had_copy (write only): the
	 * directory counted this node's copy as current, and buf is untouched.
	 * *ret_owned (read only): the directory made this node the page's
	 * owner with the copy (a migratory page): a write needs no request.
	 * NULL: the backend has no directory (-EOPNOTSUPP).
	 */
	int (*dir_fetch)(void *conn, const struct pager_section *s, uint32_t page, bool write,
			 void *buf, bool *ret_had_copy, bool *ret_owned);
	/*
	 * Release shared regions (release.h): queue a WRITE_DIFF of `npages`
	 * page diffs of section s, encoded in body (wirediff.h; it lives until
	 * write_wait, which waits for it as for the writes), applied at most
	 * once under `once`'s ids (NULL: as often as it is sent; a node
	 * without the feature ignores them). NULL: the backend cannot apply
	 * diffs (-EOPNOTSUPP).
	 */
	int (*diff_submit)(void *conn, const struct pager_section *s, uint32_t npages,
			   const struct proto_diff_once *once, const void *body, size_t len);
	/*
	 * The result of the last round's writes (write_submit .. write_wait)
	 * to the node of section s: 0, or the first error of the writes to
	 * that node (a write to another node of the round does not count).
	 * Valid after write_wait until the next write_submit. NULL: only the
	 * round's result is known (replicated write-backs then retry as a
	 * whole, sink.c).
	 */
	int (*write_result)(void *conn, const struct pager_section *s);
	/*
	 * Open on conn what a write-back to section s will use (its node, and
	 * its replicas' nodes), ahead of the first one, giving up on a node
	 * that has not answered within timeout_ms. NULL: nothing to open.
	 */
	int (*connect)(void *conn, const struct pager_section *s, int timeout_ms);
	/*
	 * The next fetches on conn give up after timeout_ms (0: the backend's
	 * own timeout again). For one fetch of a replicated section, so that
	 * a stalled replica costs replica_timeout_ms, not the full timeout.
	 * NULL: the backend's timeout applies.
	 */
	void (*fetch_timeout)(void *conn, int timeout_ms);
	void (*destroy)(void *be);
};

struct pager_backend {
	const struct pager_backend_ops *ops;
	void *priv;
};

enum pager_dirty_mode {
	PAGER_DIRTY_SYNC_WP  = 0, /* synchronous WP faults: safe with eviction (default) */
	PAGER_DIRTY_ASYNC_WP = 1, /* UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN: no eviction */
};

/* ---- the pager ---------------------------------------------------------- */

/*
 * What happens to a fault that cannot be served. Either way nothing is
 * sticky: a fault on a memory node that does not answer is parked until
 * the node answers again (source.c), and every other fault is served
 * meanwhile.
 */
enum pager_fail_mode {
	PAGER_FAIL_BLOCK  = 0, /* the faulting thread stays blocked (parked) */
	PAGER_FAIL_SIGBUS = 1, /* also tgkill(fail_pid, tid, SIGBUS) the faulting thread */
};

/* A fault failed with err (each retry round; transport errors park it). */
typedef void (*pager_fail_fn)(void *opaque, int err, uint64_t addr, uint32_t tid);
/*
 * Memory node `memnode_id` (at addr) stopped answering (down, with the
 * -errno) or answers again (!down, err 0). Once per transition, from a
 * pager thread, with no pager lock held: do not call back into the pager.
 */
typedef void (*pager_node_fn)(void *opaque, uint64_t memnode_id, const char *addr, bool down,
			      int err);
/* What a guest's write to a control page of a shared region asks for. */
enum pager_ctl {
	PAGER_CTL_UNLOCK  = 0,        /* exclusive: UNLOCK while the VM holds the region */
	PAGER_CTL_LOCK    = 1,        /* exclusive: LOCK while it does not */
	PAGER_CTL_RELEASE = 2,        /* release: publish this VM's diffs (release.h) */
	PAGER_CTL_ACQUIRE = 3,        /* release: drop the clean cached pages */
};

/*
 * A guest wrote a control page of shared region `region` (share.h,
 * release.h). In mode exclusive: its LOCK page while the VM does not hold
 * the region, or its UNLOCK page while it does; the write waits until the
 * holding changes (pager_shared_acquire/release). In mode release: its
 * RELEASE or ACQUIRE page; the write waits until pager_release_publish or
 * pager_release_acquire has run. Called from a fault thread, once per
 * fault: do not block, do not call back into the pager.
 */
typedef void (*pager_control_fn)(void *opaque, int region, enum pager_ctl op);
/*
 * The pager took replica `replica` (a position, replica.h) of section
 * `index` of region `region` out, because of err (a transport error, or
 * -ECANCELED for pager_replica_drop). view: a section descriptor whose
 * addr/grant are that replica's (nrep 0). Called once per replica taken
 * out, from a pager thread, with no pager lock held: do not call back into
 * the pager.
 */
typedef void (*pager_replica_fn)(void *opaque, int region, unsigned index, unsigned replica,
				 const struct pager_section *view, int err);

struct pager_config {
	const char *name;             /* for metrics labels and logs */
	struct pager_backend *backend; /* not owned */
	uint64_t section_size;        /* bytes; 0 = 128 MiB */
	uint64_t budget;              /* bytes of remote pages resident; UINT64_MAX = no limit */
	unsigned cluster_pages;       /* aligned cluster fetched per fault; 0 = 16 */
	unsigned max_window_pages;    /* sequential prefetch window limit; 0 = 256 */
	unsigned pressure_cluster_pages; /* cluster of a non-sequential fault while over budget; 0 = 4 */
	unsigned fault_threads;       /* 0 = 1 */
	unsigned spin_us;             /* fault thread spins on the uffds before sleeping */
	unsigned long cpu_mask;       /* pin the fault threads to these CPUs; 0 = no pinning */
	unsigned evict_batch;         /* pages per eviction batch; 0 = 64 */
	int fail_timeout_ms;          /* retry/reconnect this long before failing; 0 = 10000 */
	enum pager_fail_mode fail_mode;
	pid_t fail_pid;               /* process of the faulting threads (SIGBUS); 0 = getpid() */
	pager_fail_fn on_fail;        /* called (from a pager thread) for each failed fault */
	pager_node_fn on_node;        /* a memory node went down or came back */
	pager_control_fn on_control;  /* a guest asked to lock or unlock a shared region */
	pager_replica_fn on_replica;  /* a replica of a section was taken out (replica.h) */
	/* A fetch from a replica while another is in gives up after this long; 0 = 1000. */
	int replica_timeout_ms;
	int probe_ms;                 /* probe a down memory node this often; 0 = 250 */
	void *opaque;
	bool allow_async_evict;       /* ASYNC_WP with a finite budget: UNSAFE, benchmarks only */
	/*
	 * Background write-back (sync mode): pages dirty for at least this
	 * long are written back while there is no budget pressure, and stay
	 * resident. 0 = 1000 ms; < 0 = no background write-back.
	 */
	int writeback_delay_ms;
	/*
	 * The idle evictor compares resident pages with the file's holes
	 * (pages punched behind the pager's back) once per this interval,
	 * one section at a time. 0 = 10000 ms; < 0 = never.
	 */
	int reconcile_ms;
	/*
	 * Guest memory at rest (crypt.h): pages are sealed with the slot's
	 * key before they leave and opened (authenticated) when fetched. Not
	 * owned; NULL: pages go out in clear. meta_pending: the table is to
	 * come from a compute migration's source (pager_meta_import): faults
	 * on remote pages wait until it is there.
	 */
	struct pager_crypt *crypt;
	bool meta_pending;
	/*
	 * A compute migration's destination of replicated sections: which
	 * replicas the source took out during its last flushes comes after
	 * the switchover (pager_replicas_settled); faults on remote pages
	 * wait until then, so that a replica that missed writes is never read.
	 */
	bool replicas_pending;
};

struct pager_region_config {
	int uffd;                     /* registered MISSING|WP for [base, base+length) */
	uint64_t uffd_features;       /* features requested (enabled) in its UFFDIO_API */
	int file_fd;                  /* the tmpfs file behind the mapping */
	uint64_t file_offset;         /* file offset of base */
	uint64_t base;                /* mapping address in its process */
	uint64_t length;              /* multiple of section_size */
	const struct pager_section *sections; /* length / section_size entries (copied) */
	int pagemap_fd;               /* /proc/PID/pagemap of the mapping's process, or -1 */
	uint64_t slot_page;           /* slot page index of base (the page cipher's place) */
	bool fresh;                   /* new memory: forget what the table says was stored there */
	/*
	 * A shared region's mapping (share.h): its pages travel in clear,
	 * since every VM that maps it has its own slot key, and a write to it
	 * waits while the region is read-only (another VM may write it).
	 */
	bool shared;
	bool readonly;                /* shared only: start read-only */
	bool strict;                  /* shared only: mode strict (coherent per page) */
	bool control;                 /* shared, not strict: its last two pages are control pages */
	bool release;                 /* shared, not strict: mode release, twins and diffs (release.h) */
	/*
	 * release: the twins' file (twin.h), at least length bytes, empty for
	 * new memory; the VM's keeps them across an agent restart. 0 (a
	 * zeroed config's) or -1: the pager makes its own. It stays the
	 * caller's.
	 */
	int twin_fd;
	/*
	 * strict: the answers' file (answers.h), kept by the VM across an
	 * agent restart. 0 (a zeroed config's) or -1: the pager makes its own
	 * in memory (nothing outlives the process then). It stays the
	 * caller's.
	 */
	int answers_fd;
};

/* A page of a strict region that this node owned and had changed (pager_strict_keep). */
struct pager_kept {
	uint32_t section, page;      /* the region's section index, the page in it */
	bool recalled;               /* given up in a recall answer the node did not confirm */
	uint32_t version;            /* recalled: that recall's page version (mnc_recall) */
	uint8_t data[4096];
};

/* What pager_section_migrate_commit() took (memmig.h). */
struct pager_memmig_result {
	uint64_t pages_resent;        /* pages sent to the target again at commit */
	uint64_t pages_dual;          /* pages written back to both during the migration */
	uint64_t pause_ns;            /* the section was fenced this long */
	uint64_t total_ns;            /* the commit took this long */
	unsigned rounds;              /* re-send chunks */
};

/* A run of hot pages (hot.h). */
struct pager_hot_run {
	struct pager_section sec;     /* the section's descriptor */
	uint32_t page, count;         /* pages [page, page + count) of the section */
};

struct pager_stats {
	uint64_t faults;              /* uffd messages handled (missing + wp) */
	uint64_t faults_missing;
	uint64_t faults_wp;
	uint64_t faults_alias;        /* of those, faults through an alias (alias.h) */
	uint64_t faults_local;        /* missing faults on local sections */
	uint64_t pages_fetched;       /* pages installed from the backend */
	uint64_t pages_prefetched;    /* of which beyond the faulting cluster */
	uint64_t pages_zero;          /* installed as zeros (local or discarded) */
	uint64_t pages_evicted;
	uint64_t pages_written_back;
	uint64_t remove_events;
	uint64_t errors;              /* backend errors (each retry counts) */
	uint64_t eexist, eagain;
	uint64_t flushes;
	uint64_t pages_punched;       /* resident pages found punched behind the pager's back */
	uint64_t pages_dropped;       /* resident pages dropped by remove_region/set_section */
	uint64_t regions_removed;
	uint64_t memmig_started, memmig_committed, memmig_aborted, memmig_failed;
	uint64_t memmig_pages_dual;   /* pages written back to source and target */
	uint64_t memmig_pages_resent; /* pages re-sent to targets at commit */
	uint64_t pages_cleaned;       /* pages written back by background write-back */
	uint64_t pages_unprotected;   /* made writable with another page's write-protect fault */
	uint64_t pages_hot_prefetched; /* fetched ahead of faults (pager_prefetch) */
	uint64_t writebacks_fenced;   /* write-back batches refused in part as fenced: dropped */
	uint64_t shared_writes_waited; /* write faults on a read-only shared region (share.h) */
	uint64_t shared_pages_dropped; /* pages of shared regions invalidated (share.h) */
	uint64_t strict_reads, strict_writes; /* directory requests of strict regions */
	uint64_t strict_recalls;      /* pages recalled by another node's request */
	uint64_t strict_taken;        /* read requests answered with ownership (migratory pages) */
	uint64_t strict_taken_clean;  /* of those, recalled unchanged: handed back clean */
	uint64_t strict_held;         /* recalls that waited for the hold window */
	uint64_t strict_held_taken;   /* of those, for a taken page not written yet */
	uint64_t strict_grace_waits;  /* strict requests asked again: a restarted directory's grace period */
	uint64_t release_pages_published; /* release regions: pages whose diffs were published */
	uint64_t release_diff_bytes;  /* release regions: changed bytes published */
	uint64_t release_batches_resent; /* release regions: batches sent again from the journal */
	uint64_t integrity_failures;  /* fetched pages that failed authentication (crypt.h) */
	uint64_t pages_sealed;        /* pages sealed for write-back */
	uint64_t pages_stashed;       /* a random fault's neighbours kept sealed after its wake (stash.h) */
	uint64_t pages_stash_opened;  /* of those, opened and installed (touched, or the thread was idle) */
	uint64_t pages_stash_dropped; /* of those, not installed from it (given up, failed, section changed) */
	uint64_t replica_failovers;   /* fetches served by another replica after one failed */
	uint64_t replica_pages_written; /* pages written to replica positions >= 1 */
	uint64_t replicas_out;        /* replicas out now, over all sections */
	bool encrypted;               /* pages leave sealed (cfg.crypt) */
	uint64_t dirty_pages;         /* pages that need write-back now (dirty or discarded) */
	unsigned cleaner_floor;       /* a region's write-back floor, as last set (cache.h) */
	uint64_t memmig_active;       /* migrations in progress now */
	int memmig_last_err;          /* why the last failed migration failed (0: none) */
	uint64_t resident_pages;      /* remote pages resident now */
	uint64_t max_resident_pages;
	uint64_t budget_pages;
	int failed;                   /* 0, or the -errno of a memory node that is down now */
	uint64_t nodes_down;          /* memory nodes down now */
	uint64_t faults_parked;       /* faults left waiting for a memory node that is down */
	uint64_t node_down_events, node_up_events;
	enum pager_dirty_mode mode;
	struct hist fault, fetch, evict, writeback;
	struct hist memmig_pause;     /* fence time of a migration's commit */
	struct hist space_wait;       /* faults that waited for cache space: the wait */
	struct hist busy_wait;        /* writes that waited for a write-back in flight */
	struct hist strict;           /* strict faults that asked the directory, until installed */
	struct hist recall;           /* strict recalls served here, the hold window included */
};

/* A replica out (replica.h, pager_replicas_out). */
struct pager_replica_out {
	int region;
	unsigned index, replica;      /* section, position */
	struct pager_section view;    /* addr/grant of that replica, nrep 0 */
	int err;                      /* why it was taken out */
};

/* A memory node that is down (source.h). */
struct pager_node_state {
	uint64_t memnode_id;
	int err;                      /* why it was marked down */
};

#endif /* DISAGG_PAGER_TYPES_H */
