// SPDX-License-Identifier: MIT
/*
 * Operations whose outcome the orchestrator did not see: a migration
 * interrupted by an orchestrator restart (migrate_recover, at start), a
 * commit that got no answer, and the `unresolved` slots left by either
 * (migrate_resolve_pending, from the monitor). The outcome is decided
 * from the participants' own state, never from a missing answer: the
 * agent's view of the VM (GET /v1/vms/NAME: which memory node, section
 * and generation each section is), the source's and the destination's VM
 * state. The store is made to say the same and what nobody uses is freed.
 * When nobody can be asked, nothing is freed: the slot stays `unresolved`
 * and the orchestrator asks again while the compute node is up.
 */
#include "migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"

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
	nx->epoch = x->epoch + 1;
	return 0;
}

enum mig_use mig_ask_section(struct orch *o, struct slot_rec *s, const struct node_rec *c,
			     const struct section_rec *x, const struct section_rec *nx,
			     int timeout_ms)
{
	struct view v;
	enum mig_use use;
	int st;

	/*
	 * A local x (evacuation) has no migration to abort: an abort naming nx
	 * changes nothing and still waits for an evacuation in flight.
	 */
	st = mig_memory_abort(o, s, c, x->remote ? x : nx, nx, timeout_ms);
	view_get(c, s->name, timeout_ms, &v);
	if (view_uses(&v, nx))
		use = MIG_USES_NEW;
	else if ((st == 200 || st == 404 || st == 409) && (v.status == 200 || v.status == 404))
		use = MIG_USES_OLD;
	else
		use = MIG_USES_UNKNOWN;
	view_done(&v);
	return use;
}

void mig_unresolved(struct orch *o, struct slot_rec *s, const char *fmt, ...)
{
	bool was = strcmp(s->state, "unresolved") == 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
	slots_end_op(o, s, "unresolved");
	if (was) {
		log_debug("slot %s: still unresolved: %s", s->name, s->reason);
		return;
	}
	slots_event(o, "migration_unresolved", s->compute, s->name, "slot %s: %s", s->name,
		    s->reason);
	log_warn("slot %s is unresolved: %s", s->name, s->reason);
}

static bool same_section(const struct section_rec *a, const struct section_rec *b)
{
	return a->remote && b->remote && a->memnode == b->memnode && a->section == b->section &&
	       a->generation == b->generation;
}

static struct section_rec op_ref(const struct section_rec *x, json_t *ref)
{
	struct section_rec r = *x;

	r.remote = true;
	r.memnode = (uint64_t)mig_jint(ref, "memnode", 0);
	r.section = (uint32_t)mig_jint(ref, "section", 0);
	r.generation = (uint32_t)mig_jint(ref, "generation", 0);
	return r;
}

/*
 * A memory migration (op.src -> op.dst) or an evacuation (local -> op.dst)
 * of slot section op.index: 1 when settled (s->reason says how), 0 when the
 * agent could not be asked (the slot is `unresolved`).
 */
static int settle_section(struct orch *o, struct slot_rec *s, json_t *op, bool evacuation,
			  const char *what, int timeout_ms)
{
	struct section_rec x, nx;
	struct node_rec c;
	char msg[256];

	if (op_sections(o, s, op, &c, &x, &nx) < 0 || x.idx < 0) {
		snprintf(s->reason, sizeof(s->reason), "%s; its record is incomplete", what);
		return 1;
	}
	nx.remote = true;
	if (same_section(&x, &nx)) {
		/* The store records a section only after the agent said it switched. */
		if (!evacuation) {
			struct section_rec old = op_ref(&x, json_object_get(op, "src"));

			if (!same_section(&old, &nx))
				slots_free_remote(o, &old);
		}
		snprintf(s->reason, sizeof(s->reason), "%s; section %" PRId64 " had moved", what,
			 x.idx);
		return 1;
	}
	switch (mig_ask_section(o, s, &c, &x, &nx, timeout_ms)) {
	case MIG_USES_NEW:
		snprintf(msg, sizeof(msg),
			 "slot %s section %" PRId64 " found on memory node %" PRIu64
			 " (section %" PRIu32 ") by asking compute node %s",
			 s->name, x.idx, nx.memnode, nx.section, c.name);
		(void)mig_section_replace(o, &nx,
					  evacuation ? "section_evacuated" : "section_migrated",
					  nx.memnode, s->name, msg);
		if (x.remote)
			slots_free_remote(o, &x);
		snprintf(s->reason, sizeof(s->reason),
			 "%s; section %" PRId64 " had moved to memory node %" PRIu64, what, x.idx,
			 nx.memnode);
		return 1;
	case MIG_USES_OLD:
		slots_free_remote(o, &nx);
		if (x.remote)
			snprintf(s->reason, sizeof(s->reason),
				 "%s; section %" PRId64 " stays on memory node %" PRIu64, what,
				 x.idx, x.memnode);
		else
			snprintf(s->reason, sizeof(s->reason),
				 "%s; section %" PRId64 " stays local", what, x.idx);
		return 1;
	default:
		mig_unresolved(o, s,
			       "%s and compute node %s does not answer: section %" PRId64
			       " is on memory node %" PRIu64 " (section %" PRIu32 ") or %" PRIu64
			       " (section %" PRIu32 "); both are kept until it answers",
			       what, c.name, x.idx, x.memnode, x.section, nx.memnode, nx.section);
		return 0;
	}
}

static void see(const struct node_rec *c, const char *name, int timeout_ms,
		struct mig_seen *ret)
{
	struct view v = { .status = -ENOENT };
	const char *st;

	if (c)
		view_get(c, name, timeout_ms, &v);
	st = json_string_value(json_object_get(v.vm, "state"));
	*ret = (struct mig_seen){ .status = v.status };
	snprintf(ret->state, sizeof(ret->state), "%s", v.status == 200 && st ? st : "");
	st = json_string_value(json_object_get(v.vm, "reason"));
	snprintf(ret->reason, sizeof(ret->reason), "%s", v.status == 200 && st ? st : "");
	ret->migrating = v.status == 200 && json_is_true(json_object_get(v.vm, "migrating"));
	ret->meta_pending = v.status == 200 &&
			    json_is_true(json_object_get(v.vm, "page_meta_pending"));
	ret->replicas_pending = v.status == 200 &&
				json_is_true(json_object_get(v.vm, "replicas_pending"));
	view_done(&v);
}

static bool seen_is(const struct mig_seen *x, const char *state)
{
	return x->status == 200 && strcmp(x->state, state) == 0;
}

/* The node answered that it has no such VM, or one that can no longer run. */
static bool seen_gone(const struct mig_seen *x)
{
	return x->status == 404 || seen_is(x, "failed") || seen_is(x, "stopped");
}

enum mig_owner mig_ask_owner(const struct node_rec *src, const struct node_rec *dst,
			     const char *name, int timeout_ms, struct mig_seen *ret_src,
			     struct mig_seen *ret_dst)
{
	see(src, name, timeout_ms, ret_src);
	see(dst, name, timeout_ms, ret_dst);
	if (seen_is(ret_src, "migrated"))
		return MIG_OWNER_DEST;
	if (ret_src->migrating)
		return MIG_OWNER_UNKNOWN;
	if (ret_src->status == 200 && !seen_gone(ret_src))
		return MIG_OWNER_SOURCE;                /* running there, not migrating */
	if (seen_is(ret_dst, "running"))
		return MIG_OWNER_DEST;
	/*
	 * The source has no VM to hand over any more (or the destination has
	 * none to receive it): a destination still waiting never gets it.
	 */
	if (seen_gone(ret_dst) || (seen_gone(ret_src) && ret_dst->status == 200))
		return MIG_OWNER_SOURCE;
	return MIG_OWNER_UNKNOWN;
}

static const char *seen_text(const struct mig_seen *x, char *buf, size_t len)
{
	if (x->status == 200)
		snprintf(buf, len, "%s%s", x->state, x->migrating ? " (migrating)" : "");
	else if (x->status == 404)
		snprintf(buf, len, "no such VM");
	else if (x->status < 0)
		snprintf(buf, len, "no answer (%s)", strerror(-x->status));
	else
		snprintf(buf, len, "HTTP %d", x->status);
	return buf;
}

/* What a compute migration's destination may still wait for after the switchover. */
enum hand_over {
	HAND_REPLICAS,   /* the replicas the source took out (replicas_handover.c) */
	HAND_META,       /* a sealed slot's page-metadata table (migrate_pagemeta.c) */
};

/*
 * The destination runs the slot but still waits for hand-over h (the
 * orchestrator stopped during it, or it got no answer): it goes now. 1
 * when it went. A source that cannot give it any more (its VM or agent
 * gone; for the replicas, also a section that would have no replica in)
 * never will: the slot fails, as a move whose hand-over failed does (-1:
 * settled). One that does not answer is asked again later (0: `unresolved`).
 */
static int from_source(struct orch *o, struct slot_rec *s, const char *what, enum hand_over h,
		       const struct node_rec *src, const struct node_rec *dst, bool have_src)
{
	const char *thing = h == HAND_META ? "its page metadata"
					   : "which of its replicas missed writes";
	char why[160] = "the source node is not known";
	bool lost;
	int r;

	if (h == HAND_META) {
		r = have_src ? mig_meta_hand_over(src, dst, s->name, 0, why, sizeof(why)) : -ENODEV;
		lost = r == -ENOENT;
	} else {
		r = o->replicas->hand_over(o, s, have_src ? src : NULL, dst, NULL, why, sizeof(why));
		lost = r != -EIO;
	}
	if (r == 0)
		return 1;
	if (lost) {
		snprintf(s->reason, sizeof(s->reason), "%s; it moved to %s, but %s is lost (%.100s)",
			 what, dst->name, thing, why);
		fence_slot(o, s);
		s->compute = dst->id;
		mig_finish(o, s, "failed");
		return -1;
	}
	mig_unresolved(o, s, "%s; it runs on %s, which must still learn %s from %s (%s)", what,
		       dst->name, thing, have_src ? src->name : "(unknown node)", why);
	return 0;
}

/* A compute migration op.from -> op.to: 1 when settled, 0 while not known (`unresolved`). */
static int settle_compute(struct orch *o, struct slot_rec *s, json_t *op, const char *what,
			  int timeout_ms)
{
	struct node_rec src, dst;
	struct mig_seen ss, ds;
	uint64_t sid = (uint64_t)mig_jint(op, "from", 0), did = (uint64_t)mig_jint(op, "to", 0);
	bool have_src = o->store->ops->node_get(o->store, sid, &src) == 0;
	bool have_dst = o->store->ops->node_get(o->store, did, &dst) == 0;
	char a[96], b[96];
	int r;

	switch (mig_ask_owner(have_src ? &src : NULL, have_dst ? &dst : NULL, s->name,
			      timeout_ms, &ss, &ds)) {
	case MIG_OWNER_DEST:
		/* The hand-overs (replicas out, a sealed slot's table) may have been cut short. */
		r = o->replicas && ds.replicas_pending
			    ? from_source(o, s, what, HAND_REPLICAS, &src, &dst, have_src) : 1;
		if (r > 0 && s->page_key[0] && ds.meta_pending)
			r = from_source(o, s, what, HAND_META, &src, &dst, have_src);
		if (r <= 0)
			return r < 0;   /* failed: settled; not handed over yet: unresolved */
		fence_slot(o, s);
		s->compute = did;
		r = seen_is(&ds, "running") ? 0 : mig_wait_running(&dst, s->name);
		if (r < 0) {
			snprintf(s->reason, sizeof(s->reason),
				 "%s; it moved to %s, which does not run it: %s", what, dst.name,
				 strerror(-r));
			mig_finish(o, s, "failed");
			return 1;
		}
		snprintf(s->reason, sizeof(s->reason), "%s; it completed: the VM runs on %s",
			 what, dst.name);
		if (have_src)
			mig_vm_delete(&src, s->name);
		mig_finish(o, s, "running");
		return 1;
	case MIG_OWNER_SOURCE:
		if (have_dst && ds.status != 404)
			mig_vm_delete(&dst, s->name);
		s->compute = sid;
		/* running: fine; failed: the VM is gone; else reconciliation decides. */
		mig_finish_on_source(o, s, what, have_src ? src.name : "(unknown node)", &ss);
		return 1;
	default:
		mig_unresolved(o, s,
			       "%s and where the VM runs is not known yet: the source %s says %s, "
			       "the destination %s says %s; both are kept",
			       what, have_src ? src.name : "(unknown node)",
			       seen_text(&ss, a, sizeof(a)), have_dst ? dst.name : "(unknown node)",
			       seen_text(&ds, b, sizeof(b)));
		return 0;
	}
}

/*
 * Settle the slot's recorded operation: 1 when done (the slot is settled,
 * its operation forgotten), 0 while the outcome is not known (`unresolved`).
 * `why` says what happened to it ("interrupted by an orchestrator restart").
 */
static int settle(struct orch *o, struct slot_rec *s, const char *why, int timeout_ms)
{
	json_t *op = json_loads(s->op, 0, NULL);
	const char *kind = json_string_value(json_object_get(op, "kind"));
	char what[128];
	int r = 1;

	if (kind && strcmp(kind, "compute") == 0) {
		snprintf(what, sizeof(what), "a migration %s", why);
		r = settle_compute(o, s, op, what, timeout_ms);
	} else if (kind && (strcmp(kind, "memory") == 0 || strcmp(kind, "evacuate") == 0)) {
		bool evac = strcmp(kind, "evacuate") == 0;

		snprintf(what, sizeof(what), "%s %s", evac ? "an evacuation" : "a memory migration",
			 why);
		r = settle_section(o, s, op, evac, what, timeout_ms);
		if (r > 0)
			mig_finish(o, s, "running");
	} else {
		snprintf(s->reason, sizeof(s->reason), "a migration %s", why);
		mig_finish(o, s, "running");
	}
	json_decref(op);
	return r;
}

void migrate_recover(struct orch *o, struct slot_rec *s)
{
	if (o->replicas && o->replicas->recover(o, s) == 0)
		return;   /* a repair of a replica (replicas_repair.c) */
	if (settle(o, s, "was interrupted by an orchestrator restart", MIG_SHORT_TIMEOUT_MS) == 0)
		return;
	slots_event(o, "slot_recovered", s->compute, s->name, "slot %s: %s (now %s)", s->name,
		    s->reason, s->state);
	log_warn("slot %s: %s (now %s)", s->name, s->reason, s->state);
}

static bool node_up(struct orch *o, uint64_t id)
{
	struct node_rec n;

	return o->store->ops->node_get(o->store, id, &n) == 0 && strcmp(n.state, "up") == 0;
}

/*
 * Ask again only a compute node that heartbeats: the slot's, or for a
 * compute migration its destination (which can tell that it runs the VM).
 */
static bool worth_asking(struct orch *o, const struct slot_rec *s)
{
	json_t *op = json_loads(s->op, 0, NULL);
	const char *kind = json_string_value(json_object_get(op, "kind"));
	bool yes = node_up(o, s->compute) ||
		   (kind && strcmp(kind, "compute") == 0 &&
		    node_up(o, (uint64_t)mig_jint(op, "to", 0)));

	json_decref(op);
	return yes;
}

void migrate_resolve_pending(struct orch *o)
{
	_cleanup_free_ struct slot_rec *slots = NULL;
	size_t n = 0;

	if (o->store->ops->slot_list(o->store, 0, 0, &slots, &n) < 0)
		return;
	for (size_t i = 0; i < n && !atomic_load(&o->stopping); i++) {
		struct slot_rec *s = &slots[i];

		/* Only this thread settles an unresolved slot: requests get 409 busy. */
		if (strcmp(s->state, "unresolved") != 0 || !worth_asking(o, s))
			continue;
		if (settle(o, s, "had an unknown outcome", MIG_RESOLVE_TIMEOUT_MS) == 0)
			continue;
		slots_event(o, "migration_resolved", s->compute, s->name, "slot %s: %s (now %s)",
			    s->name, s->reason, s->state);
		log_warn("slot %s: %s (now %s)", s->name, s->reason, s->state);
	}
}

/* ---- every slot at a restart (slots.c's operations) ------------------------ */

void slots_recover(struct orch *o)
{
	_cleanup_free_ struct slot_rec *slots = NULL;
	size_t n = 0;

	if (o->store->ops->slot_list(o->store, 0, 0, &slots, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct slot_rec *s = &slots[i];
		const char *was = s->state;

		if (!slots_transitional(was))
			continue;
		if (strcmp(was, "migrating") == 0 || strcmp(was, "unresolved") == 0) {
			migrate_recover(o, s);
			continue;
		}
		if (strcmp(was, "resizing") == 0) {
			/* Sections are recorded as they are plugged: the record is right. */
			snprintf(s->reason, sizeof(s->reason),
				 "a resize was interrupted by an orchestrator restart");
			slots_end_op(o, s, "running");
		} else if (strcmp(was, "creating") == 0) {
			/* Reconciliation makes it running if the VM did start. */
			snprintf(s->reason, sizeof(s->reason),
				 "orchestrator restarted while the slot was being created");
			slots_end_op(o, s, "lost");
		} else {
			snprintf(s->reason, sizeof(s->reason),
				 "orchestrator restarted while the slot was %s; delete it", was);
			slots_end_op(o, s, "failed");
		}
		slots_event(o, "slot_recovered", s->compute, s->name, "slot %s: %s", s->name, s->reason);
		log_warn("slot %s: %s", s->name, s->reason);
	}
}
