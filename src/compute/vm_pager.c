// SPDX-License-Identifier: MIT
/*
 * Who may use a VM's pager, and when it goes.
 *
 * QEMU can exit at any moment (a crash, SIGKILL, quit); the supervisor
 * then releases the VM: the pager and its backend, the RAM files and
 * their descriptors, the hot-plug records and, where the control plane
 * asked for it, the sections on their memory nodes. Many operations use
 * the pager outside vm->lock for a long time: a flush, a compute
 * migration's flush rounds, a memory migration phase, an evacuation, a
 * hot-add or hot-remove, a prefetch, the shim's MAP and UNMAP messages.
 *
 * One rule for all of them: take the pager with vm_pager_get() and give
 * it back with vm_pager_put(). A user count under vm->lock keeps the
 * pager, and everything the release would free, alive while anyone holds
 * it: vm_release() only marks the VM released when there are users, and
 * the last vm_pager_put() does the teardown. Once the VM is released,
 * vm_pager_get() returns NULL and the caller answers "the VM has exited".
 *
 * Code that only looks at the pager under vm->lock (status, metrics, the
 * budget) needs no reference: the teardown runs under vm->lock as well.
 */
#include "vm_internal.h"

#include "log.h"

struct pager *vm_pager_get(struct vm *vm)
{
	struct pager *p = NULL;

	pthread_mutex_lock(&vm->lock);
	if (!vm->released && vm->pager) {
		p = vm->pager;
		vm->pager_users++;
	}
	pthread_mutex_unlock(&vm->lock);
	return p;
}

/* Drop the pager, the RAM files and, where asked, the sections. Lock held. */
static void teardown(struct vm *vm)
{
	vm->torn_down = true;
	pager_free(vm->pager);
	vm->pager = NULL;
	pager_backend_free(vm->backend);
	vm->backend = NULL;
	for (unsigned i = 0; i < vm->nregions; i++) {
		if (vm->regions[i].file_fd >= 0)
			close(vm->regions[i].file_fd);
		if (vm->regions[i].uffd >= 0)
			close(vm->regions[i].uffd);
	}
	vm->nregions = 0;
	vm_hot_release(vm);
	for (unsigned i = 0; i < vm->spec.nbase; i++)
		vm_free_section(vm, &vm->spec.base[i]);
	if (vm->base_path[0])
		unlink(vm->base_path);
	pthread_cond_broadcast(&vm->cond);
}

void vm_pager_put(struct vm *vm, struct pager *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&vm->lock);
	if (vm->pager_users == 0) {
		log_error("vm %s: pager reference dropped twice", vm->spec.name);
	} else if (--vm->pager_users == 0 && vm->released && !vm->torn_down) {
		log_debug("vm %s: the last user of the pager releases the VM", vm->spec.name);
		teardown(vm);
	}
	pthread_mutex_unlock(&vm->lock);
}

void vm_release(struct vm *vm)
{
	vm->released = true;
	if (vm->pager_users == 0 && !vm->torn_down)
		teardown(vm);
}

void vm_release_wait(struct vm *vm)
{
	vm_release(vm);
	while (!vm->torn_down)
		pthread_cond_wait(&vm->cond, &vm->lock);
}
