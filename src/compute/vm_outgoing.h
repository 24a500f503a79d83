/* SPDX-License-Identifier: MIT */
/*
 * Compute migration, source side (vm_outgoing.c; docs/compute.md).
 */
#ifndef DISAGG_VM_OUTGOING_H
#define DISAGG_VM_OUTGOING_H

#include <stddef.h>

#include "vm_types.h"

struct vm_migrate_opts {
	char uri[128];                /* "tcp:HOST:PORT" of the destination */
	unsigned max_flush_rounds;    /* pre-copy flush rounds at most (default 10) */
	uint64_t dirty_threshold_pages; /* stop the rounds below this (default 256) */
	unsigned hold_ms;             /* tests: wait this long at pre-switchover */
	int timeout_ms;               /* whole migration (default 120000) */
};

/*
 * Source: move the running VM to the destination that listens on o->uri,
 * memory staying on the memory nodes. On success *ret gets the figures
 * (JSON, new reference) and the VM is VM_MIGRATED. On failure the VM keeps
 * running here: -EBUSY (not running, already migrating, local sections),
 * -EINVAL (bad options), or the migration's error (err says what).
 * -EINPROGRESS: after migrate-continue QEMU has not decided in time; the
 * VM is VM_SWITCHOVER (paused, not resumed) until QEMU decides, then
 * VM_MIGRATED or VM_RUNNING (vm_switchover.c).
 */
int vm_migrate(struct vm *vm, const struct vm_migrate_opts *o, json_t **ret, char *err,
	       size_t errlen);

#endif /* DISAGG_VM_OUTGOING_H */
