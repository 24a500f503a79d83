// SPDX-License-Identifier: MIT
/*
 * Memory migration, compute stays (docs/api.md, "Migration"), per section:
 * allocate on the target, mint the agent's grant and the COPY grant, begin,
 * COPY on the source memory node, commit, record the section on the
 * target, free it on the source. Any failure before the commit, or a commit
 * the agent refused, aborts the agent's migration and frees the target: the
 * section stays where it was, whole. A commit that got no answer (twice) is
 * not a failure: the agent may have switched. It is asked which section it
 * uses (mig_ask_section) and only the other one is freed; if it cannot be
 * asked, nothing is freed and the slot stays `unresolved`.
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

struct memmig_ctx {
	struct orch *o;
	struct slot_rec *s;
	const struct node_rec *c, *from, *to;
	char path[160];
};

/* {"phase": P, "from": {addr, grant}, "to": {addr, grant}} */
static json_t *memmig_body(struct memmig_ctx *m, const char *phase, const struct section_rec *x,
			   uint32_t dsec, uint32_t dgen)
{
	json_t *f = slots_remote_json(m->o, m->from, m->c->id, x->section, x->generation, x->epoch);
	json_t *t = slots_remote_json(m->o, m->to, m->c->id, dsec, dgen, x->epoch + 1);

	if (!f || !t) {
		json_decref(f);
		json_decref(t);
		return NULL;
	}
	json_object_del(f, "kind");
	json_object_del(t, "kind");
	return json_pack("{s:s, s:o, s:o}", "phase", phase, "from", f, "to", t);
}

static int memmig_phase(struct memmig_ctx *m, const char *phase, const struct section_rec *x,
			uint32_t dsec, uint32_t dgen, json_t **ret)
{
	json_t *b = memmig_body(m, phase, x, dsec, dgen);
	int status;

	if (!b)
		return -ENOMEM;
	status = mig_call(m->c, "POST", m->path, b, m->o->compute_timeout_ms, ret);
	json_decref(b);
	return status;
}

int mig_memory_abort(struct orch *o, struct slot_rec *s, const struct node_rec *c,
		     const struct section_rec *x, const struct section_rec *nx, int timeout_ms)
{
	struct node_rec from, to;
	struct memmig_ctx m = { .o = o, .s = s, .c = c, .from = &from, .to = &to };
	json_t *b;
	int status;

	if (o->store->ops->node_get(o->store, x->memnode, &from) < 0 ||
	    o->store->ops->node_get(o->store, nx->memnode, &to) < 0)
		return -ENOENT;
	b = memmig_body(&m, "abort", x, nx->section, nx->generation);
	if (!b)
		return -ENOMEM;
	snprintf(m.path, sizeof(m.path), "/v1/vms/%s/sections/migrate", s->name);
	status = mig_call(c, "POST", m.path, b, timeout_ms, NULL);
	json_decref(b);
	return status;
}

/*
 * Neither commit got an answer (status): which section does the agent use?
 * MIG_USES_NEW: go on as committed; MIG_USES_OLD: its migration is over,
 * the target is not used (the answer is set); -EINPROGRESS: it could not
 * be asked, the slot is `unresolved` with both sections kept (the answer
 * is set).
 */
static int commit_unseen(struct memmig_ctx *m, const struct section_rec *x,
			 const struct section_rec *nx, int status, struct http_resp *resp)
{
	enum mig_use use = mig_ask_section(m->o, m->s, m->c, x, nx, MIG_SHORT_TIMEOUT_MS);

	if (use == MIG_USES_NEW) {
		log_warn("slot %s section %" PRId64 ": the commit got no answer (%s), but compute "
			 "node %s uses the new section", m->s->name, x->idx, strerror(-status),
			 m->c->name);
		return use;
	}
	if (use == MIG_USES_OLD) {
		http_resp_error(resp, 503, "node_unreachable",
				"slot %s section %" PRId64 ": the commit got no answer (%s); "
				"compute node %s says the section stays on %s",
				m->s->name, x->idx, strerror(-status), m->c->name, m->from->name);
		return use;
	}
	mig_unresolved(m->o, m->s,
		       "the commit of section %" PRId64 " from memory node %s to %s got no answer "
		       "(%s) and compute node %s cannot be asked: both sections are kept until it "
		       "answers",
		       x->idx, m->from->name, m->to->name, strerror(-status), m->c->name);
	http_resp_error(resp, 503, "migration_unresolved", "slot %s: %s", m->s->name,
			m->s->reason);
	return -EINPROGRESS;
}

/*
 * Move one section. On success *ret_rep describes it and the store has the
 * section on `to`; on failure the section stays on `from`, the target is
 * freed, and the answer is set; -EINPROGRESS: the outcome is not known, the
 * slot is `unresolved`, both sections are kept (the answer is set).
 */
static int memmig_one(struct memmig_ctx *m, const struct section_rec *x, json_t **ret_rep,
		      struct http_resp *resp)
{
	struct orch *o = m->o;
	struct store *st = o->store;
	struct section_rec nx = *x;
	struct proto_copy_rep cr = { 0 };
	struct proto_grant cg;
	char why[512];
	json_t *ans = NULL, *op;
	uint32_t dsec, dgen;
	uint64_t t0 = mig_now_ms(), tcopy;
	int r, status;
	bool aborted = false;

	r = mnpool_alloc(o->mnpool, m->to, (uint64_t)m->s->id, &dsec, &dgen);
	if (r < 0) {
		if (r == -ENOSPC) {
			st->ops->node_set_free(st, m->to->id, 0);
			http_resp_error(resp, 409, "capacity",
					"memory node %s has no free section for slot %s", m->to->name,
					m->s->name);
		} else {
			http_resp_error(resp, 503, "node_unreachable",
					"memory node %s (%s) could not allocate: %s", m->to->name,
					m->to->addr, strerror(-r));
		}
		return r;
	}
	st->ops->node_adjust_free(st, m->to->id, -1);
	nx.memnode = m->to->id;
	nx.section = dsec;
	nx.generation = dgen;
	nx.epoch = x->epoch + 1;        /* the source is fenced at it before its free */
	op = json_pack("{s:s, s:I, s:I, s:I, s:o, s:o}", "kind", "memory", "from",
		       (json_int_t)m->from->id, "to", (json_int_t)m->to->id, "index",
		       (json_int_t)x->idx, "src", mig_sec_ref(x->memnode, x->section, x->generation),
		       "dst", mig_sec_ref(nx.memnode, dsec, dgen));
	mig_set_op(o, m->s, op);
	json_decref(op);

	/* 1. begin: the agent writes back to both. */
	status = memmig_phase(m, "begin", x, dsec, dgen, &ans);
	if (status != 200) {
		mig_why(status, ans, why, sizeof(why));
		http_resp_error(resp, status == 409 || status == 404 ? 409 : 503,
				status == 409 || status == 404 ? "conflict" : "node_unreachable",
				"slot %s section %" PRId64 ": compute node %s refused to begin: %s",
				m->s->name, x->idx, m->c->name, why);
		r = -EIO;
		goto fail;
	}
	json_decref(ans);
	ans = NULL;

	/* 2. COPY on the source memory node, with a grant for it to write the target. */
	tcopy = mig_now_ms();
	r = grant_mint(o->grant_key, m->to->id, m->from->id, dsec, dgen, nx.epoch, PROTO_R_WRITE,
		       orch_grant_expiry(o), &cg);
	if (r == 0)
		r = mnpool_copy(o->mnpool, m->from, x->section, x->generation, &cg, m->to->addr,
				&cr);
	if (r < 0) {
		http_resp_error(resp, 503, "copy_failed",
				"slot %s section %" PRId64 ": memory node %s could not copy to %s: "
				"%s; the section stays on %s",
				m->s->name, x->idx, m->from->name, m->to->name, strerror(-r),
				m->from->name);
		goto abort;
	}
	tcopy = mig_now_ms() - tcopy;

	/* 3. commit: re-send, fence, switch. Repeated once if it got no answer. */
	status = memmig_phase(m, "commit", x, dsec, dgen, &ans);
	if (status < 0) {
		json_decref(ans);
		ans = NULL;
		status = memmig_phase(m, "commit", x, dsec, dgen, &ans);
	}
	if (status < 0) {
		/* Still no answer: it may have switched. Ask, don't guess. */
		r = commit_unseen(m, x, &nx, status, resp);
		if (r < 0)
			return r;
		if (r == MIG_USES_OLD) {
			r = -EIO;
			aborted = true;
			goto fail;
		}
	} else if (status != 200) {
		mig_why(status, ans, why, sizeof(why));
		http_resp_error(resp, status == 409 ? 409 : 503,
				status == 409 ? strcmp(mig_code(ans), "target_failed") == 0
							? "target_failed"
							: "conflict"
					      : "node_unreachable",
				"slot %s section %" PRId64 ": commit failed (%s); the section stays "
				"on %s",
				m->s->name, x->idx, why, m->from->name);
		r = -EIO;
		goto abort;
	}

	/* 4. The store follows the agent. */
	snprintf(why, sizeof(why),
		 "slot %s section %" PRId64 " moved from memory node %s (section %" PRIu32
		 ") to %s (section %" PRIu32 ")",
		 m->s->name, x->idx, m->from->name, x->section, m->to->name, dsec);
	r = mig_section_replace(o, &nx, "section_migrated", m->to->id, m->s->name, why);
	if (r < 0) {
		/* The agent uses the target now: keep both sections, say so. */
		slots_event(o, "section_leaked", m->from->id, m->s->name,
			    "slot %s section %" PRId64 " moved to %s section %" PRIu32
			    " but the store could not record it: %s",
			    m->s->name, x->idx, m->to->name, dsec, strerror(-r));
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		json_decref(ans);
		return r;
	}
	slots_free_remote(o, x);
	*ret_rep = json_pack("{s:I, s:o, s:o, s:I, s:I, s:I, s:O, s:O, s:O, s:I}", "index",
			     (json_int_t)x->idx, "from",
			     mig_sec_ref(x->memnode, x->section, x->generation), "to",
			     mig_sec_ref(nx.memnode, dsec, dgen), "pages_copied", (json_int_t)cr.pages,
			     "copy_ms", (json_int_t)tcopy, "bytes_copied",
			     (json_int_t)(cr.pages * 4096), "pages_resent",
			     mig_member(ans, "pages_resent"), "pages_dual",
			     mig_member(ans, "pages_dual"), "pause_us",
			     mig_member(ans, "pause_us"), "ms",
			     (json_int_t)(mig_now_ms() - t0));
	json_decref(ans);
	return 0;

abort:
	json_decref(ans);
	ans = NULL;
	status = memmig_phase(m, "abort", x, dsec, dgen, &ans);
	aborted = status == 200;
	if (!aborted)
		log_warn("slot %s section %" PRId64 ": abort answered %d", m->s->name, x->idx,
			 status);
fail:
	json_decref(ans);
	slots_event(o, "section_migration_failed", m->from->id, m->s->name,
		    "slot %s section %" PRId64 ": migration from %s to %s abandoned%s", m->s->name,
		    x->idx, m->from->name, m->to->name,
		    aborted ? "" : " (abort not confirmed)");
	slots_free_remote(o, &nx);
	return r < 0 ? r : -EIO;
}

void migrate_memory(struct orch *o, const char *name, const struct http_req *req,
		    struct http_resp *resp)
{
	static const char *const keys[] = { "from", "to", "section", NULL };
	static const char *const states[] = { "running", NULL };
	_cleanup_free_ struct section_rec *secs = NULL;
	struct node_rec c, from, to;
	struct slot_rec s;
	struct memmig_ctx m = { .o = o, .s = &s, .c = &c, .from = &from, .to = &to };
	json_t *body, *reps = NULL, *v;
	uint64_t fid = 0, tid = 0, t0 = mig_now_ms();
	int64_t only = -1, maxpause = 0, copied = 0;
	size_t n = 0, moved = 0, todo = 0, nrep = 0;
	int r = 0;

	body = http_json_args(req, resp, keys);
	if (!body)
		return;
	if (mig_parse_node_id(body, "from", true, &fid, resp) < 0 ||
	    mig_parse_node_id(body, "to", true, &tid, resp) < 0)
		goto out;
	if ((v = json_object_get(body, "section"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			http_resp_error(resp, 400, "bad_request",
					"\"section\" must be a section index of the slot");
			goto out;
		}
		only = json_integer_value(v);
	}
	if (fid == tid) {
		http_resp_error(resp, 400, "bad_request", "\"from\" and \"to\" are the same node");
		goto out;
	}
	if (mig_get_node(o, fid, "memnode", &from, resp) < 0 ||
	    mig_get_node(o, tid, "memnode", &to, resp) < 0)
		goto out;
	if (slots_get_slot(o, name, &s, resp) < 0)
		goto out;
	if (strcmp(to.state, "up") != 0 || to.drained) {
		http_resp_error(resp, 409, "conflict", "memory node %s is %s", to.name,
				to.drained ? "drained" : to.state);
		goto out;
	}
	if (slots_begin_op(o, name, states, "migrating", &s, resp) < 0)
		goto out;
	/*
	 * A shared region the slot maps is not one of its sections: it stays
	 * where it is (POST /v1/regions/NAME/migrate moves it). The agent
	 * finds the section to move by memory node, section and generation,
	 * so a region's pager sections are never touched.
	 */
	r = o->store->ops->node_get(o->store, s.compute, &c);
	if (r == 0)
		r = o->store->ops->section_list(o->store, s.id, 0, &secs, &n);
	if (r < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		mig_finish(o, &s, "running");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		todo += secs[i].remote && secs[i].memnode == fid &&
			(only < 0 || secs[i].idx == only);
	/* Replicas (replicas_repair.c): never two of a section on one node; they move too. */
	if (o->replicas && o->replicas->memmig_check(o, &s, fid, tid, only, &nrep, resp) < 0) {
		mig_finish(o, &s, "running");
		goto out;
	}
	todo += nrep;
	if (todo == 0) {
		if (only >= 0)
			http_resp_error(resp, 409, "conflict",
					"slot %s has no section %" PRId64 " on memory node %s", name,
					only, from.name);
		else
			http_resp_error(resp, 409, "conflict",
					"slot %s has no section on memory node %s", name, from.name);
		mig_finish(o, &s, "running");
		goto out;
	}
	snprintf(m.path, sizeof(m.path), "/v1/vms/%s/sections/migrate", s.name);
	slots_event(o, "memory_migration_started", fid, s.name,
		    "slot %s: %zu section%s from memory node %s to %s", s.name, todo,
		    todo == 1 ? "" : "s", from.name, to.name);
	reps = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *rep = NULL;

		if (!secs[i].remote || secs[i].memnode != fid || (only >= 0 && secs[i].idx != only))
			continue;
		snprintf(secs[i].slot, sizeof(secs[i].slot), "%s", s.name);
		r = memmig_one(&m, &secs[i], &rep, resp);
		if (r < 0)
			break;
		moved++;
		maxpause = MAX(maxpause, mig_jint(rep, "pause_us", 0));
		copied += mig_jint(rep, "bytes_copied", 0);
		json_array_append_new(reps, rep);
	}
	if (r == 0 && nrep) {
		int k = o->replicas->memmig(o, &s, &c, &from, &to, only, reps, resp);

		r = k < 0 ? k : 0;
		moved += k > 0 ? (size_t)k : 0;
	}
	if (r != -EINPROGRESS)
		mig_finish(o, &s, "running");
	slots_event(o, r < 0 ? "memory_migration_failed" : "memory_migration_done", tid, s.name,
		    "slot %s: %zu of %zu section%s moved from memory node %s to %s", s.name, moved,
		    todo, todo == 1 ? "" : "s", from.name, to.name);
	if (r < 0) {
		log_info("slot %s: memory migration stopped after %zu of %zu sections", s.name,
			 moved, todo);
		goto out;
	}
	http_resp_json(resp, 200,
		       json_pack("{s:o, s:I, s:I, s:O, s:I, s:I, s:I}", "slot",
				 slots_json(o, &s, true), "from", (json_int_t)fid, "to",
				 (json_int_t)tid, "sections", reps, "total_ms",
				 (json_int_t)(mig_now_ms() - t0), "max_pause_us", (json_int_t)maxpause,
				 "bytes_copied", (json_int_t)copied));
out:
	json_decref(reps);
	json_decref(body);
}
