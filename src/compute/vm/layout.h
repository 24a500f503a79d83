/* SPDX-License-Identifier: MIT */
/*
 * How a VM's RAM is laid out for QEMU: the boot RAM file, the virtio-mem
 * file or the DIMM slots, and the hotplug handle once QMP is up.
 */
#ifndef DISAGG_VM_LAYOUT_H
#define DISAGG_VM_LAYOUT_H

#include "vm_internal.h"

struct hotplug_config;

/* Create DIR/ram-base and, for virtio-mem, DIR/vmem (vm_start): 0 or -errno. */
int vm_layout_prepare(struct vm *vm);
/* The memory part of the command line and of the hotplug handle (hotplug.h). */
void vm_layout_config(struct vm *vm, struct hotplug_config *ret);
/* After QMP is up: vm->hp, and where QEMU put the DIMMs of its command line. */
int vm_layout_attach(struct vm *vm);

#endif /* DISAGG_VM_LAYOUT_H */
