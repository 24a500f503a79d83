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

/*
 * Keep a created VM's "boot" and "cloud_init" as asked (either may be
 * NULL; both NULL: nothing) in its directory: 0, or -errno.
 */
int vm_boot_mig_record(struct vm *vm, json_t *boot, json_t *ci);
/* GET /v1/vms/NAME/boot: {"boot", "cloud_init", "seed": {"pci", "size"}}, null when none. */
void vm_boot_mig_http(struct vm *vm, const struct http_req *req, struct http_resp *resp);
/*
 * An incoming VM's seed, before its disks are prepared: "cloud_init" ci
 * and "seed" (the source's {"pci", "size"}) go together (both NULL:
 * none). The slot is reserved and the seed made from ci, its size
 * checked. 0, or -errno with err (-EINVAL: a bad request).
 */
int vm_boot_mig_seed(struct vm *vm, json_t *ci, json_t *seed, char *err, size_t errlen);

#endif /* DISAGG_VM_BOOT_MIG_H */
