/* SPDX-License-Identifier: MIT */
/*
 * The recall channel of a strict shared region (vm_strict.c): a thread per
 * region that answers its home memory node's directory.
 */
#ifndef DISAGG_VM_STRICT_H
#define DISAGG_VM_STRICT_H

#include "ext.h"
#include "vm.h"

/* Registered at startup (main.c): starts channels of adopted VMs, stops them before a VM goes. */
extern const struct vm_ext_ops vm_strict_ext;

struct vm_recaller;

/*
 * Start answering recalls for vm->shared[idx] (mapped, strict); 0 without
 * a second thread when one runs already. hot_lock held.
 */
int vm_strict_start(struct vm *vm, int idx);
/*
 * Stop (waits for the thread) and leave the directory (DIR_DETACH); a
 * no-op when none runs. Call before the region is unplugged. hot_lock held.
 */
void vm_strict_stop(struct vm *vm, int idx);
/* Start a channel for every mapped strict region that has none (after adoption, a failed migration). */
void vm_strict_start_all(struct vm *vm);
/* Wait until vm->shared[idx]'s channel is attached: 0, -ETIMEDOUT, -ESRCH (none runs). */
int vm_strict_wait(struct vm *vm, int idx, int timeout_ms);

#endif /* DISAGG_VM_STRICT_H */
