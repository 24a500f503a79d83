// SPDX-License-Identifier: MIT
/*
 * A VM's pager: who may use it, and when it goes (also vm_pager_open, which
 * starts it with the memory-node backend).
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
#include "pager_use.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "health.h"
#include "log.h"
#include "sections.h"
#include "pagemeta.h"

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
	pager_crypt_free(vm->crypt);
	vm->crypt = NULL;
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

/* pager_config.on_control: a guest's write to a shared region's control page. */
static void pager_control(void *opaque, int region, enum pager_ctl op)
{
	struct vm *vm = opaque;

	if (vm->env.on_region_control)
		vm->env.on_region_control(vm, region, (int)op);
}

static void pending_path(struct vm *vm, char *buf, size_t len)
{
	snprintf(buf, len, "%s/replicas.pending", vm->dir);
}

/*
 * Does the new pager wait for the source's replicas out (pager_use.h)?
 * The file says so to an agent that adopts the VM after a restart.
 */
static int replicas_pending_open(struct vm *vm, bool *ret, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fd;

	pending_path(vm, path, sizeof(path));
	if (vm->adopted) {
		*ret = access(path, F_OK) == 0;
		return 0;
	}
	*ret = vm->spec.incoming && vm->spec.replicas_pending;
	if (!*ret)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = -errno;

		snprintf(err, errlen, "cannot create %s: %s", path, strerror(-e));
		return e;
	}
	close(fd);
	return 0;
}

void vm_replicas_settle(struct vm *vm)
{
	char path[PATH_MAX];

	pending_path(vm, path, sizeof(path));
	(void)unlink(path);
	if (vm->pager && !vm->released)
		pager_replicas_settled(vm->pager);
}

bool vm_replicas_pending(struct vm *vm)
{
	return vm->pager && !vm->released && pager_replicas_pending(vm->pager);
}

/* The memory-node backend and the pager, started (vm_start, adoption). */
int vm_pager_open(struct vm *vm, char *err, size_t errlen)
{
	struct pager_config pc = {
		.name = vm->spec.name,
		.section_size = vm->env.section_size,
		.budget = vm->spec.budget,
		.writeback_delay_ms = vm->env.writeback_delay_ms,
		/* A stalled node parks its faults after this; the rest go on. */
		.fail_timeout_ms = vm->env.memnode_timeout_ms > 0 ? vm->env.memnode_timeout_ms
								  : 2000,
		.fail_mode = vm->env.memnode_policy == VM_MEMNODE_SIGBUS ? PAGER_FAIL_SIGBUS
									 : PAGER_FAIL_BLOCK,
		.on_node = vm_health_node,
		.on_replica = vm_health_replica,
		.on_fail = vm_health_fault,
		.on_control = pager_control,
		.opaque = vm,
	};
	int r;

	r = vm_health_start(vm);
	if (r < 0) {
		snprintf(err, errlen, "thread: %s", strerror(-r));
		return r;
	}
	r = pager_backend_memnode_new(vm->env.key, vm->env.node_id, pc.fail_timeout_ms, 0,
				      &vm->backend);
	if (r < 0) {
		snprintf(err, errlen, "memory-node backend: %s", strerror(-r));
		return r;
	}
	pc.backend = vm->backend;
	r = replicas_pending_open(vm, &pc.replicas_pending, err, errlen);
	if (r < 0)
		return r;
	if (vm->spec.encrypt) {
		/* A migration's destination: faults wait for the source's table. */
		r = vm_pagemeta_open(vm, &pc.meta_pending, err, errlen);
		if (r < 0)
			return r;
		pc.crypt = vm->crypt;
	}
	r = pager_new(&pc, &vm->pager);
	if (r >= 0)
		r = pager_start(vm->pager);
	if (r < 0)
		snprintf(err, errlen, "pager: %s", strerror(-r));
	return r;
}
