/* SPDX-License-Identifier: MIT */
/*
 * Supervision of a VM's QEMU: a thread per VM waits on the pidfd; when
 * QEMU exits it records why (state stopped, or failed with the reason)
 * and releases the VM (pager_use.c). It also retires the paused QEMU of
 * a VM that migrated away and was never deleted.
 */
#ifndef DISAGG_VM_SUPERVISE_H
#define DISAGG_VM_SUPERVISE_H

#include "vm_internal.h"

int vm_supervise(struct vm *vm);        /* the supervisor thread (vm->pidfd set) */
void vm_supervise_stop(struct vm *vm);  /* stop and join it (vm_free, vm_detach) */

#endif /* DISAGG_VM_SUPERVISE_H */
