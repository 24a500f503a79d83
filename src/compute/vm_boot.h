/* SPDX-License-Identifier: MIT */
/*
 * What a new VM boots (vm_boot.c; docs/compute.md, "Booting an image"):
 * the "boot" member of POST /v1/vms (a kernel and initramfs given as
 * paths on this node or as URLs of the orchestrator, fetched into a cache
 * in the run directory, and a kernel command line) and the "cloud_init"
 * member (a NoCloud seed, a small vfat image labelled "cidata" in the
 * VM's directory, attached read-only).
 */
#ifndef DISAGG_VM_BOOT_H
#define DISAGG_VM_BOOT_H

#include <jansson.h>
#include <stddef.h>

#include "vm_types.h"

struct vm;

/* How the agent fetches a URL: its bearer token and the CA file (both may be NULL). */
struct vm_boot_fetch {
	const char *run_root;
	const char *bearer;
	const char *cafile;
};

/*
 * "boot" (NULL: the node's default kernel and initramfs) into spec
 * (kernel, initrd, append): a URL is fetched now. -EINVAL with err for a
 * bad request, another -errno with err when a file cannot be had.
 */
int vm_boot_parse(const struct vm_boot_fetch *f, json_t *boot, struct vm_spec *spec,
		  char *err, size_t errlen);
/* Check "cloud_init" (NULL: none): 0 or -EINVAL with err. */
int vm_boot_cloud_init_check(json_t *ci, char *err, size_t errlen);
/*
 * Write the seed of a checked "cloud_init" into the VM's directory
 * (seed.img) and set vm->spec.seed: 0, or -errno with err.
 */
int vm_boot_cloud_init(struct vm *vm, json_t *ci, char *err, size_t errlen);

#endif /* DISAGG_VM_BOOT_H */
