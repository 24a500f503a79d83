// SPDX-License-Identifier: MIT
/*
 * Migration of a slot, both ways (docs/api.md, "Migration"): the VM moves
 * to another compute node while its memory stays (compute migration), or
 * its sections move to another memory node while the VM runs (memory
 * migration). Both drive the compute agents (docs/compute.md) from the
 * request thread and keep the slot in state `migrating` meanwhile, so a
 * second operation on it gets 409 busy.
 *
 * The operation in progress is written to the slot's `op` (JSON) before a
 * step that leaves something behind on a node, so that an orchestrator
 * restarted in the middle can settle it (migrate_recover): it asks the
 * compute nodes which one runs the VM, or which memory node the agent uses
 * for the section, makes the store say the same, and cleans up the rest.
 *
 * Compute migration: mint grants for the destination, create the VM there
 * with "incoming", ask the source to migrate to the destination's URI, wait
 * for the destination to run, then move the slot in one transaction and
 * forget the source's record. If the source answers an error the VM still
 * runs there (the agent guarantees it): the destination's leftovers are
 * deleted and the slot stays `running` on the source.
 *
 * Memory migration, per section: allocate on the target, mint the agent's
 * grant and the COPY grant, begin, COPY on the source memory node, commit,
 * record the section on the target, free it on the source. Any failure
 * before the record aborts the agent's migration and frees the target: the
 * section stays where it was, whole.
 */
#include "orch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

#define SHORT_TIMEOUT_MS 10000
#define ARRIVE_TIMEOUT_MS 60000         /* destination running after the source completed */
#define POLL_MS 5

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t jint_or(json_t *o, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* A member of an agent's answer, or null. */
static json_t *member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return v ? v : json_null();
}

/* POST/GET/DELETE with a JSON body (may be NULL); returns the status or -errno. */
static int agent_call(const struct node_rec *c, const char *method, const char *path,
		      json_t *body, int timeout_ms, json_t **ret)
{
	_cleanup_free_ char *text = NULL, *answer = NULL;
	int status;

	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return -ENOMEM;
	}
	status = cclient_call(c->http, method, path, text, timeout_ms, &answer);
	if (ret)
		*ret = status > 0 && answer ? json_loads(answer, 0, NULL) : NULL;
	return status;
}

/* The agent's error message (or the errno) for humans. */
static void agent_why(int status, json_t *ans, char *buf, size_t len)
{
	json_t *e = json_object_get(ans, "error");
	const char *m = json_string_value(json_object_get(e, "message"));

	if (status < 0)
		snprintf(buf, len, "no answer: %s", strerror(-status));
	else
		snprintf(buf, len, "HTTP %d: %s", status, m ? m : "(no message)");
}

static const char *agent_code(json_t *ans)
{
	const char *c = json_string_value(json_object_get(json_object_get(ans, "error"), "code"));

	return c ? c : "";
}

static void set_op(struct orch *o, struct slot_rec *s, json_t *op)
{
	char *t = op ? json_dumps(op, JSON_COMPACT) : NULL;

	snprintf(s->op, sizeof(s->op), "%s", t ? t : "");
	free(t);
	o->store->ops->slot_update(o->store, s);
}

/* The slot leaves `migrating`: state `state`, no operation recorded. */
static void finish(struct orch *o, struct slot_rec *s, const char *state)
{
	s->op[0] = '\0';
	slots_end_op(o, s, state);
}

static int parse_node_id(json_t *body, const char *key, bool required, uint64_t *ret,
			 struct http_resp *resp)
{
	json_t *v = json_object_get(body, key);

	if (!v && !required)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		http_resp_error(resp, 400, "bad_request", "\"%s\" must be a node id", key);
		return -EINVAL;
	}
	*ret = (uint64_t)json_integer_value(v);
	return 1;
}

/* Node `id` of kind `kind`: 404 if unknown, 400 if of another kind. */
static int get_node(struct orch *o, uint64_t id, const char *kind, struct node_rec *n,
		    struct http_resp *resp)
{
	int r = o->store->ops->node_get(o->store, id, n);

	if (r == -ENOENT) {
		http_resp_error(resp, 404, "not_found", "unknown node %" PRIu64, id);
		return r;
	}
	if (r < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		return r;
	}
	if (strcmp(n->kind, kind) != 0) {
		http_resp_error(resp, 400, "bad_request", "node %" PRIu64 " is a %s, not a %s", id,
				n->kind, kind);
		return -EINVAL;
	}
	return 0;
}

static json_t *sec_ref(uint64_t memnode, uint32_t sec, uint32_t gen)
{
	return json_pack("{s:I, s:I, s:I}", "memnode", (json_int_t)memnode, "section",
			 (json_int_t)sec, "generation", (json_int_t)gen);
}

/* In one transaction: the store's section nx->idx becomes nx, and an event. */
static int section_replace(struct orch *o, const struct section_rec *nx, const char *kind,
			  uint64_t node, const char *slot, const char *msg)
{
	struct store *st = o->store;
	int r = st->ops->begin(st);

	if (r < 0)
		return r;
	r = st->ops->section_remove(st, nx->slot_id, nx->idx);
	if (r == 0)
		r = st->ops->section_add(st, nx);
	if (r == 0)
		r = slots_event(o, kind, node, slot, "%s", msg);
	if (r == 0)
		return st->ops->commit(st);
	st->ops->rollback(st);
	return r;
}

/* ==== memory migration ==================================================== */

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
	status = agent_call(m->c, "POST", m->path, b, m->o->compute_timeout_ms, ret);
	json_decref(b);
	return status;
}

/*
 * Move one section. On success *ret_rep describes it and the store has the
 * section on `to`; on failure the section stays on `from`, the target is
 * freed, and the answer is set.
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
	uint64_t t0 = mono_ms(), tcopy;
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
		       (json_int_t)x->idx, "src", sec_ref(x->memnode, x->section, x->generation),
		       "dst", sec_ref(nx.memnode, dsec, dgen));
	set_op(o, m->s, op);
	json_decref(op);

	/* 1. begin: the agent writes back to both. */
	status = memmig_phase(m, "begin", x, dsec, dgen, &ans);
	if (status != 200) {
		agent_why(status, ans, why, sizeof(why));
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
	tcopy = mono_ms();
	r = grant_mint_epoch(&o->key, m->to->id, m->from->id, dsec, dgen, nx.epoch, PROTO_R_WRITE,
			     0, &cg);
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
	tcopy = mono_ms() - tcopy;

	/* 3. commit: re-send, fence, switch. Repeated once if it got no answer. */
	status = memmig_phase(m, "commit", x, dsec, dgen, &ans);
	if (status < 0) {
		json_decref(ans);
		ans = NULL;
		status = memmig_phase(m, "commit", x, dsec, dgen, &ans);
	}
	if (status != 200) {
		agent_why(status, ans, why, sizeof(why));
		http_resp_error(resp, status == 409 ? 409 : 503,
				status == 409 ? strcmp(agent_code(ans), "target_failed") == 0
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
	r = section_replace(o, &nx, "section_migrated", m->to->id, m->s->name, why);
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
			     sec_ref(x->memnode, x->section, x->generation), "to",
			     sec_ref(nx.memnode, dsec, dgen), "pages_copied", (json_int_t)cr.pages,
			     "copy_ms", (json_int_t)tcopy, "bytes_copied",
			     (json_int_t)(cr.pages * 4096), "pages_resent",
			     member(ans, "pages_resent"), "pages_dual",
			     member(ans, "pages_dual"), "pause_us",
			     member(ans, "pause_us"), "ms",
			     (json_int_t)(mono_ms() - t0));
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
	uint64_t fid = 0, tid = 0, t0 = mono_ms();
	int64_t only = -1, maxpause = 0, copied = 0;
	size_t n = 0, moved = 0, todo = 0;
	int r = 0;

	body = http_json_args(req, resp, keys);
	if (!body)
		return;
	if (parse_node_id(body, "from", true, &fid, resp) < 0 ||
	    parse_node_id(body, "to", true, &tid, resp) < 0)
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
	if (get_node(o, fid, "memnode", &from, resp) < 0 ||
	    get_node(o, tid, "memnode", &to, resp) < 0)
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
	r = o->store->ops->node_get(o->store, s.compute, &c);
	if (r == 0)
		r = o->store->ops->section_list(o->store, s.id, 0, &secs, &n);
	if (r < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		finish(o, &s, "running");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		todo += secs[i].remote && secs[i].memnode == fid &&
			(only < 0 || secs[i].idx == only);
	if (todo == 0) {
		if (only >= 0)
			http_resp_error(resp, 409, "conflict",
					"slot %s has no section %" PRId64 " on memory node %s", name,
					only, from.name);
		else
			http_resp_error(resp, 409, "conflict",
					"slot %s has no section on memory node %s", name, from.name);
		finish(o, &s, "running");
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
		maxpause = MAX(maxpause, jint_or(rep, "pause_us", 0));
		copied += jint_or(rep, "bytes_copied", 0);
		json_array_append_new(reps, rep);
	}
	finish(o, &s, "running");
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
				 (json_int_t)(mono_ms() - t0), "max_pause_us", (json_int_t)maxpause,
				 "bytes_copied", (json_int_t)copied));
out:
	json_decref(reps);
	json_decref(body);
}

/* ==== compute migration =================================================== */

/* "HOST:0" on the host part of a node's control address. */
static void listen_addr(const char *http, char *buf, size_t len)
{
	const char *colon = strrchr(http, ':');
	size_t hl = colon ? (size_t)(colon - http) : strlen(http);

	snprintf(buf, len, "%.*s:0", (int)hl, http);
}

/* Copy a DIMM's "gpa" and "slot" from the source's hot_sections entry of the same index. */
static void copy_dimm_place(json_t *x, json_t *src_hot, int64_t index)
{
	size_t i;
	json_t *e;

	json_array_foreach(src_hot, i, e)
		if (jint_or(e, "index", -1) == index && json_object_get(e, "gpa") &&
		    json_object_get(e, "slot")) {
			json_object_set(x, "gpa", json_object_get(e, "gpa"));
			json_object_set(x, "slot", json_object_get(e, "slot"));
			return;
		}
}

/*
 * The destination's VM body: same sections and hot sections, grants for
 * `dst`; each DIMM where the source has it (src_hot: the source agent's
 * hot_sections, may be NULL).
 */
static json_t *incoming_body(struct orch *o, const struct slot_rec *s,
			     const struct section_rec *secs, size_t n, const struct node_rec *dst,
			     json_t *src_hot)
{
	json_t *boot = json_array(), *hot = json_array(), *b;
	char listen[STORE_ADDR_MAX + 8];

	for (size_t i = 0; i < n; i++) {
		struct node_rec mn;
		json_t *x;

		if (!secs[i].remote) {
			x = json_pack("{s:s}", "kind", "local");
		} else if (o->store->ops->node_get(o->store, secs[i].memnode, &mn) == 0) {
			x = slots_remote_json(o, &mn, dst->id, secs[i].section,
					      secs[i].generation, secs[i].epoch);
		} else {
			x = NULL;
		}
		if (!x) {
			json_decref(boot);
			json_decref(hot);
			return NULL;
		}
		if (secs[i].hot_index < 0) {
			json_array_append_new(boot, x);
		} else {
			json_object_set_new(x, "index", json_integer(secs[i].hot_index));
			copy_dimm_place(x, src_hot, secs[i].hot_index);
			json_array_append_new(hot, x);
		}
	}
	listen_addr(dst->http, listen, sizeof(listen));
	b = json_pack("{s:s, s:I, s:o, s:s, s:i, s:{s:s}, s:o}", "name", s->name, "vcpus",
		      (json_int_t)s->vcpus, "sections", boot, "hotplug", s->hotplug,
		      "max_sections", ORCH_HOT_MAX_SECTIONS, "incoming", "listen", listen,
		      "hot_sections", hot);
	if (b && s->cache >= 0)
		json_object_set_new(b, "cache_bytes", json_integer(s->cache));
	return b;
}

/*
 * The VM's state on a compute node ("" when it has none or does not
 * answer). wait_ms > 0: the agent answers once the VM is running (or can
 * no longer get there), at most wait_ms later.
 */
static int vm_state_wait(const struct node_rec *c, const char *name, int wait_ms, char *buf,
			 size_t len, bool *ret_migrating)
{
	char path[160];
	json_t *ans = NULL;
	int status;

	if (wait_ms > 0)
		snprintf(path, sizeof(path), "/v1/vms/%s?wait=running&timeout_ms=%d", name, wait_ms);
	else
		snprintf(path, sizeof(path), "/v1/vms/%s", name);
	status = agent_call(c, "GET", path, NULL, SHORT_TIMEOUT_MS + MAX(wait_ms, 0), &ans);
	snprintf(buf, len, "%s",
		 status == 200 && json_string_value(json_object_get(ans, "state"))
			 ? json_string_value(json_object_get(ans, "state"))
			 : "");
	if (ret_migrating)
		*ret_migrating = json_is_true(json_object_get(ans, "migrating"));
	json_decref(ans);
	return status;
}

static int vm_state(const struct node_rec *c, const char *name, char *buf, size_t len,
		    bool *ret_migrating)
{
	return vm_state_wait(c, name, 0, buf, len, ret_migrating);
}

static void vm_delete(const struct node_rec *c, const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/vms/%s", name);
	agent_call(c, "DELETE", path, NULL, SHORT_TIMEOUT_MS, NULL);
}

/*
 * Wait until the destination runs the VM (or fails): 0, or -errno. The
 * agent holds each request until the state changes (up to 5 s), so the
 * arrival is seen at once without polling; the pause between requests only
 * matters for an agent that answers at once.
 */
static int wait_running(const struct node_rec *dst, const char *name)
{
	uint64_t end = mono_ms() + ARRIVE_TIMEOUT_MS;
	char st[STORE_STATE_MAX];

	for (;;) {
		uint64_t t = mono_ms();

		vm_state_wait(dst, name, 5000, st, sizeof(st), NULL);
		if (strcmp(st, "running") == 0)
			return 0;
		if (strcmp(st, "failed") == 0 || strcmp(st, "stopped") == 0)
			return -EIO;
		if (mono_ms() > end)
			return -ETIMEDOUT;
		if (mono_ms() - t < POLL_MS)
			usleep(POLL_MS * 1000);
	}
}

/* Checks before the slot becomes `migrating`: 0, or the answer is set. */
static int compute_checks(struct orch *o, const struct slot_rec *s, const struct node_rec *dst,
			  struct http_resp *resp)
{
	struct node_rec cur;

	if (s->compute == dst->id) {
		http_resp_error(resp, 409, "conflict", "slot %s already runs on compute node %s",
				s->name, dst->name);
		return -EINVAL;
	}
	if (strcmp(dst->state, "up") != 0 || dst->drained) {
		http_resp_error(resp, 409, "conflict", "compute node %s is %s", dst->name,
				dst->drained ? "drained" : dst->state);
		return -EINVAL;
	}
	/* vcpus_used comes with node_get, like for placement. */
	if (o->store->ops->node_get(o->store, dst->id, &cur) == 0 &&
	    cur.vcpus_used + s->vcpus > cur.vcpus) {
		http_resp_error(resp, 409, "capacity",
				"compute node %s has %" PRId64 " of %" PRId64
				" vCPUs free, slot %s needs %" PRId64,
				dst->name, MAX(cur.vcpus - cur.vcpus_used, (int64_t)0), cur.vcpus,
				s->name, s->vcpus);
		return -ENOSPC;
	}
	return 0;
}

/*
 * Every local section of the slot moves to a memory node before a compute
 * migration: only remote memory follows the VM (QEMU does not send shared
 * RAM). The source agent keeps the content and writes it to the new
 * section (compute.md, "evacuate"); its pre-copy flush completes that.
 * secs is updated. A section evacuated stays remote if a later one or
 * the migration fails. 0, or the answer is set.
 */
static int evacuate_local(struct orch *o, struct slot_rec *s, const struct node_rec *src,
			  struct section_rec *secs, size_t n, struct http_resp *resp)
{
	char path[160], why[512];
	int64_t boot = -1;
	size_t moved = 0;

	snprintf(path, sizeof(path), "/v1/vms/%s/sections/evacuate", s->name);
	for (size_t i = 0; i < n; i++) {
		struct section_rec nx = secs[i];
		struct node_rec mn;
		json_t *to, *body, *ans = NULL, *op;
		int r, status;

		boot += secs[i].hot_index < 0;
		if (secs[i].remote)
			continue;
		r = slots_alloc_section(o, s, &mn, &nx.section, &nx.generation, why, sizeof(why));
		if (r < 0) {
			http_resp_error(resp, r == -ENOSPC ? 409 : 503,
					r == -ENOSPC ? "capacity" : "node_unreachable",
					"slot %s: section %" PRId64 " is local and must move to a memory "
					"node first, but none can take it: %s", s->name, secs[i].idx, why);
			return r;
		}
		nx.remote = true;
		nx.memnode = mn.id;
		/* A restart from here on finds what to undo or record (recover_evacuate). */
		op = json_pack("{s:s, s:I, s:I, s:o}", "kind", "evacuate", "from",
			       (json_int_t)src->id, "index", (json_int_t)nx.idx, "dst",
			       sec_ref(mn.id, nx.section, nx.generation));
		set_op(o, s, op);
		json_decref(op);
		to = slots_remote_json(o, &mn, src->id, nx.section, nx.generation, nx.epoch);
		body = to ? json_pack("{s:I, s:o}", secs[i].hot_index < 0 ? "boot_index" : "hot_index",
				      (json_int_t)(secs[i].hot_index < 0 ? boot : secs[i].hot_index),
				      "to", to)
			  : NULL;
		status = body ? agent_call(src, "POST", path, body, o->compute_timeout_ms, &ans) : -ENOMEM;
		json_decref(body);
		if (status != 200) {
			agent_why(status, ans, why, sizeof(why));
			json_decref(ans);
			slots_free_remote(o, &nx);
			http_resp_error(resp, status == 409 ? 409 : 503,
					status == 409 ? "conflict" : "migration_failed",
					"slot %s: section %" PRId64 " is local and compute node %s could "
					"not move it to memory node %s (%s); the VM keeps running there",
					s->name, secs[i].idx, src->name, mn.name, why);
			return -EIO;
		}
		json_decref(ans);
		snprintf(why, sizeof(why),
			 "slot %s section %" PRId64 " moved from compute node %s's local memory "
			 "to memory node %s (section %" PRIu32 ")",
			 s->name, nx.idx, src->name, mn.name, nx.section);
		r = section_replace(o, &nx, "section_evacuated", mn.id, s->name, why);
		if (r < 0) {
			http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
			return r;
		}
		secs[i] = nx;
		moved++;
	}
	if (moved) {
		s->remote_percent = 100;
		log_info("slot %s: %zu local section%s moved to memory nodes", s->name, moved,
			 moved == 1 ? "" : "s");
	}
	return 0;
}

/*
 * Hand the source's hot pages to the destination, which fetches them
 * between faults. Best effort: without it the guest fetches on demand.
 */
static void prefetch_hot(const struct node_rec *dst, const char *name, json_t *mig)
{
	json_t *hot = json_object_get(mig, "hot"), *body;
	char path[160];
	int status;

	if (json_array_size(hot)) {
		snprintf(path, sizeof(path), "/v1/vms/%s/prefetch", name);
		body = json_pack("{s:O}", "hot", hot);
		status = body ? agent_call(dst, "POST", path, body, SHORT_TIMEOUT_MS, NULL) : -ENOMEM;
		json_decref(body);
		if (status != 202)
			log_info("slot %s: compute node %s did not take the hot pages (%d)", name,
				 dst->name, status);
	}
}

void migrate_compute(struct orch *o, const char *name, const struct http_req *req,
		     struct http_resp *resp)
{
	static const char *const keys[] = { "to", "prefetch", NULL };
	static const char *const states[] = { "running", NULL };
	struct store *st = o->store;
	_cleanup_free_ struct section_rec *secs = NULL;
	struct node_rec src, dst;
	bool prefetch = true, hot = false;
	struct slot_rec s;
	const char *uri;
	json_t *body, *vmb = NULL, *ans = NULL, *mig = NULL, *op;
	char why[512], path[160], vst[STORE_STATE_MAX];
	uint64_t tid = 0, t0 = mono_ms(), t_ready = 0, t_moved = 0, t_running = 0;
	size_t n = 0;
	int r, status;

	body = http_json_args(req, resp, keys);
	if (!body)
		return;
	if (parse_node_id(body, "to", true, &tid, resp) < 0)
		goto out;
	if (json_object_get(body, "prefetch")) {
		if (!json_is_boolean(json_object_get(body, "prefetch"))) {
			http_resp_error(resp, 400, "bad_request", "\"prefetch\" must be true or false");
			goto out;
		}
		prefetch = json_is_true(json_object_get(body, "prefetch"));
	}
	if (get_node(o, tid, "compute", &dst, resp) < 0 || slots_get_slot(o, name, &s, resp) < 0)
		goto out;
	if (strcmp(s.state, "running") == 0 && compute_checks(o, &s, &dst, resp) < 0)
		goto out;
	if (slots_begin_op(o, name, states, "migrating", &s, resp) < 0)
		goto out;
	r = st->ops->node_get(st, s.compute, &src);
	if (r == 0)
		r = st->ops->section_list(st, s.id, 0, &secs, &n);
	if (r < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		finish(o, &s, "running");
		goto out;
	}
	op = json_pack("{s:s, s:I, s:I}", "kind", "compute", "from", (json_int_t)src.id, "to",
		       (json_int_t)dst.id);
	set_op(o, &s, op);
	json_decref(op);
	slots_event(o, "migration_started", src.id, s.name,
		    "slot %s: moving from compute node %s to %s", s.name, src.name, dst.name);

	/* 0. Local memory goes to memory nodes first. */
	if (evacuate_local(o, &s, &src, secs, n, resp) < 0) {
		finish(o, &s, "running");
		goto out;
	}
	op = json_pack("{s:s, s:I, s:I}", "kind", "compute", "from", (json_int_t)src.id, "to",
		       (json_int_t)dst.id);
	set_op(o, &s, op);
	json_decref(op);

	/* 1. The destination waits for the VM. */
	/*
	 * Where the source's DIMMs are (best effort: without it, plugged in
	 * order). Only hot-plugged sections need it: no request otherwise.
	 */
	for (size_t i = 0; i < n; i++)
		hot |= secs[i].hot_index >= 0;
	snprintf(path, sizeof(path), "/v1/vms/%s", s.name);
	if (hot && agent_call(&src, "GET", path, NULL, SHORT_TIMEOUT_MS, &ans) != 200) {
		json_decref(ans);
		ans = NULL;
	}
	/* The destination's grants are of the next epoch (fence.c). */
	if (fence_advance(o, secs, n) == 0)
		vmb = incoming_body(o, &s, secs, n, &dst, json_object_get(ans, "hot_sections"));
	json_decref(ans);
	ans = NULL;
	if (!vmb) {
		http_resp_error(resp, 500, "internal", "cannot build the destination's request");
		finish(o, &s, "running");
		goto out;
	}
	status = agent_call(&dst, "POST", "/v1/vms", vmb, o->compute_timeout_ms, &ans);
	uri = json_string_value(json_object_get(ans, "migration_uri"));
	if ((status != 200 && status != 201) || !uri) {
		agent_why(status, ans, why, sizeof(why));
		vm_delete(&dst, s.name);
		finish(o, &s, "running");
		slots_event(o, "migration_failed", dst.id, s.name,
			    "slot %s: compute node %s could not receive it (%s); it runs on %s",
			    s.name, dst.name, why, src.name);
		http_resp_error(resp, status == 409 ? 409 : 503,
				status == 409 ? "conflict" : "migration_failed",
				"slot %s: compute node %s could not prepare to receive the VM (%s); "
				"the VM keeps running on %s",
				s.name, dst.name, why, src.name);
		goto out;
	}
	t_ready = mono_ms();
	slots_event(o, "migration_destination_ready", dst.id, s.name,
		    "slot %s: compute node %s listens on %s", s.name, dst.name, uri);

	/* 2. The source migrates (pre-copy flush, x-ignore-shared, switchover). */
	snprintf(path, sizeof(path), "/v1/vms/%s/migrate", s.name);
	json_decref(vmb);
	vmb = json_pack("{s:s, s:i}", "uri", uri, "timeout_ms", o->compute_timeout_ms);
	status = agent_call(&src, "POST", path, vmb, o->compute_timeout_ms + 30000, &mig);
	if (status != 200) {
		bool migrating = false;

		/* Where is the VM? The source knows. */
		vm_state(&src, s.name, vst, sizeof(vst), &migrating);
		if (strcmp(vst, "migrated") != 0) {
			agent_why(status, mig, why, sizeof(why));
			vm_delete(&dst, s.name);
			finish(o, &s, "running");
			slots_event(o, "migration_failed", src.id, s.name,
				    "slot %s: migration to %s failed (%s); it runs on %s", s.name,
				    dst.name, why, src.name);
			http_resp_error(resp, status == 409 ? 409 : 503,
					status == 409 ? strcmp(agent_code(mig),
							       "migration_refused") == 0
								? "migration_refused"
								: "conflict"
						      : "migration_failed",
					"slot %s: migration to compute node %s failed (%s); the VM "
					"keeps running on %s",
					s.name, dst.name, why, src.name);
			goto out;
		}
		log_warn("slot %s: the source answered %d but says the VM migrated", s.name,
			 status);
	}

	/* 3. The source is done for good: fence it (fence.c). The destination runs it. */
	fence_slot(o, &s);
	t_moved = mono_ms();
	r = wait_running(&dst, s.name);
	if (r < 0) {
		snprintf(s.reason, sizeof(s.reason),
			 "migrated from %s to %s but the destination did not start it: %s",
			 src.name, dst.name, strerror(-r));
		s.compute = dst.id;
		finish(o, &s, "failed");
		slots_event(o, "migration_failed", dst.id, s.name, "slot %s: %s", s.name,
			    s.reason);
		http_resp_error(resp, 503, "migration_failed", "slot %s: %s", s.name, s.reason);
		goto out;
	}

	/* 4. The slot moves, then the source forgets its record. */
	t_running = mono_ms();
	if (prefetch)
		prefetch_hot(&dst, s.name, mig);
	json_object_del(mig, "hot");
	s.compute = dst.id;
	s.op[0] = '\0';
	snprintf(s.state, sizeof(s.state), "running");
	r = st->ops->begin(st);
	if (r == 0) {
		r = st->ops->slot_update(st, &s);
		if (r == 0)
			r = slots_event(o, "migration_completed", dst.id, s.name,
					"slot %s moved from compute node %s to %s in %" PRIu64
					" ms (downtime %" PRId64 " ms)",
					s.name, src.name, dst.name, mono_ms() - t0,
					jint_or(mig, "downtime_ms", -1));
		if (r == 0)
			r = st->ops->commit(st);
		else
			st->ops->rollback(st);
	}
	if (r < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		goto out;
	}
	vm_delete(&src, s.name);
	log_info("slot %s moved from %s to %s", s.name, src.name, dst.name);
	http_resp_json(resp, 200,
		       json_pack("{s:o, s:I, s:I, s:I, s:O, s:{s:I, s:I, s:I, s:I}}", "slot",
				 slots_json(o, &s, true), "from", (json_int_t)src.id, "to",
				 (json_int_t)dst.id, "total_ms", (json_int_t)(mono_ms() - t0),
				 "migration", mig ? mig : json_null(), "phases_ms",
				 "prepare_destination", (json_int_t)(t_ready - t0), "migrate",
				 (json_int_t)(t_moved - t_ready), "wait_running",
				 (json_int_t)(t_running - t_moved), "finish",
				 (json_int_t)(mono_ms() - t_running)));
out:
	json_decref(mig);
	json_decref(ans);
	json_decref(vmb);
	json_decref(body);
}

/* ==== restart ============================================================= */

static void recover_compute(struct orch *o, struct slot_rec *s, json_t *op)
{
	struct node_rec src, dst;
	char sst[STORE_STATE_MAX] = "", dstate[STORE_STATE_MAX] = "";
	uint64_t sid = (uint64_t)jint_or(op, "from", 0), did = (uint64_t)jint_or(op, "to", 0);
	bool have_src = o->store->ops->node_get(o->store, sid, &src) == 0;
	bool have_dst = o->store->ops->node_get(o->store, did, &dst) == 0;

	if (have_src)
		vm_state(&src, s->name, sst, sizeof(sst), NULL);
	if (have_dst)
		vm_state(&dst, s->name, dstate, sizeof(dstate), NULL);
	if (strcmp(dstate, "running") == 0) {
		fence_slot(o, s);
		s->compute = did;
		snprintf(s->reason, sizeof(s->reason),
			 "a migration to %s was interrupted by an orchestrator restart; it "
			 "completed",
			 dst.name);
		if (have_src)
			vm_delete(&src, s->name);
		finish(o, s, "running");
	} else {
		if (have_dst && dstate[0])
			vm_delete(&dst, s->name);
		s->compute = sid;
		snprintf(s->reason, sizeof(s->reason),
			 "a migration was interrupted by an orchestrator restart; the VM is %s "
			 "on the source",
			 sst[0] ? sst : "unknown");
		/* running: fine; anything else: reconciliation decides. */
		finish(o, s, strcmp(sst, "running") == 0 ? "running" : "lost");
	}
}

/* The agent's grant of slot section `x` (boot or hot-plugged), or -ENOENT. */
static int agent_section(const struct node_rec *c, const struct section_rec *x,
			 struct proto_grant *ret)
{
	char path[128];
	json_t *ans = NULL, *e, *arr;
	size_t i;
	int status, r = -ENOENT;

	snprintf(path, sizeof(path), "/v1/vms/%s", x->slot);
	status = agent_call(c, "GET", path, NULL, SHORT_TIMEOUT_MS, &ans);
	if (status != 200) {
		json_decref(ans);
		return status < 0 ? status : -ENOENT;
	}
	if (x->hot_index < 0) {
		/* Boot sections are the first ones, in index order. */
		e = json_array_get(json_object_get(ans, "sections"), (size_t)x->idx);
	} else {
		e = NULL;
		arr = json_object_get(ans, "hot_sections");
		json_array_foreach(arr, i, e)
			if (jint_or(e, "index", -1) == x->hot_index)
				break;
		if (i == json_array_size(arr))
			e = NULL;
	}
	if (e && json_string_value(json_object_get(e, "grant")))
		r = grant_from_hex(json_string_value(json_object_get(e, "grant")), ret);
	json_decref(ans);
	return r;
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
		if (secs[i].idx == jint_or(op, "index", -1))
			*x = secs[i];
	snprintf(x->slot, sizeof(x->slot), "%s", s->name);
	*nx = *x;
	nx->slot_id = s->id;
	nx->memnode = (uint64_t)jint_or(dst, "memnode", 0);
	nx->section = (uint32_t)jint_or(dst, "section", 0);
	nx->generation = (uint32_t)jint_or(dst, "generation", 0);
	nx->epoch = x->epoch + 1;
	return 0;
}

static void recover_memory(struct orch *o, struct slot_rec *s, json_t *op)
{
	struct node_rec c, from, to;
	struct section_rec x, nx;
	struct proto_grant g;
	json_t *src = json_object_get(op, "src");
	int r;

	if (op_sections(o, s, op, &c, &x, &nx) < 0)
		goto done;
	if (!x.remote || x.memnode != (uint64_t)jint_or(src, "memnode", 0) ||
	    x.section != (uint32_t)jint_or(src, "section", 0)) {
		/* The store already moved it (or never had it): the target is ours only if absent. */
		if (!(x.memnode == nx.memnode && x.section == nx.section))
			slots_free_remote(o, &nx);
		goto done;
	}
	r = agent_section(&c, &x, &g);
	if (r == 0 && g.memnode_id == nx.memnode && g.section == nx.section &&
	    g.generation == nx.generation) {
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
	} else if (r == 0 || r == -ENOENT) {
		/* Not committed: abort (the agent may still have the migration), free the target. */
		if (o->store->ops->node_get(o->store, x.memnode, &from) == 0 &&
		    o->store->ops->node_get(o->store, nx.memnode, &to) == 0) {
			struct memmig_ctx m = { .o = o, .s = s, .c = &c, .from = &from, .to = &to };

			snprintf(m.path, sizeof(m.path), "/v1/vms/%s/sections/migrate", s->name);
			memmig_phase(&m, "abort", &x, nx.section, nx.generation, NULL);
		}
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
		finish(o, s, "lost");
		return;
	}
done:
	finish(o, s, "running");
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
	struct proto_grant g;
	struct node_rec c;
	int r;

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
	r = agent_section(&c, &x, &g);
	if (r == 0 && g.memnode_id == nx.memnode && g.section == nx.section &&
	    g.generation == nx.generation) {
		char msg[256];

		snprintf(msg, sizeof(msg),
			 "slot %s section %" PRId64 " found on memory node %" PRIu64
			 " after a restart", s->name, x.idx, nx.memnode);
		(void)section_replace(o, &nx, "section_evacuated", nx.memnode, s->name, msg);
		snprintf(s->reason, sizeof(s->reason),
			 "an evacuation was interrupted by an orchestrator restart; section "
			 "%" PRId64 " had moved to memory node %" PRIu64, x.idx, nx.memnode);
	} else if (r == 0 || r == -ENOENT) {
		slots_free_remote(o, &nx);
		snprintf(s->reason, sizeof(s->reason),
			 "an evacuation was interrupted by an orchestrator restart; section "
			 "%" PRId64 " stays local", x.idx);
	} else {
		snprintf(s->reason, sizeof(s->reason),
			 "an evacuation was interrupted by an orchestrator restart and compute "
			 "node %s does not answer: section %" PRId64 " may be on memory node %"
			 PRIu64 " section %" PRIu32, c.name, x.idx, nx.memnode, nx.section);
		finish(o, s, "lost");
		return;
	}
done:
	finish(o, s, "running");
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
		finish(o, s, "running");
	}
	slots_event(o, "slot_recovered", s->compute, s->name, "slot %s: %s (now %s)", s->name,
		    s->reason, s->state);
	log_warn("slot %s: %s (now %s)", s->name, s->reason, s->state);
	json_decref(op);
}
