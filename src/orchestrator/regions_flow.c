// SPDX-License-Identifier: MIT
/*
 * The multi-step operations on shared regions (docs/api.md, "Shared
 * regions"), each through the compute agents of the slots concerned, in
 * the region's operation state (regions.h) so that they run one at a time:
 *
 *   attach   the attachment is recorded (`attaching`) before the agent is
 *            asked, so a slot delete or a restart meanwhile sees it; grants
 *            name the slot's compute node as holder, read-only (read-write
 *            for the lock holder).
 *   lock     a try-lock: the epoch is raised durably, every section is
 *            fenced at it (a FENCE with a grant of the orchestrator's
 *            own), and only then are read-write grants of the new epoch
 *            minted for the agent's `acquire`. A failure after the raise
 *            does not give the lock; the raised epoch is harmless.
 *   unlock   the holder's agent `release`s (write-protects, writes every
 *            dirty page back and waits for the memory node) with read-only
 *            grants; only once it answered is the lock free. Then every
 *            other attached slot is told to `invalidate` its cached pages;
 *            one that is not reached is marked stale and the monitor tries
 *            again (regions_upkeep).
 *   detach   a holder releases first; then the agent unplugs the device.
 *
 * An agent that does not answer is asked afterwards what it did (GET
 * /v1/vms/NAME, regions_ask): "ask, don't guess". A slot whose VM is gone
 * (`failed`, `lost`) is detached and unlocked without its agent: the lock
 * then moves on only after the epoch was raised and the sections fenced,
 * so nothing that VM may still send can land. In mode release, where
 * every slot writes, the others get grants of the new epoch before the
 * fence (fence_out).
 */
#include "regions_flow.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "migrate.h"
#include "regions.h"
#include "regions_migrate.h"
#include "regions_strays.h"

/* {"slot": "S"}: the body (NULL once answered 400) and S. */
static json_t *slot_body(const struct http_req *req, struct http_resp *resp, const char **ret)
{
	static const char *const keys[] = { "slot", NULL };
	json_t *body = http_json_args(req, resp, keys);

	if (body && !(*ret = json_string_value(json_object_get(body, "slot")))) {
		http_resp_error(resp, 400, "bad_request", "\"slot\" (a slot name) is required");
		json_decref(body);
		return NULL;
	}
	return body;
}

/*
 * In the transaction of regions_begin: slot `name` and its attachment to r
 * (a->slot_id 0: none). 0, or answered and rolled back.
 */
static int tx_slot(struct orch *o, const struct region_rec *r, const char *name,
		   struct slot_rec *s, struct region_attach_rec *a, struct http_resp *resp)
{
	_cleanup_free_ struct region_attach_rec *att = NULL;
	size_t n = 0;
	int e = o->store->ops->slot_get(o->store, name, s);

	if (e == -ENOENT)
		return orch_refuse(o, resp, 404, "not_found", "unknown slot %s", name);
	if (e == 0)
		e = o->store->ops->attach_list(o->store, r->id, s->id, &att, &n);
	if (e < 0)
		return orch_refuse(o, resp, 500, "internal", "store: %s", strerror(-e));
	if (n)
		*a = att[0];
	else
		memset(a, 0, sizeof(*a));
	return 0;
}

/*
 * What every operation on a region for a slot begins with: the body
 * {"slot": "S"}, the region's operation begun (regions_begin: the
 * transaction stays open), the slot and its attachment. 0, or answered.
 */
static int flow_begin(struct orch *o, const char *name, const struct http_req *req,
		      struct http_resp *resp, struct region_rec *r, struct slot_rec *s,
		      struct region_attach_rec *a)
{
	const char *sname = NULL;
	json_t *body = slot_body(req, resp, &sname);
	int e = body ? regions_begin(o, name, r, resp) : -EINVAL;

	if (e == 0)
		e = tx_slot(o, r, sname, s, a, resp);
	json_decref(body);
	return e;
}

/* The slot's VM is gone: failed, or its compute node lost it. */
static bool vm_gone(const char *state)
{
	return !strcmp(state, "failed") || !strcmp(state, "lost");
}

/* The answer: the region, with what the operation's steps reported (info, stolen). */
static void answer(struct orch *o, const struct region_rec *r, json_t *info,
		   struct http_resp *resp)
{
	json_t *j = regions_json(o, r);

	if (j && info)
		json_object_update(j, info);
	json_decref(info);
	http_resp_json(resp, 200, j);
}

/* The end of an operation: the region back to `ready`; the answer, if the step (e) did well. */
static void flow_end(struct orch *o, struct region_rec *r, int e, json_t *info,
		     struct http_resp *resp)
{
	regions_finish(o, r, "ready", NULL, 0, NULL, "-");
	if (e < 0)
		json_decref(info);
	else
		answer(o, r, info, resp);
}

/* Numbers of an agent's answer kept for ours (key: "release", "acquire", ...). */
static void keep(json_t *info, const char *key, json_t *ans)
{
	json_t *x = json_object();
	const char *k;
	json_t *v;

	json_object_foreach(ans, k, v)
		if (json_is_number(v))
			json_object_set(x, k, v);
	json_object_set_new(info, key, x);
}

/*
 * Raise r's epoch (durably) and fence every section at it. The sections
 * that could not be fenced, with an event for each; -errno when the epoch
 * could not be recorded.
 */
static int fence_all(struct orch *o, struct region_rec *r)
{
	int e;

	r->epoch++;
	e = o->store->ops->region_update(o->store, r);
	return e < 0 ? e : regions_fence(o, r);
}

/* Read-write grants of r's epoch to attached slot a's agent (POST /v1/vms/NAME/grants). */
static int regrant(struct orch *o, const struct region_rec *r, const struct region_attach_rec *a,
		   char *why, size_t whylen)
{
	json_t *g = regions_grants(o, r, a->compute, true, orch_grant_expiry(o), false);
	json_t *body = g ? json_pack("{s:o}", "grants", g) : NULL;
	_cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	_cleanup_free_ char *ans = NULL;
	char path[STORE_NAME_MAX + 32];
	struct node_rec c;
	int st;

	json_decref(body);
	if (!text) {
		snprintf(why, whylen, "cannot mint its grants");
		return -ENOMEM;
	}
	st = o->store->ops->node_get(o->store, a->compute, &c);
	if (st < 0) {
		snprintf(why, whylen, "its compute node %" PRIu64 " is not known", a->compute);
		return st;
	}
	snprintf(path, sizeof(path), "/v1/vms/%s/grants", a->slot);
	st = cclient_call(c.id, c.http, "POST", path, text, REGION_SHORT_TIMEOUT_MS, &ans);
	if (st == 200)
		return 0;
	snprintf(why, whylen, "%s", st < 0 ? strerror(-st) : ans ? ans : "no answer");
	return st < 0 ? st : -EIO;
}

/*
 * Mode release: slot s, whose VM is gone, still holds write grants, and a
 * release of it that comes late would land. Raise r's epoch (durably),
 * give every other attached slot read-write grants of it, and only then
 * fence each section at it: nothing the gone VM may still send lands. A
 * release of another slot's that meets the fence before its new grants
 * fails and is sent again, applied once (docs/sharing.md, "Sent again,
 * applied once"); a slot that is not reached now gets the grants at the
 * next renewal. 0, or -errno when the epoch could not be recorded.
 */
static int fence_out(struct orch *o, struct region_rec *r, const struct slot_rec *s,
		     json_t *info)
{
	_cleanup_free_ struct region_attach_rec *att = NULL;
	json_t *done = json_array(), *missed = json_array();
	size_t n = 0;
	int e;

	r->epoch++;
	e = o->store->ops->region_update(o->store, r);
	if (e == 0)
		e = o->store->ops->attach_list(o->store, r->id, 0, &att, &n);
	for (size_t i = 0; e == 0 && i < n; i++) {
		char why[256];

		if (att[i].slot_id == s->id)
			continue;
		if (regrant(o, r, &att[i], why, sizeof(why)) == 0) {
			json_array_append_new(done, json_string(att[i].slot));
			continue;
		}
		json_array_append_new(missed, json_string(att[i].slot));
		log_warn("region %s: slot %s did not take grants of epoch %" PRIu32 ": %s (its "
			 "releases are refused until the next renewal)", r->name, att[i].slot,
			 r->epoch, why);
	}
	if (e == 0) {
		int failed = regions_fence(o, r);

		json_object_set_new(info, "fenced_epoch", json_integer(r->epoch));
		json_object_set_new(info, "not_fenced_sections", json_integer(MAX(failed, 0)));
	}
	json_object_set_new(info, "regranted", done);
	json_object_set_new(info, "not_regranted", missed);
	return e;
}

/* Tell every attached slot but `except` to drop its cached pages of r (only the stale ones). */
static void invalidate(struct orch *o, const struct region_rec *r, int64_t except,
		       bool only_stale, json_t *info)
{
	_cleanup_free_ struct region_attach_rec *att = NULL;
	json_t *done = json_array(), *missed = json_array();
	size_t n = 0;

	if (o->store->ops->attach_list(o->store, r->id, 0, &att, &n) < 0)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		struct region_attach_rec *a = &att[i];
		json_t *body, *ans = NULL;
		bool was = a->stale;
		int status;

		if (a->slot_id == except || (only_stale && !a->stale))
			continue;
		body = json_object();
		status = regions_call(o, a->compute, a->slot, r->name, "invalidate", "POST", body,
				      REGION_SHORT_TIMEOUT_MS, &ans);
		json_decref(body);
		a->stale = status != 200;
		json_array_append_new(a->stale ? missed : done, json_string(a->slot));
		if (a->stale) {
			char why[256];

			mig_why(status, ans, why, sizeof(why));
			log_warn("region %s: slot %s did not drop its cached pages: %s", r->name,
				 a->slot, why);
			if (!was)
				slots_event(o, "region_invalidate_failed", a->compute, a->slot,
					    "region %s: slot %s may read what was there before the "
					    "last release until it is reached (%s)",
					    r->name, a->slot, why);
		}
		json_decref(ans);
		if (a->stale != was)
			o->store->ops->attach_put(o->store, a);
	}
	if (info) {
		json_object_set_new(info, "invalidated", done);
		json_object_set_new(info, "not_invalidated", missed);
	} else {
		json_decref(done);
		json_decref(missed);
	}
}

/*
 * Holder s releases r (release with read-only grants). Only once its
 * agent answered 200, or says it no longer writes, is the lock free; a
 * VM that is gone (or no longer maps r) is fenced out instead. Then the
 * other slots are invalidated. 0, or -errno with resp answered (the lock
 * stays with s).
 */
static int release(struct orch *o, struct region_rec *r, const struct slot_rec *s, bool gone,
		   json_t *info, struct http_resp *resp)
{
	json_t *g = regions_grants(o, r, s->compute, false, orch_grant_expiry(o), false);
	json_t *body = g ? json_pack("{s:o}", "grants", g) : NULL, *ans = NULL;
	enum region_view v = REGION_VIEW_UNKNOWN;
	bool forced = false;
	int status;

	if (!body) {
		http_resp_error(resp, 500, "internal", "cannot mint the grants of region %s", r->name);
		return -ENOMEM;
	}
	status = regions_call(o, s->compute, s->name, r->name, "release", "POST", body,
			      o->compute_timeout_ms, &ans);
	json_decref(body);
	if (status < 0 || status == 404)
		v = regions_ask(o, s->compute, s->name, r->name, NULL, 0);
	if (status != 200 && v != REGION_VIEW_READ) {
		forced = v == REGION_VIEW_ABSENT || (gone && v == REGION_VIEW_UNKNOWN);
		if (!forced) {
			regions_agent_error(resp, status, ans,
					    "slot %s did not release region %s: the lock stays with it",
					    s->name, r->name);
			json_decref(ans);
			return -EIO;
		}
		/* Its VM is gone: nothing it may still send lands after this. */
		if (fence_all(o, r) < 0) {
			json_decref(ans);
			http_resp_error(resp, 500, "internal", "store: cannot raise the epoch");
			return -EIO;
		}
	}
	if (status == 200)
		keep(info, "release", ans);
	json_decref(ans);
	r->holder = 0;
	log_info("region %s unlocked by slot %s%s", r->name, s->name, forced ? " (forced)" : "");
	regions_record(o, r, "region_unlocked", s->compute, s->name,
		       "region %s unlocked by slot %s%s", r->name, s->name,
		       forced ? " (its VM is gone: fenced at the next epoch; what it wrote since "
				"its last release is lost)" : "");
	if (forced)
		json_object_set_new(info, "forced", json_true());
	invalidate(o, r, s->id, false, info);
	return 0;
}

/* Remove attachment a, with event region_detached, in one transaction. */
static int forget_attachment(struct orch *o, const struct region_rec *r,
			     const struct region_attach_rec *a)
{
	struct store *st = o->store;
	char msg[256];
	int e = st->ops->begin(st);

	if (e < 0)
		return e;
	snprintf(msg, sizeof(msg), "region %s detached from slot %s", r->name, a->slot);
	e = st->ops->attach_remove(st, r->id, a->slot_id);
	if (e == 0)
		e = st->ops->event_add(st, "region_detached", a->compute, a->slot, msg);
	if (e < 0) {
		st->ops->rollback(st);
		return e;
	}
	return st->ops->commit(st);
}

/*
 * Detach slot s (attachment a) from r, r in state `detaching`: a holder
 * releases first; then the agent unplugs the device. 0, or -errno with
 * resp answered (still attached; the lock released or not, as answered).
 */
static int detach(struct orch *o, struct region_rec *r, const struct slot_rec *s,
		  const struct region_attach_rec *a, bool gone, json_t *info,
		  struct http_resp *resp)
{
	json_t *ans = NULL;
	bool ok;
	int status, e;

	if (r->holder == s->id && release(o, r, s, gone, info, resp) < 0)
		return -EIO;
	/* A gone VM's node is asked briefly: it is detached whatever it answers. */
	status = regions_call(o, s->compute, s->name, r->name, NULL, "DELETE", NULL,
			      gone ? REGION_SHORT_TIMEOUT_MS : o->compute_timeout_ms, &ans);
	ok = status == 200 || status == 404 || gone;
	if (!ok && status < 0)
		ok = regions_ask(o, s->compute, s->name, r->name, NULL, 0) == REGION_VIEW_ABSENT;
	if (!ok) {
		regions_agent_error(resp, status, ans,
				    "compute node %" PRIu64 " did not detach region %s from slot "
				    "%s: it stays attached", s->compute, r->name, s->name);
		json_decref(ans);
		return -EIO;
	}
	if (status == 200 && json_is_integer(json_object_get(ans, "flushed_pages")))
		json_object_set(info, "flushed_pages", json_object_get(ans, "flushed_pages"));
	json_decref(ans);
	if (gone && !strcmp(r->mode, "release") && fence_out(o, r, s, info) < 0) {
		http_resp_error(resp, 500, "internal", "store: cannot raise the epoch");
		return -EIO;
	}
	e = forget_attachment(o, r, a);
	if (e < 0) {
		regions_store_error(resp, e);
		return e;
	}
	log_info("region %s detached from slot %s", r->name, s->name);
	return 0;
}

/* ---- attach -------------------------------------------------------------- */


void regions_attach(struct orch *o, const char *name, const struct http_req *req,
		    struct http_resp *resp)
{
	struct region_attach_rec a;
	struct region_rec r;
	struct slot_rec s;
	json_t *req_body = NULL, *ans = NULL, *secs;
	enum region_view v;
	bool write;
	int status;

	if (flow_begin(o, name, req, resp, &r, &s, &a) < 0)
		return;
	if (a.slot_id) {
		orch_refuse(o, resp, 409, "already_attached", "slot %s maps region %s already",
			    s.name, r.name);
		goto out;
	}
	if (strcmp(s.state, "running") != 0) {
		orch_refuse(o, resp, 409, "not_running", "slot %s is %s, not running", s.name,
			    s.state);
		goto out;
	}
	a = (struct region_attach_rec){ .region_id = r.id, .slot_id = s.id, .compute = s.compute };
	snprintf(a.state, sizeof(a.state), "attaching");
	snprintf(a.slot, sizeof(a.slot), "%s", s.name);
	if (o->store->ops->attach_put(o->store, &a) < 0) {
		orch_refuse(o, resp, 500, "internal", "store: cannot record the attachment");
		goto out;
	}
	if (regions_begin_commit(o, &r, "attaching", s.id, resp) < 0)
		goto out;

	write = regions_writes(&r, s.id);
	secs = regions_grants(o, &r, s.compute, write, orch_grant_expiry(o), true);
	req_body = secs ? json_pack("{s:s, s:s, s:I, s:o, s:b}", "region", r.name, "mode", r.mode,
				    "size", (json_int_t)r.size, "sections", secs, "writable", write)
			: NULL;
	status = req_body ? regions_call(o, s.compute, s.name, NULL, NULL, "POST", req_body,
					 o->compute_timeout_ms, &ans)
			  : -ENOMEM;
	if (status == 200 || status == 201) {
		snprintf(a.pci, sizeof(a.pci), "%s",
			 json_string_value(json_object_get(ans, "pci")) ? json_string_value(
				 json_object_get(ans, "pci")) : "");
	} else if (status < 0 && status != -ENOMEM) {
		/* No answer: did it attach? Nobody can tell: kept, a detach cleans up. */
		v = regions_ask(o, s.compute, s.name, r.name, a.pci, sizeof(a.pci));
		if (v == REGION_VIEW_UNKNOWN) {
			snprintf(a.state, sizeof(a.state), "attached");
			o->store->ops->attach_put(o->store, &a);
			regions_finish(o, &r, "ready", NULL, 0, NULL, "-");
			regions_agent_error(resp, status, NULL,
					    "compute node %" PRIu64 " did not answer the attach of "
					    "region %s to slot %s, nor can it say whether it did: the "
					    "attachment is kept (detach it to clean up)",
					    s.compute, r.name, s.name);
			goto out;
		}
		status = v == REGION_VIEW_ABSENT ? status : 201;
	}
	if (status != 200 && status != 201) {
		o->store->ops->attach_remove(o->store, r.id, s.id);
		regions_finish(o, &r, "ready", NULL, 0, NULL, "-");
		regions_agent_error(resp, status, ans, "slot %s could not attach region %s",
				    s.name, r.name);
		goto out;
	}
	snprintf(a.state, sizeof(a.state), "attached");
	o->store->ops->attach_put(o->store, &a);
	regions_finish(o, &r, "ready", "region_attached", s.compute, s.name,
		       "region %s attached to slot %s on compute node %" PRIu64 " at %s (%s)",
		       r.name, s.name, s.compute, a.pci[0] ? a.pci : "an unknown PCI address",
		       !strcmp(r.mode, "strict") ? "strict: coherent page by page"
		       : !strcmp(r.mode, "release") ? "release: published at its releases"
		       : write ? "read-write: it holds the lock" : "read-only");
	log_info("region %s attached to slot %s at %s", r.name, s.name, a.pci);
	answer(o, &r, NULL, resp);
out:
	json_decref(ans);
	json_decref(req_body);
}

/* ---- detach -------------------------------------------------------------- */

void regions_detach(struct orch *o, const char *name, const struct http_req *req,
		    struct http_resp *resp)
{
	struct region_attach_rec a;
	struct region_rec r;
	struct slot_rec s;
	json_t *info;
	int e;

	if (flow_begin(o, name, req, resp, &r, &s, &a) < 0)
		return;
	if (!a.slot_id) {
		orch_refuse(o, resp, 409, "not_attached", "slot %s does not map region %s",
			    s.name, r.name);
		return;
	}
	snprintf(a.state, sizeof(a.state), "detaching");
	if (o->store->ops->attach_put(o->store, &a) < 0) {
		orch_refuse(o, resp, 500, "internal", "store: cannot record the detach");
		return;
	}
	if (regions_begin_commit(o, &r, "detaching", s.id, resp) < 0)
		return;
	info = json_object();
	e = detach(o, &r, &s, &a, vm_gone(s.state), info, resp);
	if (e < 0) {
		snprintf(a.state, sizeof(a.state), "attached");
		o->store->ops->attach_put(o->store, &a);
	}
	flow_end(o, &r, e, info, resp);
}

/* ---- lock, unlock --------------------------------------------------------- */

/*
 * Lock and unlock of a region that has no lock: 409 mode_strict or
 * mode_release (answered, rolled back): true.
 */
static bool refuse_strict(struct orch *o, const struct region_rec *r, struct http_resp *resp)
{
	if (!strcmp(r->mode, "strict"))
		orch_refuse(o, resp, 409, "mode_strict", "region %s is strict: every slot that "
			    "maps it writes, page by page; there is no lock", r->name);
	else if (!strcmp(r->mode, "release"))
		orch_refuse(o, resp, 409, "mode_release", "region %s is in mode release: every "
			    "slot that maps it writes and publishes at its releases; there is no "
			    "lock (use release and acquire)", r->name);
	return strcmp(r->mode, "exclusive") != 0;
}

void regions_lock(struct orch *o, const char *name, const struct http_req *req,
		  struct http_resp *resp)
{
	struct region_attach_rec a;
	struct region_rec r;
	struct slot_rec s;
	json_t *g, *acq = NULL, *ans = NULL, *info;
	int e, status;

	if (flow_begin(o, name, req, resp, &r, &s, &a) < 0)
		return;
	if (refuse_strict(o, &r, resp))
		return;
	if (!a.slot_id) {
		orch_refuse(o, resp, 409, "not_attached",
			    "slot %s does not map region %s: attach it first", s.name, r.name);
		goto out;
	}
	if (r.holder == s.id) {       /* idempotent for the holder */
		o->store->ops->rollback(o->store);
		answer(o, &r, NULL, resp);
		goto out;
	}
	if (r.holder) {
		orch_refuse(o, resp, 409, "region_locked", "region %s is locked by slot %s",
			    r.name, r.holder_name);
		goto out;
	}
	if (strcmp(s.state, "running") != 0) {
		orch_refuse(o, resp, 409, "not_running", "slot %s is %s, not running", s.name,
			    s.state);
		goto out;
	}
	if (regions_begin_commit(o, &r, "locking", s.id, resp) < 0)
		goto out;

	/* 1. A new epoch, durable, and every section fenced at it. */
	e = fence_all(o, &r);
	if (e != 0) {
		regions_finish(o, &r, "ready", NULL, 0, NULL, "-");
		if (e < 0)
			regions_store_error(resp, e);
		else
			http_resp_error(resp, 503, "node_unreachable",
					"region %s: %d section%s could not be fenced at epoch %" PRIu32
					": the lock is not given (the raised epoch is harmless)",
					r.name, e, e == 1 ? "" : "s", r.epoch);
		goto out;
	}
	/* 2. Read-write grants of that epoch: the agent takes the region. */
	g = regions_grants(o, &r, s.compute, true, orch_grant_expiry(o), false);
	acq = g ? json_pack("{s:o}", "grants", g) : NULL;
	status = acq ? regions_call(o, s.compute, s.name, r.name, "acquire", "POST", acq,
				    o->compute_timeout_ms, &ans)
		     : -ENOMEM;
	if (status < 0 && status != -ENOMEM &&
	    regions_ask(o, s.compute, s.name, r.name, NULL, 0) == REGION_VIEW_WRITE)
		status = 200;   /* its answer was lost: it did take it */
	if (status != 200) {
		regions_finish(o, &r, "ready", "region_lock_failed", s.compute, s.name,
			       "region %s: slot %s did not take it at epoch %" PRIu32
			       "; the lock is not given", r.name, s.name, r.epoch);
		regions_agent_error(resp, status, ans,
				    "slot %s did not take region %s at epoch %" PRIu32
				    ": the lock is not given (the raised epoch is harmless)",
				    s.name, r.name, r.epoch);
		goto out;
	}
	info = json_object();
	keep(info, "acquire", ans);
	r.holder = s.id;
	snprintf(r.holder_name, sizeof(r.holder_name), "%s", s.name);
	if (a.stale) {                /* acquire dropped its cached pages */
		a.stale = false;
		o->store->ops->attach_put(o->store, &a);
	}
	regions_finish(o, &r, "ready", "region_locked", s.compute, s.name,
		       "region %s locked by slot %s (epoch %" PRIu32 ")", r.name, s.name, r.epoch);
	log_info("region %s locked by slot %s (epoch %" PRIu32 ")", r.name, s.name, r.epoch);
	answer(o, &r, info, resp);
out:
	json_decref(ans);
	json_decref(acq);
}

void regions_unlock(struct orch *o, const char *name, const struct http_req *req,
		    struct http_resp *resp)
{
	struct region_attach_rec a;
	struct region_rec r;
	struct slot_rec s;
	json_t *info;

	if (flow_begin(o, name, req, resp, &r, &s, &a) < 0)
		return;
	if (refuse_strict(o, &r, resp))
		return;
	if (r.holder != s.id) {
		orch_refuse(o, resp, 409, "not_holder", "slot %s does not hold region %s (%s%s)",
			    s.name, r.name, r.holder ? "slot " : "nobody does",
			    r.holder ? r.holder_name : "");
		return;
	}
	if (regions_begin_commit(o, &r, "unlocking", s.id, resp) < 0)
		return;
	info = json_object();
	flow_end(o, &r, release(o, &r, &s, vm_gone(s.state), info, resp), info, resp);
}

/* ---- what slots and the monitor ask ---------------------------------------- */

int regions_slot_deleting(struct orch *o, const struct slot_rec *s, const char *was,
			  struct http_resp *resp)
{
	_cleanup_free_ struct region_attach_rec *att = NULL;
	size_t n = 0;
	int e = o->store->ops->attach_list(o->store, 0, s->id, &att, &n);

	if (e < 0) {
		regions_store_error(resp, e);
		return e;
	}
	for (size_t i = 0; i < n; i++) {
		struct region_attach_rec a;
		struct region_rec r;
		struct slot_rec cur;
		json_t *info;

		if (regions_begin(o, att[i].region, &r, resp) < 0 ||
		    tx_slot(o, &r, s->name, &cur, &a, resp) < 0)
			return -EBUSY;
		if (!a.slot_id) {            /* detached meanwhile */
			o->store->ops->rollback(o->store);
			continue;
		}
		snprintf(a.state, sizeof(a.state), "detaching");
		if (o->store->ops->attach_put(o->store, &a) < 0) {
			orch_refuse(o, resp, 500, "internal", "store: cannot record the detach");
			return -EIO;
		}
		if (regions_begin_commit(o, &r, "detaching", s->id, resp) < 0)
			return -EIO;
		info = json_object();
		e = detach(o, &r, s, &a, vm_gone(was), info, resp);
		json_decref(info);
		if (e < 0) {
			snprintf(a.state, sizeof(a.state), "attached");
			o->store->ops->attach_put(o->store, &a);
		}
		regions_finish(o, &r, "ready", NULL, 0, NULL, "-");
		if (e < 0)
			return e;
	}
	return 0;
}

/*
 * The lock's lease: a holder whose VM is gone (its compute node missed
 * heartbeats for the node timeout, or the VM failed) loses the lock as an
 * unlock of it would take it (fenced at a new epoch: what it wrote since
 * its last release is lost; event region_unlocked, "forced"), and the
 * other slots go on: their locks, from the API or from their guests, are
 * given again.
 */
static void unlock_gone_holders(struct orch *o)
{
	_cleanup_free_ struct region_rec *regs = NULL;
	size_t n = 0;

	if (o->store->ops->region_list(o->store, &regs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct http_resp resp = { 0 };
		struct region_attach_rec a;
		struct region_rec r;
		struct slot_rec s;
		json_t *info;

		if (!regs[i].holder || strcmp(regs[i].state, "ready") != 0 ||
		    o->store->ops->slot_get(o->store, regs[i].holder_name, &s) < 0 ||
		    !vm_gone(s.state))
			continue;
		if (regions_begin(o, regs[i].name, &r, &resp) < 0) {
			free(resp.body);
			continue;
		}
		/* Again inside the region's operation: it may have changed meanwhile. */
		if (tx_slot(o, &r, regs[i].holder_name, &s, &a, &resp) < 0 || r.holder != s.id ||
		    !vm_gone(s.state) || regions_begin_commit(o, &r, "unlocking", s.id, &resp) < 0) {
			if (!resp.body)
				o->store->ops->rollback(o->store);
			free(resp.body);
			continue;
		}
		log_warn("region %s: its holder %s is %s: the lock is taken back", r.name, s.name,
			 s.state);
		info = json_object();
		flow_end(o, &r, release(o, &r, &s, true, info, &resp), info, &resp);
		free(resp.body);
	}
}

void regions_upkeep(struct orch *o)
{
	_cleanup_free_ struct region_attach_rec *att = NULL;
	int64_t last = 0;
	size_t n = 0;

	unlock_gone_holders(o);
	regions_strays_upkeep(o);
	if (o->store->ops->attach_list(o->store, 0, 0, &att, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct http_resp resp = { 0 };
		struct region_rec r;

		struct node_rec c;

		/*
		 * Each region with a stale attachment whose compute node is up,
		 * once (the list is ordered by region): the monitor must not wait
		 * for nodes that are down.
		 */
		if (!att[i].stale || att[i].region_id == last ||
		    o->store->ops->node_get(o->store, att[i].compute, &c) < 0 ||
		    strcmp(c.state, "up") != 0)
			continue;
		last = att[i].region_id;
		if (regions_begin(o, att[i].region, &r, &resp) == 0 &&
		    regions_begin_commit(o, &r, "unlocking", 0, &resp) == 0) {
			invalidate(o, &r, 0, true, NULL);
			regions_finish(o, &r, "ready", NULL, 0, NULL, "-");
		}
		free(resp.body);
	}
}

void regions_node_lock(struct orch *o, uint64_t node, const char *name, bool lock,
		       const struct http_req *req, struct http_resp *resp)
{
	const char *slot = NULL;
	struct slot_rec s;
	json_t *body = slot_body(req, resp, &slot);

	if (!body)
		return;
	if (o->store->ops->slot_get(o->store, slot, &s) < 0 || s.compute != node) {
		http_resp_error(resp, 403, "forbidden", "slot %s does not run on compute node %"
				PRIu64 ": a node locks regions for its own slots only", slot, node);
	} else if (lock) {
		regions_lock(o, name, req, resp);
	} else {
		regions_unlock(o, name, req, resp);
	}
	json_decref(body);
}
