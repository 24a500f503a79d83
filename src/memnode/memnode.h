/* SPDX-License-Identifier: MIT */
/*
 * Internal interfaces of disagg-memnode, the memory node daemon.
 *
 * The daemon is split into a few modules, each with its own prefix under
 * the common `mn_`:
 *   pool.c     the memory pool (one mmap) and its backing (anon, tmpfs or a
 *              persistent file with an on-disk section table)
 *   table.c    the section table: allocate, free, list, per-section locks
 *   server.c   acceptor, worker threads, connections, framing, output queues,
 *              handshake and idle timeouts
 *   accept.c   the accept loop (accept.h, for main.c alone)
 *   admit.c    connection caps per address and before authentication (admit.h)
 *   handlers.c one handle_<op>() per protocol opcode, through a table
 *   copy.c     memnode-to-memnode section copy on its own threads
 *   fence.c    ownership epochs: FENCE and the epoch check of every write
 *   dir.c      the coherence directory of shared regions in mode strict (dir.h)
 *   stats.c    counters, histograms, /metrics and /healthz
 *   main.c     options, startup, signals, shutdown
 */
#ifndef DISAGG_MEMNODE_H
#define DISAGG_MEMNODE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admit.h"
#include "auth.h"
#include "cert.h"
#include "dir.h"
#include "grant.h"
#include "hsserver.h"
#include "metrics.h"
#include "obuf.h"
#include "revlist.h"
#include "tlsaccept.h"
#include "disagg/proto.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "disagg-memnode stores atomics and its on-disk table in host order: little-endian only"
#endif

#define MN_MIN_SECTION_SIZE (2ull << 20)
#define MN_DEFAULT_SECTION_SIZE (128ull << 20)
#define MN_DATA_ALIGN (2ull << 20)   /* data area offset alignment in a pool file */
#define MN_MAX_CONNS 1024
#define MN_GRANT_CACHE_BITS 12   /* 4,096 verified grants node-wide (grantcache.h) */
#define MN_MAX_CONNS_PER_ADDR 256    /* a compute node opens a few per VM (docs/memnode.md) */
#define MN_MAX_UNAUTH 256            /* connections that have not authenticated yet */
#define MN_MAX_UNAUTH_PER_ADDR 64    /* ... from one address: room for a host's bursts */
#define MN_HANDSHAKE_MS 5000         /* accept -> AUTH done, or the connection is closed */
#define MN_PREAUTH_BUF 4096          /* input buffered before AUTH (HELLO is 80 bytes) */
#define MN_OUTQ_CAP (8u << 20)       /* bytes queued to a client before we stop reading it */
#define MN_MAX_COPIES 4              /* concurrent COPY operations per node */
#define MN_COPY_TIMEOUT_MS 5000

/* ---- pool (pool.c) ------------------------------------------------------ */

enum mn_backing {
	MN_BACK_ANON,
	MN_BACK_TMPFS,
	MN_BACK_FILE,
};

/* One on-disk (or in-memory, for anon) section record. */
struct mn_rec {
	uint32_t state;      /* enum mn_sec_state; written last, with one aligned store */
	uint32_t generation;
	uint64_t owner;
};
_Static_assert(sizeof(struct mn_rec) == 16, "mn_rec size");

enum mn_sec_state {
	MN_SEC_FREE = 0,
	MN_SEC_USED = 1,
};

struct mn_pool_opts {
	enum mn_backing backing;
	const char *path;        /* tmpfs / file */
	uint64_t size;           /* data bytes, a multiple of section_size */
	uint64_t section_size;
	uint64_t node_id;
};

struct mn_pool {
	enum mn_backing backing;
	int fd;                  /* -1 for anon */
	uint8_t *data;           /* the pool: nsections * section_size bytes */
	uint64_t size;
	uint64_t section_size;
	uint32_t nsections;
	uint32_t section_pages;
	uint64_t node_id;
	void *meta;              /* mapped metadata (header + records), or NULL */
	size_t meta_len;
	struct mn_rec *recs;     /* nsections records (in meta, or malloc'd for anon) */
	uint32_t *epochs;        /* nsections little-endian ownership epochs */
	void *epoch_map;         /* the mapped epoch table of a pool file, or NULL */
	size_t epoch_len;
	bool recovered;          /* opened an existing pool file */
	bool upgraded;           /* ... of version 1, now version 2 (with epochs) */
	bool on_tmpfs;           /* the backing file lives on tmpfs/hugetlbfs */
	bool punch_ok;           /* fallocate(PUNCH_HOLE) works on the backing */
};

/* Open or create the pool. On failure `err` holds a message for the operator. */
int mn_pool_open(const struct mn_pool_opts *o, struct mn_pool **ret, char *err, size_t errlen);
void mn_pool_close(struct mn_pool *p);     /* accepts NULL; msyncs a file pool */
static inline uint8_t *mn_pool_section(const struct mn_pool *p, uint32_t idx)
{
	return p->data + (size_t)idx * p->section_size;
}
/* Zero a whole section (punch hole / MADV_DONTNEED, memset as fallback). */
int mn_pool_zero(struct mn_pool *p, uint32_t idx);
/* Make record idx durable (msync of its page; no-op for anon). */
int mn_pool_sync_rec(struct mn_pool *p, uint32_t idx);
/* The same for the epoch of section idx. */
int mn_pool_sync_epoch(struct mn_pool *p, uint32_t idx);
/*
 * Find the next page at or after `page` (in section idx) that may hold data:
 * holes are skipped with SEEK_DATA on file backings. Sets *ret_end to the
 * end (exclusive) of that data run. Returns 0, or -ENXIO when no data follows.
 */
int mn_pool_next_data(struct mn_pool *p, uint32_t idx, uint32_t page, uint32_t *ret_page,
		      uint32_t *ret_end);
bool mn_page_is_zero(const void *page);
const char *mn_backing_name(enum mn_backing b);

/* ---- section table (table.c) ------------------------------------------- */

struct mn_sec {
	pthread_rwlock_t lock;   /* readers: page I/O; writer: alloc/free/fence */
	uint32_t state;          /* under lock */
	uint32_t generation;
	uint32_t epoch;          /* highest ownership epoch seen (fence.c) */
	uint64_t owner;
};

struct mn_table {
	pthread_mutex_t mu;      /* serializes alloc/free */
	struct mn_pool *pool;
	struct mn_sec *secs;
	uint32_t nsections;
	uint32_t hint;           /* next index to try on alloc */
	_Atomic uint32_t nused;
};

int mn_table_init(struct mn_table *t, struct mn_pool *p);
void mn_table_destroy(struct mn_table *t);
int mn_table_alloc(struct mn_table *t, uint64_t owner, struct proto_section *ret);
/* Free section idx of `generation` for an owner of `epoch` (-EKEYREVOKED: fenced). */
int mn_table_free(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t epoch);
/* Allocated sections from `start`; returns count, *ret_next continues. */
uint32_t mn_table_list(struct mn_table *t, uint32_t start, uint32_t max,
		       struct proto_section *out, uint32_t *ret_next);
/*
 * Take the read lock of section idx if it is allocated with `generation`:
 * -ENOENT (out of range or free), -ESTALE (other generation).
 * On success the caller must call mn_table_unlock().
 */
int mn_table_rdlock(struct mn_table *t, uint32_t idx, uint32_t generation);
void mn_table_unlock(struct mn_table *t, uint32_t idx);

/* ---- ownership epochs (fence.c) ------------------------------------------ */

/*
 * Raise the epoch of section idx (allocated with `generation`) to `epoch`
 * if that is higher, durably, under the section's write lock: every access
 * under way finishes first. *ret_epoch (may be NULL) receives the epoch
 * now. Returns 1 if it was raised, 0 if not, or -ENOENT, -ESTALE, or the
 * error of making it durable (the epoch is raised in memory all the same).
 */
int mn_table_fence(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t epoch,
		   uint32_t *ret_epoch);
/*
 * Take the read lock of section idx for a write through a grant of
 * `generation` and `epoch`: as mn_table_rdlock(), and -EKEYREVOKED if the
 * section's epoch is higher than `epoch` (a newer owner fenced this one).
 * A higher `epoch` raises the section's first (mn_table_fence). *ret_raised
 * says whether this call raised it.
 */
int mn_table_lock_write(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t epoch,
			bool *ret_raised);

/*
 * One page of section idx (allocated with `generation`) copied out or in
 * under the section's read lock, for the directory (dir.h): -ENOENT,
 * -ESTALE, -ERANGE. A page written here is not checked against the
 * section's epoch: it answers a recall of the node's own.
 */
int mn_table_page_read(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t page,
		       void *buf);
int mn_table_page_write(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t page,
			const void *data);

/* ---- statistics (stats.c) ---------------------------------------------- */

struct mn_stats {
	_Atomic uint64_t requests[PROTO_OP_MAX];
	_Atomic uint64_t errors;
	_Atomic uint64_t bytes_read;
	_Atomic uint64_t bytes_written;
	_Atomic uint64_t diff_frames_repeated;   /* PROTO_DIFF_ONCE frames not applied again */
	_Atomic uint64_t connections;        /* open now */
	_Atomic uint64_t connections_total;  /* accepted since start */
	_Atomic uint64_t rejected_conns;     /* refused over max_conns */
	_Atomic uint64_t rejected_per_addr;  /* refused: their address is at its cap */
	_Atomic uint64_t rejected_unauth;    /* refused: too many unauthenticated */
	_Atomic uint64_t handshake_timeouts; /* closed: no AUTH within the handshake timeout */
	_Atomic uint64_t idle_timeouts;      /* closed: authenticated and idle too long */
	_Atomic uint64_t preauth_oversize;   /* closed: a frame too large before AUTH */
	_Atomic uint64_t copies;
	_Atomic uint64_t copy_pages;
	_Atomic uint64_t fenced;             /* writes and frees refused: an older epoch */
	_Atomic uint64_t epoch_raises;       /* section epochs raised (FENCE or a newer grant) */
	_Atomic uint64_t auth_failed;        /* AUTHs refused: bad MAC or bad orchestrator proof */
	_Atomic uint64_t grants_rejected;    /* forged, or for another node, holder or section */
	_Atomic uint64_t grants_expired;
	_Atomic uint64_t grants_rights;      /* authentic, but without the rights asked for */
	_Atomic uint64_t denied;             /* orchestrator-only requests from anyone else */
	/* TLS handshakes that failed, by reason (tls.h tls_fail_reason, and "identity") */
	_Atomic uint64_t tls_fail[MN_TLS_FAIL_MAX];
	_Atomic uint64_t tls_handshakes;     /* completed */
	/* HELLO/AUTH refused for the certificate's identity */
	_Atomic uint64_t id_node_mismatch;   /* HELLO names another node than the certificate */
	_Atomic uint64_t id_role;            /* a capability the certificate's role lacks */
	_Atomic uint64_t revoked_handshake;  /* TLS handshakes of revoked nodes refused */
	_Atomic uint64_t revoked_hello;      /* HELLOs naming a revoked node refused */
	_Atomic uint64_t revoked_closed;     /* live connections closed by a new list */
	_Atomic uint64_t dir_conn_moves;     /* directory connections moved to worker 0 */
	_Atomic uint64_t dir_conns;          /* open connections that offered PROTO_FEAT_DIR_CONN */
	_Atomic uint64_t posts_local;        /* frames posted on the connection's own worker (worker.c) */
	_Atomic uint64_t posts_queued;       /* frames posted from another thread, through its queue */
	struct hist latency[PROTO_OP_MAX];
};

struct mn_node;
char *mn_stats_render(struct mn_node *n);
char *mn_health_render(struct mn_node *n);

/* ---- the node ------------------------------------------------------------- */

struct mn_worker;
struct mn_copy;
struct mn_grant_cache;

struct mn_node {
	uint64_t node_id;
	struct auth_key key;
	struct grant_key *grant_key;   /* the public half: verifies grants and the orchestrator */
	struct mn_grant_cache *gcache; /* grants whose signature verified (grantcache.h) */
	struct mn_pool *pool;
	struct mn_table table;
	struct mn_once *once;          /* WRITE_DIFF frames applied (once.h), or NULL */
	struct mn_stats stats;
	unsigned nworkers;
	struct mn_worker *workers;
	unsigned next_worker;
	int listen_fd;
	struct mn_limits limits;
	struct mn_admit *admit;
	struct tls_ctx *tls;           /* NULL: --fabric-plaintext */
	struct revlist revoked;     /* revoked node ids (revlist.h) */
	struct mn_dir *dir;            /* the coherence directory (dir.h) */
	struct mn_dirtab *dirtab;      /* its holders on disk (dirtab.h), or NULL */
	atomic_bool stopping;
	/* copy slots (copy.c) */
	pthread_mutex_t copy_mu;
	struct mn_copy *copies[MN_MAX_COPIES];
};

/* ---- server (server.c) ------------------------------------------------- */

struct mn_conn;


int mn_server_start(struct mn_node *n, int listen_fd, unsigned nworkers);
/*
 * Hand a connected, non-blocking socket to a worker without admission
 * (no address, no caps), as if it had been accepted; the node owns fd
 * from here on, also on failure. Lets a test drive a connection without a
 * listening socket (tests/fuzz/fuzz_memnode.c).
 */
int mn_server_adopt(struct mn_node *n, int fd);
void mn_server_stop(struct mn_node *n);
/* Wake every worker (a new revocation list). Safe from any thread. */
void mn_server_kick(struct mn_node *n);
/* The connections worker idx serves now (0 for no such worker). */
unsigned mn_server_worker_conns(struct mn_node *n, unsigned idx);
/* Hand an admitted connection (non-blocking fd) to a worker; closes it on failure. */
void mn_server_handoff(struct mn_node *n, int fd, struct mn_peer *peer);

/* Queue a reply on a connection (worker thread only); an ob->kill marker closes it. */
void mn_conn_queue(struct mn_conn *c, struct mn_obuf *ob);
/* Connection accessors for the handlers. */
#define MN_GRANT_CACHE 16          /* verified grants remembered per connection */

struct mn_conn_auth {
	struct hs_peer hs;        /* HELLO and AUTH (hsserver.h) */
	/*
	 * Grants that verified on this connection (signature, node, holder),
	 * byte for byte: an Ed25519 verification costs tens of microseconds,
	 * and a pager's connection goes back and forth between its sections.
	 * Expiry and rights are checked on every use. Replaced round robin.
	 */
	struct proto_grant grants[MN_GRANT_CACHE];
	unsigned ngrants, next_grant;
	bool dir_chan;           /* attached as a recall channel (DIR_ATTACH) once */
};
struct mn_conn_auth *mn_conn_auth(struct mn_conn *c);
struct mn_node *mn_conn_node(struct mn_conn *c);
/* Close once the queued replies are written (protocol errors), or cancel that. */
void mn_conn_close_after_reply(struct mn_conn *c);
void mn_conn_keep_open(struct mn_conn *c);
/* Serve c on the directory's worker once this frame is answered (HELLO with PROTO_FEAT_DIR_CONN). */
void mn_conn_dir_worker(struct mn_conn *c);
/* Take a reference for a reply that another thread will post later (worker thread). */
void mn_conn_hold(struct mn_conn *c);
/*
 * Hand a reply produced on another thread to the connection's worker and
 * drop the reference taken by mn_conn_hold(). Safe from any thread; the
 * reply is dropped if the connection has gone away meanwhile.
 */
void mn_conn_post(struct mn_conn *c, struct mn_obuf *ob, uint64_t start_ns, uint16_t op);
/* Send ob, a frame the node sends on its own (DIR_RECALL), on c; from any thread. */
void mn_conn_push(struct mn_conn *c, struct mn_obuf *ob);
/* Keep c's memory while another module points at it (any thread), and let it go. */
void mn_conn_ref(struct mn_conn *c);
void mn_conn_unref(struct mn_conn *c);
/* The directory's operations on this node's connections and sections (dir.h). */
extern const struct mn_dir_ops mn_dir_node_ops;

/* ---- handlers (handlers.c) ----------------------------------------------- */

/* Handle one complete request frame; queues the reply (or defers it). */
void mn_dispatch(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *payload);
/* Send an error reply for a frame the framing layer rejected. */
void mn_reply_status(struct mn_conn *c, const struct proto_hdr *h, uint32_t status);

/* ---- copy (copy.c) ----------------------------------------------------- */

/* Start copying; takes a connection ref on success. -EBUSY if all slots run. */
int mn_copy_start(struct mn_conn *c, const struct proto_hdr *h, const struct proto_copy_req *req);
/* Wait for every copy thread (at shutdown; they see n->stopping). */
void mn_copy_join_all(struct mn_node *n);

#endif /* DISAGG_MEMNODE_H */
