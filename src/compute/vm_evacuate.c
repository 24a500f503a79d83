// SPDX-License-Identifier: MIT
/*
 * Evacuation: a local section of a running VM moves to a memory node, so
 * that all of the VM's memory is remote, which compute migration needs
 * (QEMU's x-ignore-shared does not send shared RAM, so local memory would
 * not follow the VM). The orchestrator allocates the target section and
 * calls POST /v1/vms/NAME/sections/evacuate (docs/compute.md):
 *
 *   {"boot_index": N} or {"hot_index": N}, "to": {"addr": ..., "grant": ...}
 *
 * The agent checks the grant with a one-page read, then the pager switches
 * the section (pager_section_evacuate): the pages the guest touched stay
 * resident as dirty pages of the remote section and reach the memory node
 * through the background write-back, an eviction or a flush (a compute
 * migration's pre-copy flush comes right after). Nothing is copied while
 * the section is fenced. The agent's record of the section becomes the
 * remote one.
 */
#include "vm_evacuate.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "jsonhttp.h"
#include "log.h"
#include "net.h"
#include "pager_use.h"
#include "persist.h"
#include "section_check.h"
#include "sections.h"
#include "state.h"
#include "vm.h"
#include "vm_internal.h"
#include "vm_memmig.h"

struct evac_loc {
	struct vm_section *rec;       /* the agent's record of the section */
	int region;                   /* pager region */
	unsigned index;               /* section within it */
};

/* The pager region QEMU mapped at addr, or -1. Lock held. */
static int region_at(struct vm *vm, uint64_t addr)
{
	for (unsigned i = 0; i < vm->nregions; i++)
		if (vm->regions[i].addr == addr)
			return vm->regions[i].index;
	return -1;
}

/* Find a local section by its boot or hot index. Lock held. */
static int locate(struct vm *vm, bool hot, unsigned idx, struct evac_loc *ret, char *err,
		  size_t errlen)
{
	if (!hot) {
		if (idx >= vm->spec.nbase) {
			snprintf(err, errlen, "the VM has %u boot sections, no boot_index %u",
				 vm->spec.nbase, idx);
			return -ENOENT;
		}
		*ret = (struct evac_loc){ &vm->spec.base[idx], vm->base_region, idx };
	} else if (vm->spec.hotplug == VM_HOTPLUG_VIRTIO_MEM) {
		if (!vm->vmem_secs || idx >= vm->vmem_plugged) {
			snprintf(err, errlen, "no plugged virtio-mem section %u", idx);
			return -ENOENT;
		}
		*ret = (struct evac_loc){ &vm->vmem_secs[idx], vm->vmem_region, idx };
	} else {
		if (idx >= vm->nhot || !vm->hot[idx].in_use) {
			snprintf(err, errlen, "no hot-plugged section %u", idx);
			return -ENOENT;
		}
		*ret = (struct evac_loc){ &vm->hot[idx].sec, region_at(vm, vm->hot[idx].addr), 0 };
	}
	if (ret->region < 0) {
		snprintf(err, errlen, "the section is not mapped by QEMU yet");
		return -ENOENT;
	}
	if (ret->rec->sec.kind != PAGER_SEC_LOCAL) {
		snprintf(err, errlen, "the section is remote already (on %s)", ret->rec->sec.addr);
		return -EALREADY;
	}
	return 0;
}

int vm_evacuate_section(struct vm *vm, bool hot, unsigned idx, const struct vm_section *to,
			uint64_t *ret_pages, char *err, size_t errlen)
{
	struct evac_loc loc;
	struct pager *p;
	uint64_t pages = 0;
	int r;

	/* No hotplug meanwhile; a compute migration holds it too. */
	pthread_mutex_lock(&vm->hot_lock);
	p = vm_pager_get(vm);     /* held throughout: QEMU may exit meanwhile */
	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_RUNNING || !p) {
		snprintf(err, errlen, "VM is %s%s", vm_state_name(vm->state),
			 p ? "" : " (QEMU has exited)");
		r = -ESRCH;
	} else {
		r = locate(vm, hot, idx, &loc, err, errlen);
	}
	pthread_mutex_unlock(&vm->lock);
	if (r >= 0)
		r = vm_check_section(vm, to, err, errlen);
	if (r >= 0) {
		r = pager_section_evacuate(p, loc.region, loc.index, &to->sec, &pages);
		if (r < 0)
			snprintf(err, errlen, "pager: %s", strerror(-r));
	}
	if (r >= 0) {
		pthread_mutex_lock(&vm->lock);
		*loc.rec = *to;
		(void)vm_persist_locked(vm);
		pthread_mutex_unlock(&vm->lock);
		log_info("vm %s: %s section %u evacuated to %s (%llu pages to write back)",
			 vm->spec.name, hot ? "hot" : "boot", idx, to->sec.addr,
			 (unsigned long long)pages);
		if (ret_pages)
			*ret_pages = pages;
	}
	vm_pager_put(vm, p);
	pthread_mutex_unlock(&vm->hot_lock);
	return r;
}

/* ---- HTTP: POST /v1/vms/NAME/sections/evacuate ---------------------------- */

void vm_evacuate_http(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "boot_index", "hot_index", "to", "free_on_release",
					    NULL };
	json_t *j, *bi, *hi;
	struct vm_section to = { 0 };
	const char *code;
	char err[512] = "";
	uint64_t pages = 0, t0 = now_ns();
	json_int_t idx;
	int r;

	j = http_json_args(req, resp, keys);
	if (!j)
		return;
	bi = json_object_get(j, "boot_index");
	hi = json_object_get(j, "hot_index");
	if (!!bi == !!hi || !json_is_integer(bi ? bi : hi) ||
	    (idx = json_integer_value(bi ? bi : hi)) < 0 || idx > VM_MAX_SECTIONS) {
		http_resp_error(resp, 400, "bad_request",
				"give one of \"boot_index\" and \"hot_index\", a section index >= 0");
		goto out;
	}
	if (vm_parse_remote(json_object_get(j, "to"), "to", &to.sec, err, sizeof(err)) < 0) {
		http_resp_error(resp, 400, "bad_section", "%s", err);
		goto out;
	}
	to.free_on_release = json_is_true(json_object_get(j, "free_on_release"));
	r = vm_evacuate_section(vm, hi != NULL, (unsigned)idx, &to, &pages, err, sizeof(err));
	if (r < 0) {
		int st;

		switch (-r) {
		case EINVAL: case EACCES: case EPERM: case EKEYREJECTED: case EKEYEXPIRED:
		case ESTALE: case ERANGE:
			st = 400;      /* the grant was refused */
			code = "bad_grant";
			break;
		default:
			st = vm_memmig_http_status(r, &code);
		}
		http_resp_error(resp, st, code, "%s", err);
		goto out;
	}
	http_resp_json(resp, 200,
		       json_pack("{s:I, s:I, s:o}", "pages", (json_int_t)pages, "ms",
				 (json_int_t)((now_ns() - t0) / 1000000), "vm", vm_status(vm)));
out:
	json_decref(j);
}
