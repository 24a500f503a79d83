/* SPDX-License-Identifier: MIT */
/*
 * Adoption: take over the running QEMU of a VM that an earlier agent
 * started (adopt.c says how).
 */
#ifndef DISAGG_VM_ADOPT_H
#define DISAGG_VM_ADOPT_H

#include <stddef.h>

#include "vm_internal.h"

/*
 * Take over the running QEMU of a VM loaded with vm_persist_load (its
 * QEMU checked to be the recorded one). On failure err says why and the
 * sections are marked not to be freed; vm_unref then stops QEMU.
 */
int vm_adopt(struct vm *vm, char *err, size_t errlen);

#endif /* DISAGG_VM_ADOPT_H */
