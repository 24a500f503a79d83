// SPDX-License-Identifier: MIT
/*
 * A shared region moving to another memory node, as the orchestrator
 * drives it on every compute node that maps it (docs/sharing.md, "Moving
 * a region to another memory node"): POST /v1/vms/NAME/regions/ID/move,
 * its phases each under the VM's hot_lock.
 *
 * writeback (optional, first): every page changed here is written back
 * while the guest runs on, so that the quiesce, inside the pause, has
 * little left to write.
 *
 * quiesce: the pager parks the region (share_move.h: its faults wait, the
 * vCPU blocked in the hypervisor as for a write that waits for the lock),
 * writes back every page changed here and waits for the memory node's
 * acknowledgement, then drops every cached page. A strict region then
 * leaves its directory (DIR_DETACH on its recall channel): this node holds
 * no copy the directory would have to recall. Once every user has
 * answered, the memory node's sections are the region's only copy and
 * nobody changes them: the orchestrator copies them to the new node.
 *
 * switch: the parked region's pager sections become the new ones (grants
 * checked with a one-page read first, so a target that does not answer is
 * refused here and the region stays where it was), recorded in vm.json.
 * A switch back to the old sections is how a failed move is undone.
 *
 * resume: a strict region attaches to the directory of its (new) home
 * (recall channel started, attached before any fault asks), then the
 * region is unparked and the faults that waited fetch from the sections
 * it has now. Quiesce and resume are idempotent.
 *
 * An agent restarted while its region is parked serves the region again
 * from vm.json, unparked: the orchestrator's later switch then answers
 * 409 not_quiesced.
 */
#include "vm_shared_memmig.h"

#include <stdio.h>
#include <string.h>

#include "jsonhttp.h"
#include "log.h"
#include "net.h"
#include "pager_use.h"
#include "persist.h"
#include "section_check.h"
#include "sections.h"
#include "state.h"
#include "vm_shared.h"
#include "vm_strict.h"

#define MOVE_ATTACH_MS 5000

static bool is_strict(struct vm *vm, int i)
{
	bool s;

	pthread_mutex_lock(&vm->lock);
	s = !strcmp(vm->shared[i].mode, "strict");
	pthread_mutex_unlock(&vm->lock);
	return s;
}

static void writeback(struct vm *vm, int i, struct pager *p, int region,
		      struct http_resp *resp)
{
	uint64_t t0 = now_ns(), flushed = 0;
	int r = pager_shared_writeback(p, region, &flushed);

	if (r < 0) {
		http_resp_error(resp, 503, "writeback_failed", "writing the region back failed: %s",
				strerror(-r));
		return;
	}
	log_info("vm %s: region %s written back ahead of a move (%llu pages)", vm->spec.name,
		 vm->shared[i].id, (unsigned long long)flushed);
	http_resp_json(resp, 200, json_pack("{s:s, s:I, s:I}", "phase", "writeback",
					    "flushed_pages", (json_int_t)flushed, "ms",
					    (json_int_t)((now_ns() - t0) / 1000000)));
}

static void quiesce(struct vm *vm, int i, struct pager *p, int region, struct http_resp *resp)
{
	uint64_t t0 = now_ns(), flushed = 0, dropped = 0;
	int r = pager_shared_park(p, region, &flushed, &dropped);

	if (r < 0) {
		http_resp_error(resp, 503, "quiesce_failed", "writing the region back failed (%s): "
				"it goes on here as before", strerror(-r));
		return;
	}
	/* Nothing of it is cached here any more: leave the directory (no-op if not strict). */
	vm_strict_stop(vm, i);
	log_info("vm %s: region %s quiesced for a move (%llu pages written back, %llu dropped)",
		 vm->spec.name, vm->shared[i].id, (unsigned long long)flushed,
		 (unsigned long long)dropped);
	http_resp_json(resp, 200, json_pack("{s:s, s:I, s:I, s:I}", "phase", "quiesce",
					    "flushed_pages", (json_int_t)flushed, "dropped_pages",
					    (json_int_t)dropped, "ms",
					    (json_int_t)((now_ns() - t0) / 1000000)));
}

/* "sections" of a switch: n remote sections held by this node, writable if the VM writes. */
static int parse_sections(struct vm *vm, int i, json_t *arr, struct vm_section *out,
			  char *err, size_t errlen)
{
	const struct vm_shared *s = &vm->shared[i];
	size_t k;
	json_t *e;

	if (!json_is_array(arr) || json_array_size(arr) != s->nsec) {
		snprintf(err, errlen, "\"sections\" must list the region's %u sections", s->nsec);
		return -EINVAL;
	}
	json_array_foreach(arr, k, e) {
		int r = vm_parse_section(e, &out[k], err, errlen);

		if (r < 0)
			return r;
		if (out[k].sec.kind != PAGER_SEC_REMOTE || out[k].free_on_release ||
		    out[k].sec.grant.holder_id != vm->env.node_id) {
			snprintf(err, errlen, "section %zu: a remote section held by this node, "
				 "without free_on_release", k);
			return -EINVAL;
		}
		if (s->writable && !(out[k].sec.grant.rights & PROTO_R_WRITE)) {
			snprintf(err, errlen, "section %zu: the VM writes the region: its grant "
				 "needs the write right", k);
			return -EINVAL;
		}
	}
	return 0;
}

static void switch_to(struct vm *vm, int i, struct pager *p, int region, json_t *arr,
		      struct http_resp *resp)
{
	struct vm_section secs[VM_SHARED_MAX_SECTIONS];
	struct pager_section ps[VM_SHARED_MAX_SECTIONS];
	char err[512] = "";
	unsigned n;
	int r;

	pthread_mutex_lock(&vm->lock);
	n = vm->shared[i].nsec;
	r = parse_sections(vm, i, arr, secs, err, sizeof(err));
	/* A strict region keeps this VM's holder tag at the directory (dirtag.h). */
	for (unsigned k = 0; r == 0 && k < n; k++)
		secs[k].sec.dir_tag = vm->shared[i].secs[k].sec.dir_tag;
	pthread_mutex_unlock(&vm->lock);
	if (r < 0) {
		http_resp_error(resp, 400, "bad_request", "%s", err);
		return;
	}
	for (unsigned k = 0; k < n; k++) {
		r = vm_check_section(vm, &secs[k], err, sizeof(err));
		if (r < 0) {
			http_resp_error(resp, r == -EINVAL ? 400 : 503, r == -EINVAL ? "bad_request"
					: "memnode_unreachable", "section %u: %s", k, err);
			return;
		}
		ps[k] = secs[k].sec;
	}
	r = pager_shared_switch(p, region, ps, n);
	if (r == -ENOTCONN) {
		http_resp_error(resp, 409, "not_quiesced", "the region is not quiesced here (an "
				"agent restart resumes it): quiesce it first");
		return;
	}
	if (r < 0) {
		http_resp_error(resp, 500, "switch_failed", "%s", strerror(-r));
		return;
	}
	pthread_mutex_lock(&vm->lock);
	memcpy(vm->shared[i].secs, secs, n * sizeof(secs[0]));
	(void)vm_persist_locked(vm);
	pthread_mutex_unlock(&vm->lock);
	log_info("vm %s: region %s switched to memory node %s", vm->spec.name, vm->shared[i].id,
		 ps[0].addr);
	http_resp_json(resp, 200, json_pack("{s:s}", "phase", "switch"));
}

static void resume(struct vm *vm, int i, struct pager *p, int region, struct http_resp *resp)
{
	bool attached = true;
	int r = 0;

	/* Strict: attached to the directory of its home before a fault asks it. */
	if (is_strict(vm, i) && vm_strict_wait(vm, i, 0) == -ESRCH) {
		r = vm_strict_start(vm, i);
		if (r == 0)
			r = vm_strict_wait(vm, i, MOVE_ATTACH_MS);
		/* A channel that is still attaching goes on; faults ask once it has. */
		attached = r == 0;
		if (r < 0)
			log_warn("vm %s: region %s: its directory did not attach in %d ms (%s): "
				 "resuming, the recall channel goes on trying", vm->spec.name,
				 vm->shared[i].id, MOVE_ATTACH_MS, strerror(-r));
	}
	r = pager_shared_unpark(p, region);
	if (r < 0) {
		http_resp_error(resp, 500, "resume_failed", "%s", strerror(-r));
		return;
	}
	if (r)
		log_info("vm %s: region %s resumed", vm->spec.name, vm->shared[i].id);
	http_resp_json(resp, 200, json_pack("{s:s, s:b, s:b}", "phase", "resume", "already", !r,
					    "attached", attached));
}

void vm_shared_move_http(struct vm *vm, const char *rest, const struct http_req *req,
			 struct http_resp *resp)
{
	static const char *const keys[] = { "phase", "sections", NULL };
	size_t len = strcspn(rest, "/");
	struct pager *p;
	const char *phase;
	json_t *j;
	int i, region;

	pthread_mutex_lock(&vm->lock);
	i = vm_shared_find(vm, rest, len);
	pthread_mutex_unlock(&vm->lock);
	if (i < 0 || strcmp(rest + len, "/move") != 0) {
		http_resp_error(resp, 404, "no_region", "no region %.*s is attached to the VM",
				(int)MIN(len, 64), rest);
		return;
	}
	j = http_json_args(req, resp, keys);
	phase = json_string_value(json_object_get(j, "phase"));
	if (j && (!phase || (strcmp(phase, "writeback") && strcmp(phase, "quiesce") &&
			     strcmp(phase, "switch") && strcmp(phase, "resume")))) {
		http_resp_error(resp, 400, "bad_request", "\"phase\" must be \"writeback\", "
				"\"quiesce\", \"switch\" or \"resume\"");
		phase = NULL;
	}
	if (!j || !phase || vm_shared_begin(vm, &p, resp) < 0)
		goto out;
	pthread_mutex_lock(&vm->lock);
	region = vm->shared[i].in_use ? vm->shared[i].region : -1;
	pthread_mutex_unlock(&vm->lock);
	if (region < 0)
		http_resp_error(resp, 409, "not_mapped", "QEMU does not map the region");
	else if (!strcmp(phase, "writeback"))
		writeback(vm, i, p, region, resp);
	else if (!strcmp(phase, "quiesce"))
		quiesce(vm, i, p, region, resp);
	else if (!strcmp(phase, "switch"))
		switch_to(vm, i, p, region, json_object_get(j, "sections"), resp);
	else
		resume(vm, i, p, region, resp);
	vm_shared_end(vm, p);
out:
	json_decref(j);
}
