/* SPDX-License-Identifier: MIT */
/*
 * The compute-migration record of a VM (vm->mig) and what the
 * destination (vm_incoming.c), the source (vm_outgoing.c) and its end
 * (vm_switchover.c) share: heartbeats, QMP helpers (vm_migrate.c).
 */
#ifndef DISAGG_VM_MIGRATE_H
#define DISAGG_VM_MIGRATE_H

#include <stdatomic.h>

#include "ext.h"
#include "qmp.h"
#include "vm_internal.h"

#define HB_RING       8192
#define QMP_CMD_MS    10000
#define MIG_EVENT_MS  200

struct vm_hb {
	uint64_t seq, ns, rx_ns;
};

struct vm_mig {
	pthread_mutex_t hb_lock;
	struct vm_hb hb[HB_RING];
	uint64_t hb_total;            /* heartbeats seen (the ring keeps the last HB_RING) */

	/* destination */
	bool incoming;
	char uri[128];                /* tcp:HOST:PORT it listens on */
	unsigned hot_order[VM_MAX_SECTIONS], nhot_order;
	bool base_free[VM_MAX_SECTIONS], hot_free[VM_MAX_SECTIONS];
	struct guestchan *early_guest; /* connected before the guest arrives */
	pthread_t waiter;
	bool waiter_on;
	atomic_bool stop;
	uint64_t incoming_ns;         /* when migrate-incoming was issued */
	int64_t incoming_ms;          /* from migrate-incoming to running (-1: not yet) */
	uint64_t shared_bar[VM_MAX_SHARED]; /* BAR2 of each region on the source (0: unmapped) */

	/* source (vm->lock) */
	bool migrating;               /* also while the outcome is indeterminate */
	pthread_t settler;            /* watches QEMU after an indeterminate answer */
	bool settler_on;
	const char *phase;            /* "flushing", "migrating", "pre-switchover", "completing" */
	json_t *last;                 /* figures of the last migration (success or failure) */
};

/* vm->mig, allocated on first use (NULL: out of memory). */
struct vm_mig *vm_mig_get(struct vm *vm);
/* Unsolicited guest line (guestchan lock held): keep "HB SEQ NS". */
void vm_mig_on_guest_line(const char *line, void *opaque);
/* The last heartbeat seen: false if none. */
bool vm_mig_last_heartbeat(struct vm_mig *m, struct vm_hb *ret);
/* x-ignore-shared and events on, pause-before-switchover as asked. */
int vm_mig_set_caps(struct qmp *q, bool pause);
/* query-migrate; *ret gets the answer (new reference). */
int vm_mig_query(struct qmp *q, json_t **ret);

/* POST /v1/vms/NAME/heartbeats: "HB SEQ NS" lines the guest sent on this node (new reference). */
json_t *vm_heartbeats(struct vm *vm);

/*
 * The migration record's hooks into the lifecycle (ext.h): heartbeats
 * from the guest channel, status fields, freeing with the VM. main.c
 * registers it at startup.
 */
extern const struct vm_ext_ops vm_mig_ext;

static inline const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static inline json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

#endif /* DISAGG_VM_MIGRATE_H */
