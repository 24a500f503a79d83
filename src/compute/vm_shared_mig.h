/* SPDX-License-Identifier: MIT */
/*
 * Shared regions in a compute migration (vm_shared_mig.c; docs/compute.md,
 * "Compute migration", and docs/sharing.md, "Migration"): what the source
 * tells about its regions, what it does at the switchover, and how the
 * destination brings the same devices up before the guest arrives.
 */
#ifndef DISAGG_VM_SHARED_MIG_H
#define DISAGG_VM_SHARED_MIG_H

#include <jansson.h>
#include <stdbool.h>

#include "http.h"
#include "vm.h"

/*
 * GET /v1/vms/NAME/regions: {"regions": [{"region", "mode", "size", "pci",
 * "writable", "mapped", "bar", "waiting"}]}, "bar" where the guest mapped
 * the device's BAR2 (null: not mapped), as a migration's destination needs
 * it; "waiting" "lock" or "unlock" while the guest waits for an exclusive
 * region's (null otherwise).
 */
void vm_shared_list_http(struct vm *vm, struct http_resp *resp);

/*
 * Source: why its regions cannot move now (-EBUSY with err), or 0. vm->lock
 * held. A guest that waits for an exclusive region's lock or unlock is one
 * reason: QEMU cannot pause the vCPU that waits in the pager.
 */
int vm_shared_mig_check(struct vm *vm, char *err, size_t errlen);
/* Source, on the way to the switchover: true (err says which) if the guest waits so. */
bool vm_shared_mig_waiting(struct vm *vm, char *err, size_t errlen);
/*
 * Source at pre-switchover, vCPUs stopped, every dirty page written back:
 * each strict region leaves its directory (DIR_DETACH) and drops its
 * cached pages, so that the destination is the only holder this VM has.
 * hot_lock held. 0, or -errno with err (then the caller resumes here).
 */
int vm_shared_mig_switchover(struct vm *vm, char *err, size_t errlen);
/* Source: the guest runs here again after a failed migration: strict regions attach again. */
void vm_shared_mig_resume(struct vm *vm);

/*
 * Destination, before QEMU starts: record the regions the VM brings
 * (`regions`, as POST /v1/vms "regions" has them: each at the source's
 * PCI slot, with grants for this node) and make their files. 0, or
 * -errno with err (-EINVAL for a bad request).
 */
int vm_shared_mig_incoming(struct vm *vm, json_t *regions, char *err, size_t errlen);
/* Destination: their -object/-device pairs, appended to v at *n (room for 4 each). */
int vm_shared_mig_qemu_args(struct vm *vm, char **v, unsigned *n);
/*
 * Destination, QEMU started, before migrate-incoming: every region mapped
 * by the pager, each BAR2 where the source has it, and each strict
 * region attached to its directory (before the guest can run here).
 */
int vm_shared_mig_ready(struct vm *vm, char *err, size_t errlen);

#endif /* DISAGG_VM_SHARED_MIG_H */
