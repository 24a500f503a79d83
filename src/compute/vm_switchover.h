/* SPDX-License-Identifier: MIT */
/*
 * How a compute migration ends on the source (vm_switchover.c).
 */
#ifndef DISAGG_VM_SWITCHOVER_H
#define DISAGG_VM_SWITCHOVER_H

#include <stddef.h>

#include "vm_migrate.h"

/* How a source's migration ended, by QEMU's own state. */
enum vm_mig_outcome {
	VM_MIG_COMPLETED,             /* the guest runs on the destination */
	VM_MIG_RESUMED,               /* failed or cancelled: the guest runs here */
	VM_MIG_GONE,                  /* QEMU exited */
	VM_MIG_PENDING,               /* QEMU has not decided yet */
};

/*
 * Ask QEMU until it decides or until_ns: continued false cancels first (the
 * guest cannot have left before migrate-continue). RESUMED resumes the
 * guest here; COMPLETED does not hand over (the caller does). *state gets
 * QEMU's migration status, *note a sentence for the answer.
 */
enum vm_mig_outcome vm_mig_settle(struct vm *vm, bool continued, uint64_t until_ns,
				  char *state, size_t len, char *note, size_t notelen);
/* The VM is migrated: sections kept for the destination, QEMU lowered. */
void vm_mig_hand_over(struct vm *vm);
/* Indeterminate: state switchover, a thread settles it when QEMU decides. */
int vm_mig_settle_later(struct vm *vm);

#endif /* DISAGG_VM_SWITCHOVER_H */
