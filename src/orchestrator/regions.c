// SPDX-License-Identifier: MIT
/*
 * Shared regions (docs/api.md, "Shared regions"): memory on memory nodes
 * that several slots map at once, as an ivshmem-plain device each. This
 * slice has the mode `exclusive`: one writer (the lock holder) at a time,
 * every other attached slot reads what was last released.
 *
 * This file: the record and its JSON, the states of operations, grants
 * and calls to the compute agents, create, delete, list and show, and
 * what the sweep, the grant renewal and a restart ask of regions. The
 * multi-step operations (attach, detach, lock, unlock) are in
 * regions_flow.c.
 *
 * Create: the size is a power of two (QEMU's PCI BARs) and a whole number
 * of sections; every section lives on one memory node, the one with the
 * most free sections (its `home`), allocated for owner ORCH_REGION_OWNER |
 * the region's id and recorded as soon as it exists. Any failure frees
 * what was allocated and drops the record. Delete: refused while a slot
 * maps it; else every section is fenced (epoch + 1) and freed.
 */
#include "regions.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "migrate.h"

/* ---- the record ---------------------------------------------------------- */

void regions_store_error(struct http_resp *resp, int r)
{
	http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
}

int regions_get(struct orch *o, const char *name, struct region_rec *r, struct http_resp *resp)
{
	int e = o->store->ops->region_get(o->store, name, r);

	if (e == -ENOENT)
		http_resp_error(resp, 404, "not_found", "unknown region %s", name);
	else if (e < 0)
		regions_store_error(resp, e);
	return e;
}

json_t *regions_json(struct orch *o, const struct region_rec *r)
{
	_cleanup_free_ struct region_section_rec *secs = NULL;
	_cleanup_free_ struct region_attach_rec *att = NULL;
	size_t nsec = 0, natt = 0;
	json_t *jsec = json_array(), *jatt = json_array();
	char created[32];

	orch_fmt_time(r->created, created, sizeof(created));
	if (o->store->ops->region_section_list(o->store, r->id, 0, &secs, &nsec) == 0)
		for (size_t i = 0; i < nsec; i++)
			json_array_append_new(jsec, json_pack("{s:I, s:I, s:I, s:I}", "memnode",
							      (json_int_t)secs[i].memnode, "section",
							      (json_int_t)secs[i].section,
							      "generation",
							      (json_int_t)secs[i].generation, "epoch",
							      (json_int_t)secs[i].epoch));
	if (o->store->ops->attach_list(o->store, r->id, 0, &att, &natt) == 0)
		for (size_t i = 0; i < natt; i++) {
			json_t *a = json_pack("{s:s, s:I, s:o}", "slot", att[i].slot, "compute",
					      (json_int_t)att[i].compute, "pci",
					      att[i].pci[0] ? json_string(att[i].pci) : json_null());

			if (a && strcmp(att[i].state, "attached") != 0)
				json_object_set_new(a, "state", json_string(att[i].state));
			if (a && att[i].stale)
				json_object_set_new(a, "stale", json_true());
			json_array_append_new(jatt, a);
		}
	return json_pack("{s:s, s:s, s:I, s:s, s:I, s:o, s:o, s:o, s:I, s:s}", "name", r->name,
			 "mode", r->mode, "size_bytes", (json_int_t)r->size, "state", r->state,
			 "home", (json_int_t)r->home, "sections", jsec, "attachments", jatt,
			 "holder", r->holder ? json_string(r->holder_name) : json_null(), "epoch",
			 (json_int_t)r->epoch, "created", created);
}

/* ---- operations' states -------------------------------------------------- */

int regions_begin(struct orch *o, const char *name, struct region_rec *r,
		  struct http_resp *resp)
{
	struct store *st = o->store;
	int e = st->ops->begin(st);

	if (e < 0) {
		regions_store_error(resp, e);
		return e;
	}
	e = regions_get(o, name, r, resp);
	if (e < 0) {
		st->ops->rollback(st);
		return e;
	}
	if (strcmp(r->state, "ready") != 0) {
		st->ops->rollback(st);
		http_resp_error(resp, 409, "busy", "region %s is %s", name, r->state);
		return -EBUSY;
	}
	return 0;
}

int regions_begin_commit(struct orch *o, struct region_rec *r, const char *to, int64_t pending,
			 struct http_resp *resp)
{
	struct store *st = o->store;
	int e;

	snprintf(r->state, sizeof(r->state), "%s", to);
	r->pending = pending;
	e = st->ops->region_update(st, r);
	if (e == 0)
		e = st->ops->commit(st);
	else
		st->ops->rollback(st);
	if (e < 0)
		regions_store_error(resp, e);
	return e;
}

static int record(struct orch *o, const struct region_rec *r, const char *kind, uint64_t node,
		  const char *slot, const char *fmt, va_list ap)
{
	struct store *st = o->store;
	char msg[1024];
	int e;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	e = st->ops->begin(st);
	if (e < 0)
		return e;
	e = st->ops->region_update(st, r);
	if (e == 0 && kind)
		e = st->ops->event_add(st, kind, node, slot, msg);
	if (e < 0) {
		st->ops->rollback(st);
		log_warn("region %s: cannot record it: %s", r->name, strerror(-e));
		return e;
	}
	return st->ops->commit(st);
}

int regions_record(struct orch *o, const struct region_rec *r, const char *kind, uint64_t node,
		   const char *slot, const char *fmt, ...)
{
	va_list ap;
	int e;

	va_start(ap, fmt);
	e = record(o, r, kind, node, slot, fmt, ap);
	va_end(ap);
	return e;
}

int regions_finish(struct orch *o, struct region_rec *r, const char *state, const char *kind,
		   uint64_t node, const char *slot, const char *fmt, ...)
{
	va_list ap;
	int e;

	snprintf(r->state, sizeof(r->state), "%s", state);
	r->pending = 0;
	va_start(ap, fmt);
	e = record(o, r, kind, node, slot, fmt, ap);
	va_end(ap);
	return e;
}

/* ---- grants and the compute agents ---------------------------------------- */

bool regions_writes(const struct region_rec *r, int64_t slot_id)
{
	return strcmp(r->mode, "exclusive") != 0 || r->holder == slot_id;
}

json_t *regions_grants(struct orch *o, const struct region_rec *r, uint64_t holder, bool write,
		       uint64_t expiry, bool sections)
{
	_cleanup_free_ struct region_section_rec *secs = NULL;
	json_t *arr = json_array();
	struct node_rec mn = { 0 };
	size_t n = 0;

	if (!arr || o->store->ops->region_section_list(o->store, r->id, 0, &secs, &n) < 0 ||
	    n == 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct proto_grant g;
		char hex[GRANT_HEX_LEN + 1];
		json_t *x;

		if (mn.id != secs[i].memnode &&
		    o->store->ops->node_get(o->store, secs[i].memnode, &mn) < 0)
			goto fail;
		if (grant_mint(o->grant_key, mn.id, holder, secs[i].section, secs[i].generation,
			       r->epoch, PROTO_R_READ | (write ? PROTO_R_WRITE : 0), expiry, &g) < 0)
			goto fail;
		grant_to_hex(&g, hex);
		x = sections ? json_pack("{s:s, s:s, s:s}", "kind", "remote", "addr", mn.addr,
					 "grant", hex)
			     : json_string(hex);
		if (json_array_append_new(arr, x) < 0)
			goto fail;
	}
	return arr;
fail:
	json_decref(arr);
	return NULL;
}

int regions_call(struct orch *o, uint64_t compute, const char *slot, const char *region,
		 const char *op, const char *method, json_t *body, int timeout_ms, json_t **ret)
{
	struct node_rec c;
	char path[256];

	if (ret)
		*ret = NULL;
	if (o->store->ops->node_get(o->store, compute, &c) < 0)
		return -EHOSTUNREACH;
	snprintf(path, sizeof(path), "/v1/vms/%s/regions%s%s%s%s", slot, region ? "/" : "",
		 region ? region : "", op ? "/" : "", op ? op : "");
	return mig_call(&c, method, path, body, timeout_ms, ret);
}

enum region_view regions_ask(struct orch *o, uint64_t compute, const char *slot,
			     const char *region, char *pci, size_t pcilen)
{
	enum region_view v = REGION_VIEW_UNKNOWN;
	struct node_rec c;
	json_t *ans = NULL, *x;
	char path[128];
	size_t i;
	int status;

	if (o->store->ops->node_get(o->store, compute, &c) < 0)
		return REGION_VIEW_UNKNOWN;
	snprintf(path, sizeof(path), "/v1/vms/%s", slot);
	status = mig_call(&c, "GET", path, NULL, REGION_SHORT_TIMEOUT_MS, &ans);
	if (status == 404)
		v = REGION_VIEW_ABSENT;
	if (status == 200 && json_is_array(json_object_get(ans, "regions"))) {
		v = REGION_VIEW_ABSENT;
		json_array_foreach(json_object_get(ans, "regions"), i, x) {
			const char *id = json_string_value(json_object_get(x, "region"));

			if (!id || strcmp(id, region) != 0)
				continue;
			v = json_is_true(json_object_get(x, "writable")) ? REGION_VIEW_WRITE
									 : REGION_VIEW_READ;
			id = json_string_value(json_object_get(x, "pci"));
			if (pci)
				snprintf(pci, pcilen, "%s", id ? id : "");
		}
	}
	json_decref(ans);
	return v;
}

void regions_agent_error(struct http_resp *resp, int status, json_t *ans, const char *fmt, ...)
{
	const char *code = mig_code(ans);
	char msg[512], why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mig_why(status, ans, why, sizeof(why));
	if (status < 0)
		http_resp_error(resp, 503, "node_unreachable", "%s (%s)", msg, why);
	else if (status == 404)   /* no such VM there, or it does not map the region */
		http_resp_error(resp, 409, strcmp(code, "no_region") ? "not_running" : "not_attached",
				"%s (%s)", msg, why);
	else if (status == 409 || status == 503)
		http_resp_error(resp, status, code[0] ? code : status == 409 ? "conflict"
							   : "agent_unavailable",
				"%s (%s)", msg, why);
	else
		http_resp_error(resp, 502, "agent_refused", "%s (%s)", msg, why);
}

/* ---- create -------------------------------------------------------------- */

/* "size_bytes" and "mode" of a create: 0, or -EINVAL with 400 answered. */
static int parse_create(struct orch *o, json_t *body, struct region_rec *r, size_t *ret_n,
			struct http_resp *resp)
{
	const char *name = json_string_value(json_object_get(body, "name"));
	const char *mode = "exclusive";
	json_t *v = json_object_get(body, "size_bytes");
	uint64_t size;

	if (!name || !orch_valid_name(name)) {
		http_resp_error(resp, 400, "bad_request",
				"\"name\" must be 1 to 63 characters of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	if (!v || json_size(v, &size) < 0 || size == 0) {
		http_resp_error(resp, 400, "bad_size", "\"size_bytes\" must be a size");
		return -EINVAL;
	}
	if (size & (size - 1)) {
		http_resp_error(resp, 400, "bad_size",
				"\"size_bytes\" must be a power of two (a PCI BAR): %" PRIu64
				" is not", size);
		return -EINVAL;
	}
	if (size % o->section_size || size / o->section_size > ORCH_REGION_MAX_SECTIONS) {
		http_resp_error(resp, 400, "bad_size",
				"\"size_bytes\" must be a whole number (1 to %d) of %" PRIu64
				"-byte sections: %" PRIu64 " is not",
				ORCH_REGION_MAX_SECTIONS, o->section_size, size);
		return -EINVAL;
	}
	if ((v = json_object_get(body, "mode")) && !(mode = json_string_value(v))) {
		http_resp_error(resp, 400, "bad_mode", "\"mode\" must be a string");
		return -EINVAL;
	}
	if (strcmp(mode, "exclusive") != 0 && strcmp(mode, "strict") != 0 &&
	    strcmp(mode, "release") != 0) {
		http_resp_error(resp, 400, "bad_mode",
				"unknown mode \"%.32s\": \"exclusive\", \"strict\" or \"release\"",
				mode);
		return -EINVAL;
	}
	v = json_object_get(body, "home");
	if (v && (!json_is_integer(v) || json_integer_value(v) <= 0)) {
		http_resp_error(resp, 400, "bad_request",
				"\"home\" must be the id of a memory node");
		return -EINVAL;
	}
	memset(r, 0, sizeof(*r));
	r->home = v ? (uint64_t)json_integer_value(v) : 0;   /* 0: placement picks it */
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->mode, sizeof(r->mode), "%s", mode);
	snprintf(r->state, sizeof(r->state), "creating");
	r->size = size;
	r->created = (int64_t)time(NULL);
	*ret_n = (size_t)(size / o->section_size);
	return 0;
}

/*
 * The home of a new region of n sections: the one asked for (r->home), or
 * else the up, undrained memory node with the most free sections, if it
 * has n; reserved (sections_free - n) and the region recorded, under
 * place_mu. 0, -ENOENT (no such memory node), -ENOSPC or -EEXIST.
 */
static int place_region(struct orch *o, struct region_rec *r, size_t n, struct node_rec *ret)
{
	_cleanup_free_ struct node_rec *nodes = NULL;
	size_t nn = 0, best = SIZE_MAX;
	int e;

	pthread_mutex_lock(&o->place_mu);
	e = o->store->ops->node_list(o->store, "memnode", &nodes, &nn);
	if (e == 0 && r->home) {
		size_t i;

		for (i = 0; i < nn && nodes[i].id != r->home; i++)
			;
		if (i == nn)
			e = -ENOENT;
	}
	for (size_t i = 0; e == 0 && i < nn; i++)
		if ((!r->home || nodes[i].id == r->home) &&
		    !strcmp(nodes[i].state, "up") && !nodes[i].drained &&
		    nodes[i].sections_free >= (int64_t)n &&
		    (best == SIZE_MAX || nodes[i].sections_free > nodes[best].sections_free))
			best = i;
	if (e == 0 && best == SIZE_MAX)
		e = -ENOSPC;
	if (e == 0) {
		*ret = nodes[best];
		r->home = ret->id;
		e = o->store->ops->region_insert(o->store, r);
	}
	if (e == 0)
		o->store->ops->node_adjust_free(o->store, ret->id, -(int64_t)n);
	pthread_mutex_unlock(&o->place_mu);
	return e;
}

/* {memnode, section, generation} of a region's section as a slot section (fence, free). */
static struct section_rec as_section(const struct region_section_rec *x)
{
	return (struct section_rec){ .remote = true, .memnode = x->memnode, .section = x->section,
				     .generation = x->generation, .epoch = x->epoch,
				     .hot_index = -1 };
}

/* Fence and free every recorded section of r, then drop its record with event `kind`. */
static int drop_region(struct orch *o, const struct region_rec *r, const char *kind,
		       const char *why)
{
	_cleanup_free_ struct region_section_rec *secs = NULL;
	struct store *st = o->store;
	size_t n = 0;
	int e;

	e = st->ops->region_section_list(st, r->id, 0, &secs, &n);
	for (size_t i = 0; e == 0 && i < n; i++) {
		struct section_rec x = as_section(&secs[i]);

		slots_free_remote(o, &x);    /* fenced at epoch + 1, freed (or reported) */
	}
	if (e == 0)
		e = st->ops->begin(st);
	if (e < 0)
		return e;
	e = st->ops->region_delete(st, r->id);
	if (e == 0)
		e = st->ops->event_add(st, kind, r->home, NULL, why);
	if (e < 0) {
		st->ops->rollback(st);
		return e;
	}
	return st->ops->commit(st);
}

void regions_create(struct orch *o, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "name", "size_bytes", "mode", "home", NULL };
	struct store *st = o->store;
	struct region_rec r;
	struct node_rec home;
	char why[256];
	size_t n = 0, i, unused = 0;
	json_t *body;
	int e = 0;

	body = http_json_args(req, resp, keys);
	if (!body)
		return;
	if (parse_create(o, body, &r, &n, resp) < 0)
		goto out;
	e = place_region(o, &r, n, &home);
	if (e == -EEXIST) {
		http_resp_error(resp, 409, "exists", "region %s exists", r.name);
		goto out;
	}
	if (e == -ENOENT) {
		http_resp_error(resp, 404, "not_found", "no memory node %" PRIu64, r.home);
		goto out;
	}
	if (e == -ENOSPC) {
		http_resp_error(resp, 409, "capacity",
				"no memory node that is up and not drained has %zu free sections "
				"(all of a region's sections live on one node)%s", n,
				r.home ? ", of the one asked for" : "");
		goto out;
	}
	if (e < 0) {
		regions_store_error(resp, e);
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct region_section_rec x = { .region_id = r.id, .idx = (int64_t)i,
						.memnode = home.id };

		e = mnpool_alloc(o->mnpool, &home, ORCH_REGION_OWNER | (uint64_t)r.id, &x.section,
				 &x.generation);
		if (e < 0) {
			log_info("region %s: memory node %s (%s) could not allocate: %s", r.name,
				 home.name, home.addr, strerror(-e));
			if (e == -ENOSPC)   /* the node is the truth: full until it says otherwise */
				st->ops->node_set_free(st, home.id, 0);
			unused = n - i;
			break;
		}
		e = st->ops->region_section_add(st, &x);
		if (e < 0) {
			struct section_rec s = as_section(&x);

			slots_free_remote(o, &s);
			unused = n - i - 1;
			break;
		}
	}
	if (e < 0) {
		/* Reservations not used go back; what was allocated is freed. */
		st->ops->node_adjust_free(st, home.id, (int64_t)unused);
		snprintf(why, sizeof(why), "region %s not created: memory node %s: %s", r.name,
			 home.name, strerror(-e));
		drop_region(o, &r, "region_create_failed", why);
		http_resp_error(resp, e == -ENOSPC ? 409 : 503,
				e == -ENOSPC ? "capacity" : "node_unreachable", "%s", why);
		goto out;
	}
	e = regions_finish(o, &r, "ready", "region_created", home.id, NULL,
			   "region %s: %zu section%s (%" PRIu64 " bytes, %s) on memory node %s",
			   r.name, n, n == 1 ? "" : "s", r.size, r.mode, home.name);
	if (e < 0) {
		regions_store_error(resp, e);
		goto out;
	}
	log_info("region %s created: %zu sections on %s", r.name, n, home.name);
	http_resp_json(resp, 201, regions_json(o, &r));
out:
	json_decref(body);
}

/* ---- list, show, delete --------------------------------------------------- */

void regions_list(struct orch *o, struct http_resp *resp)
{
	_cleanup_free_ struct region_rec *rs = NULL;
	size_t n = 0;
	json_t *arr;
	int e = o->store->ops->region_list(o->store, &rs, &n);

	if (e < 0) {
		regions_store_error(resp, e);
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, regions_json(o, &rs[i]));
	http_resp_json(resp, 200, json_pack("{s:o}", "regions", arr));
}

void regions_show(struct orch *o, const char *name, struct http_resp *resp)
{
	struct region_rec r;

	if (regions_get(o, name, &r, resp) == 0)
		http_resp_json(resp, 200, regions_json(o, &r));
}

void regions_delete(struct orch *o, const char *name, struct http_resp *resp)
{
	_cleanup_free_ struct region_attach_rec *att = NULL;
	struct region_rec r;
	char why[256];
	size_t n = 0;
	int e;

	if (regions_begin(o, name, &r, resp) < 0)
		return;
	e = o->store->ops->attach_list(o->store, r.id, 0, &att, &n);
	if (e < 0) {
		orch_refuse(o, resp, 500, "internal", "store: %s", strerror(-e));
		return;
	}
	if (n) {
		orch_refuse(o, resp, 409, "region_attached",
			    "region %s is attached to slot %s%s: detach it first", name,
			    att[0].slot, n > 1 ? " and others" : "");
		return;
	}
	if (regions_begin_commit(o, &r, "deleting", 0, resp) < 0)
		return;
	snprintf(why, sizeof(why), "region %s deleted", r.name);
	e = drop_region(o, &r, "region_deleted", why);
	if (e < 0) {
		/* It stays `deleting` (its sections are gone): a restart drops the record. */
		regions_store_error(resp, e);
		return;
	}
	log_info("region %s deleted", r.name);
	http_resp_text(resp, 204, "application/json", NULL);
}

/* ---- the sweep, renewal, restart ----------------------------------------- */

bool regions_orphan(struct orch *o, const struct node_rec *n, uint64_t owner, uint32_t sec,
		    uint32_t gen)
{
	_cleanup_free_ struct region_rec *rs = NULL;
	_cleanup_free_ struct region_section_rec *secs = NULL;
	int64_t id = (int64_t)(owner & ~ORCH_REGION_OWNER);
	size_t nr = 0, ns = 0;

	if (o->store->ops->region_list(o->store, &rs, &nr) < 0)
		return false;
	for (size_t i = 0; i < nr; i++) {
		if (rs[i].id != id)
			continue;
		/* Being created, deleted or moved (regions_memmig.c): that operation decides. */
		if (!strcmp(rs[i].state, "creating") || !strcmp(rs[i].state, "deleting") ||
		    !strcmp(rs[i].state, "moving"))
			return false;
		if (o->store->ops->region_section_list(o->store, id, n->id, &secs, &ns) < 0)
			return false;
		for (size_t k = 0; k < ns; k++)
			if (secs[k].section == sec && secs[k].generation == gen)
				return false;
		return true;
	}
	return true;   /* its region is gone */
}

void regions_renew(struct orch *o, const struct slot_rec *s, uint64_t expiry, json_t *grants)
{
	_cleanup_free_ struct region_attach_rec *att = NULL;
	size_t n = 0;

	if (o->store->ops->attach_list(o->store, 0, s->id, &att, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct region_rec r;
		json_t *g;

		/* A region in an operation: that operation mints the grants. */
		if (strcmp(att[i].state, "attached") != 0 ||
		    o->store->ops->region_get(o->store, att[i].region, &r) < 0 ||
		    strcmp(r.state, "ready") != 0)
			continue;
		g = regions_grants(o, &r, s->compute, regions_writes(&r, s->id), expiry, false);
		json_array_extend(grants, g);
		json_decref(g);
	}
}

/* An attachment caught in attach or detach by a restart: the agent says whether it maps it. */
static void recover_attachment(struct orch *o, const struct region_rec *r,
			       struct region_attach_rec *a)
{
	enum region_view v = regions_ask(o, a->compute, a->slot, r->name, a->pci, sizeof(a->pci));
	bool attaching = strcmp(a->state, "attaching") == 0;

	if (v == REGION_VIEW_ABSENT) {
		o->store->ops->attach_remove(o->store, r->id, a->slot_id);
		a->state[0] = '\0';         /* gone: recover_lock skips it */
		if (!attaching)
			slots_event(o, "region_detached", a->compute, a->slot,
				    "region %s detached from slot %s (settled at start)", r->name,
				    a->slot);
		return;
	}
	/* Mapped, or nobody can tell: attached (a later detach cleans up). */
	snprintf(a->state, sizeof(a->state), "attached");
	o->store->ops->attach_put(o->store, a);
	if (attaching && v != REGION_VIEW_UNKNOWN)
		slots_event(o, "region_attached", a->compute, a->slot,
			    "region %s attached to slot %s (settled at start)", r->name, a->slot);
}

/*
 * A lock, unlock or detach caught by a restart: the slot's agent says
 * whether it writes. att: the region's attachments (after
 * recover_attachment).
 */
static void recover_lock(struct orch *o, struct region_rec *r, struct region_attach_rec *att,
			 size_t n)
{
	for (size_t i = 0; i < n; i++) {
		enum region_view v;

		if (att[i].slot_id != r->pending || !att[i].state[0])
			continue;
		v = regions_ask(o, att[i].compute, att[i].slot, r->name, NULL, 0);
		if (!strcmp(r->state, "locking") && v == REGION_VIEW_WRITE) {
			r->holder = att[i].slot_id;
			snprintf(r->holder_name, sizeof(r->holder_name), "%s", att[i].slot);
			regions_record(o, r, "region_locked", att[i].compute, att[i].slot,
				       "region %s locked by slot %s (epoch %" PRIu32
				       ", settled at start)", r->name, att[i].slot, r->epoch);
		} else if (!strcmp(r->state, "unlocking") && r->holder == att[i].slot_id &&
			   (v == REGION_VIEW_READ || v == REGION_VIEW_ABSENT)) {
			r->holder = 0;
			regions_record(o, r, "region_unlocked", att[i].compute, att[i].slot,
				       "region %s unlocked by slot %s (settled at start)", r->name,
				       att[i].slot);
		}
	}
	/*
	 * A release done (now, or before the restart) may have been followed
	 * by no invalidation: every other slot is owed one (the monitor's
	 * upkeep delivers it; dropping clean pages is harmless).
	 */
	if ((!strcmp(r->state, "unlocking") || !strcmp(r->state, "detaching")) && !r->holder)
		for (size_t k = 0; k < n; k++)
			if (att[k].slot_id != r->pending && att[k].state[0] && !att[k].stale) {
				att[k].stale = true;
				o->store->ops->attach_put(o->store, &att[k]);
			}
}

void regions_recover(struct orch *o)
{
	_cleanup_free_ struct region_rec *rs = NULL;
	size_t n = 0;

	if (o->store->ops->region_list(o->store, &rs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ struct region_attach_rec *att = NULL;
		struct region_rec *r = &rs[i];
		char was[STORE_STATE_MAX], why[160];
		size_t na = 0;

		if (!strcmp(r->state, "ready"))
			continue;
		snprintf(was, sizeof(was), "%s", r->state);
		if (!strcmp(was, "creating") || !strcmp(was, "deleting")) {
			snprintf(why, sizeof(why), "region %s %s (an orchestrator restart ended its %s)",
				 r->name, was[0] == 'c' ? "not created" : "deleted", was);
			drop_region(o, r, was[0] == 'c' ? "region_create_failed" : "region_deleted",
				    why);
			log_warn("%s", why);
			continue;
		}
		if (o->store->ops->attach_list(o->store, r->id, 0, &att, &na) < 0)
			continue;
		for (size_t k = 0; k < na; k++)
			if (strcmp(att[k].state, "attached") != 0)
				recover_attachment(o, r, &att[k]);
		recover_lock(o, r, att, na);
		regions_finish(o, r, "ready", "region_recovered", r->home, NULL,
			       "region %s was %s when the orchestrator stopped: settled, holder %s",
			       r->name, was, r->holder ? r->holder_name : "none");
		log_warn("region %s was %s when the orchestrator stopped: settled", r->name, was);
	}
}
