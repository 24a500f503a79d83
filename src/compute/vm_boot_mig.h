/* SPDX-License-Identifier: MIT */
/*
 * What a VM boots, in a compute migration (vm_boot_mig.c; docs/compute.md,
 * "Booting an image" and the incoming VM): the source says its "boot",
 * "cloud_init" and where its seed drive is (GET /v1/vms/NAME/boot); the
 * destination gets the same and makes the same seed at the same slot.
 */
#ifndef DISAGG_VM_BOOT_MIG_H
#define DISAGG_VM_BOOT_MIG_H

#include <jansson.h>
#include <stddef.h>

#include "http.h"
#include "vm_types.h"

struct vm;

/* GET /v1/vms/NAME/boot: {"boot", "cloud_init", "seed": {"pci", "size"}}, null when none. */
void vm_boot_mig_http(struct vm *vm, const struct http_req *req, struct http_resp *resp);
/*
 * Before QEMU starts, after a new VM's disks and before an incoming VM's:
 * keep the request's "boot" and "cloud_init" as asked in the VM's
 * directory, and make the seed of "cloud_init" (if any) in the first free
 * disk slot of a new VM, or, for an incoming one, at the slot that its
 * "seed" ({"pci", "size"}: the source's, which goes with "cloud_init")
 * says, its size checked. 0, or -errno with err (-EINVAL: a bad request).
 */
int vm_boot_mig_prepare(struct vm *vm, json_t *req, char *err, size_t errlen);

#endif /* DISAGG_VM_BOOT_MIG_H */
