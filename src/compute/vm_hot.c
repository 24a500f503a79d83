// SPDX-License-Identifier: MIT
/*
 * Section hotplug of a running VM and its guest channel.
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
#include "vm_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "hotplug.h"
#include "log.h"
#include "mnclient.h"
#include "net.h"

#define GUEST_READY_MS 120000

/* ---- guest channel ------------------------------------------------------- */

int vm_guest_connect(struct vm *vm)
{
	char path[PATH_MAX];
	uint64_t kb = 0;
	int r;

	snprintf(path, sizeof(path), "%s/guest.sock", vm->dir);
	r = guestchan_connect(path, 15000, &vm->guest);
	if (r < 0)
		return r;
	/*
	 * Wait for READY in slices: a pager that failed meanwhile (a fetch the
	 * memory node refused, or a node that went away) leaves the guest
	 * blocked in a page fault, so give up at once instead of at the timeout.
	 */
	for (uint64_t end = now_ns() + GUEST_READY_MS * 1000000ull;;) {
		int failed = 0;

		r = guestchan_wait_ready(vm->guest, 500, &kb);
		if (r != -ETIMEDOUT)
			break;
		pthread_mutex_lock(&vm->lock);
		if (vm->pager) {
			struct pager_stats st;

			pager_stats(vm->pager, &st);
			failed = st.failed;
		}
		pthread_mutex_unlock(&vm->lock);
		if (failed < 0)
			return failed;
		if (now_ns() >= end)
			break;
	}
	if (r < 0)
		return r;
	pthread_mutex_lock(&vm->lock);
	vm->guest_memtotal_kb = kb;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

void vm_guest_close(struct vm *vm)
{
	guestchan_close(vm->guest);
	vm->guest = NULL;
}

int vm_guest_cmd(struct vm *vm, const char *cmd, int timeout_ms, char *ret, size_t len)
{
	int r;

	if (!vm->guest || vm_get_state(vm) != VM_RUNNING) {
		snprintf(ret, len, "VM is not running");
		return -ESRCH;
	}
	r = guestchan_cmd(vm->guest, timeout_ms, ret, len, "%s", cmd);
	if (r < 0)
		snprintf(ret, len, "%s", guestchan_last_error(vm->guest));
	return r;
}

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

/* ---- QEMU arguments and files --------------------------------------------- */

int vm_hot_prepare(struct vm *vm)
{
	if (vm->spec.hotplug != VM_HOTPLUG_VIRTIO_MEM || vm->spec.max_hot == 0)
		return 0;
	vm->vmem_secs = calloc(vm->spec.max_hot, sizeof(*vm->vmem_secs));
	if (!vm->vmem_secs)
		return -ENOMEM;
	return vm_make_file(vm, "vmem", vm->env.section_size * vm->spec.max_hot, vm->vmem_path,
			    sizeof(vm->vmem_path));
}

void vm_hot_config(struct vm *vm, struct hotplug_config *ret)
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

int vm_hot_attach(struct vm *vm)
{
	struct hotplug_config hc;
	int r;

	vm_hot_config(vm, &hc);
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

unsigned vm_hot_count(struct vm *vm)
{
	unsigned n = 0;

	if (vm->spec.hotplug == VM_HOTPLUG_VIRTIO_MEM)
		return vm->vmem_plugged;
	for (unsigned i = 0; i < vm->nhot; i++)
		n += vm->hot[i].in_use && vm->hot[i].plugged;
	return n;
}

/* Lock held. */
void vm_hot_release(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nhot; i++) {
		if (!vm->hot[i].in_use)
			continue;
		vm_free_section(vm, &vm->hot[i].sec);
		if (vm->hot[i].path[0])
			unlink(vm->hot[i].path);
		vm->hot[i].in_use = false;
	}
	vm->nhot = 0;
	if (vm->vmem_secs) {
		for (unsigned i = 0; i < vm->vmem_plugged; i++)
			vm_free_section(vm, &vm->vmem_secs[i]);
		free(vm->vmem_secs);
		vm->vmem_secs = NULL;
		vm->vmem_plugged = 0;
	}
	if (vm->vmem_path[0])
		unlink(vm->vmem_path);
}

/* ---- regions the shim announces ------------------------------------------ */

void vm_region_keep_uffd(struct vm *vm, uint64_t addr, int uffd)
{
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->nregions; i++)
		if (vm->regions[i].addr == addr && vm->regions[i].uffd < 0) {
			vm->regions[i].uffd = uffd;
			uffd = -1;
			break;
		}
	pthread_mutex_unlock(&vm->lock);
	if (uffd >= 0)
		close(uffd);
}

/*
 * QEMU is about to unmap the region at addr: stop serving it. Once QEMU
 * has exited, the release drops every region at once (with the pager):
 * nothing to do here.
 */
int vm_region_unmapped(struct vm *vm, uint64_t addr)
{
	struct vm_region gone = { .index = -1 };
	struct pager *p = vm_pager_get(vm);
	int r = 0;

	if (!p)
		return 0;
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->nregions; i++)
		if (vm->regions[i].addr == addr) {
			gone = vm->regions[i];
			vm->regions[i] = vm->regions[--vm->nregions];
			break;
		}
	pthread_mutex_unlock(&vm->lock);
	if (gone.index >= 0)
		r = pager_remove_region(p, gone.index, false);
	vm_pager_put(vm, p);
	if (gone.index < 0)
		return 0;
	if (r < 0)
		log_warn("vm %s: pager region %d: %s", vm->spec.name, gone.index, strerror(-r));
	if (gone.file_fd >= 0)
		close(gone.file_fd);
	if (gone.uffd >= 0)
		close(gone.uffd);
	return r;
}

/* Point virtio-mem slot idx at a section (before plug, or back to local after unplug). */
int vm_vmem_set_section(struct vm *vm, unsigned idx, const struct pager_section *s,
			bool discard)
{
	struct pager *p = vm_pager_get(vm);
	int region, r;

	pthread_mutex_lock(&vm->lock);
	region = vm->vmem_region;
	pthread_mutex_unlock(&vm->lock);
	r = region >= 0 && p ? pager_region_set_section(p, region, idx, s, discard) : -ENODEV;
	vm_pager_put(vm, p);
	return r;
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
