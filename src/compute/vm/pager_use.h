/* SPDX-License-Identifier: MIT */
/*
 * The pager of a live VM, or NULL once QEMU has exited ("the VM has
 * exited"). Every use outside vm->lock holds a reference; the last put
 * after the release tears the VM down (pager_use.c says why).
 */
#ifndef DISAGG_VM_PAGER_USE_H
#define DISAGG_VM_PAGER_USE_H

#include <stddef.h>

#include "vm_internal.h"

/* The memory-node backend, the outage policy and the pager, started (vm_start, adoption). */
int vm_pager_open(struct vm *vm, char *err, size_t errlen);
struct pager *vm_pager_get(struct vm *vm);
void vm_pager_put(struct vm *vm, struct pager *p);   /* accepts NULL */
void vm_release(struct vm *vm);        /* lock held: release now, or at the last put */
void vm_release_wait(struct vm *vm);   /* lock held (vm_free): release, wait for the users */
/*
 * A compute migration's destination of replicated sections (spec
 * replicas_pending; RUN_DIR/NAME/replicas.pending across an agent
 * restart): the source's replicas out were dropped, faults on remote
 * pages go on. Lock held. Idempotent.
 */
void vm_replicas_settle(struct vm *vm);
/* Do faults on remote pages still wait for vm_replicas_settle? Lock held. */
bool vm_replicas_pending(struct vm *vm);

#endif /* DISAGG_VM_PAGER_USE_H */
