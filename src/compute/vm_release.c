// SPDX-License-Identifier: MIT
/*
 * Shared regions in mode release (docs/sharing.md; the pager's side is
 * pager/release.h). Every slot that maps such a region writes it; a
 * release publishes this VM's changes as diffs and an acquire drops its
 * clean cached pages, so that it reads what others released. Nothing here
 * asks the orchestrator: grants stay as attached (read and write), and
 * both sync points are this agent's own work, whether the API or the
 * guest's control pages (vm_ctl.c) ask for them.
 */
#include "vm_release.h"

#include <string.h>

#include "jsonhttp.h"
#include "log.h"
#include "net.h"
#include "pager_use.h"
#include "state.h"
#include "vm_internal.h"

bool vm_release_mode(struct vm *vm, int i)
{
	bool r;

	pthread_mutex_lock(&vm->lock);
	r = vm->shared[i].in_use && !strcmp(vm->shared[i].mode, "release");
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_release_sync(struct vm *vm, int i, bool acquire, struct vm_release_result *ret)
{
	struct pager *p;
	int region = -1, r;

	*ret = (struct vm_release_result){ 0 };
	pthread_mutex_lock(&vm->hot_lock);
	p = vm_pager_get(vm);
	if (!p || vm_get_state(vm) != VM_RUNNING) {
		r = -EBUSY;
		goto out;
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->shared[i].in_use && !strcmp(vm->shared[i].mode, "release"))
		region = vm->shared[i].region;
	pthread_mutex_unlock(&vm->lock);
	if (region < 0)
		r = -ENOENT;
	else if (acquire)
		r = pager_release_acquire(p, region, &ret->pages);
	else
		r = pager_release_publish(p, region, &ret->pages, &ret->bytes);
out:
	vm_pager_put(vm, p);
	pthread_mutex_unlock(&vm->hot_lock);
	return r;
}

void vm_release_http(struct vm *vm, int i, const char *tail, const struct http_req *req,
		     struct http_resp *resp)
{
	bool acquire = !strcmp(tail, "/acquire");
	struct vm_release_result res;
	uint64_t t0 = now_ns();
	int r;

	if (!acquire && strcmp(tail, "/release")) {
		http_resp_error(resp, 409, "mode_release", "a release region has sync points "
				"(release, acquire), not %s", tail + 1);
		return;
	}
	if (strcmp(req->method, "POST")) {
		http_resp_error(resp, 405, "method_not_allowed", "use POST");
		return;
	}
	r = vm_release_sync(vm, i, acquire, &res);
	if (r == -EBUSY) {
		http_resp_error(resp, 409, "not_running", "VM is %s",
				vm_state_name(vm_get_state(vm)));
		return;
	}
	if (r == -ENOENT) {
		http_resp_error(resp, 409, "not_mapped", "QEMU does not map the region");
		return;
	}
	if (r < 0) {
		http_resp_error(resp, acquire ? 500 : 503, acquire ? "region_failed" :
				"release_failed", "%s failed (%s)%s", acquire ? "acquire" :
				"publishing the diffs", strerror(-r),
				acquire ? "" : ": the pages stay dirty, the next release sends them");
		return;
	}
	log_debug("vm %s: region %s: %s (%llu pages)", vm->spec.name, vm->shared[i].id,
		  acquire ? "acquired" : "released", (unsigned long long)res.pages);
	if (acquire)
		http_resp_json(resp, 200, json_pack("{s:I, s:I}", "dropped_pages",
						    (json_int_t)res.pages, "ms",
						    (json_int_t)((now_ns() - t0) / 1000000)));
	else
		http_resp_json(resp, 200, json_pack("{s:I, s:I, s:I}", "published_pages",
						    (json_int_t)res.pages, "diff_bytes",
						    (json_int_t)res.bytes, "ms",
						    (json_int_t)((now_ns() - t0) / 1000000)));
}
