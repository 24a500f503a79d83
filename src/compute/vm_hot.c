// SPDX-License-Identifier: MIT
/*
 * Section hotplug of a running VM (a feature above the lifecycle: it calls
 * vm/, never the other way round).
 *
 * pc-dimm mode: every hot section is its own tmpfs file and its own DIMM.
 * Adding creates the file and records the section *before* asking QEMU,
 * so that when QEMU maps the file the shim's MAP message finds it and the
 * pager serves it from the first access. Removing asks QEMU to unplug the
 * DIMM (the guest offlines the movable memory first); QEMU then unmaps the
 * file, the shim announces it, and the pager forgets the region.
 *
 * virtio-mem mode: one device and one file sized for max_hot sections; a
 * section is assigned to the next slot of that region before the requested
 * size grows over it, and reset after the size shrinks below it.
 *
 * After every change the guest is asked through disagg-guest to online
 * new memory, and MemTotal is read back.
 */
#include "vm_hot.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "guestchan.h"
#include "hotplug.h"
#include "log.h"
#include "mappings.h"
#include "net.h"
#include "pager_use.h"
#include "persist.h"
#include "ramfile.h"
#include "section_check.h"
#include "sections.h"
#include "state.h"
#include "vm_disk.h"
#include "vm_internal.h"

/*
 * Online new memory in the guest and refresh MemTotal, until it has moved
 * by `delta_kb` from `before_kb` (the guest handles the ACPI or virtio-mem
 * notification asynchronously) or the timeout passes.
 */
static int guest_refresh(struct vm *vm, uint64_t before_kb, int64_t delta_kb, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull, kb = 0;
	char line[512];
	int r;

	if (!vm->guest)
		return 0;   /* no disagg-guest: the kernel onlines it (memhp_default_state) */
	for (;;) {
		r = guestchan_cmd(vm->guest, timeout_ms, line, sizeof(line), "ONLINE");
		if (r >= 0)
			r = guestchan_cmd(vm->guest, timeout_ms, line, sizeof(line), "MEMINFO");
		if (r >= 0)
			r = guestchan_field_u64(line, "memtotal_kb", &kb);
		if (r < 0)
			return r;
		pthread_mutex_lock(&vm->lock);
		vm->guest_memtotal_kb = kb;
		pthread_mutex_unlock(&vm->lock);
		if (delta_kb >= 0 ? kb >= before_kb + (uint64_t)delta_kb
				  : kb + (uint64_t)-delta_kb <= before_kb)
			return 0;
		if (now_ns() >= deadline)
			return -ETIMEDOUT;
		usleep(20000);
	}
}

/* ---- hot add / remove ---------------------------------------------------- */

static int dimm_add(struct vm *vm, const struct vm_section *s, int timeout_ms,
		    unsigned *ret_index, char *err, size_t errlen)
{
	char leaf[32];
	unsigned idx;
	int r;

	pthread_mutex_lock(&vm->lock);
	for (idx = 0; idx < vm->spec.max_hot; idx++)
		if (!vm->hot[idx].in_use)
			break;
	if (idx == vm->spec.max_hot) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "all %u hotplug slots are in use", vm->spec.max_hot);
		return -ENOSPC;
	}
	snprintf(leaf, sizeof(leaf), "dimm-%u", idx);
	r = vm_make_file(vm, leaf, vm->env.section_size, vm->hot[idx].path,
			 sizeof(vm->hot[idx].path));
	if (r < 0) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "cannot create %s: %s", leaf, strerror(-r));
		return r;
	}
	vm->hot[idx].in_use = true;
	vm->hot[idx].plugged = false;
	vm->hot[idx].sec = *s;
	snprintf(vm->hot[idx].id, sizeof(vm->hot[idx].id), "hot%u", idx);
	vm->nhot = MAX(vm->nhot, idx + 1);
	(void)vm_persist_locked(vm);   /* QEMU maps the file from now on: adoptable */
	pthread_mutex_unlock(&vm->lock);

	r = hotplug_dimm_add(vm->hp, vm->hot[idx].id, vm->hot[idx].path, vm->env.section_size,
			     timeout_ms);
	if (r < 0)
		snprintf(err, errlen, "%s", hotplug_last_error(vm->hp));
	{
		/* Recorded for a compute migration: the destination needs the same. */
		uint64_t gpa = 0;
		int slot = -1;

		if (r >= 0 && hotplug_dimm_where(vm->hp, vm->hot[idx].id, &gpa, &slot) < 0)
			log_warn("vm %s: cannot tell where DIMM %s is", vm->spec.name,
				 vm->hot[idx].id);
		pthread_mutex_lock(&vm->lock);
		if (r < 0) {
			unlink(vm->hot[idx].path);
			vm->hot[idx].in_use = false;
		} else {
			vm->hot[idx].plugged = true;
			vm->hot[idx].gpa = gpa;
			vm->hot[idx].slot = slot;
			*ret_index = idx;
		}
		(void)vm_persist_locked(vm);
		pthread_mutex_unlock(&vm->lock);
	}
	return r;
}

static int dimm_remove(struct vm *vm, unsigned idx, int timeout_ms, char *err, size_t errlen)
{
	struct vm_section sec;
	int r;

	pthread_mutex_lock(&vm->lock);
	if (idx >= vm->nhot || !vm->hot[idx].in_use || !vm->hot[idx].plugged) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "no hot section %u", idx);
		return -ENOENT;
	}
	pthread_mutex_unlock(&vm->lock);
	/* The guest offlines the memory, QEMU unplugs and unmaps (the shim tells us). */
	r = hotplug_dimm_remove(vm->hp, vm->hot[idx].id, timeout_ms);
	if (r < 0) {
		snprintf(err, errlen, "%s", hotplug_last_error(vm->hp));
		return r;
	}
	/*
	 * QEMU unmaps the file only when its RCU callbacks run, maybe much
	 * later; the guest no longer has the memory, so stop serving it now.
	 * The shim's UNMAP, when it comes, finds nothing left to do.
	 */
	(void)vm_region_unmapped(vm, vm->hot[idx].addr);
	pthread_mutex_lock(&vm->lock);
	sec = vm->hot[idx].sec;
	unlink(vm->hot[idx].path);
	vm->hot[idx].in_use = vm->hot[idx].plugged = false;
	(void)vm_persist_locked(vm);
	pthread_mutex_unlock(&vm->lock);
	vm_free_section(vm, &sec);
	return 0;
}

static int vmem_add(struct vm *vm, const struct vm_section *s, int timeout_ms,
		    unsigned *ret_index, char *err, size_t errlen)
{
	unsigned idx;
	int r;

	pthread_mutex_lock(&vm->lock);
	idx = vm->vmem_plugged;
	if (idx >= vm->spec.max_hot || vm->vmem_region < 0) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, idx >= vm->spec.max_hot ? "the virtio-mem device is full (%u sections)"
							     : "virtio-mem is not mapped yet", vm->spec.max_hot);
		return -ENOSPC;
	}
	vm->vmem_secs[idx] = *s;
	pthread_mutex_unlock(&vm->lock);
	r = vm_vmem_set_section(vm, idx, &s->sec, false);
	if (r < 0) {
		snprintf(err, errlen, "pager: %s", strerror(-r));
		return r;
	}
	r = hotplug_vmem_resize(vm->hp, vm->env.section_size * (idx + 1), timeout_ms);
	if (r < 0) {
		snprintf(err, errlen, "%s", hotplug_last_error(vm->hp));
		(void)vm_vmem_set_section(vm, idx, &(struct pager_section){ .kind = PAGER_SEC_LOCAL },
					  true);
	}
	pthread_mutex_lock(&vm->lock);
	if (r >= 0) {
		vm->vmem_plugged = idx + 1;
		*ret_index = idx;
		(void)vm_persist_locked(vm);
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

static int vmem_remove(struct vm *vm, unsigned idx, int timeout_ms, char *err, size_t errlen)
{
	struct pager_section local = { .kind = PAGER_SEC_LOCAL };
	struct vm_section sec;
	int r;

	pthread_mutex_lock(&vm->lock);
	if (vm->vmem_plugged == 0 || idx != vm->vmem_plugged - 1) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "virtio-mem removes the last section only (index %d)",
			 (int)vm->vmem_plugged - 1);
		return vm->vmem_plugged ? -EINVAL : -ENOENT;
	}
	pthread_mutex_unlock(&vm->lock);
	r = hotplug_vmem_resize(vm->hp, vm->env.section_size * idx, timeout_ms);
	if (r < 0) {
		snprintf(err, errlen, "%s", hotplug_last_error(vm->hp));
		return r;
	}
	pthread_mutex_lock(&vm->lock);
	sec = vm->vmem_secs[idx];
	vm->vmem_plugged = idx;
	(void)vm_persist_locked(vm);
	pthread_mutex_unlock(&vm->lock);
	(void)vm_vmem_set_section(vm, idx, &local, true);
	vm_free_section(vm, &sec);
	return 0;
}

static uint64_t vm_guest_memtotal(struct vm *vm)
{
	uint64_t kb;

	pthread_mutex_lock(&vm->lock);
	kb = vm->guest_memtotal_kb;
	pthread_mutex_unlock(&vm->lock);
	return kb;
}

/*
 * Hold the VM's pager for a hotplug operation, with hot_lock: -EBUSY if the
 * VM is not running (or QEMU has exited), with err set. The reference keeps
 * the hot-plug records and the pager alive if QEMU exits meanwhile.
 */
static int hot_begin(struct vm *vm, struct pager **ret, char *err, size_t errlen)
{
	struct pager *p;
	enum vm_state st;

	pthread_mutex_lock(&vm->hot_lock);
	p = vm_pager_get(vm);
	st = vm_get_state(vm);
	if (p && st == VM_RUNNING) {
		*ret = p;
		return 0;
	}
	vm_pager_put(vm, p);
	pthread_mutex_unlock(&vm->hot_lock);
	if (st == VM_RUNNING)
		snprintf(err, errlen, "the VM has exited");
	else
		snprintf(err, errlen, "VM is %s", vm_state_name(st));
	return -EBUSY;
}

static void hot_end(struct vm *vm, struct pager *p)
{
	vm_pager_put(vm, p);
	pthread_mutex_unlock(&vm->hot_lock);
}

int vm_add_section(struct vm *vm, const struct vm_section *s, int timeout_ms,
		   unsigned *ret_index, char *err, size_t errlen)
{
	struct pager *p;
	uint64_t before;
	int r;

	if (vm_get_state(vm) != VM_RUNNING) {
		snprintf(err, errlen, "VM is %s", vm_state_name(vm_get_state(vm)));
		return -EBUSY;
	}
	/* A bad grant must fail here, not leave the guest blocked on the new memory. */
	r = vm_check_section(vm, s, err, errlen);
	if (r < 0)
		return r;
	r = hot_begin(vm, &p, err, errlen);
	if (r < 0)
		return r;
	before = vm_guest_memtotal(vm);
	r = vm->spec.hotplug == VM_HOTPLUG_DIMM ? dimm_add(vm, s, timeout_ms, ret_index, err, errlen)
						: vmem_add(vm, s, timeout_ms, ret_index, err, errlen);
	if (r >= 0) {
		r = guest_refresh(vm, before, (int64_t)(vm->env.section_size >> 10), timeout_ms);
		if (r < 0)
			snprintf(err, errlen,
				 "QEMU plugged the section but the guest did not bring it online (%s)",
				 strerror(-r));
	}
	hot_end(vm, p);
	return r;
}

int vm_remove_section(struct vm *vm, unsigned index, int timeout_ms, char *err, size_t errlen)
{
	struct pager *p;
	uint64_t before;
	int r;

	r = hot_begin(vm, &p, err, errlen);
	if (r < 0)
		return r;
	before = vm_guest_memtotal(vm);
	r = vm->spec.hotplug == VM_HOTPLUG_DIMM ? dimm_remove(vm, index, timeout_ms, err, errlen)
						: vmem_remove(vm, index, timeout_ms, err, errlen);
	if (r >= 0 && guest_refresh(vm, before, -(int64_t)(vm->env.section_size >> 10),
				    timeout_ms) < 0)
		log_warn("vm %s: MemTotal did not drop after the unplug", vm->spec.name);
	hot_end(vm, p);
	return r;
}
