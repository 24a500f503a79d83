/* SPDX-License-Identifier: MIT */
/*
 * Migration of a slot, inside the orchestrator: what the migrate*.c files
 * share (docs/api.md, "Migration").
 *
 *   migrate.c          calling the compute agents, the slot's recorded
 *                      operation, what goes along with a compute migration
 *                      (the VM's boot files and seed), small helpers
 *   migrate_memory.c   memory migration (sections move, the VM stays)
 *   migrate_compute.c  compute migration (the VM moves, memory stays) and
 *                      the evacuation of local sections before it
 *   migrate_recover.c  operations whose outcome is not known (a restart, a
 *                      request without answer): settled from the agents'
 *                      own view of the slot
 *
 * The operation in progress is written to the slot's `op` (JSON) before a
 * step that leaves something behind on a node, so that whoever settles it
 * later knows what to ask and what may have to be freed.
 */
#ifndef DISAGG_ORCH_MIGRATE_H
#define DISAGG_ORCH_MIGRATE_H

#include "orch.h"

#define MIG_SHORT_TIMEOUT_MS 10000
#define MIG_ARRIVE_TIMEOUT_MS 60000     /* destination running after the source completed */

uint64_t mig_now_ms(void);
/* Integer member `key` of `o`, or dflt. */
int64_t mig_jint(json_t *o, const char *key, int64_t dflt);
/* A member of an agent's answer, or null. */
json_t *mig_member(json_t *o, const char *key);

/* The element of array arr whose string member `key` is `value`, or NULL. */
json_t *mig_entry(json_t *arr, const char *key, const char *value);

/* What goes along with a compute migration: the destination's request members. */
struct mig_along {
	json_t *regions;      /* its "regions", or NULL */
	json_t *disks;        /* its "disks", or NULL */
	json_t *boot;         /* its "boot", "cloud_init" and "seed", or NULL */
};

/*
 * A compute migration of slot s (`migrating`) to dst begins: what its VM
 * boots is asked from the source (migrate.c, boot_along), the shared regions it
 * maps and the volumes attached to it go along (struct orch_regions,
 * struct orch_volumes: migrate_begin). ret (zeroed by the caller): the
 * destination's members (new references). 0, or -errno with resp
 * answered (nothing begun, ret zeroed). mig_along_end ends them.
 */
int mig_along_begin(struct orch *o, const struct slot_rec *s, const struct node_rec *dst,
		    struct mig_along *ret, struct http_resp *resp);
/* The destination's request body gets what goes along (what is not empty); accepts NULL. */
void mig_along_body(json_t *vmb, const struct mig_along *a);
/* Ends them, and drops the references mig_along_begin gave (*a zeroed after). */
void mig_along_end(struct orch *o, const struct slot_rec *s, bool moved, uint64_t from,
		   uint64_t to, struct mig_along *a);
/* POST/GET/DELETE with a JSON body (may be NULL); returns the status or -errno. */
int mig_call(const struct node_rec *c, const char *method, const char *path, json_t *body,
	     int timeout_ms, json_t **ret);
/* The agent's error message (or the errno) for humans. */
void mig_why(int status, json_t *ans, char *buf, size_t len);
/* The agent's error code ("" when none). */
const char *mig_code(json_t *ans);

/* Record the operation in progress (NULL: none) in the slot. */
void mig_set_op(struct orch *o, struct slot_rec *s, json_t *op);
/* The slot leaves `migrating`: state `state`, no operation recorded. */
void mig_finish(struct orch *o, struct slot_rec *s, const char *state);

int mig_parse_node_id(json_t *body, const char *key, bool required, uint64_t *ret,
		      struct http_resp *resp);
/* Node `id` of kind `kind`: 404 if unknown, 400 if of another kind. */
int mig_get_node(struct orch *o, uint64_t id, const char *kind, struct node_rec *n,
		 struct http_resp *resp);
/* {"memnode": M, "section": S, "generation": G} */
json_t *mig_sec_ref(uint64_t memnode, uint32_t sec, uint32_t gen);
/* In one transaction: the store's section nx->idx becomes nx, and an event. */
int mig_section_replace(struct orch *o, const struct section_rec *nx, const char *kind,
			uint64_t node, const char *slot, const char *msg);

/*
 * The VM's state on a compute node ("" when it has none or does not
 * answer); want: the agent answers once the VM is in that state (or can no
 * longer get there), at most wait_ms later.
 */
int mig_vm_state_wait(const struct node_rec *c, const char *name, const char *want,
		      int wait_ms, char *buf, size_t len, bool *ret_migrating);
void mig_vm_delete(const struct node_rec *c, const char *name);
/* Wait until the destination runs the VM (or fails): 0, or -errno. */
int mig_wait_running(const struct node_rec *dst, const char *name);

/* migrate_memory.c: ask the agent to abort the migration of x to nx (the HTTP status). */
int mig_memory_abort(struct orch *o, struct slot_rec *s, const struct node_rec *c,
		     const struct section_rec *x, const struct section_rec *nx, int timeout_ms);

/* ---- migrate_recover.c ---- */

#define MIG_RESOLVE_TIMEOUT_MS 3000     /* each question while the monitor resolves */

/* Which of two sections the agent uses for one of the slot's sections. */
enum mig_use {
	MIG_USES_OLD,                   /* the one it had: the new one is not used */
	MIG_USES_NEW,                   /* it switched */
	MIG_USES_UNKNOWN,               /* it could not be asked: keep both */
};

/*
 * Slot section x was moving to nx (a memory migration, or the evacuation
 * of a local x) and the outcome was not seen: ask compute node c. A
 * migration still in progress is aborted first; the agent serialises
 * abort, commit and evacuation per VM, so after it answered, no request in
 * flight can switch the section any more and its view of the VM decides.
 */
enum mig_use mig_ask_section(struct orch *o, struct slot_rec *s, const struct node_rec *c,
			     const struct section_rec *x, const struct section_rec *nx,
			     int timeout_ms);
/* Where the guest of a compute migration is, by the participants' own state. */
enum mig_owner {
	MIG_OWNER_SOURCE,               /* the source runs it (or it died there) */
	MIG_OWNER_DEST,                 /* the source handed it over */
	MIG_OWNER_UNKNOWN,              /* the source is migrating, or nobody can tell */
};

/* A VM as one compute node reports it: status 200 (state) or 404 (none); else not known. */
struct mig_seen {
	int status;
	char state[STORE_STATE_MAX];
	char reason[STORE_ADDR_MAX];  /* the agent's reason (failed, degraded), or "" */
	bool migrating;
	bool meta_pending;            /* a sealed VM waiting for its page-metadata table */
	bool replicas_pending;        /* a replicated VM waiting for the replicas out (replicas.h) */
};

/*
 * A sealed slot's page metadata after the source's final flush
 * (migrate_compute.c): the records changed since pre-copy gen (every
 * record if the source has no such delta, e.g. after a restart, or gen is
 * 0), then done. 0, or -errno with why set: -ENOENT when the source has
 * no final snapshot (its VM is gone, its agent restarted).
 */
int mig_meta_hand_over(const struct node_rec *src, const struct node_rec *dst, const char *name,
		       uint64_t gen, char *why, size_t len);

/*
 * A slot whose migration failed and whose VM stays on node `on`, which
 * says `x` of it: `running`, or `failed` (the VM is gone: QEMU died) or
 * else `lost`; s->reason (one place for all three) is made of what (the
 * migration's failure) and what the node said. Ends the operation.
 */
void mig_finish_on_source(struct orch *o, struct slot_rec *s, const char *what,
			  const char *on, const struct mig_seen *x);

/*
 * The outcome of a compute migration of VM `name` from src to dst (either
 * may be NULL: unknown node) that was not seen, asked of both: the source
 * `migrated` => the destination owns the guest; the source running and not
 * migrating => it stays there; the source migrating => not known yet. When
 * the source cannot tell, the destination can: it runs the guest, or it
 * has none. What each said is in ret_src and ret_dst.
 */
enum mig_owner mig_ask_owner(const struct node_rec *src, const struct node_rec *dst,
			     const char *name, int timeout_ms, struct mig_seen *ret_src,
			     struct mig_seen *ret_dst);
/*
 * The outcome of the slot's recorded operation is not known: the slot
 * becomes `unresolved` (busy for other requests) with the operation kept
 * and `reason` saying why; nothing is freed. An event the first time. The
 * monitor asks again (migrate_resolve_pending).
 */
void mig_unresolved(struct orch *o, struct slot_rec *s, const char *fmt, ...) _printf_(3, 4);

#endif /* DISAGG_ORCH_MIGRATE_H */
