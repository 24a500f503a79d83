// SPDX-License-Identifier: MIT
/*
 * Shared regions in a compute migration (docs/sharing.md, "Migration").
 * QEMU migrates with x-ignore-shared, so a region's RAM block (its
 * memory-backend-file, share=on) is not sent: both QEMUs map the region's
 * file in their own run directory and each pager serves it from the
 * region's sections. Only the ivshmem device's state travels, which needs
 * the same device (id shmI, backend shmI-mem, PCI slot 0x10 + I,
 * master=on) on the destination's command line and its BAR2 where the
 * source's guest mapped it (pcishm.h).
 *
 * Source: GET /v1/vms/NAME/regions tells the orchestrator each region's
 * PCI address and BAR2. The final flush at pre-switchover writes back
 * every dirty page, the regions' included (an exclusive holder's writes
 * reach the memory node before its lock moves with it). Then each strict
 * region leaves its directory (DIR_DETACH, on its recall channel, after
 * which the directory no longer counts this node's copies) and drops its
 * cached pages: if the migration fails after that, the region attaches
 * again when the guest runs here again (vm_shared_mig_resume), with no
 * copy the directory forgot.
 *
 * Destination: the regions are recorded before QEMU starts (the shim's
 * MAP finds them, the pager serves them: read-only unless the grants are
 * read-write), their devices are on the command line, BAR2 is mapped
 * before migrate-incoming, and each strict region attaches to its
 * directory (its recall channel starts) before the guest can run here.
 */
#include "vm_shared_mig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonhttp.h"
#include "log.h"
#include "pager_use.h"
#include "pcishm.h"
#include "section_check.h"
#include "state.h"
#include "vm_migrate.h"
#include "vm_shared.h"
#include "vm_strict.h"

#define SHMIG_QMP_MS 10000

static bool is_strict(const struct vm_shared *s)
{
	return !strcmp(s->mode, "strict");
}

/* ---- source ------------------------------------------------------------------ */

/* What the guest waits for in an exclusive region (a store to LOCK or UNLOCK), or NULL. */
static const char *ctl_waiting(struct vm_shared *s)
{
	if (!s->in_use || strcmp(s->mode, "exclusive") != 0)
		return NULL;
	switch (atomic_load(&s->ctl_pending)) {
	case 1:
		return "lock";
	case 2:
		return "unlock";
	default:
		return NULL;
	}
}

/* err: why a guest that waits in region s cannot move now; false if it does not wait. */
static bool wait_error(struct vm_shared *s, char *err, size_t errlen)
{
	const char *what = ctl_waiting(s);

	if (what)
		snprintf(err, errlen,
			 "the guest waits for region %s's %s (a store to its %s page), and QEMU "
			 "cannot pause a vCPU that waits; migrate the VM once the guest holds the "
			 "region (`disagg region unlock` it where it is held) or stops waiting",
			 s->id, what, what[0] == 'l' ? "LOCK" : "UNLOCK");
	return what != NULL;
}

bool vm_shared_mig_waiting(struct vm *vm, char *err, size_t errlen)
{
	bool waits = false;

	pthread_mutex_lock(&vm->lock);
	for (int i = 0; i < VM_MAX_SHARED && !waits; i++)
		waits = wait_error(&vm->shared[i], err, errlen);
	pthread_mutex_unlock(&vm->lock);
	return waits;
}

void vm_shared_list_http(struct vm *vm, struct http_resp *resp)
{
	json_t *arr = json_array();

	pthread_mutex_lock(&vm->hot_lock);
	if (vm_get_state(vm) != VM_RUNNING || !vm->qmp) {
		pthread_mutex_unlock(&vm->hot_lock);
		json_decref(arr);
		http_resp_error(resp, 409, "not_running", "VM is %s",
				vm_state_name(vm_get_state(vm)));
		return;
	}
	for (int i = 0; i < VM_MAX_SHARED; i++) {
		unsigned slot = VM_SHARED_PCI_SLOT + (unsigned)i;
		struct vm_shared s;
		uint64_t bar = 0;
		const char *waiting;
		char pci[24];

		pthread_mutex_lock(&vm->lock);
		s = vm->shared[i];
		pthread_mutex_unlock(&vm->lock);
		if (!s.in_use)
			continue;
		waiting = ctl_waiting(&s);
		snprintf(pci, sizeof(pci), "0000:00:%02x.0", slot);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:s, s:b, s:b, s:o, s:o}",
						     "region", s.id, "mode", s.mode, "size",
						     (json_int_t)s.size, "pci", pci, "writable",
						     s.writable, "mapped", s.region >= 0,
						     "bar", pcishm_bar(vm->qmp, slot, SHMIG_QMP_MS,
								       &bar) == 0
							    ? json_integer((json_int_t)bar)
							    : json_null(),
						     "waiting", waiting ? json_string(waiting)
									: json_null()));
	}
	pthread_mutex_unlock(&vm->hot_lock);
	http_resp_json(resp, 200, json_pack("{s:o}", "regions", arr));
}

int vm_shared_mig_check(struct vm *vm, char *err, size_t errlen)
{
	for (int i = 0; i < VM_MAX_SHARED; i++) {
		if (vm->shared[i].in_use && vm->shared[i].region < 0) {
			snprintf(err, errlen, "region %s is recorded but QEMU does not map it",
				 vm->shared[i].id);
			return -EBUSY;
		}
		if (wait_error(&vm->shared[i], err, errlen))
			return -EBUSY;
	}
	return 0;
}

int vm_shared_mig_switchover(struct vm *vm, char *err, size_t errlen)
{
	struct pager *p = vm_pager_get(vm);
	int r = 0;

	for (int i = 0; i < VM_MAX_SHARED; i++) {
		uint64_t dropped = 0;
		bool strict;
		int region;

		pthread_mutex_lock(&vm->lock);
		strict = vm->shared[i].in_use && is_strict(&vm->shared[i]);
		region = vm->shared[i].region;
		pthread_mutex_unlock(&vm->lock);
		if (!strict)
			continue;
		/* Every page it owned was written back (final flush): nothing is lost here. */
		vm_strict_stop(vm, i);
		r = p && region >= 0 ? pager_strict_reset(p, region, &dropped) : -ESRCH;
		if (r < 0) {
			snprintf(err, errlen, "region %s: dropping its pages at the switchover: %s",
				 vm->shared[i].id, strerror(-r));
			break;
		}
		log_info("vm %s: region %s left its directory for the switchover (%llu cached "
			 "pages dropped)", vm->spec.name, vm->shared[i].id,
			 (unsigned long long)dropped);
	}
	vm_pager_put(vm, p);
	return r;
}

void vm_shared_mig_resume(struct vm *vm)
{
	vm_strict_start_all(vm);
}

/* ---- destination --------------------------------------------------------------- */

/* "pci": "0000:00:SS.0" with SS a region slot: its index, or -1. */
static int pci_index(const char *pci)
{
	unsigned slot;
	char tail;

	if (!pci || sscanf(pci, "0000:00:%2x.0%c", &slot, &tail) != 1 || strlen(pci) != 12 ||
	    slot < VM_SHARED_PCI_SLOT || slot >= VM_SHARED_PCI_SLOT + VM_MAX_SHARED)
		return -1;
	return (int)(slot - VM_SHARED_PCI_SLOT);
}

/* One region of "regions": recorded at its PCI slot, with its BAR address kept in m. */
static int incoming_one(struct vm *vm, struct vm_mig *m, json_t *e, size_t n, char *err,
			size_t errlen)
{
	static const char *const keys[] = { "region", "mode", "size", "sections", "writable",
					    "pci", "bar", NULL };
	const char *bad = NULL, *pci = json_string_value(json_object_get(e, "pci"));
	json_t *bar = json_object_get(e, "bar");
	struct vm_shared_req a = { 0 };
	char why[400] = "";
	int idx = pci_index(pci), r;

	if (!json_is_object(e) || json_check_keys(e, keys, &bad) < 0) {
		snprintf(err, errlen, "\"regions\"[%zu]: %s%s", n, bad ? "unknown field " : "not an "
			 "object", bad ? bad : "");
		return -EINVAL;
	}
	if (idx < 0 || (bar && !json_is_null(bar) &&
			(!json_is_integer(bar) || json_integer_value(bar) <= 0))) {
		snprintf(err, errlen, "\"regions\"[%zu]: \"pci\" must be 0000:00:%02x.0 to "
			 "0000:00:%02x.0 and \"bar\" an address or null", n, VM_SHARED_PCI_SLOT,
			 VM_SHARED_PCI_SLOT + VM_MAX_SHARED - 1);
		return -EINVAL;
	}
	r = vm_shared_parse(vm, e, &a, why, sizeof(why));
	for (unsigned k = 0; r == 0 && k < a.nsec; k++)
		r = vm_check_section(vm, &a.secs[k], why, sizeof(why));
	if (r == 0)
		r = vm_shared_record(vm, &a, idx, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "\"regions\"[%zu]: %s", n, why);
		return r == -EEXIST || r == -ENOSPC ? -EINVAL : r;
	}
	m->shared_bar[idx] = json_is_integer(bar) ? (uint64_t)json_integer_value(bar) : 0;
	return 0;
}

int vm_shared_mig_incoming(struct vm *vm, json_t *regions, char *err, size_t errlen)
{
	struct vm_mig *m = vm_mig_get(vm);
	size_t n;
	json_t *e;

	if (!regions)
		return 0;
	if (!m)
		return -ENOMEM;
	if (!json_is_array(regions) || json_array_size(regions) > VM_MAX_SHARED) {
		snprintf(err, errlen, "\"regions\" must be an array of at most %d regions",
			 VM_MAX_SHARED);
		return -EINVAL;
	}
	json_array_foreach(regions, n, e) {
		int r = incoming_one(vm, m, e, n, err, errlen);

		if (r < 0)
			return r;
	}
	return 0;
}

int vm_shared_mig_qemu_args(struct vm *vm, char **v, unsigned *n)
{
	for (int i = 0; i < VM_MAX_SHARED; i++) {
		char id[16];
		int r;

		if (!vm->shared[i].in_use)
			continue;
		snprintf(id, sizeof(id), "shm%d", i);
		v[(*n)++] = strdup("-object");
		v[(*n)++] = NULL;
		v[(*n)++] = strdup("-device");
		v[(*n)++] = NULL;
		r = pcishm_cmdline(id, vm->shared[i].path, vm->shared[i].size,
				   VM_SHARED_PCI_SLOT + (unsigned)i, &v[*n - 3], &v[*n - 1]);
		if (r < 0)
			return r;
	}
	return 0;
}

int vm_shared_mig_ready(struct vm *vm, char *err, size_t errlen)
{
	struct vm_mig *m = vm->mig;

	for (int i = 0; i < VM_MAX_SHARED; i++) {
		unsigned slot = VM_SHARED_PCI_SLOT + (unsigned)i;
		struct vm_shared s;
		int r = 0;

		pthread_mutex_lock(&vm->lock);
		s = vm->shared[i];
		pthread_mutex_unlock(&vm->lock);
		if (!s.in_use)
			continue;
		if (s.region < 0) {
			snprintf(err, errlen, "region %s: QEMU mapped its file but the pager does not "
				 "serve it", s.id);
			return -EIO;
		}
		if (m && m->shared_bar[i])
			r = pcishm_set_bar(vm->qmp, slot, m->shared_bar[i], SHMIG_QMP_MS, err, errlen);
		if (r == 0 && is_strict(&s)) {
			r = vm_strict_start(vm, i);
			if (r == 0)
				r = vm_strict_wait(vm, i, SHMIG_QMP_MS);
			if (r < 0)
				snprintf(err, errlen, "region %s: no recall channel: %s", s.id,
					 strerror(-r));
		}
		if (r < 0)
			return r;
	}
	return 0;
}
