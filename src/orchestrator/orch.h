/* SPDX-License-Identifier: MIT */
/*
 * disagg-orchestrator: shared state and the interfaces between its modules.
 *
 *   main.c       options, start-up, reconciliation, shutdown
 *   api.c        routing, X-Request-Id idempotency, /healthz, /metrics,
 *                sections and events
 *   nodes.c      registration, heartbeats, the liveness monitor thread,
 *                drain, reconciliation with compute nodes
 *   placement.c  choosing the compute node and the memory nodes
 *   slots.c      slot create, resize, delete, console
 *   mnpool.c     cached authenticated connections to memory nodes
 *   cclient.c    HTTP client (libcurl) for the compute agents' API
 *   util.c       sizes, JSON helpers, labels, time formatting
 *   store*.c     durable state (store.h)
 *
 * Requests run synchronously in the HTTP server's per-connection threads.
 * Every slot operation first moves the slot into a transitional state
 * (creating, resizing, deleting) inside a store transaction: a second
 * operation on the same slot sees it and gets 409 busy.
 */
#ifndef DISAGG_ORCH_H
#define DISAGG_ORCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "auth.h"
#include "http.h"
#include "jsonhttp.h"
#include "metrics.h"
#include "store.h"

#define ORCH_DEFAULT_SECTION_SIZE (128ull << 20)
#define ORCH_MAX_SECTIONS 1024          /* per slot */
#define ORCH_HOT_MAX_SECTIONS 32        /* max_sections asked of the compute agent */

enum orch_route {
	RT_NODES_REGISTER,
	RT_NODES_HEARTBEAT,
	RT_NODES_LIST,
	RT_NODES_GET,
	RT_NODES_DRAIN,
	RT_SLOTS_CREATE,
	RT_SLOTS_LIST,
	RT_SLOTS_GET,
	RT_SLOTS_RESIZE,
	RT_SLOTS_DELETE,
	RT_SLOTS_CONSOLE,
	RT_SLOTS_GUEST,
	RT_SECTIONS,
	RT_EVENTS,
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

struct orch {
	struct store *store;
	struct auth_key key;
	uint64_t node_id;               /* ours, in HELLO to memory nodes */
	int node_timeout_s;
	int heartbeat_s;                /* told to nodes at registration */
	uint64_t section_size;
	int compute_timeout_ms;         /* long calls (VM start, hot-plug) */

	pthread_mutex_t place_mu;       /* placement decisions and reservations */
	struct mnpool *mnpool;

	pthread_t monitor;
	bool monitor_started;
	atomic_bool stopping;
	pthread_mutex_t mon_mu;
	pthread_cond_t mon_cv;

	struct route_stats routes[RT__MAX];
	struct http_server *http;
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

/* ---- nodes.c ----------------------------------------------------------- */

void nodes_register(struct orch *o, const struct http_req *req, struct http_resp *resp);
void nodes_heartbeat(struct orch *o, uint64_t id, const struct http_req *req,
		     struct http_resp *resp);
void nodes_list(struct orch *o, struct http_resp *resp);
void nodes_get(struct orch *o, uint64_t id, struct http_resp *resp);
void nodes_drain(struct orch *o, uint64_t id, bool drain, struct http_resp *resp);
json_t *nodes_json(const struct node_rec *n);
int nodes_monitor_start(struct orch *o);
void nodes_monitor_stop(struct orch *o);
/* Ask compute node `n` which VMs it runs and fix the slots' states. */
int nodes_reconcile(struct orch *o, const struct node_rec *n);
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

/* ---- mnpool.c ---------------------------------------------------------- */

int mnpool_new(struct orch *o, struct mnpool **ret);
void mnpool_free(struct mnpool *p);
/* Allocate one section on memory node `n` for owner `owner`. */
int mnpool_alloc(struct mnpool *p, const struct node_rec *n, uint64_t owner,
		 uint32_t *ret_section, uint32_t *ret_generation);
int mnpool_free_section(struct mnpool *p, const struct node_rec *n, uint32_t section,
			uint32_t generation);
/* Forget cached connections to a node (it went down or re-registered). */
void mnpool_forget(struct mnpool *p, uint64_t node_id);

/* ---- cclient.c --------------------------------------------------------- */

/*
 * One HTTP request to a compute agent at `http` ("host:port"). `body` may
 * be NULL. Returns the HTTP status (>0) and the response body in *ret_body
 * (malloc'd, may be NULL), or -errno when the node did not answer
 * (-ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH).
 */
int cclient_call(const char *http, const char *method, const char *path, const char *body,
		 int timeout_ms, char **ret_body);
int cclient_global_init(void);
void cclient_global_cleanup(void);

/* ---- slots.c ----------------------------------------------------------- */

void slots_create(struct orch *o, const struct http_req *req, struct http_resp *resp);
void slots_list(struct orch *o, struct http_resp *resp);
void slots_get(struct orch *o, const char *name, struct http_resp *resp);
void slots_resize(struct orch *o, const char *name, const struct http_req *req,
		  struct http_resp *resp);
void slots_delete(struct orch *o, const char *name, struct http_resp *resp);
void slots_console(struct orch *o, const char *name, struct http_resp *resp);
/* POST /v1/slots/NAME/guest: a disagg-guest command, forwarded to the compute node. */
void slots_guest(struct orch *o, const char *name, const struct http_req *req,
		 struct http_resp *resp);
json_t *slots_json(struct orch *o, const struct slot_rec *s, bool with_sections);
/* Slots interrupted by a restart (creating, resizing, deleting): settle them. */
void slots_recover(struct orch *o);

/* ---- api.c ------------------------------------------------------------- */

int api_start(struct orch *o, const char *addr);
void api_stop(struct orch *o);

#endif /* DISAGG_ORCH_H */
