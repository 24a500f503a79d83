// SPDX-License-Identifier: MIT
/*
 * Renewed grants: POST /v1/vms/NAME/grants {"grants": ["HEX", ...]}.
 *
 * The orchestrator mints a slot's grants with an expiry and, while the
 * slot lives, sends new ones before the old expire (docs/security.md). Each
 * new grant must be for a remote section the VM has, or for one of its
 * replicas (replica_json.h; same memory node,
 * section and generation), held by this node, of an ownership epoch no
 * lower than the one in force: a renewal never hands a section back to an
 * older owner. The pager takes it without touching resident pages
 * (pager_region_set_section with the same section); the agent's records
 * and its state file follow. All grants are checked before any is applied.
 *
 * A grant may also be for the volume of one of the VM's disks (the same
 * device node and volume key, vm_disk.h): the disk opens the volume with
 * it from its next connection on (after an outage, a migration).
 *
 * Answers {"renewed": N}; 400 for a malformed or foreign grant, 404
 * "no_section" for a section or volume the VM does not have, 409 for a lower epoch
 * or a VM that is neither running nor degraded (a degraded VM may be
 * waiting for exactly these: vm/health.c).
 */
#include "vm_grants.h"

#include <stdio.h>
#include <string.h>

#include "grant.h"
#include "health.h"
#include "http.h"
#include "jsonhttp.h"
#include "log.h"
#include "pager_use.h"
#include "persist.h"
#include "sections.h"
#include "state.h"
#include "vm.h"
#include "vm_disk.h"
#include "vm_internal.h"

#define VM_MAX_GRANTS 4096

/*
 * The agent's record of the remote section one of whose replicas g names
 * (position 0 when it is not replicated), and that replica's grant now;
 * NULL if none (lock held).
 */
static struct pager_section *record_of(struct vm *vm, const struct proto_grant *g,
				       unsigned *ret_pos, struct proto_grant **ret_grant)
{
	struct pager_section m = { .kind = PAGER_SEC_REMOTE, .grant = *g }, *rec;
	unsigned pos = 0;

	rec = vm_replica_record(vm, &m, &pos);
	if (rec) {
		*ret_pos = pos;
		*ret_grant = pos ? &rec->more[pos - 1].grant : &rec->grant;
	}
	return rec;
}

/* Check every grant against the VM's records: 0, or an HTTP status with `err` set. */
static int check_all(struct vm *vm, const struct proto_grant *gs, size_t n, char *err,
		     size_t errlen, const char **code)
{
	for (size_t i = 0; i < n; i++) {
		const struct proto_grant *g = &gs[i];
		struct proto_grant *now = NULL;
		unsigned pos;
		const struct pager_section *s = record_of(vm, g, &pos, &now);

		if (g->holder_id != vm->env.node_id) {
			snprintf(err, errlen, "grant %zu names node %llu as its holder, not this node "
				 "(%llu)", i, (unsigned long long)g->holder_id,
				 (unsigned long long)vm->env.node_id);
			*code = "bad_request";
			return 400;
		}
		if (!s) {
			int d = vm_disk_grant(vm, g, false);

			if (d == -ESTALE) {
				snprintf(err, errlen, "grant %zu is of an older epoch (%u) than the one "
					 "its disk's volume is held with", i, g->epoch);
				*code = "stale_epoch";
				return 409;
			}
			if (d > 0)
				continue;
			snprintf(err, errlen, "grant %zu: the VM has no section %u (generation %u) on "
				 "memory node %llu, nor a disk of that volume", i, g->section,
				 g->generation, (unsigned long long)g->memnode_id);
			*code = "no_section";
			return 404;
		}
		if (g->epoch < now->epoch) {
			snprintf(err, errlen, "grant %zu is of epoch %u, older than the one in force "
				 "(%u)", i, g->epoch, now->epoch);
			*code = "stale_epoch";
			return 409;
		}
	}
	return 0;
}

static int parse(json_t *arr, struct proto_grant **ret, size_t *ret_n, char *err, size_t errlen)
{
	struct proto_grant *gs;
	size_t i, n = json_array_size(arr);
	json_t *e;

	if (!json_is_array(arr) || n == 0 || n > VM_MAX_GRANTS) {
		snprintf(err, errlen, "\"grants\" must be an array of 1 to %d grants (hex)",
			 VM_MAX_GRANTS);
		return -EINVAL;
	}
	gs = calloc(n, sizeof(*gs));
	if (!gs)
		return -ENOMEM;
	json_array_foreach(arr, i, e) {
		if (!json_is_string(e) || grant_from_hex(json_string_value(e), &gs[i]) < 0) {
			snprintf(err, errlen, "\"grants\"[%zu] is not a grant (%zu hex digits)", i,
				 (size_t)GRANT_HEX_LEN);
			free(gs);
			return -EINVAL;
		}
	}
	*ret = gs;
	*ret_n = n;
	return 0;
}

void vm_grants_http(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "grants", NULL };
	_cleanup_free_ struct proto_grant *gs = NULL;
	const char *code = "bad_request";
	char err[256] = "";
	struct pager *p;
	size_t n = 0, done = 0;
	json_t *j;
	int st, r = 0;

	j = http_json_args(req, resp, keys);
	if (!j)
		return;
	if (parse(json_object_get(j, "grants"), &gs, &n, err, sizeof(err)) < 0) {
		http_resp_error(resp, 400, "bad_request", "%s", err[0] ? err : "out of memory");
		json_decref(j);
		return;
	}
	json_decref(j);
	pthread_mutex_lock(&vm->hot_lock);       /* no hot-plug or section move meanwhile */
	p = vm_pager_get(vm);
	if (!p || (vm_get_state(vm) != VM_RUNNING && vm_get_state(vm) != VM_DEGRADED)) {
		http_resp_error(resp, 409, "not_running", "VM is %s",
				vm_state_name(vm_get_state(vm)));
		goto out;
	}
	pthread_mutex_lock(&vm->lock);
	st = check_all(vm, gs, n, err, sizeof(err), &code);
	pthread_mutex_unlock(&vm->lock);
	if (st) {
		http_resp_error(resp, st, code, "%s", err);
		goto out;
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		struct pager_section sec = { .kind = PAGER_SEC_REMOTE }, *rec;
		struct proto_grant *now = NULL;
		unsigned index, pos = 0;
		int region;

		pthread_mutex_lock(&vm->lock);
		rec = record_of(vm, &gs[i], &pos, &now);
		if (rec) {
			sec = *rec;
			if (pos)
				sec.more[pos - 1].grant = gs[i];
			else
				sec.grant = gs[i];
		}
		pthread_mutex_unlock(&vm->lock);
		if (!rec) {
			done += vm_disk_grant(vm, &gs[i], true) > 0;   /* a disk's volume (checked) */
			continue;
		}
		r = pager_section_find(p, &sec, &region, &index);
		if (r == 0)
			r = pager_region_set_section(p, region, index, &sec, false);
		if (r == 0) {
			pthread_mutex_lock(&vm->lock);
			rec = record_of(vm, &gs[i], &pos, &now);
			if (rec)
				*now = gs[i];
			pthread_mutex_unlock(&vm->lock);
			done++;
		}
	}
	pthread_mutex_lock(&vm->lock);
	(void)vm_persist_locked(vm);
	pthread_mutex_unlock(&vm->lock);
	if (r < 0) {
		http_resp_error(resp, 500, "renew_failed", "%zu of %zu grants taken, then: %s", done,
				n, strerror(-r));
		goto out;
	}
	log_debug("vm %s: %zu grants renewed", vm->spec.name, done);
	vm_health_grants_renewed(vm);
	http_resp_json(resp, 200, json_pack("{s:I}", "renewed", (json_int_t)done));
out:
	vm_pager_put(vm, p);
	pthread_mutex_unlock(&vm->hot_lock);
}
