/* SPDX-License-Identifier: MIT */
/*
 * The RAM mappings of a VM's QEMU, as the shim hands them over: which
 * file, which sections, which pager region serves them.
 */
#ifndef DISAGG_VM_MAPPINGS_H
#define DISAGG_VM_MAPPINGS_H

#include <stdbool.h>

#include "vm_internal.h"

/* The shim socket (DIR/shim.sock) served with the VM's handlers (vm->shim). */
int vm_shim_listen(struct vm *vm);
/*
 * QEMU is about to unmap the region at addr (or a DIMM left the guest):
 * stop serving it. Nothing to do once QEMU has exited (the release drops
 * every region with the pager).
 */
int vm_region_unmapped(struct vm *vm, uint64_t addr);
/* Keep a mapping's uffd with its region (closed if no region maps addr). */
void vm_region_keep_uffd(struct vm *vm, uint64_t addr, int uffd);
/* Point virtio-mem slot idx at a section (before plug, or back to local after unplug). */
int vm_vmem_set_section(struct vm *vm, unsigned idx, const struct pager_section *s,
			bool discard);

#endif /* DISAGG_VM_MAPPINGS_H */
