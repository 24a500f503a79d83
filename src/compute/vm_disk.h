/* SPDX-License-Identifier: MIT */
/*
 * Remote disks of a running VM (vm_disk.c; docs/compute.md, "Disks"): a
 * device node's volume attached as a virtio-blk disk, the agent being its
 * vhost-user-blk back end (src/compute/vhost/): a socket in the VM's
 * directory, a thread that serves it, and QMP's chardev-add and device_add
 * of a vhost-user-blk-pci device. A feature above the VM lifecycle: it
 * hears of the VM's end through its vm_ext_ops.
 *
 *   POST   /v1/vms/NAME/disks       attach {"volume", "devnode", "grant", ...}
 *   GET    /v1/vms/NAME/disks       the attached disks
 *   DELETE /v1/vms/NAME/disks/ID    detach
 */
#ifndef DISAGG_VM_DISK_H
#define DISAGG_VM_DISK_H

#include <stdbool.h>

#include "disagg/proto.h"

#include "http.h"
#include "ext.h"
#include "vm_types.h"

#define VM_MAX_DISKS 8

extern const struct vm_ext_ops vm_disk_ext;

/* Has the VM a disk attached? (hot_lock held.) */
bool vm_disk_busy(struct vm *vm);
/*
 * A renewed grant (vm_grants.c), hot_lock held: is g for the volume of one
 * of the VM's disks (the same device node and volume key)? 0 if not, 1 if
 * so (and, with apply, the disk opens the volume with g from its next
 * connection on), -ESTALE if g's epoch is older than the disk's grant's.
 */
int vm_disk_grant(struct vm *vm, const struct proto_grant *g, bool apply);
/* Everything under /v1/vms/NAME/disks (rest: what follows "/disks"). */
void vm_disk_http(struct vm *vm, const char *rest, const struct http_req *req,
		  struct http_resp *resp);

#endif /* DISAGG_VM_DISK_H */
