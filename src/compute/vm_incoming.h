/* SPDX-License-Identifier: MIT */
/*
 * Compute migration, destination side (vm_incoming.c; docs/compute.md).
 */
#ifndef DISAGG_VM_INCOMING_H
#define DISAGG_VM_INCOMING_H

#include <stddef.h>

#include <jansson.h>

#include "ext.h"
#include "vm_types.h"

/* A section hot-plugged on the migration source, at its index there. */
struct vm_hot_in {
	unsigned index;
	struct vm_section sec;
	uint64_t gpa;                 /* DIMM: the source's guest-physical address (0: unknown) */
	int slot;                     /* DIMM: the source's ACPI slot (-1: unknown) */
};

/*
 * Destination: start a VM created with spec.incoming. Prepares the hot
 * sections (same DIMMs / virtio-mem size as the source), starts the pager
 * and QEMU with -incoming defer, listens on `listen` ("HOST:PORT", port 0
 * picks one) and returns at once with state VM_INCOMING; a thread waits for
 * the migration to complete (state running) or fail (state failed; the
 * sections are never freed by a failed incoming VM). `regions` (may be
 * NULL): the shared regions the VM brings (POST /v1/vms "regions").
 */
int vm_incoming_start(struct vm *vm, const char *listen, const struct vm_hot_in *hot,
		      unsigned nhot, json_t *regions, json_t *disks, char *err, size_t errlen);

/* Its hook (ext.h): -incoming defer and the source's DIMMs on QEMU's command line. */
extern const struct vm_ext_ops vm_incoming_ext;

#endif /* DISAGG_VM_INCOMING_H */
