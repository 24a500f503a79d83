/* SPDX-License-Identifier: MIT */
/*
 * Hot-adding and hot-removing sections of a running VM (vm_hot.c).
 */
#ifndef DISAGG_VM_HOT_H
#define DISAGG_VM_HOT_H

#include <stddef.h>

#include "vm_types.h"

/* Hot-add one section; *ret_index gets its index among hot sections. */
int vm_add_section(struct vm *vm, const struct vm_section *s, int timeout_ms,
		   unsigned *ret_index, char *err, size_t errlen);
/* Hot-remove the last-added section (virtio-mem) or section `index` (DIMM). */
int vm_remove_section(struct vm *vm, unsigned index, int timeout_ms, char *err, size_t errlen);

#endif /* DISAGG_VM_HOT_H */
