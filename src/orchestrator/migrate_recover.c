// SPDX-License-Identifier: MIT
/*
 * Settling a migration interrupted by an orchestrator restart
 * (migrate_recover): the orchestrator asks the compute nodes which one runs
 * the VM, or which memory node the agent uses for the section, makes the
 * store say the same, and cleans up the rest.
 */
#include "migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

static void recover_compute(struct orch *o, struct slot_rec *s, json_t *op)
{
	struct node_rec src, dst;
	char sst[STORE_STATE_MAX] = "", dstate[STORE_STATE_MAX] = "";
	uint64_t sid = (uint64_t)mig_jint(op, "from", 0), did = (uint64_t)mig_jint(op, "to", 0);
	bool have_src = o->store->ops->node_get(o->store, sid, &src) == 0;
	bool have_dst = o->store->ops->node_get(o->store, did, &dst) == 0;

	if (have_src)
		mig_vm_state(&src, s->name, sst, sizeof(sst), NULL);
	if (have_dst)
		mig_vm_state(&dst, s->name, dstate, sizeof(dstate), NULL);
	if (strcmp(dstate, "running") == 0) {
		s->compute = did;
		snprintf(s->reason, sizeof(s->reason),
			 "a migration to %s was interrupted by an orchestrator restart; it "
			 "completed",
			 dst.name);
		if (have_src)
			mig_vm_delete(&src, s->name);
		mig_finish(o, s, "running");
	} else {
		if (have_dst && dstate[0])
			mig_vm_delete(&dst, s->name);
		s->compute = sid;
		snprintf(s->reason, sizeof(s->reason),
			 "a migration was interrupted by an orchestrator restart; the VM is %s "
			 "on the source",
			 sst[0] ? sst : "unknown");
		/* running: fine; anything else: reconciliation decides. */
		mig_finish(o, s, strcmp(sst, "running") == 0 ? "running" : "lost");
	}
}

/*
 * The compute agent's own view of a VM (GET /v1/vms/NAME): status 200 with
 * the answer in vm, 404 when the agent has no such VM; any other status
 * (or -errno: no answer) says nothing.
 */
struct view {
	int status;
	json_t *vm;
};

static void view_get(const struct node_rec *c, const char *name, int timeout_ms,
		     struct view *ret)
{
	char path[160];

	snprintf(path, sizeof(path), "/v1/vms/%s", name);
	ret->vm = NULL;
	ret->status = mig_call(c, "GET", path, NULL, timeout_ms, &ret->vm);
	if (ret->status == 200 && !json_is_object(ret->vm))
		ret->status = -EPROTO;
}

static void view_done(struct view *v)
{
	json_decref(v->vm);
	v->vm = NULL;
}

/* Does the agent's view of the VM have remote section x (boot RAM or hot-plugged)? */
static bool view_uses(const struct view *v, const struct section_rec *x)
{
	static const char *const lists[] = { "sections", "hot_sections" };
	size_t i;
	json_t *e;

	if (v->status != 200 || !x->remote)
		return false;
	for (size_t l = 0; l < ARRAY_SIZE(lists); l++)
		json_array_foreach(json_object_get(v->vm, lists[l]), i, e)
			if (json_is_string(json_object_get(e, "kind")) &&
			    strcmp(json_string_value(json_object_get(e, "kind")), "remote") == 0 &&
			    mig_jint(e, "memnode", -1) == (int64_t)x->memnode &&
			    mig_jint(e, "section", -1) == (int64_t)x->section &&
			    mig_jint(e, "generation", -1) == (int64_t)x->generation)
				return true;
	return false;
}

/*
 * For a recovery: the slot's compute node, its section op.index (x) and
 * that section moved to op.dst (nx). -ENOENT if any is missing.
 */
static int op_sections(struct orch *o, const struct slot_rec *s, json_t *op,
		       struct node_rec *ret_c, struct section_rec *x, struct section_rec *nx)
{
	_cleanup_free_ struct section_rec *secs = NULL;
	json_t *dst = json_object_get(op, "dst");
	size_t n = 0;

	*x = (struct section_rec){ .idx = -1 };
	if (!json_is_object(dst) || o->store->ops->node_get(o->store, s->compute, ret_c) < 0 ||
	    o->store->ops->section_list(o->store, s->id, 0, &secs, &n) < 0)
		return -ENOENT;
	for (size_t i = 0; i < n; i++)
		if (secs[i].idx == mig_jint(op, "index", -1))
			*x = secs[i];
	snprintf(x->slot, sizeof(x->slot), "%s", s->name);
	*nx = *x;
	nx->slot_id = s->id;
	nx->memnode = (uint64_t)mig_jint(dst, "memnode", 0);
	nx->section = (uint32_t)mig_jint(dst, "section", 0);
	nx->generation = (uint32_t)mig_jint(dst, "generation", 0);
	return 0;
}

static void recover_memory(struct orch *o, struct slot_rec *s, json_t *op)
{
	struct node_rec c;
	struct section_rec x, nx;
	struct view v = { 0 };
	json_t *src = json_object_get(op, "src");

	if (op_sections(o, s, op, &c, &x, &nx) < 0)
		goto done;
	if (!x.remote || x.memnode != (uint64_t)mig_jint(src, "memnode", 0) ||
	    x.section != (uint32_t)mig_jint(src, "section", 0)) {
		/* The store already moved it (or never had it): the target is ours only if absent. */
		if (!(x.memnode == nx.memnode && x.section == nx.section))
			slots_free_remote(o, &nx);
		goto done;
	}
	view_get(&c, s->name, MIG_SHORT_TIMEOUT_MS, &v);
	if (view_uses(&v, &nx)) {
		/* Committed: the store follows the agent. */
		if (o->store->ops->begin(o->store) == 0) {
			if (o->store->ops->section_remove(o->store, s->id, x.idx) == 0 &&
			    o->store->ops->section_add(o->store, &nx) == 0)
				o->store->ops->commit(o->store);
			else
				o->store->ops->rollback(o->store);
		}
		slots_free_remote(o, &x);
		snprintf(s->reason, sizeof(s->reason),
			 "a memory migration was interrupted by an orchestrator restart; section "
			 "%" PRId64 " had moved",
			 x.idx);
	} else if (v.status == 200 || v.status == 404) {
		/* Not committed: abort (the agent may still have the migration), free the target. */
		mig_memory_abort(o, s, &c, &x, &nx, o->compute_timeout_ms);
		slots_free_remote(o, &nx);
		snprintf(s->reason, sizeof(s->reason),
			 "a memory migration was interrupted by an orchestrator restart; section "
			 "%" PRId64 " stays where it was",
			 x.idx);
	} else {
		snprintf(s->reason, sizeof(s->reason),
			 "a memory migration was interrupted by an orchestrator restart and "
			 "compute node %s does not answer: section %" PRId64
			 " may be on memory node %" PRIu64 " section %" PRIu32,
			 c.name, x.idx, nx.memnode, nx.section);
		view_done(&v);
		mig_finish(o, s, "lost");
		return;
	}
	view_done(&v);
done:
	mig_finish(o, s, "running");
}

/*
 * An evacuation interrupted by a restart: the agent says whether it
 * switched the section. If so the store records it as remote; if not, the
 * new section is freed. The compute migration had not started: the slot
 * runs where it was.
 */
static void recover_evacuate(struct orch *o, struct slot_rec *s, json_t *op)
{
	struct section_rec x, nx;
	struct view v = { 0 };
	struct node_rec c;

	if (op_sections(o, s, op, &c, &x, &nx) < 0)
		goto done;
	nx.remote = true;
	if (x.idx < 0 || x.remote) {
		/* Recorded already (or gone): the new section is ours only if not in use. */
		if (!(x.remote && x.memnode == nx.memnode && x.section == nx.section))
			slots_free_remote(o, &nx);
		snprintf(s->reason, sizeof(s->reason),
			 "an evacuation was interrupted by an orchestrator restart");
		goto done;
	}
	view_get(&c, s->name, MIG_SHORT_TIMEOUT_MS, &v);
	if (view_uses(&v, &nx)) {
		char msg[256];

		snprintf(msg, sizeof(msg),
			 "slot %s section %" PRId64 " found on memory node %" PRIu64
			 " after a restart", s->name, x.idx, nx.memnode);
		(void)mig_section_replace(o, &nx, "section_evacuated", nx.memnode, s->name, msg);
		snprintf(s->reason, sizeof(s->reason),
			 "an evacuation was interrupted by an orchestrator restart; section "
			 "%" PRId64 " had moved to memory node %" PRIu64, x.idx, nx.memnode);
	} else if (v.status == 200 || v.status == 404) {
		slots_free_remote(o, &nx);
		snprintf(s->reason, sizeof(s->reason),
			 "an evacuation was interrupted by an orchestrator restart; section "
			 "%" PRId64 " stays local", x.idx);
	} else {
		snprintf(s->reason, sizeof(s->reason),
			 "an evacuation was interrupted by an orchestrator restart and compute "
			 "node %s does not answer: section %" PRId64 " may be on memory node %"
			 PRIu64 " section %" PRIu32, c.name, x.idx, nx.memnode, nx.section);
		view_done(&v);
		mig_finish(o, s, "lost");
		return;
	}
	view_done(&v);
done:
	mig_finish(o, s, "running");
}

void migrate_recover(struct orch *o, struct slot_rec *s)
{
	json_t *op = json_loads(s->op, 0, NULL);
	const char *kind = json_string_value(json_object_get(op, "kind"));

	if (kind && strcmp(kind, "compute") == 0) {
		recover_compute(o, s, op);
	} else if (kind && strcmp(kind, "memory") == 0) {
		recover_memory(o, s, op);
	} else if (kind && strcmp(kind, "evacuate") == 0) {
		recover_evacuate(o, s, op);
	} else {
		snprintf(s->reason, sizeof(s->reason),
			 "a migration was interrupted by an orchestrator restart");
		mig_finish(o, s, "running");
	}
	slots_event(o, "slot_recovered", s->compute, s->name, "slot %s: %s (now %s)", s->name,
		    s->reason, s->state);
	log_warn("slot %s: %s (now %s)", s->name, s->reason, s->state);
	json_decref(op);
}
