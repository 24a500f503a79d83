/* SPDX-License-Identifier: MIT */
/*
 * DIR/vm.json, the record a restarted agent adopts the VM from
 * (persist.c describes it). Every layer and feature that changes what
 * the record holds writes it again.
 */
#ifndef DISAGG_VM_PERSIST_H
#define DISAGG_VM_PERSIST_H

#include <stddef.h>

#include "vm_internal.h"

int vm_persist_locked(struct vm *vm);   /* lock held */
int vm_persist(struct vm *vm);
/* Fill spec, hot sections, virtio-mem state, state, pid from DIR/vm.json (vm->dir, env set). */
int vm_persist_load(struct vm *vm, char *err, size_t errlen);

#endif /* DISAGG_VM_PERSIST_H */
