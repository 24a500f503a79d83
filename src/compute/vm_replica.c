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
 *   POST /v1/vms/NAME/sections/replica
 *        {"action": "hand-over", "out": [{"memnode", "section", "generation"}, ...]}
 *
 * A compute migration's destination created with "incoming":
 * {"replicas_pending": true} parks every fault on a remote page until
 * this call: the replicas the source took out during its last flushes
 * (its migrate answer's "replicas_out"), and any the orchestrator took
 * out since it sent the VM, are dropped; entries the VM was not given are
 * skipped. 200 {"dropped", "skipped", "pending": false}; 409 last_replica
 * if it would leave a section with no replica in (the faults keep
 * waiting).
 *
 * The heartbeat's brief of each VM carries "replicas_out" (replica_json.h),
 * from which the orchestrator repairs.
 *
 * The pager decides by itself that a replica is out (it failed while
 * another one took the same write) and tells the VM's health thread
 * (pager_config.on_replica), which calls vm_replicas_sync() (vm_env.on_replica):
 * the pager's out positions go into the VM's records
 * (struct pager_section.out), vm.json is written and a heartbeat kicked.
 * The records are what a restarted agent gives the pager again: a replica
 * that missed writes stays out. Between the pager's decision and vm.json
 * there are a few milliseconds in which an agent that dies would forget
 * it; the orchestrator, which repairs from the reports, hears of it
 * through the same heartbeat.
 */
#include "vm_replica.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "jsonhttp.h"
#include "log.h"
#include "macro.h"
#include "pager_use.h"
#include "persist.h"
#include "replica_json.h"
#include "sections.h"
#include "vm_internal.h"

#define SYNC_MAX 64u                 /* out replicas read from the pager per sync */
#define HAND_OVER_MAX 1024u          /* replicas in one hand-over */

void vm_replicas_sync(struct vm *vm)
{
	struct pager_replica_out out[SYNC_MAX];
	struct pager *p = vm_pager_get(vm);
	bool changed = false;
	int n;

	if (!p)
		return;
	n = pager_replicas_out(p, out, ARRAY_SIZE(out));
	vm_pager_put(vm, p);
	if (n <= 0)
		return;
	pthread_mutex_lock(&vm->lock);
	for (int i = 0; i < n && i < (int)ARRAY_SIZE(out); i++) {
		struct pager_section *rec;
		unsigned pos;

		rec = vm_replica_record(vm, &out[i].view, &pos);
		if (!rec || (rec->out & (1u << pos)))
			continue;
		rec->out |= (uint8_t)(1u << pos);
		changed = true;
		log_warn("vm %s: replica %u of section %u on memory node %llu (%s) is out: %s; "
			 "the section goes on from its other replicas", vm->spec.name, pos,
			 out[i].view.grant.section, (unsigned long long)out[i].view.grant.memnode_id,
			 out[i].view.addr, out[i].err ? strerror(-out[i].err) : "dropped");
	}
	if (changed) {
		(void)vm_persist_locked(vm);
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
	if (changed && vm->env.on_state)
		vm->env.on_state(vm->env.opaque);
}


int vm_replica_drop(struct vm *vm, const struct pager_section *match, char *err,
		    size_t errlen)
{
	struct pager_section *rec, view;
	struct pager *p;
	unsigned pos;
	int r = 0;

	pthread_mutex_lock(&vm->lock);
	rec = vm_replica_record(vm, match, &pos);
	if (rec && (rec->out & (1u << pos))) {
		pthread_mutex_unlock(&vm->lock);
		return 0;                   /* out already */
	}
	if (rec)
		vm_replica_view(rec, pos, &view);
	pthread_mutex_unlock(&vm->lock);
	if (!rec || rec->nrep < 2) {
		snprintf(err, errlen, "the VM has no replicated section with a replica %u "
			 "(generation %u) on memory node %llu", match->grant.section,
			 match->grant.generation, (unsigned long long)match->grant.memnode_id);
		return -ENOENT;
	}
	p = vm_pager_get(vm);
	if (p)
		r = pager_replica_drop(p, &view);
	vm_pager_put(vm, p);
	if (r == -EDEADLK || r == -EBUSY) {
		snprintf(err, errlen, "it is the only replica of its section that is in");
		return -EDEADLK;
	}
	if (r < 0 && r != -ENOENT) {
		snprintf(err, errlen, "pager: %s", strerror(-r));
		return r;
	}
	pthread_mutex_lock(&vm->lock);
	rec = vm_replica_record(vm, match, &pos);
	if (rec) {
		unsigned in = 0;

		for (unsigned k = 0; k < rec->nrep; k++)
			in += !(rec->out & (1u << k)) && k != pos;
		if (!in) {
			r = -EDEADLK;
			snprintf(err, errlen, "it is the only replica of its section that is in");
		} else {
			rec->out |= (uint8_t)(1u << pos);
			(void)vm_persist_locked(vm);
		}
	}
	pthread_mutex_unlock(&vm->lock);
	if (r < 0)
		return r;
	log_warn("vm %s: replica %u of section %u on memory node %llu (%s) dropped by the "
		 "control plane", vm->spec.name, pos, view.grant.section,
		 (unsigned long long)view.grant.memnode_id, view.addr);
	if (vm->env.on_state)
		vm->env.on_state(vm->env.opaque);
	return 0;
}

/* ---- HTTP ---------------------------------------------------------------- */

static int get_uint(json_t *o, const char *key, uint64_t max, uint64_t *ret)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return -EINVAL;
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

/* {"memnode", "section", "generation"[, "addr"]}: the replica's grant fields in *m. */
static int parse_replica(json_t *rep, struct pager_section *m, const char **bad)
{
	static const char *const rkeys[] = { "memnode", "section", "generation", "addr", NULL };
	uint64_t id = 0, sec = 0, gen = 0;

	*m = (struct pager_section){ .kind = PAGER_SEC_REMOTE };
	if (!json_is_object(rep) || json_check_keys(rep, rkeys, bad) < 0 ||
	    get_uint(rep, "memnode", UINT64_MAX >> 1, &id) < 0 ||
	    get_uint(rep, "section", UINT32_MAX, &sec) < 0 ||
	    get_uint(rep, "generation", UINT32_MAX, &gen) < 0)
		return -EINVAL;
	m->grant.memnode_id = id;
	m->grant.section = (uint32_t)sec;
	m->grant.generation = (uint32_t)gen;
	return 0;
}

/*
 * "hand-over" (a compute migration's destination, after the switchover):
 * the replicas the source took out, and those the orchestrator took out
 * meanwhile, are dropped here; then the faults that waited go on. A
 * replica this VM was not given is skipped. All entries are parsed
 * before any is applied; a 409 (a section would have no replica in)
 * leaves the entries before it dropped and the faults waiting.
 */
static void hand_over(struct vm *vm, json_t *out, struct http_resp *resp)
{
	struct pager_section m;
	size_t i, dropped = 0, skipped = 0;
	const char *bad = NULL;
	char err[256] = "";
	json_t *e;
	int r;

	if (!json_is_array(out) || json_array_size(out) > HAND_OVER_MAX) {
		http_resp_error(resp, 400, "bad_request", "\"out\" must be an array of at most %u "
				"replicas", HAND_OVER_MAX);
		return;
	}
	json_array_foreach(out, i, e)
		if (parse_replica(e, &m, &bad) < 0) {
			http_resp_error(resp, 400, "bad_request", "\"out\"[%zu]: %s%s%s", i,
					bad ? "unknown field \"" : "must be {\"memnode\", \"section\", "
					"\"generation\"}", bad ? bad : "", bad ? "\"" : "");
			return;
		}
	json_array_foreach(out, i, e) {
		(void)parse_replica(e, &m, &bad);
		r = vm_replica_drop(vm, &m, err, sizeof(err));
		if (r == -ENOENT) {
			skipped++;
		} else if (r == -EDEADLK) {
			/* Nothing in to read from: the faults keep waiting (the slot fails). */
			http_resp_error(resp, 409, "last_replica", "section %u (memory node %llu): %s",
					m.grant.section, (unsigned long long)m.grant.memnode_id, err);
			return;
		} else if (r < 0) {
			http_resp_error(resp, 500, "internal", "%s", err[0] ? err : strerror(-r));
			return;
		} else {
			dropped++;
		}
	}
	pthread_mutex_lock(&vm->lock);
	vm_replicas_settle(vm);
	pthread_mutex_unlock(&vm->lock);
	log_info("vm %s: replicas handed over (%zu out, %zu not here): its faults go on",
		 vm->spec.name, dropped, skipped);
	http_resp_json(resp, 200, json_pack("{s:I, s:I, s:b}", "dropped", (json_int_t)dropped,
					    "skipped", (json_int_t)skipped, "pending", 0));
}

void vm_replica_http(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "action", "replica", "out", NULL };
	struct pager_section m;
	const char *action, *bad = NULL;
	char err[256] = "";
	json_t *j;
	int r;

	j = http_json_args(req, resp, keys);
	if (!j)
		return;
	action = json_string_value(json_object_get(j, "action"));
	if (action && strcmp(action, "hand-over") == 0 && !json_object_get(j, "replica")) {
		hand_over(vm, json_object_get(j, "out"), resp);
		goto out;
	}
	if (!action || strcmp(action, "drop") || json_object_get(j, "out")) {
		http_resp_error(resp, 400, "bad_request", "\"action\" must be \"drop\" (with "
				"\"replica\") or \"hand-over\" (with \"out\")");
		goto out;
	}
	if (parse_replica(json_object_get(j, "replica"), &m, &bad) < 0) {
		http_resp_error(resp, 400, "bad_request",
				bad ? "unknown field \"%s\" in \"replica\""
				    : "\"replica\" must be {\"memnode\", \"section\", \"generation\"}",
				bad);
		goto out;
	}
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
