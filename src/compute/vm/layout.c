// SPDX-License-Identifier: MIT
/*
 * The RAM layout of a VM's QEMU. The boot RAM is one file of nbase
 * sections. Hot sections are pc-dimm (a file and a DIMM each, made by
 * the hotplug feature, vm_hot.c) or virtio-mem (one file sized for
 * max_hot sections, made here). hotplug.c turns the layout into QEMU
 * arguments and, once QMP is up, into a handle that plugs and unplugs.
 */
#include "layout.h"

#include <stdlib.h>

#include "hotplug.h"
#include "ramfile.h"

int vm_layout_prepare(struct vm *vm)
{
	int r = vm_make_file(vm, "ram-base", vm->env.section_size * vm->spec.nbase, vm->base_path,
			     sizeof(vm->base_path));

	if (r < 0 || vm->spec.hotplug != VM_HOTPLUG_VIRTIO_MEM || vm->spec.max_hot == 0)
		return r;
	vm->vmem_secs = calloc(vm->spec.max_hot, sizeof(*vm->vmem_secs));
	if (!vm->vmem_secs)
		return -ENOMEM;
	return vm_make_file(vm, "vmem", vm->env.section_size * vm->spec.max_hot, vm->vmem_path,
			    sizeof(vm->vmem_path));
}

void vm_layout_config(struct vm *vm, struct hotplug_config *ret)
{
	uint64_t ss = vm->env.section_size;

	*ret = (struct hotplug_config){
		.mode = vm->spec.hotplug == VM_HOTPLUG_VIRTIO_MEM ? HOTPLUG_VIRTIO_MEM : HOTPLUG_DIMM,
		.base_bytes = ss * vm->spec.nbase,
		.max_bytes = ss * (vm->spec.nbase + vm->spec.max_hot),
		.slots = vm->spec.max_hot,
		.base_path = vm->base_path,
		.base_id = "ram-base",
		.vmem_path = vm->vmem_path[0] ? vm->vmem_path : NULL,
		.vmem_id = "vmem0",
		.vmem_block_bytes = ss,
	};
}

int vm_layout_attach(struct vm *vm)
{
	struct hotplug_config hc;
	int r;

	vm_layout_config(vm, &hc);
	r = hotplug_new(vm->qmp, &hc, &vm->hp);
	/* DIMMs from the command line (a migration destination): where they went. */
	for (unsigned i = 0; r >= 0 && i < vm->nhot; i++) {
		uint64_t gpa = 0;
		int slot = -1;

		if (!vm->hot[i].in_use || vm->hot[i].gpa ||
		    hotplug_dimm_where(vm->hp, vm->hot[i].id, &gpa, &slot) < 0)
			continue;
		pthread_mutex_lock(&vm->lock);
		vm->hot[i].gpa = gpa;
		vm->hot[i].slot = slot;
		pthread_mutex_unlock(&vm->lock);
	}
	return r;
}
