// SPDX-License-Identifier: MIT
/*
 * The pager: remote memory for any mapping of a tmpfs file, through
 * userfaultfd.
 *
 * A `struct pager` serves one group of mappings (one VM) with one local
 * cache budget. Each mapping ("region") is a tmpfs/memfd file mapped
 * MAP_SHARED somewhere - usually in another process (QEMU) - and registered
 * with a uffd for MISSING|WP. The pager only uses uffd ioctls on that uffd
 * and pread/fallocate on the file fd: it never dereferences the mapping's
 * addresses, so the mapping may live in any process.
 *
 * The region is cut into sections (pager_config.section_size). A section is
 * local (served as zero pages, never evicted, not counted in the budget) or
 * remote: section `grant.section` on a memory node, reached through the
 * backend (ops table below: "memnode" through mnclient, or "local", a
 * buffer in this process used as the uffd floor in benchmarks and tests).
 *
 * Regions can be removed while the pager runs (DIMM hot-unplug) and a
 * region's sections reassigned (virtio-mem plug/unplug): see
 * pager_remove_region() and pager_region_set_section(). A remote section
 * can move to another memory node while it is in use:
 * pager_section_migrate_begin/commit/abort().
 *
 * docs/pager.md describes the design, the thread model, the eviction policy,
 * hotplug and the failure behaviour.
 */
#ifndef DISAGG_PAGER_H
#define DISAGG_PAGER_H

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

struct pager;

/* ---- sections ----------------------------------------------------------- */

enum pager_sec_kind {
	PAGER_SEC_LOCAL  = 0,
	PAGER_SEC_REMOTE = 1,
};

struct pager_section {
	enum pager_sec_kind kind;
	char addr[PROTO_MAX_ADDR];  /* memory node "host:port" (memnode backend) */
	struct proto_grant grant;   /* names memnode, section and generation */
};

/* ---- backends ----------------------------------------------------------- */

/*
 * A backend moves pages between this node and wherever remote sections
 * live. Every thread of the pager opens its own connection (`conn`), so
 * implementations need no locking on a conn.
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
	/* Wait for every queued write: 0 when all acknowledged, else the first error. */
	int (*write_wait)(void *conn);
	/* Forget a broken connection; the next call reconnects. */
	void (*reset)(void *conn);
	/* Largest page count of one fetch or one write_submit. */
	uint32_t (*max_pages)(void *conn);
	void (*destroy)(void *be);
};

struct pager_backend {
	const struct pager_backend_ops *ops;
	void *priv;
};

/*
 * "local" backend: sections live in anonymous memory of this process
 * (allocated on first use, zero-filled). `delay_us` is added to every
 * fetch and write (0: none).
 */
int pager_backend_local_new(size_t section_size, struct pager_backend **ret);
/* Make every later fetch/write fail with err (0: work again). For tests. */
void pager_backend_local_set_error(struct pager_backend *be, int err);
void pager_backend_local_set_delay(struct pager_backend *be, unsigned delay_us);
/* Only the sections of memory node `memnode_id` fail with err (0: work again). For tests. */
void pager_backend_local_set_node_error(struct pager_backend *be, uint64_t memnode_id, int err);

/*
 * "memnode" backend: sections on memory nodes, through mnclient. Each
 * connection (one per pager thread) holds one mnc per memory node address.
 * `spin_us` busy-polls for a fetch reply that long before blocking.
 */
int pager_backend_memnode_new(const struct auth_key *key, uint64_t node_id, int timeout_ms,
			      unsigned spin_us, struct pager_backend **ret);

void pager_backend_free(struct pager_backend *be);

/* ---- userfaultfd helpers ----------------------------------------------- */

enum pager_dirty_mode {
	PAGER_DIRTY_SYNC_WP  = 0, /* synchronous WP faults: safe with eviction (default) */
	PAGER_DIRTY_ASYNC_WP = 1, /* UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN: no eviction */
};

/* Features the running kernel offers (probe through a throw-away uffd). */
int pager_uffd_probe(uint64_t *ret_features);
/*
 * Open a uffd (O_CLOEXEC|O_NONBLOCK) and negotiate what the pager needs for
 * `mode`: MISSING and WP on shmem, EVENT_REMOVE, THREAD_ID, and WP_ASYNC for
 * the async mode. -EOPNOTSUPP if the kernel lacks a required feature.
 */
int pager_uffd_open(enum pager_dirty_mode mode, int *ret_fd, uint64_t *ret_features);
/* Register [addr, addr+len) for MISSING|WP. */
int pager_uffd_register(int uffd, uint64_t addr, uint64_t len);

/* ---- the pager ---------------------------------------------------------- */

/*
 * What happens to a fault that cannot be served. Either way nothing is
 * sticky: a fault on a memory node that does not answer is parked until
 * the node answers again (pager_nodes.c), and every other fault is served
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
};

int pager_new(const struct pager_config *cfg, struct pager **ret);
/* Stops the threads (any blocked faulting thread stays blocked) and frees. Accepts NULL. */
void pager_free(struct pager *p);
DEFINE_CLEANUP_FUNC(struct pager, pager_free)
#define _cleanup_pager_ _cleanup_(pager_freep)

/*
 * Add a mapping; may be called before or after pager_start(). Returns the
 * region index (a free slot: the lowest one, slots of removed regions are
 * reused) or -errno: -EINVAL, -ENOSPC (PAGER_MAX_REGIONS in use), -ENOMEM.
 *
 * Ownership: rc->uffd, rc->file_fd and rc->pagemap_fd stay the caller's.
 * The pager never closes them; it sets O_NONBLOCK on the uffd's file
 * description and moves the file_fd's file position (lseek SEEK_DATA/HOLE),
 * so do not share those descriptions with code that relies on either. They
 * must stay open until pager_remove_region() or pager_free() has returned.
 */
int pager_add_region(struct pager *p, const struct pager_region_config *rc);
int pager_start(struct pager *p);

/*
 * Hot-unplug: stop serving region `region` and release its slot.
 *
 * Call it BEFORE the mapping is unmapped and after its user has stopped
 * touching it (the guest has offlined the memory). On return:
 *   - no pager thread uses the region any more: it is out of the fault
 *     threads' epoll set, faults in flight on it have finished or were
 *     abandoned (a fetch in retry is cancelled; its thread stays blocked),
 *     and no eviction or flush batch holds its pages;
 *   - its resident pages are out of the budget accounting and the remote
 *     sections' range of the file is punched (a later region over the same
 *     file starts empty; local sections' file content is left alone);
 *   - the slot can be reused by pager_add_region();
 *   - the fds are untouched: close them (after the munmap) when you like.
 * writeback false: dirty pages are DISCARDED without write-back: the
 * section is being released. Flush first (or pass true) to keep the data.
 * writeback true: dirty and discarded pages are written back (and
 * acknowledged) after the region stopped being served; if that fails the
 * region is served again, nothing is removed, and the error is returned.
 * A fault on the range after removal is never served (its thread stays
 * blocked until the range is unmapped or unregistered or the uffd closed).
 * Blocks for a grace period of the fault threads (microseconds normally;
 * at most one backend attempt while a fetch is retrying, or 200 ms while a
 * fault thread waits for budget space) and for an eviction batch in flight.
 * -EINVAL, -ENOENT (no such region), -EDEADLK (called from a pager thread,
 * e.g. from on_fail), or the write-back error.
 */
int pager_remove_region(struct pager *p, int region, bool writeback);

/*
 * Give section `index` of region `region` a new backing (virtio-mem plug:
 * local, or remote with its grant; unplug: back to local). The section is
 * fenced while it changes: faults on it wait and are served by the new
 * section afterwards.
 * discard false: the section must be idle: no page resident, dirty or in
 * flight, and no data in the file range (a local section that was touched
 * has data). Otherwise -EBUSY and nothing changes.
 * discard true: whatever the section holds is dropped WITHOUT write-back
 * and its file range punched (virtio-mem unplug: QEMU discards the memory
 * anyway). The new section starts empty.
 * Changing only the grant of the same remote section (same memory node id,
 * section and generation; e.g. a renewed grant) keeps the resident pages
 * and is always allowed.
 * -EINVAL, -ENOENT, -ERANGE (index beyond the region), -EBUSY, -EDEADLK.
 */
int pager_region_set_section(struct pager *p, int region, unsigned index,
			     const struct pager_section *sec, bool discard);

/*
 * Memory migration: move remote section `index` of region `region` to
 * another memory node while the mapping keeps running (docs/pager.md,
 * "Memory migration"). The caller (the agent, driven by the orchestrator):
 *
 *   1. pager_section_migrate_begin(target): from now on every write-back
 *      of the section goes to its memory node (the source) AND to `target`
 *      and is acknowledged when both acknowledged; pages written back are
 *      recorded. A target that fails never fails a write-back: the
 *      migration is marked failed and the writes go on to the source.
 *   2. has the source memory node COPY the section to `target` (zeroed at
 *      allocation) and waits for the COPY's answer;
 *   3. pager_section_migrate_commit(): re-sends to the target every page
 *      written back before the commit (the COPY may have written an older
 *      copy after it), in chunks while faults run, then fences the section
 *      briefly (faults on it wait) for the rest and switches the section to
 *      `target`, keeping resident pages and dirty state; dual writing
 *      stops. *ret tells what it took (the fence time is also in the
 *      stats' memmig_pause histogram);
 *      or pager_section_migrate_abort(): dual writing stops, the section
 *      stays on the source (the target can be freed).
 *
 * Only a remote section can move, to a different remote section, one
 * migration per section at a time.
 * begin:  -EINVAL (local section, target not remote or the section
 *         itself), -ENOENT (no region), -ERANGE (index), -EBUSY (a
 *         migration of this section is in progress), -EDEADLK, -ENOMEM.
 * commit: -ENOENT (no migration in progress), -EREMOTEIO (the target
 *         failed during the window or the re-send: the migration is dropped
 *         and the section stays on the source; the target's error is in
 *         stats.memmig_last_err), or the error reading the source (also
 *         dropped); -ENOMEM keeps the migration (retry or abort).
 * abort:  -ENOENT if no migration is in progress.
 * While a section migrates, pager_region_set_section() to another section
 * is -EBUSY unless it discards (which also drops the migration), and
 * pager_remove_region() drops it.
 */
struct pager_memmig_result {
	uint64_t pages_resent;        /* pages sent to the target again at commit */
	uint64_t pages_dual;          /* pages written back to both during the migration */
	uint64_t pause_ns;            /* the section was fenced this long */
	uint64_t total_ns;            /* the commit took this long */
	unsigned rounds;              /* re-send chunks */
};

int pager_section_migrate_begin(struct pager *p, int region, unsigned index,
				const struct pager_section *target);
int pager_section_migrate_commit(struct pager *p, int region, unsigned index,
				 struct pager_memmig_result *ret);
int pager_section_migrate_abort(struct pager *p, int region, unsigned index);

/*
 * Evacuation: local section `index` of `region` becomes the remote section
 * `target` (a fresh, zeroed one), keeping its content. The pages the guest
 * touched (data in the file) stay resident and become dirty, so they are
 * written to the target by the cleaner, the evictor or the next
 * pager_flush(); the others read as the target's zeros. The section is
 * fenced only while its state is set. *ret_pages (may be NULL): the pages
 * to write back. -EALREADY (not local), -EINVAL, -ENOENT, -ERANGE, -EDEADLK.
 */
int pager_section_evacuate(struct pager *p, int region, unsigned index,
			   const struct pager_section *target, uint64_t *ret_pages);
/* The target of the migration of a section in progress: 0, or -ENOENT if none. */
int pager_section_migration(struct pager *p, int region, unsigned index,
			    struct pager_section *ret_target);
/*
 * Which region and section index hold the remote section `match` (same
 * memory node id, section and generation)? -ENOENT if none, -EINVAL.
 */
int pager_section_find(struct pager *p, const struct pager_section *match, int *ret_region,
		       unsigned *ret_index);

/*
 * Hot pages, for a compute migration's destination: the clusters the last
 * PAGER_HOT_RING faults fetched, the pages of them that are resident now,
 * as runs within sections (sorted, at most max_pages pages). *ret is
 * malloc'd.
 */
struct pager_hot_run {
	struct pager_section sec;     /* the section's descriptor */
	uint32_t page, count;         /* pages [page, page + count) of the section */
};
int pager_hot_export(struct pager *p, uint64_t max_pages, struct pager_hot_run **ret,
		     size_t *ret_n);

/*
 * Fetch pages [page, page + count) of section `index` of `region` ahead of
 * faults: queued, and served by the fault threads between faults, one
 * window at a time; pages already resident or in flight are skipped, and
 * nothing is fetched beyond the budget. Errors only drop the run (a fault
 * on the page will fetch it, or fail, as usual). -EINVAL, -ENOENT, -ERANGE,
 * -ENOSPC (queue full).
 */
int pager_prefetch(struct pager *p, int region, unsigned index, uint32_t page, uint32_t count);

/* Change the budget (bytes of remote pages resident). Eviction starts at once. */
int pager_set_budget(struct pager *p, uint64_t bytes);
/* Wait until resident <= budget (or timeout_ms, <0 forever): -ETIMEDOUT. */
int pager_wait_budget(struct pager *p, int timeout_ms);
/* Write back every dirty page; returns once all are acknowledged. */
int pager_flush(struct pager *p);

struct pager_stats {
	uint64_t faults;              /* uffd messages handled (missing + wp) */
	uint64_t faults_missing;
	uint64_t faults_wp;
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
	uint64_t pages_hot_prefetched; /* fetched ahead of faults (pager_prefetch) */
	uint64_t dirty_pages;         /* pages that need write-back now (dirty or discarded) */
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
};

const char *pager_mode_name(enum pager_dirty_mode m);
void pager_stats(struct pager *p, struct pager_stats *ret);
/* The memory nodes that are down now: how many were written to ret (at most max). */
struct pager_node_state {
	uint64_t memnode_id;
	int err;                      /* why it was marked down */
};
int pager_nodes_state(struct pager *p, struct pager_node_state *ret, size_t max);
/* Prometheus text; labels "" or `vm="x"`. */
void pager_render_metrics(struct pager *p, struct strbuf *sb, const char *labels);

#endif /* DISAGG_PAGER_H */
