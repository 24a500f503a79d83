/* SPDX-License-Identifier: MIT */
/*
 * Shared regions inside the orchestrator (docs/api.md, "Shared regions"):
 * what regions.c offers the other regions*.c files.
 *
 *   regions.c        the region record and its JSON, operations' states,
 *                    grants, calls to the compute agents and asking them,
 *                    create, delete, list, show, the orphan sweep's
 *                    question, grant renewal and settling at start
 *   regions_flow.c   attach, detach, lock, unlock (multi-step, through the
 *                    compute agents), and what slot delete and migration
 *                    ask of regions (regions_flow.h)
 *   regions_api.c    routing of /v1/regions and the struct orch_regions
 *                    table that main.c hands the orchestrator
 *
 * An operation on a region first moves it from `ready` into its own state
 * (attaching, detaching, locking, unlocking, deleting) inside a store
 * transaction, so a second one gets 409 busy; it ends back in `ready`. The
 * slot an operation is for is recorded (pending), so that a restart can
 * settle it by asking that slot's agent.
 */
#ifndef DISAGG_ORCH_REGIONS_H
#define DISAGG_ORCH_REGIONS_H

#include "orch.h"

#define REGION_SHORT_TIMEOUT_MS 10000

/* 500 for a store failure. */
void regions_store_error(struct http_resp *resp, int r);
/* Region `name`: 0, or -errno with 404 not_found / 500 answered. */
int regions_get(struct orch *o, const char *name, struct region_rec *r, struct http_resp *resp);
/* The region as the API shows it (sections, attachments, holder, epoch). */
json_t *regions_json(struct orch *o, const struct region_rec *r);

/*
 * Begin an operation on region `name`: a store transaction is opened and
 * left open when the region is `ready` (0), for the caller's own checks;
 * else it is closed and 404 / 409 busy answered. End it with
 * regions_begin_commit (the region takes state `to`, pending the slot
 * id) or orch_refuse (rolls back, answers).
 */
int regions_begin(struct orch *o, const char *name, struct region_rec *r,
		  struct http_resp *resp);
int regions_begin_commit(struct orch *o, struct region_rec *r, const char *to, int64_t pending,
			 struct http_resp *resp);
/*
 * Record r (its holder, epoch) in state `state` with nothing pending, and
 * event `kind` (NULL: none) about slot `slot` on node `node`, in one
 * transaction. 0 or -errno.
 */
int regions_finish(struct orch *o, struct region_rec *r, const char *state, const char *kind,
		   uint64_t node, const char *slot, const char *fmt, ...) _printf_(7, 8);
/* Record r as it is (holder, epoch, state) with event `kind`, in one transaction. */
int regions_record(struct orch *o, const struct region_rec *r, const char *kind, uint64_t node,
		   const char *slot, const char *fmt, ...) _printf_(6, 7);

/*
 * Grants for every section of r at r->epoch, held by compute node
 * `holder`, read-only or read-write, expiring at `expiry`: as section
 * objects {"kind": "remote", "addr", "grant"} (sections) or as hex
 * strings. NULL on failure.
 */
/* May slot slot_id write region r (strict: every slot; exclusive: the holder)? */
bool regions_writes(const struct region_rec *r, int64_t slot_id);
json_t *regions_grants(struct orch *o, const struct region_rec *r, uint64_t holder, bool write,
		       uint64_t expiry, bool sections);

/*
 * Call the agent of compute node `compute` about VM `slot`'s region
 * `region` (NULL: the VM's regions), sub-path `op` (NULL: none):
 * the HTTP status, or -errno when it did not answer.
 */
int regions_call(struct orch *o, uint64_t compute, const char *slot, const char *region,
		 const char *op, const char *method, json_t *body, int timeout_ms, json_t **ret);

/* What a compute agent says of a VM's region (GET /v1/vms/NAME: ask, don't guess). */
enum region_view {
	REGION_VIEW_UNKNOWN,   /* no answer, or not one that tells */
	REGION_VIEW_ABSENT,    /* the VM does not map it (or the agent has no such VM) */
	REGION_VIEW_READ,      /* mapped, read-only */
	REGION_VIEW_WRITE,     /* mapped, writable: it holds the lock */
};
enum region_view regions_ask(struct orch *o, uint64_t compute, const char *slot,
			     const char *region, char *pci, size_t pcilen);

/*
 * Answer for an agent's call that failed (status < 0: no answer): 503
 * node_unreachable; 404: 409 not_running (not_attached for the agent's
 * no_region); 409 and 503 with the agent's code; else 502 agent_refused.
 * The message is fmt's text, then why.
 */
void regions_agent_error(struct http_resp *resp, int status, json_t *ans, const char *fmt, ...)
	_printf_(4, 5);

/* POST /v1/regions, GET /v1/regions, GET and DELETE /v1/regions/NAME. */
void regions_create(struct orch *o, const struct http_req *req, struct http_resp *resp);
void regions_list(struct orch *o, struct http_resp *resp);
void regions_show(struct orch *o, const char *name, struct http_resp *resp);
void regions_delete(struct orch *o, const char *name, struct http_resp *resp);

/* The orphan sweep's question (struct orch_regions.orphan). */
bool regions_orphan(struct orch *o, const struct node_rec *n, uint64_t owner, uint32_t sec,
		    uint32_t gen);
/* Renewal: the grants of the regions slot s maps (struct orch_regions.renew). */
void regions_renew(struct orch *o, const struct slot_rec *s, uint64_t expiry, json_t *grants);
/* At start: settle the regions an orchestrator restart interrupted. */
void regions_recover(struct orch *o);

#endif /* DISAGG_ORCH_REGIONS_H */
