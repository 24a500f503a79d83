/* SPDX-License-Identifier: MIT */
/*
 * Remote disks in a compute migration (vm_disk_mig.c): the destination's
 * disks, ready before its QEMU starts, and their devices on QEMU's
 * command line (a hook of the VM lifecycle, ext.h).
 */
#ifndef DISAGG_VM_DISK_MIG_H
#define DISAGG_VM_DISK_MIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "ext.h"
#include "vm_types.h"

extern const struct vm_ext_ops vm_disk_mig_ext;

/*
 * The disks of a VM before QEMU starts: JSON array `disks` (NULL: none)
 * as docs/compute.md describes, of an incoming VM (the source's ids and
 * slots, volumes opened at first use) or a new one (opened now). -EINVAL
 * with err for a bad entry, or the device node's error. What was set up
 * goes with the VM (vm_disk_ext.free).
 */
int vm_disk_prepare(struct vm *vm, json_t *disks, bool incoming, char *err, size_t errlen);
/*
 * Reserve the first free disk slot for the cloud-init seed (after the
 * disks prepared): its PCI slot, or -ENOSPC. Hot-plugged disks skip it.
 */
int vm_disk_seed_slot(struct vm *vm);
/*
 * Reserve PCI address pci ("0000:00:SS.0", the source's) for the seed of
 * an incoming VM, before its disks: 0, -EINVAL (not a disk slot) or
 * -EBUSY (taken).
 */
int vm_disk_seed_slot_at(struct vm *vm, const char *pci);
/* The seed's PCI address into ret (n bytes, 24 will do): 0, or -ENOENT (none reserved). */
int vm_disk_seed_pci(struct vm *vm, char *ret, size_t n);

#endif /* DISAGG_VM_DISK_MIG_H */
