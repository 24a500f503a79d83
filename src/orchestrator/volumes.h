/* SPDX-License-Identifier: MIT */
/*
 * Block volumes on device nodes inside the orchestrator (docs/api.md,
 * "Volumes"): what volumes.c offers volumes_api.c.
 *
 *   volumes.c      the catalog record and its JSON, operations' states,
 *                  what device nodes' refusals mean, placement, what
 *                  device nodes report, what a compute agent says of its
 *                  disks, and settling the operations a restart interrupted
 *   volumes_conn.c connections to device nodes (not in the API fuzzer,
 *                  which answers for them)
 *   volumes_api.c  the /v1/volumes routes (create and clone, list, show,
 *                  resize, delete, grant) and the struct orch_volumes
 *                  table that main.c hands the orchestrator
 *   volumes_adopt.c POST /v1/volumes/NAME/adopt: a volume a device node
 *                  has already (a block device, or a file made outside
 *                  the catalog) brought into the catalog; forgetting a
 *                  block device's volume (its delete)
 *   volumes_disks.c volumes attached to slots as disks: the
 *                  /v1/slots/NAME/disks routes (volumes_disks.h)
 *   volumes_migrate.c the disks of a slot in its compute migration
 *                  (volumes_migrate.h)
 *
 * An operation on a volume first moves it from `ready` into its own state
 * (resizing, deleting; cloning for the source of a clone; attaching and
 * detaching; migrating with its slot; a new volume's row is inserted
 * `creating`) inside a store
 * transaction, so that a second one gets 409 busy, and records the
 * orchestrator's run with it. It ends in `ready` again, or the row goes.
 * A volume that an earlier run left in an operation (a restart in the
 * middle) is settled from its device node's own answer (VOL_STAT), an
 * attach or detach from its slot's compute agent, a migration by the
 * slot's own recovery (the volume is `ready` again, attached to the slot
 * wherever that runs): at start, and when it is used again.
 */
#ifndef DISAGG_ORCH_VOLUMES_H
#define DISAGG_ORCH_VOLUMES_H

#include <string.h>

#include "dnclient.h"
#include "orch.h"
#include "volumes_conn.h"

#define VOLUMES_MAX_SIZE (1ull << 44)     /* 16 TiB: the device node's limit */
#define VOLUMES_GRANT_TTL_MAX 86400
#define VOLUMES_AGENT_SHORT_MS 10000      /* a question to a compute agent */
#define VOLUMES_DISK_ID_MAX 16            /* a compute agent's disk id ("disk0"), with its NUL */

/* 500 for a store failure. */
void volumes_store_error(struct http_resp *resp, int r);
/* Volume `name`: 0, or -errno with 404 not_found / 500 answered. */
int volumes_get(struct orch *o, const char *name, struct volume_rec *v, struct http_resp *resp);
/* v is a block device its device node serves (kind "block"), not a file. */
static inline bool volumes_is_block(const struct volume_rec *v)
{
	return strcmp(v->kind, "block") == 0;
}
/* The volume as the API shows it; live (may be NULL): its device node's VOL_STAT. */
json_t *volumes_json(const struct volume_rec *v, const struct dnc_volume *live);

/*
 * A grant (hex) for compute node `holder` to open v on its device node:
 * the volume's key and current epoch, read (and write), valid until
 * `expiry` (seconds since the Unix epoch). 0 or -errno.
 */
int volumes_grant(struct orch *o, const struct volume_rec *v, uint64_t holder, bool write,
		  uint64_t expiry, char hex[GRANT_HEX_LEN + 1]);

/*
 * Begin an operation on volume `name`: a store transaction is opened and
 * left open when the volume is `ready` (0, *v read), for the caller's own
 * checks; else it is closed and 404, 409 busy or 503 (an interrupted
 * operation that cannot be settled) answered. End it with
 * volumes_begin_commit (the volume takes state `to`) or orch_refuse
 * (rolls back, answers).
 */
int volumes_begin(struct orch *o, const char *name, struct volume_rec *v,
		  struct http_resp *resp);
int volumes_begin_commit(struct orch *o, struct volume_rec *v, const char *to,
			 struct http_resp *resp);
/* Record v `ready` with event `kind` about it, in one transaction. 0 or -errno. */
int volumes_finish(struct orch *o, struct volume_rec *v, const char *kind, const char *fmt, ...)
	_printf_(4, 5);
/*
 * Record v `ready` (attached or not, as v says) with event `kind` about
 * slot `slot` on compute node `node`, in one transaction. 0 or -errno.
 */
int volumes_record(struct orch *o, struct volume_rec *v, const char *kind, uint64_t node,
		   const char *slot, const char *fmt, ...) _printf_(6, 7);
/* Put v back to `ready` as it was (an operation that did nothing). */
void volumes_end(struct orch *o, struct volume_rec *v);
/* Drop v's row with event `kind` about it, in one transaction. 0 or -errno. */
int volumes_drop(struct orch *o, const struct volume_rec *v, const char *kind,
		 const char *fmt, ...) _printf_(4, 5);

/*
 * Inside the store transaction of an operation on volume v (volumes_begin):
 * true, with the transaction rolled back and 409 answered, when v is an
 * image's base volume (images.c), which cannot `what` (image_volume: be
 * resized, deleted, attached read-write); or, for volumes_image_not_ready,
 * the base volume of an image not `ready` yet (a clone would copy half an
 * upload: image_not_ready).
 */
bool volumes_image_refuse(struct orch *o, const struct volume_rec *v, const char *what,
			  struct http_resp *resp);
bool volumes_image_not_ready(struct orch *o, const struct volume_rec *v,
			     struct http_resp *resp);

/* Node `id` as a device node: 0, or -errno with 404 / 400 (another kind) / 500 answered. */
int volumes_devnode(struct orch *o, uint64_t id, struct node_rec *dn, struct http_resp *resp);
/*
 * Answer for device node dn's failure r; the message is fmt's text, then
 * why: 503 node_unreachable, 501 devnode_no_tls, 409 exists, volume_open,
 * capacity or volume_missing, else 502 devnode_refused.
 */
void volumes_node_error(struct http_resp *resp, const struct node_rec *dn, int r,
			const char *fmt, ...) _printf_(4, 5);
/*
 * Delete volume v on dn again after its record failed (c: the connection
 * it was made on), then drop its row: an event says what is left where.
 */
void volumes_undo_create(struct orch *o, struct mnc *c, const struct node_rec *dn,
			 const struct volume_rec *v, const char *why);

/*
 * Placement of a new volume: the up, undrained device node with the
 * fewest bytes allocated on its disk (its last report), then the fewest
 * bytes of volumes in the catalog, then the lowest id. 0, -ENODEV (no
 * device node is registered), -EHOSTDOWN (none is up) or -ENOSPC (those
 * up are drained).
 */
int volumes_place(struct orch *o, struct node_rec *ret);
/* A device node's report (struct orch_volumes.usage); -1: not reported. */
void volumes_usage(struct orch *o, const struct node_rec *n, int64_t volumes, int64_t bytes);
/* Its members in GET /v1/nodes (struct orch_volumes.node_json). */
void volumes_node_json(struct orch *o, const struct node_rec *n, json_t *j);

/* The volumes attached to slot `slot_id` (*ret malloc'd), in name order. 0 or -errno. */
int volumes_of_slot(struct orch *o, int64_t slot_id, struct volume_rec **ret, size_t *ret_n);
/*
 * Renewal (sweep.c): grants for the disks of slot s (its volumes attached
 * and at rest), held by its compute node, of their current epochs, valid
 * until expiry, appended to `grants`.
 */
void volumes_renew(struct orch *o, const struct slot_rec *s, uint64_t expiry, json_t *grants);
/*
 * The answer for compute agent c's failure (status: HTTP or -errno; ans:
 * its answer): no answer 503 node_unreachable; no such VM (404) 409
 * not_running; its 409, 502, 503 and 504 with its own code
 * (attach_failed, detach_failed, not_running, ...); anything else 502
 * agent_refused. The agent's message follows `what`.
 */
void volumes_agent_error(struct http_resp *resp, const struct node_rec *c, int status,
			 json_t *ans, const char *what);
/* v is attached to no slot (in memory: the caller records it). */
void volumes_detached(struct volume_rec *v);
/*
 * Ask the compute agent of v's slot whether the slot's VM has v attached:
 * 1 (id: the agent's disk id), 0 (it has not, or the agent runs no such
 * VM, or the slot is gone), or -errno (nobody can tell: the agent does not
 * answer, or answers something else).
 */
int volumes_agent_disk(struct orch *o, const struct volume_rec *v, char id[VOLUMES_DISK_ID_MAX]);

/*
 * Settle v, left in an operation by an earlier run: an attach or detach
 * from its slot's compute agent (volumes_agent_disk: 0, v `ready`,
 * attached or not), any other from its device
 * node's VOL_STAT: 0 (v is `ready` now, with the node's size and key),
 * -ENOENT (it was being created or deleted and the node has no such
 * volume: its row is dropped), or another -errno (nobody can tell yet: v
 * stays as it is).
 */
int volumes_settle(struct orch *o, struct volume_rec *v);
/* At start: a new run; settle every volume an earlier one left in an operation. */
void volumes_recover(struct orch *o);
/* This run's number, recorded with the operations it begins. */
int64_t volumes_run(void);

#endif /* DISAGG_ORCH_VOLUMES_H */
