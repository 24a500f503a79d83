// SPDX-License-Identifier: MIT
/*
 * Memory migration of a shared region (docs/sharing.md, "Moving a region
 * to another memory node"; docs/api.md, POST /v1/regions/NAME/migrate):
 * every section of the region moves from its home memory node to another
 * one while slots map it, with a short pause of the region (not of the
 * guests: only their accesses to the region wait).
 *
 *   1. The region becomes `moving` (409 busy for any other operation);
 *      the target sections are allocated.
 *   2. writeback on every attached slot's agent (the guests run on: what
 *      the users changed goes to the home node ahead of the pause; an
 *      error here only makes the pause longer), then quiesce on every
 *      one: the region's faults park, every page a user changed since is
 *      written back and acknowledged, every cached copy is dropped, a
 *      strict user leaves its directory. From
 *      here on the home node's sections are the only copy and nobody
 *      changes them (an exclusive holder keeps its lock: its writes wait).
 *   3. COPY, memory node to memory node, section by section.
 *   4. switch on every agent: the parked region takes the new sections,
 *      with new grants (read-write for the holder and for strict users).
 *   5. The store records the new sections and home: the move is done.
 *   6. resume on every agent (strict: attached to the new home's
 *      directory first); the faults that waited fetch from the new node.
 *   7. The old sections are fenced and freed; the region is `ready`.
 *
 * A failure before 5 undoes what was done: the agents that switched
 * switch back (nothing was written meanwhile: they were parked), every
 * agent resumes on the old sections, the new ones are freed; the region
 * is `ready` on its old node with event region_migration_failed. After 5,
 * an agent that does not answer its resume (twice) keeps the region's
 * faults parked until it restarts (it serves the region from its record,
 * on the new sections) or the region moves again (a move resumes every
 * user).
 * An orchestrator restarted in the middle settles the region from the
 * store (regions_memmig_recover): every user switches to the recorded
 * sections and resumes; the unrecorded ones are orphans the sweep frees.
 */
#include "regions_memmig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "migrate.h"
#include "regions.h"

struct rmove {
	struct orch *o;
	struct region_rec r;
	struct node_rec from, to;
	struct region_section_rec old[ORCH_REGION_MAX_SECTIONS];
	struct region_section_rec nw[ORCH_REGION_MAX_SECTIONS];
	size_t n, nalloc;
	struct region_attach_rec *att;
	size_t natt;
	size_t touched;                    /* att[0..touched) were asked to quiesce */
	size_t switched;                   /* att[0..switched) took the new sections */
	json_t *users;                     /* what each agent answered to quiesce */
};

/* A region's section as a slot's section (fence and free go through slots.c). */
static struct section_rec as_slot_section(const struct region_section_rec *x)
{
	return (struct section_rec){ .remote = true, .memnode = x->memnode, .section = x->section,
				     .generation = x->generation, .epoch = x->epoch,
				     .hot_index = -1 };
}

/* [{"kind": "remote", "addr", "grant"}] for secs on mn, held by `holder`. */
static json_t *section_objs(struct orch *o, const struct node_rec *mn,
			    const struct region_section_rec *secs, size_t n, uint64_t holder,
			    bool write, uint32_t epoch)
{
	json_t *arr = json_array();

	for (size_t k = 0; arr && k < n; k++) {
		struct proto_grant g;
		char hex[GRANT_HEX_LEN + 1];

		if (grant_mint(o->grant_key, mn->id, holder, secs[k].section, secs[k].generation,
			       epoch, PROTO_R_READ | (write ? PROTO_R_WRITE : 0),
			       orch_grant_expiry(o), &g) < 0 ||
		    json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "kind", "remote",
							 "addr", mn->addr, "grant",
							 (grant_to_hex(&g, hex), hex))) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* POST .../regions/NAME/move {"phase": phase[, "sections"]} to att[i]'s agent. */
static int move_call(struct rmove *m, size_t i, const char *phase, bool to_new, json_t **ans)
{
	const struct region_attach_rec *a = &m->att[i];
	json_t *body = json_pack("{s:s}", "phase", phase), *secs;
	int status;

	if (!body)
		return -ENOMEM;
	if (!strcmp(phase, "switch")) {
		secs = section_objs(m->o, to_new ? &m->to : &m->from, to_new ? m->nw : m->old, m->n,
				    a->compute, regions_writes(&m->r, a->slot_id), m->r.epoch);
		if (!secs || json_object_set_new(body, "sections", secs) < 0) {
			json_decref(body);
			return -ENOMEM;
		}
	}
	status = regions_call(m->o, a->compute, a->slot, m->r.name, "move", "POST", body,
			      m->o->compute_timeout_ms, ans);
	json_decref(body);
	return status;
}

/*
 * att[i] back on the old sections: switched (an agent restarted since, so
 * no longer quiesced, is quiesced again first). The last status.
 */
static int switch_back(struct rmove *m, size_t i)
{
	int status = move_call(m, i, "switch", false, NULL);

	if (status == 409 && move_call(m, i, "quiesce", false, NULL) == 200)
		status = move_call(m, i, "switch", false, NULL);
	return status;
}

/* Every agent asked to quiesce resumes; those that switched first switch back. */
static void undo(struct rmove *m)
{
	for (size_t i = 0; i < m->touched; i++) {
		int status = 200;

		if (i < m->switched)
			status = switch_back(m, i);
		if (status == 200)
			status = move_call(m, i, "resume", false, NULL);
		if (status != 200)
			slots_event(m->o, "region_migration_failed", m->att[i].compute,
				    m->att[i].slot,
				    "region %s: slot %s could not be resumed on memory node %s (%d): "
				    "its accesses to the region wait until its agent restarts or the "
				    "region moves again", m->r.name, m->att[i].slot, m->from.name,
				    status);
	}
}

static void free_sections(struct rmove *m, const struct region_section_rec *secs, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		struct section_rec x = as_slot_section(&secs[k]);

		slots_free_remote(m->o, &x);
	}
}

/* The region on the new node in the store (state still `moving`). */
static int record_new(struct rmove *m)
{
	struct store *st = m->o->store;
	int e = st->ops->begin(st);

	if (e < 0)
		return e;
	for (size_t k = 0; e == 0 && k < m->n; k++)
		e = st->ops->region_section_add(st, &m->nw[k]);
	if (e == 0) {
		m->r.home = m->to.id;
		e = st->ops->region_update(st, &m->r);
	}
	if (e == 0)
		e = st->ops->commit(st);
	else
		st->ops->rollback(st);
	if (e < 0)
		m->r.home = m->from.id;
	return e;
}

static int alloc_targets(struct rmove *m, struct http_resp *resp)
{
	struct store *st = m->o->store;

	for (; m->nalloc < m->n; m->nalloc++) {
		struct region_section_rec *x = &m->nw[m->nalloc];
		int e;

		*x = m->old[m->nalloc];
		x->memnode = m->to.id;
		e = mnpool_alloc(m->o->mnpool, &m->to, ORCH_REGION_OWNER | (uint64_t)m->r.id,
				 &x->section, &x->generation);
		if (e == -ENOSPC) {
			st->ops->node_set_free(st, m->to.id, 0);
			http_resp_error(resp, 409, "capacity", "memory node %s has no free section "
					"for region %s", m->to.name, m->r.name);
			return e;
		}
		if (e < 0) {
			http_resp_error(resp, 503, "node_unreachable", "memory node %s (%s) could "
					"not allocate: %s", m->to.name, m->to.addr, strerror(-e));
			return e;
		}
		st->ops->node_adjust_free(st, m->to.id, -1);
	}
	return 0;
}

/*
 * Phase `phase` ("quiesce" or "switch": to the new sections) on every
 * user from att[*next] on: 0, or -EIO with the answer set. *next ends past
 * the users that may have done it: every one asked to quiesce (it may
 * have parked before an error), and a switch that got no answer.
 */
static int phase_all(struct rmove *m, const char *phase, size_t *next, struct http_resp *resp)
{
	bool quiesce = !strcmp(phase, "quiesce");

	for (; *next < m->natt; (*next)++) {
		const struct region_attach_rec *a = &m->att[*next];
		json_t *ans = NULL;
		int status = move_call(m, *next, phase, true, &ans);

		if (status == 200) {
			if (quiesce)
				json_array_append_new(m->users,
						      json_pack("{s:s, s:I, s:O}", "slot", a->slot,
								"compute", (json_int_t)a->compute,
								"flushed_pages",
								mig_member(ans, "flushed_pages")));
			json_decref(ans);
			continue;
		}
		if (quiesce || status < 0)
			(*next)++;
		regions_agent_error(resp, status, ans, "slot %s (compute node %" PRIu64 ") could "
				    "not %s region %s for its move to memory node %s; it stays on %s",
				    a->slot, a->compute, phase, m->r.name, m->to.name, m->from.name);
		json_decref(ans);
		return -EIO;
	}
	return 0;
}

static int copy_all(struct rmove *m, uint64_t *pages, struct http_resp *resp)
{
	for (size_t k = 0; k < m->n; k++) {
		struct proto_copy_rep cr = { 0 };
		struct proto_grant cg;
		int e = grant_mint(m->o->grant_key, m->to.id, m->from.id, m->nw[k].section,
				   m->nw[k].generation, m->r.epoch, PROTO_R_WRITE,
				   orch_grant_expiry(m->o), &cg);

		if (e == 0)
			e = mnpool_copy(m->o->mnpool, &m->from, m->old[k].section,
					m->old[k].generation, &cg, m->to.addr, &cr);
		if (e < 0) {
			http_resp_error(resp, 503, "copy_failed", "region %s section %zu: memory node "
					"%s could not copy to %s: %s; the region stays on %s",
					m->r.name, k, m->from.name, m->to.name, strerror(-e),
					m->from.name);
			return e;
		}
		*pages += cr.pages;
	}
	return 0;
}

/* After the record: every agent resumes (asked twice). The slots that did not answer. */
static json_t *resume_all(struct rmove *m)
{
	json_t *missed = json_array();

	for (size_t i = 0; i < m->natt; i++) {
		int status = move_call(m, i, "resume", true, NULL);

		if (status != 200)
			status = move_call(m, i, "resume", true, NULL);
		if (status == 200)
			continue;
		json_array_append_new(missed, json_string(m->att[i].slot));
		slots_event(m->o, "region_resume_failed", m->att[i].compute, m->att[i].slot,
			    "region %s moved to memory node %s but slot %s did not resume (%d): its "
			    "accesses to the region wait until its agent restarts or the region "
			    "moves again",
			    m->r.name, m->to.name, m->att[i].slot, status);
	}
	return missed;
}

/* Checks inside regions_begin's transaction: 0, or refused (answered, rolled back). */
static int check(struct rmove *m, struct http_resp *resp)
{
	struct store *st = m->o->store;
	int e;

	if (m->r.home == m->to.id)
		return orch_refuse(m->o, resp, 409, "same_node", "region %s is on memory node "
				   "%s already", m->r.name, m->to.name);
	if (strcmp(m->to.state, "up") != 0 || m->to.drained)
		return orch_refuse(m->o, resp, 409, "conflict", "memory node %s is %s",
				   m->to.name, m->to.drained ? "drained" : m->to.state);
	e = st->ops->node_get(st, m->r.home, &m->from);
	if (e == 0)
		e = st->ops->attach_list(st, m->r.id, 0, &m->att, &m->natt);
	if (e == 0) {
		_cleanup_free_ struct region_section_rec *secs = NULL;

		e = st->ops->region_section_list(st, m->r.id, 0, &secs, &m->n);
		if (e == 0 && (m->n == 0 || m->n > ORCH_REGION_MAX_SECTIONS))
			e = -ERANGE;
		if (e == 0)
			memcpy(m->old, secs, m->n * sizeof(secs[0]));
	}
	if (e < 0)
		return orch_refuse(m->o, resp, 500, "internal", "store: %s", strerror(-e));
	for (size_t i = 0; i < m->natt; i++)
		if (strcmp(m->att[i].state, "attached") != 0)
			return orch_refuse(m->o, resp, 409, "busy", "region %s: slot %s is %s",
					   m->r.name, m->att[i].slot, m->att[i].state);
	if (m->to.sections_free < (int64_t)m->n)
		return orch_refuse(m->o, resp, 409, "capacity", "memory node %s has %" PRId64
				   " free sections; region %s needs %zu", m->to.name,
				   m->to.sections_free, m->r.name, m->n);
	return 0;
}

/* The move after the checks (the region `moving`): 0, or -errno with the answer set. */
static int run(struct rmove *m, json_t **ret, struct http_resp *resp)
{
	uint64_t t0 = mig_now_ms(), tpause, tcopy, pages = 0, pause_ms, copy_ms;
	json_t *missed;
	int e;

	e = alloc_targets(m, resp);
	if (e < 0)
		return e;
	/* Ahead of the pause, the guests running: the quiesces have little left to write. */
	for (size_t i = 0; i < m->natt; i++)
		(void)move_call(m, i, "writeback", false, NULL);
	tpause = mig_now_ms();
	e = phase_all(m, "quiesce", &m->touched, resp);
	tcopy = mig_now_ms();
	if (e == 0)
		e = copy_all(m, &pages, resp);
	copy_ms = mig_now_ms() - tcopy;
	if (e == 0)
		e = phase_all(m, "switch", &m->switched, resp);
	if (e == 0) {
		e = record_new(m);
		if (e < 0)
			http_resp_error(resp, 500, "internal", "store: %s", strerror(-e));
	}
	if (e < 0) {
		undo(m);
		return e;
	}
	missed = resume_all(m);
	pause_ms = mig_now_ms() - tpause;
	*ret = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:O, s:o}", "from",
			 (json_int_t)m->from.id, "to", (json_int_t)m->to.id, "sections",
			 (json_int_t)m->n, "pages_copied", (json_int_t)pages, "bytes_copied",
			 (json_int_t)(pages * 4096), "copy_ms", (json_int_t)copy_ms, "pause_ms",
			 (json_int_t)pause_ms, "total_ms", (json_int_t)(mig_now_ms() - t0), "users",
			 m->users, "not_resumed", missed);
	return 0;
}

void regions_memmig(struct orch *o, const char *name, const struct http_req *req,
		    struct http_resp *resp)
{
	static const char *const keys[] = { "to", NULL };
	struct rmove m = { .o = o };
	json_t *body, *rep = NULL;
	uint64_t tid = 0;
	int e;

	body = http_json_args(req, resp, keys);
	if (!body)
		return;
	if (mig_parse_node_id(body, "to", true, &tid, resp) < 0 ||
	    mig_get_node(o, tid, "memnode", &m.to, resp) < 0 ||
	    regions_begin(o, name, &m.r, resp) < 0)
		goto out;
	if (check(&m, resp) < 0 || regions_begin_commit(o, &m.r, "moving", 0, resp) < 0)
		goto out;
	m.users = json_array();
	slots_event(o, "region_migration_started", m.from.id, NULL,
		    "region %s: %zu section%s from memory node %s to %s, %zu user%s", m.r.name,
		    m.n, m.n == 1 ? "" : "s", m.from.name, m.to.name, m.natt,
		    m.natt == 1 ? "" : "s");
	e = run(&m, &rep, resp);
	if (e < 0) {
		json_t *err = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
		const char *why = json_string_value(
			json_object_get(json_object_get(err, "error"), "message"));

		free_sections(&m, m.nw, m.nalloc);
		regions_finish(o, &m.r, "ready", "region_migration_failed", m.to.id, NULL,
			       "region %s stays on memory node %s: %s", m.r.name, m.from.name,
			       why ? why : strerror(-e));
		json_decref(err);
		log_warn("region %s: move to memory node %s failed; it stays on %s", m.r.name,
			 m.to.name, m.from.name);
		goto out;
	}
	/* Nobody uses the old sections any more: fenced, freed. */
	free_sections(&m, m.old, m.n);
	regions_finish(o, &m.r, "ready", "region_migrated", m.to.id, NULL,
		       "region %s moved from memory node %s to %s (%zu sections, paused %" PRId64
		       " ms)", m.r.name, m.from.name, m.to.name, m.n, mig_jint(rep, "pause_ms", 0));
	log_info("region %s moved from memory node %s to %s", m.r.name, m.from.name, m.to.name);
	json_object_set_new(rep, "region", regions_json(o, &m.r));
	http_resp_json(resp, 200, rep);
out:
	json_decref(m.users);
	free(m.att);
	json_decref(body);
}

static void recover_one(struct orch *o, struct region_rec *r)
{
	struct rmove m = { .o = o, .r = *r };
	_cleanup_free_ struct region_section_rec *secs = NULL;
	struct store *st = o->store;
	size_t resumed = 0;

	if (st->ops->node_get(st, r->home, &m.from) < 0 ||
	    st->ops->region_section_list(st, r->id, 0, &secs, &m.n) < 0 ||
	    m.n > ORCH_REGION_MAX_SECTIONS ||
	    st->ops->attach_list(st, r->id, 0, &m.att, &m.natt) < 0) {
		log_warn("region %s: cannot read it to settle its move", r->name);
		return;
	}
	memcpy(m.old, secs, m.n * sizeof(secs[0]));
	/* Every user on the recorded sections, then resumed. */
	for (size_t i = 0; i < m.natt; i++) {
		int status = switch_back(&m, i);

		if (status == 200)
			status = move_call(&m, i, "resume", false, NULL);
		resumed += status == 200;
	}
	regions_finish(o, r, "ready", "region_recovered", r->home, NULL,
		       "region %s was moving when the orchestrator stopped: on memory node %s, "
		       "%zu of %zu users resumed", r->name, m.from.name, resumed, m.natt);
	free(m.att);
}

void regions_memmig_recover(struct orch *o)
{
	_cleanup_free_ struct region_rec *rs = NULL;
	size_t n = 0;

	if (o->store->ops->region_list(o->store, &rs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(rs[i].state, "moving"))
			recover_one(o, &rs[i]);
}
