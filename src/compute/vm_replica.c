// SPDX-License-Identifier: MIT
/*
 * The replicas of a VM's sections over HTTP (docs/replication.md,
 * docs/compute.md):
 *
 *   POST /v1/vms/NAME/sections/replica
 *        {"action": "drop", "replica": {"memnode": ID, "section": S, "generation": G}}
 *
 * The orchestrator declared the replica's memory node dead (or an
 * operator drained it): the pager stops reading and writing that replica
 * at once, so that a partitioned node is never waited for again. 200
 * {"dropped": true} (also when it was out already), 404 no_replica, 409
 * last_replica (it is its section's only replica that is in: dropping it
 * would lose the section).
 *
 * The heartbeat's brief of each VM carries "replicas_out" (replicas.h),
 * from which the orchestrator repairs.
 */
#include "vm_replica.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "jsonhttp.h"
#include "replicas.h"
#include "vm_internal.h"

static int get_u32(json_t *o, const char *key, uint64_t max, uint64_t *ret)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return -EINVAL;
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

void vm_replica_http(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "action", "replica", NULL };
	static const char *const rkeys[] = { "memnode", "section", "generation", "addr", NULL };
	struct pager_section m = { .kind = PAGER_SEC_REMOTE };
	const char *action, *bad = NULL;
	uint64_t id = 0, sec = 0, gen = 0;
	char err[256] = "";
	json_t *j, *rep;
	int r;

	j = http_json_args(req, resp, keys);
	if (!j)
		return;
	action = json_string_value(json_object_get(j, "action"));
	rep = json_object_get(j, "replica");
	if (!action || strcmp(action, "drop")) {
		http_resp_error(resp, 400, "bad_request", "\"action\" must be \"drop\"");
		goto out;
	}
	if (!json_is_object(rep) || json_check_keys(rep, rkeys, &bad) < 0 ||
	    get_u32(rep, "memnode", UINT64_MAX >> 1, &id) < 0 ||
	    get_u32(rep, "section", UINT32_MAX, &sec) < 0 ||
	    get_u32(rep, "generation", UINT32_MAX, &gen) < 0) {
		http_resp_error(resp, 400, "bad_request",
				bad ? "unknown field \"%s\" in \"replica\""
				    : "\"replica\" must be {\"memnode\", \"section\", \"generation\"}",
				bad);
		goto out;
	}
	m.grant.memnode_id = id;
	m.grant.section = (uint32_t)sec;
	m.grant.generation = (uint32_t)gen;
	r = vm_replica_drop(vm, &m, err, sizeof(err));
	if (r == -ENOENT)
		http_resp_error(resp, 404, "no_replica", "%s", err);
	else if (r == -EDEADLK)
		http_resp_error(resp, 409, "last_replica", "%s", err);
	else if (r < 0)
		http_resp_error(resp, 500, "internal", "%s", err[0] ? err : strerror(-r));
	else
		http_resp_json(resp, 200, json_pack("{s:b}", "dropped", 1));
out:
	json_decref(j);
}

void vm_replicas_brief(struct vm *vm, json_t *b)
{
	json_t *out;

	if (!b)
		return;
	pthread_mutex_lock(&vm->lock);
	out = vm_replicas_out_json(vm);
	pthread_mutex_unlock(&vm->lock);
	if (out)
		json_object_set_new(b, "replicas_out", out);
}
