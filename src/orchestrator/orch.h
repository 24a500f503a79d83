/* SPDX-License-Identifier: MIT */
/*
 * disagg-orchestrator: shared state and the interfaces between its modules.
 *
 *   main.c       options, start-up, reconciliation, shutdown
 *   api.c        routing, X-Request-Id idempotency, /healthz, /metrics,
 *                sections
 *   events.c     GET /v1/events and its long poll         } reached through
 *   ui.c         the web view's files (/ui/, ui_assets.h) } struct orch_web
 *   slotpager.c  GET /v1/slots/NAME/pager                 } (main.c sets it)
 *   nodes.c      registration, heartbeats, the liveness monitor thread,
 *                drain, reconciliation with compute nodes
 *   placement.c  choosing the compute node and the memory nodes
 *   slots.c      slot create, resize, delete, console
 *   migrate*.c   compute and memory migration of a slot, and settling
 *                interrupted ones (migrate.h)
 *   regions*.c   shared regions (regions.h), reached through the table
 *                struct orch_regions so that nothing here depends on them
 *   volumes*.c   the catalog of block volumes on device nodes (volumes.h),
 *                reached through the table struct orch_volumes
 *   images*.c    images imported into base volumes (images.h), through
 *                struct orch_images
 *   replicas*.c  replicated far memory (replicas.h): placement, state,
 *                repair, through struct orch_replicas
 *   fence.c      ownership epochs of sections, fencing at each change of owner
 *   mnpool.c     cached authenticated connections to memory nodes
 *   cclient.c    HTTP client (libcurl) for the compute agents' API
 *   util.c       sizes, JSON helpers, labels, time formatting
 *   store*.c     durable state (store.h)
 *
 * Requests run synchronously in the HTTP server's per-connection threads.
 * Every slot operation first moves the slot into a transitional state
 * (creating, resizing, deleting, migrating) inside a store transaction: a second
 * operation on the same slot sees it and gets 409 busy.
 */
#ifndef DISAGG_ORCH_H
#define DISAGG_ORCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "apiauth.h"
#include "auth.h"
#include "grant.h"
#include "macro.h"
#include "http.h"
#include "slotboot.h"
#include "jsonhttp.h"
#include "metrics.h"
#include "store.h"

#define ORCH_DEFAULT_SECTION_SIZE (128ull << 20)
#define ORCH_MAX_SECTIONS 1024          /* per slot */
#define ORCH_HOT_MAX_SECTIONS 32        /* max_sections asked of the compute agent */
#define ORCH_REGION_MAX_SECTIONS 8      /* per shared region: what a compute agent maps */

enum orch_route {
	RT_NODES_REGISTER,
	RT_NODES_HEARTBEAT,
	RT_NODES_LIST,
	RT_NODES_GET,
	RT_NODES_DRAIN,
	RT_NODES_REVOKE,
	RT_SLOTS_CREATE,
	RT_SLOTS_LIST,
	RT_SLOTS_GET,
	RT_SLOTS_RESIZE,
	RT_SLOTS_DELETE,
	RT_SLOTS_CONSOLE,
	RT_SLOTS_GUEST,
	RT_SLOTS_MIGRATE,
	RT_SLOTS_MIGRATE_MEMORY,
	RT_SLOTS_PAGER,
	RT_REGIONS_CREATE,
	RT_REGIONS_LIST,
	RT_REGIONS_GET,
	RT_REGIONS_DELETE,
	RT_REGIONS_ATTACH,
	RT_REGIONS_DETACH,
	RT_REGIONS_LOCK,
	RT_REGIONS_UNLOCK,
	RT_REGIONS_SYNC,
	RT_REGIONS_MIGRATE,
	RT_VOLUMES_CREATE,
	RT_VOLUMES_LIST,
	RT_VOLUMES_GET,
	RT_VOLUMES_RESIZE,
	RT_VOLUMES_DELETE,
	RT_VOLUMES_GRANT,
	RT_VOLUMES_ADOPT,
	RT_IMAGES_IMPORT,
	RT_IMAGES_LIST,
	RT_IMAGES_GET,
	RT_IMAGES_UPLOAD,
	RT_IMAGES_COMMIT,
	RT_IMAGES_FILE,
	RT_IMAGES_DELETE,
	RT_DISKS_LIST,
	RT_DISKS_ATTACH,
	RT_DISKS_DETACH,
	RT_SECTIONS,
	RT_EVENTS,
	RT_UI,
	RT_HEALTHZ,
	RT_METRICS,
	RT_OTHER,
	RT__MAX,
};

struct route_stats {
	_Atomic uint64_t by_class[6];   /* index status / 100 */
	struct hist latency;
};

struct mnpool;
struct orch;

/* The owner of a region's sections on memory nodes: this bit | the region's id. */
#define ORCH_REGION_OWNER (1ull << 62)

/*
 * The event log and its long poll, the web view and the pager figures of
 * a slot (events.c, ui.c, slotpager.c), which api.c reaches through this
 * table so that they depend on the rest and not the other way round;
 * main.c sets orch.web (NULL: none; the fuzzer sets it with
 * orch.events_no_wait, as a long poll would hold an input for up to 30 s).
 */
struct orch_web {
	/* GET /v1/events?since=SEQ&limit=N&wait=SECONDS */
	void (*events)(struct orch *o, const struct http_req *req, struct http_resp *resp);
	/* Is path the web view's (/ui, /ui/...)? Served without a token. */
	bool (*is_ui)(const char *path);
	/* GET /ui/ and /ui/FILE. */
	enum orch_route (*ui)(const struct http_req *req, struct http_resp *resp);
	/* GET /v1/slots/NAME/pager */
	void (*pager)(struct orch *o, const char *name, struct http_resp *resp);
};

/*
 * Shared regions (regions*.c, docs/api.md "Shared regions"), as the rest
 * of the orchestrator reaches them; main.c sets orch.regions (NULL: none,
 * as in the fuzzer).
 */
struct orch_regions {
	/* The /v1/regions paths; rest follows "/v1/regions" ("" or "/..."). */
	enum orch_route (*route)(struct orch *o, const char *rest, const struct http_req *req,
				 struct http_resp *resp);
	/*
	 * Slot s (in state `was` before its delete began) is being deleted:
	 * detach it from every region first, releasing a lock it holds. 0, or
	 * -errno with resp answered (the delete stops).
	 */
	int (*slot_deleting)(struct orch *o, const struct slot_rec *s, const char *was,
			     struct http_resp *resp);
	/*
	 * A compute migration of slot s (`migrating`) to dst begins: the
	 * regions it maps enter state `migrating`, grants for dst are minted
	 * (regions_migrate.c). *ret_regions: the destination's "regions" (new
	 * reference, [] when none). 0, or -errno with resp answered (nothing
	 * changed).
	 */
	int (*migrate_begin)(struct orch *o, const struct slot_rec *s, const struct node_rec *dst,
			     json_t **ret_regions, struct http_resp *resp);
	/* It ended: moved (the source handed the VM over from `from` to `to`) or not. */
	void (*migrate_end)(struct orch *o, const struct slot_rec *s, bool moved, uint64_t from,
			    uint64_t to);
	/* POST /v1/nodes/ID/regions/NAME/lock|unlock (a guest's control page, node ID's token). */
	void (*node_lock)(struct orch *o, uint64_t node, const char *name, bool lock,
			  const struct http_req *req, struct http_resp *resp);
	/* Grants (hex) for the regions slot s maps, appended to `grants` (renewal). */
	void (*renew)(struct orch *o, const struct slot_rec *s, uint64_t expiry, json_t *grants);
	/*
	 * Memory node n holds section sec/gen for owner (ORCH_REGION_OWNER set):
	 * true when no region uses it and none is being created or deleted
	 * (the orphan sweep frees it).
	 */
	bool (*orphan)(struct orch *o, const struct node_rec *n, uint64_t owner, uint32_t sec,
		       uint32_t gen);
	/* The monitor, now and then: invalidations owed to attached slots, stray regions. */
	void (*upkeep)(struct orch *o);
	/* Slot s runs again after it was lost: its VM may map regions it was detached from. */
	void (*slot_back)(struct orch *o, const struct slot_rec *s);
	/*
	 * A heartbeat of memory node mn, with its directory's last lost
	 * holders ("dir_drops", or NULL): events for the ones not seen yet.
	 */
	void (*dir_drops)(struct orch *o, const struct node_rec *mn, json_t *drops);
	/*
	 * GET /v1/sections: the sections of region `name` (NULL: of every
	 * region) on memory node `memnode` (0: any), appended to arr as
	 * {memnode, section, generation, region, index}. 0 or -errno.
	 */
	int (*sections)(struct orch *o, const char *name, uint64_t memnode, json_t *arr);
	/* GET /metrics: regions by state and the sections they hold. */
	void (*metrics)(struct orch *o, struct strbuf *sb);
};



/*
 * Block volumes on device nodes (volumes*.c, docs/api.md "Volumes"), as
 * the rest of the orchestrator reaches them; main.c sets orch.volumes
 * (NULL: none, as in the fuzzer).
 */
struct orch_volumes {
	/*
	 * The /v1/volumes paths; rest follows "/v1/volumes" ("" or "/...").
	 * as_node: the node whose token the request carries (0: a person's).
	 */
	enum orch_route (*route)(struct orch *o, const char *rest, const struct http_req *req,
				 struct http_resp *resp, uint64_t as_node);
	/* Device node n reported its volumes and their bytes on disk (registration, heartbeat). */
	void (*usage)(struct orch *o, const struct node_rec *n, int64_t volumes, int64_t bytes);
	/* GET /v1/nodes[/ID]: a device node's own members, added to j. */
	void (*node_json)(struct orch *o, const struct node_rec *n, json_t *j);
	/* GET /metrics: volumes by state and their bytes. */
	void (*metrics)(struct orch *o, struct strbuf *sb);
	/*
	 * The /v1/slots/NAME/disks paths of slot `slot` (volumes attached to
	 * it); rest follows "/disks" ("" or "/VOLUME").
	 */
	enum orch_route (*slot_disks)(struct orch *o, const char *slot, const char *rest,
				      const struct http_req *req, struct http_resp *resp);
	/* GET /v1/slots/NAME and the like: slot s's disks added to j (when it has any). */
	void (*slot_json)(struct orch *o, const struct slot_rec *s, json_t *j);
	/*
	 * Slot s is being deleted: 0, or -EBUSY with 409 busy answered while a
	 * volume attached to it is in an operation (the delete stops). Its
	 * volumes are detached by the delete itself (their slot goes).
	 */
	int (*slot_deleting)(struct orch *o, const struct slot_rec *s, struct http_resp *resp);
	/*
	 * A compute migration of slot s (`migrating`) to dst begins: the
	 * volumes attached to it enter state `migrating` with their epochs
	 * advanced, grants for dst are minted (volumes_migrate.c).
	 * *ret_disks: the destination's "disks" (new reference, [] when
	 * none). 0, or -errno with resp answered (no volume changed).
	 */
	int (*migrate_begin)(struct orch *o, const struct slot_rec *s, const struct node_rec *dst,
			     json_t **ret_disks, struct http_resp *resp);
	/* It ended: moved (the source handed the VM over from `from` to `to`) or not. */
	void (*migrate_end)(struct orch *o, const struct slot_rec *s, bool moved, uint64_t from,
			    uint64_t to);
	/* Grants (hex) for the volumes attached to slot s, appended to `grants` (renewal). */
	void (*renew)(struct orch *o, const struct slot_rec *s, uint64_t expiry, json_t *grants);
	/*
	 * The whole revocation list to device node dn, on a connection of its
	 * own (POST /v1/nodes/ID/revoke, every sweep): 0 or -errno.
	 */
	int (*revoke)(struct orch *o, const struct node_rec *dn);
};


/*
 * Slots created from an image or with volumes (volumes_boot.c, docs/api.md
 * "Slots"); main.c sets orch.boot (volumes_boot_start) when volumes exist.
 */
struct orch_boot;
struct orch_boot_ops {
	/*
	 * A slot being created (`creating`, on compute node c): the image's
	 * clone made (its root volume), it and the volumes asked for attached
	 * (`attaching`, grants for c minted). "disks" and "boot" are added to
	 * the VM's request vmreq. 0, or -errno with resp answered and nothing
	 * left behind.
	 */
	int (*prepare)(struct orch *o, const struct slot_rec *s, const struct node_rec *c,
		       const struct slotboot_req *req, json_t *vmreq, struct orch_boot **ret,
		       struct http_resp *resp);
	/* The VM started (ok: the attachments recorded) or not (undone, the root volume deleted); b freed. */
	void (*done)(struct orch *o, struct orch_boot *b, bool ok);
	/* Slot s's root volume and its image ("" when it has none). */
	void (*root)(struct orch *o, const struct slot_rec *s, char root[STORE_NAME_MAX],
		     char image[STORE_NAME_MAX]);
	/* The slot of root volume `root` was deleted: the volume goes too unless keep. */
	void (*deleted)(struct orch *o, const char *root, bool keep);
};

/*
 * Replicated far memory (replicas*.c, docs/replication.md), as the rest of
 * the orchestrator reaches it; main.c sets orch.replicas (replicas_start;
 * NULL: none, as in the fuzzer: every slot has one replica).
 */
struct orch_replicas {
	/*
	 * A create request's "replicas" (absent: --replicas) into s->replicas,
	 * checked against the memory nodes slot s (its memory, remote share
	 * and constraints cons parsed) may use: 0, or -EINVAL with resp
	 * answered (400, or 409 no_capacity).
	 */
	int (*parse)(struct orch *o, json_t *body, struct slot_rec *s, json_t *cons,
		     struct http_resp *resp);
	/*
	 * Remote section x of slot s (recorded, position 0) gets its other
	 * replicas: placed on other memory nodes (and zones), allocated,
	 * recorded; `sec` (its JSON for holder) gains "replicas". 0, or
	 * -ENOSPC / -EHOSTUNREACH with why set (nothing left behind).
	 */
	int (*add)(struct orch *o, const struct slot_rec *s, uint64_t holder,
		   const struct section_rec *x, json_t *sec, char *why, size_t whylen);
	/* Free and forget the replicas (positions 1..) of section idx of slot s (-1: all). */
	void (*drop)(struct orch *o, const struct slot_rec *s, int64_t idx);
	/* Slot s's JSON j: "replicas", "redundancy", and each section's "replicas". */
	void (*slot_json)(struct orch *o, const struct slot_rec *s, json_t *j);
	/* Section x of slot s as sent to holder (sec): "replicas" with their grants. */
	void (*agent_json)(struct orch *o, const struct slot_rec *s, uint64_t holder,
			   const struct section_rec *x, json_t *sec);
	/* A compute node's view of its VMs (heartbeat, GET /v1/vms): their "replicas_out". */
	void (*vms_out)(struct orch *o, const struct node_rec *n, json_t *vms);
	/* Slot s was left `migrating` by a repair (its op): settled. 0, or -ENOENT: not a repair. */
	int (*recover)(struct orch *o, struct slot_rec *s);
	/*
	 * A memory migration of slot s from memory node `from` to `to` (of
	 * section `only`, -1: all) is asked: 0 with *ret_n the replicas
	 * (positions 1..) it moves, or -EBUSY with 409 answered when `to`
	 * holds (or is in the zone of) another replica of a section that
	 * moves, or a replica that would move is out.
	 */
	int (*memmig_check)(struct orch *o, const struct slot_rec *s, uint64_t from, uint64_t to,
			    int64_t only, size_t *ret_n, struct http_resp *resp);
	/*
	 * Then, after its sections (position 0) moved: move those replicas,
	 * one by one, as sections move; each appended to reps. How many
	 * moved, or -errno with resp answered (the rest stays).
	 */
	int (*memmig)(struct orch *o, struct slot_rec *s, const struct node_rec *c,
		      const struct node_rec *from, const struct node_rec *to, int64_t only,
		      json_t *reps, struct http_resp *resp);
	/*
	 * A compute migration of slot s may begin: 0, or -EBUSY with 409
	 * answered while a replica of it is not in (the destination would not
	 * know it: it is repaired first).
	 */
	int (*compute_check)(struct orch *o, const struct slot_rec *s, struct http_resp *resp);
	/*
	 * A compute migration of slot s from src (NULL: unknown) to dst
	 * switched over (replicas_handover.c): the replicas the source took
	 * out (outs: its migrate answer's "replicas_out"; not an array: asked
	 * of src) are out in the store, and dst drops every replica out now
	 * and lets its faults go on. 0, or -errno with why set: -ENOENT the
	 * source's record is gone (which replicas missed writes is not known)
	 * or dst has no such VM, -EDEADLK a section would have no replica in,
	 * -EIO no answer (ask again).
	 */
	int (*hand_over)(struct orch *o, const struct slot_rec *s, const struct node_rec *src,
			 const struct node_rec *dst, json_t *outs, char *why, size_t len);
	/*
	 * hand_over right after the switchover; when it fails the slot is
	 * settled (`unresolved` for no answer, else `failed`) and resp answered.
	 */
	int (*after_move)(struct orch *o, struct slot_rec *s, const struct node_rec *src,
			  const struct node_rec *dst, json_t *outs, struct http_resp *resp);
	/* POST /v1/nodes/ID/labels {"labels": {"zone": "b", "old": null}} (replicas_nodes.c). */
	void (*node_labels)(struct orch *o, uint64_t id, const struct http_req *req,
			    struct http_resp *resp);
	/* POST /v1/nodes/ID/remove: drained, its replicas out, forgotten once nothing uses it. */
	void (*node_remove)(struct orch *o, uint64_t id, struct http_resp *resp);
};

/* Images (images*.c, docs/api.md "Images"); main.c sets orch.images (images_start). */
struct orch_images {
	/* The /v1/images paths; rest follows "/v1/images" ("" or "/..."). */
	enum orch_route (*route)(struct orch *o, const char *rest, const struct http_req *req,
				 struct http_resp *resp);
};

struct orch {
	struct store *store;
	struct auth_key key;
	struct grant_key *grant_key;    /* private: signs grants, proves our capability */
	uint64_t node_id;               /* ours, in HELLO to memory nodes */
	int node_timeout_s;
	int sweep_s;                  /* orphan sweep interval (sweep.c); 0: never */
	int grant_ttl_s;                /* life of a compute node's grants (sweep.c) */
	int heartbeat_s;                /* told to nodes at registration */
	uint64_t section_size;
	int compute_timeout_ms;         /* long calls (VM start, hot-plug) */
	char *images_dir;               /* images' kernels and initramfs (images.c); NULL: none */
	char public_url[160];           /* "http(s)://HOST:PORT" compute nodes fetch images' files from */

	pthread_mutex_t place_mu;       /* placement decisions and reservations */
	struct mnpool *mnpool;

	pthread_t monitor;
	bool monitor_started;
	atomic_bool stopping;
	pthread_mutex_t mon_mu;
	pthread_cond_t mon_cv;

	const struct orch_regions *regions;
	const struct orch_volumes *volumes;
	const struct orch_images *images;
	const struct orch_replicas *replicas;
	const struct orch_web *web;         /* NULL: no /v1/events, /ui, .../pager */
	bool events_no_wait;                /* a long poll answers at once (the fuzzer) */
	int replicas_default;           /* --replicas: of a slot that does not say */
	const struct orch_boot_ops *boot;   /* NULL without volumes */

	struct route_stats routes[RT__MAX];
	struct http_server *http;

	/* API authentication (api.c, docs/api.md#authentication); off when !auth. */
	bool auth;
	struct apiauth_tokens *api_tokens;  /* people tokens (--api-tokens) */
	struct auth_key node_secret;        /* node credentials derive from it (--node-secret) */
};

/* ---- util.c ------------------------------------------------------------ */

/* "2026-11-26T16:00:00Z" */
void orch_fmt_time(int64_t t, char *buf, size_t len);
/* Does a node's labels (JSON text) carry every key=value of `want` (object or NULL)? */
bool orch_labels_match(const char *labels_json, json_t *want);
/* Map -errno from a node operation to an HTTP status and error code. */
int orch_errno_status(int r, const char **ret_code);
/* Validate a slot name: [A-Za-z0-9._-]{1,63}. */
bool orch_valid_name(const char *s);
/* Roll back the store transaction the caller holds and answer the error: -EINVAL. */
int orch_refuse(struct orch *o, struct http_resp *resp, int status, const char *code,
		const char *fmt, ...) _printf_(5, 6);
/*
 * What follows a collection's path ("/v1/regions"): "" or "/" (0), or
 * "/NAME" and "/NAME/VERB" (1, with name and *ret_tail "" or "/VERB");
 * -ENOENT for an empty name or one too long for the store.
 */
int orch_path_item(const char *rest, char name[STORE_NAME_MAX], const char **ret_tail);

/* ---- nodes.c ----------------------------------------------------------- */

/* as_node: the node the caller authenticated as (0: authentication is off). */
void nodes_register(struct orch *o, const struct http_req *req, struct http_resp *resp,
		    uint64_t as_node);
void nodes_heartbeat(struct orch *o, uint64_t id, const struct http_req *req,
		     struct http_resp *resp);
void nodes_list(struct orch *o, struct http_resp *resp);
void nodes_get(struct orch *o, uint64_t id, struct http_resp *resp);
void nodes_drain(struct orch *o, uint64_t id, bool drain, struct http_resp *resp);
/* POST /v1/nodes/ID/revoke (sweep.c); the whole list on a connection to a memory or device node (mnpool.c) */
struct mnc;
void nodes_revoke(struct orch *o, uint64_t id, struct http_resp *resp);
int revoke_push(struct orch *o, struct mnc *c);
json_t *nodes_json(const struct node_rec *n);
int nodes_monitor_start(struct orch *o);
void nodes_monitor_stop(struct orch *o);
/* Ask compute node `n` which VMs it runs and fix the slots' states. */
int nodes_reconcile(struct orch *o, const struct node_rec *n);
/* Apply a compute node's view of its VMs to its settled slots (nodes.c). */
int nodes_apply_vms(struct orch *o, const struct node_rec *n, json_t *vms, bool complete);
/* Reconcile every up compute node (at start). */
void nodes_reconcile_all(struct orch *o);

/* ---- placement.c ------------------------------------------------------- */

struct placement_req {
	int64_t vcpus;
	const char *policy;             /* "spread" or "pack" */
	json_t *compute_labels;         /* may be NULL */
	json_t *memory_labels;          /* may be NULL */
};

/* Pick a compute node: -ENOSPC when none fits (ret_why explains). */
int place_compute(struct orch *o, const struct placement_req *pr, struct node_rec *ret,
		  char *ret_why, size_t whylen);
/*
 * Pick memory nodes for `n` remote sections, reserving them in the store
 * (sections_free decremented): ret[i] is the node of section i. `avoid`
 * (may be NULL) lists nodes not to use (they said NOSPC).
 */
int place_memnodes(struct orch *o, const struct placement_req *pr, size_t n,
		   const uint64_t *avoid, size_t navoid, struct node_rec *ret,
		   char *ret_why, size_t whylen);
/* The placement request of slot s with its constraints cons (may be NULL). */
void placement_from_slot(const struct slot_rec *s, json_t *cons, struct placement_req *pr);
/*
 * A create request's "constraints" (absent: {}) checked and written to out
 * as JSON; *ret_cons: them in body (borrowed) or NULL. 0, or -EINVAL answered.
 */
int placement_parse_constraints(json_t *body, char *out, size_t outlen, json_t **ret_cons,
				struct http_resp *resp);

/* ---- mnpool.c ---------------------------------------------------------- */

int mnpool_new(struct orch *o, struct mnpool **ret);
void mnpool_free(struct mnpool *p);
/* Allocate one section on memory node `n` for owner `owner`. */
/* Push the whole revocation list to memory node n. */
int mnpool_revoke(struct mnpool *p, const struct node_rec *n);
int mnpool_alloc(struct mnpool *p, const struct node_rec *n, uint64_t owner,
		 uint32_t *ret_section, uint32_t *ret_generation);
/* Free a section, as its owner of ownership epoch `epoch`. */
int mnpool_free_section(struct mnpool *p, const struct node_rec *n, uint32_t section,
			uint32_t generation, uint32_t epoch);
/*
 * Ask memory node `n` to COPY its section src/src_gen to the section that
 * dst_grant names on the memory node at dst_addr (waits for the whole copy).
 */
int mnpool_copy(struct mnpool *p, const struct node_rec *n, uint32_t src, uint32_t src_gen,
		const struct proto_grant *dst_grant, const char *dst_addr,
		struct proto_copy_rep *ret);
/*
 * Present grant g (held by the orchestrator) to memory node `n` so that it
 * refuses writes of older ownership epochs to g's section (FENCE).
 * *ret_epoch (may be NULL): the section's epoch now.
 */
int mnpool_fence(struct mnpool *p, const struct node_rec *n, const struct proto_grant *g,
		 uint32_t *ret_epoch);
/* Forget cached connections to a node (it went down or re-registered). */
void mnpool_forget(struct mnpool *p, uint64_t node_id);

/* ---- cclient.c --------------------------------------------------------- */

/*
 * One HTTP request to compute agent `node_id` at `http` ("host:port").
 * `body` may be NULL. Returns the HTTP status (>0) and the response body
 * in *ret_body (malloc'd, may be NULL), or -errno when the node did not
 * answer (-ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH).
 */
int cclient_call(uint64_t node_id, const char *http, const char *method, const char *path,
		 const char *body, int timeout_ms, char **ret_body);
/*
 * The same with a binary body of len bytes (NULL: none) of type ctype, and
 * the answer's bytes in *ret_body (malloc'd, NUL-terminated past
 * *ret_len; NULL when empty).
 */
int cclient_call_raw(uint64_t node_id, const char *http, const char *method, const char *path,
		     const char *ctype, const void *body, size_t len, int timeout_ms,
		     char **ret_body, size_t *ret_len);
int cclient_global_init(void);
/*
 * Authenticate to every agent with its node token derived from secret
 * (NULL: no Authorization header), and speak HTTPS verified against
 * cafile (NULL: plain HTTP). Call once before any cclient_call.
 */
int cclient_set_auth(const struct auth_key *secret, const char *cafile);
/*
 * Send every running slot's compute node new grants for its remote
 * sections, valid grant_ttl_s from now (sweep.c). Returns the slots renewed.
 */
unsigned grants_renew_all(struct orch *o);
/* When a grant minted now expires. */
static inline uint64_t orch_grant_expiry(const struct orch *o)
{
	return (uint64_t)time(NULL) + (uint64_t)o->grant_ttl_s;
}
void cclient_global_cleanup(void);

/* ---- slots.c ----------------------------------------------------------- */

void slots_create(struct orch *o, const struct http_req *req, struct http_resp *resp);
void slots_list(struct orch *o, struct http_resp *resp);
void slots_get(struct orch *o, const char *name, struct http_resp *resp);
void slots_resize(struct orch *o, const char *name, const struct http_req *req,
		  struct http_resp *resp);
void slots_delete(struct orch *o, const char *name, bool keep_disk, struct http_resp *resp);
/* GET /v1/slots/NAME/console[/output], POST .../console/input (sub: "", "/output", "/input"). */
void slots_console(struct orch *o, const char *name, const char *sub,
		   const struct http_req *req, struct http_resp *resp);
/* POST /v1/slots/NAME/guest: a disagg-guest command, forwarded to the compute node. */
void slots_guest(struct orch *o, const char *name, const struct http_req *req,
		 struct http_resp *resp);
json_t *slots_json(struct orch *o, const struct slot_rec *s, bool with_sections);
/* Slots interrupted by a restart (creating, resizing, deleting, migrating): settle them (migrate_recover.c). */
void slots_recover(struct orch *o);
/* A state in which an operation runs on the slot (creating, resizing, ...). */
bool slots_transitional(const char *state);

/* Helpers shared with migrate*.c. */
int slots_event(struct orch *o, const char *kind, uint64_t node, const char *slot,
		const char *fmt, ...) _printf_(5, 6);
/* Answer for a failed compute call (status > 0: HTTP answer; < 0: no answer). */
void slots_compute_error(struct http_resp *resp, const struct node_rec *c, const char *what,
			 int status, const char *body);
/*
 * Place and allocate one remote section for slot s under its placement
 * policy and labels: 0, -ENOSPC or -EHOSTUNREACH (why says more).
 */
int slots_alloc_section(struct orch *o, const struct slot_rec *s, struct node_rec *ret_mn,
			uint32_t *ret_sec, uint32_t *ret_gen, char *why, size_t whylen);
/*
 * Fence a remote section (at its epoch + 1: no grant minted so far writes),
 * then free it on its memory node (an event when it cannot be freed).
 */
void slots_free_remote(struct orch *o, const struct section_rec *x);
/* {"kind": "remote", "addr": ..., "grant": ...} for holder `holder` (read-write, of `epoch`). */
json_t *slots_remote_json(struct orch *o, const struct node_rec *mn, uint64_t holder,
			  uint32_t sec, uint32_t gen, uint32_t epoch);
/* 404 / 500 answered when the slot cannot be read. */
int slots_get_slot(struct orch *o, const char *name, struct slot_rec *s, struct http_resp *resp);
/*
 * Move a slot into state `to` if no operation runs on it (409 busy) and its
 * state is one of `from` (NULL-terminated; NULL = any settled state; else
 * 409 conflict).
 */
int slots_begin_op(struct orch *o, const char *name, const char *const *from, const char *to,
		   struct slot_rec *s, struct http_resp *resp);
void slots_end_op(struct orch *o, struct slot_rec *s, const char *state);

/* ---- sweep.c ----------------------------------------------------------- */

/*
 * Free the sections memory node n holds for slots of ours that no slot
 * uses (a free that failed while the node was unreachable): how many, or
 * -errno when the node or the store cannot be read.
 */
int sweep_memnode(struct orch *o, const struct node_rec *n);
/* The same for every up memory node (the liveness monitor, now and then). */
void sweep_all(struct orch *o);

/* ---- fence.c ----------------------------------------------------------- */

/*
 * FENCE section x on memory node mn at `epoch`: from then on it refuses
 * writes through grants of older epochs. 0, or -errno (-ENOENT, -ESTALE:
 * the section is gone, so no grant of it writes anyway).
 */
int fence_section_on(struct orch *o, const struct node_rec *mn, const struct section_rec *x,
		     uint32_t epoch);
/* The same, looking up x's memory node. */
int fence_section(struct orch *o, const struct section_rec *x, uint32_t epoch);
/*
 * A change of owner is coming: raise the epoch of every remote section of
 * secs (in the store, in one transaction, and in secs) before grants for
 * the new owner are minted with it.
 */
int fence_advance(struct orch *o, struct section_rec *secs, size_t n);
/*
 * The change of owner happened: make every memory node of slot s learn
 * its sections' epochs from the store. A section that cannot be fenced is
 * reported (log, event "fence_failed"); -EIO if any.
 */
int fence_slot(struct orch *o, const struct slot_rec *s);

/* ---- migrate*.c -------------------------------------------------------- */

/* POST /v1/slots/NAME/migrate {"to": COMPUTE_ID}: compute migration. */
void migrate_compute(struct orch *o, const char *name, const struct http_req *req,
		     struct http_resp *resp);
/* POST /v1/slots/NAME/migrate-memory {"from": ID, "to": ID, "section": INDEX}. */
void migrate_memory(struct orch *o, const char *name, const struct http_req *req,
		    struct http_resp *resp);
/* At start: settle a slot left `migrating` or `unresolved` (asks the compute nodes). */
void migrate_recover(struct orch *o, struct slot_rec *s);
/* From the monitor: ask again about every `unresolved` slot whose compute node is up. */
void migrate_resolve_pending(struct orch *o);

/* ---- api.c ------------------------------------------------------------- */

int api_start(struct orch *o, const char *addr, const char *cert, const char *key);
/* The API's routes (opaque: the orch), as the server is given them. */
const struct http_route *api_routes(size_t *ret_n);
void api_stop(struct orch *o);

#endif /* DISAGG_ORCH_H */
