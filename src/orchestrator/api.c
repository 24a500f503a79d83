// SPDX-License-Identifier: MIT
/*
 * The orchestrator's REST API (docs/api.md): routing, X-Request-Id
 * idempotency, per-route metrics, and the small read-only endpoints
 * (/healthz, /metrics, /v1/sections); /v1/events is in events.c, the web
 * view (/ui/) in ui.c, /v1/slots/NAME/pager in slotpager.c (all three
 * through struct orch_web). Nodes and slots are in nodes.c, slots.c and
 * migrate*.c, shared regions in regions*.c, volumes (and the disks of
 * slots, /v1/slots/NAME/disks) in volumes*.c.
 *
 * Every request is answered with the X-Request-Id it was handled under
 * (the client's, or a generated one). A mutating request (POST, DELETE)
 * that carries one is recorded in the store before it runs; a repeat gets
 * the recorded answer (replayed, not run again), 409 busy while the first
 * still runs, and 409 conflict if the id was used for another method or
 * path. Answers of 500 and above are not kept: nothing was done, so a
 * retry should act.
 */
#include "orch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "net.h"

#define REQUEST_ID_MAX 128

static const char *const route_names[RT__MAX] = {
	[RT_NODES_REGISTER] = "nodes_register",
	[RT_NODES_HEARTBEAT] = "nodes_heartbeat",
	[RT_NODES_LIST] = "nodes_list",
	[RT_NODES_GET] = "nodes_get",
	[RT_NODES_DRAIN] = "nodes_drain",
	[RT_NODES_REVOKE] = "nodes_revoke",
	[RT_SLOTS_CREATE] = "slots_create",
	[RT_SLOTS_LIST] = "slots_list",
	[RT_SLOTS_GET] = "slots_get",
	[RT_SLOTS_RESIZE] = "slots_resize",
	[RT_SLOTS_DELETE] = "slots_delete",
	[RT_SLOTS_CONSOLE] = "slots_console",
	[RT_SLOTS_GUEST] = "slots_guest",
	[RT_SLOTS_MIGRATE] = "slots_migrate",
	[RT_SLOTS_MIGRATE_MEMORY] = "slots_migrate_memory",
	[RT_SLOTS_PAGER] = "slots_pager",
	[RT_REGIONS_CREATE] = "regions_create",
	[RT_REGIONS_LIST] = "regions_list",
	[RT_REGIONS_GET] = "regions_get",
	[RT_REGIONS_DELETE] = "regions_delete",
	[RT_REGIONS_ATTACH] = "regions_attach",
	[RT_REGIONS_DETACH] = "regions_detach",
	[RT_REGIONS_LOCK] = "regions_lock",
	[RT_REGIONS_UNLOCK] = "regions_unlock",
	[RT_REGIONS_SYNC] = "regions_sync",
	[RT_REGIONS_MIGRATE] = "regions_migrate",
	[RT_VOLUMES_CREATE] = "volumes_create",
	[RT_VOLUMES_LIST] = "volumes_list",
	[RT_VOLUMES_GET] = "volumes_get",
	[RT_VOLUMES_RESIZE] = "volumes_resize",
	[RT_VOLUMES_DELETE] = "volumes_delete",
	[RT_VOLUMES_GRANT] = "volumes_grant",
	[RT_VOLUMES_ADOPT] = "volumes_adopt",
	[RT_IMAGES_IMPORT] = "images_import",
	[RT_IMAGES_LIST] = "images_list",
	[RT_IMAGES_GET] = "images_get",
	[RT_IMAGES_UPLOAD] = "images_upload",
	[RT_IMAGES_COMMIT] = "images_commit",
	[RT_IMAGES_FILE] = "images_file",
	[RT_IMAGES_DELETE] = "images_delete",
	[RT_DISKS_LIST] = "disks_list",
	[RT_DISKS_ATTACH] = "disks_attach",
	[RT_DISKS_DETACH] = "disks_detach",
	[RT_SECTIONS] = "sections",
	[RT_EVENTS] = "events",
	[RT_UI] = "ui",
	[RT_HEALTHZ] = "healthz",
	[RT_METRICS] = "metrics",
	[RT_OTHER] = "other",
};

/* ---- read-only endpoints ------------------------------------------------- */

static void h_healthz(struct orch *o, struct http_resp *resp)
{
	_cleanup_free_ struct node_rec *nodes = NULL;
	_cleanup_free_ struct slot_rec *slots = NULL;
	size_t nn = 0, ns = 0;
	int r;

	r = o->store->ops->node_list(o->store, NULL, &nodes, &nn);
	if (r == 0)
		r = o->store->ops->slot_list(o->store, 0, 0, &slots, &ns);
	if (r < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		return;
	}
	http_resp_json(resp, 200, json_pack("{s:s, s:I, s:I, s:I}", "status", "ok", "node_id",
					     (json_int_t)o->node_id, "nodes", (json_int_t)nn,
					     "slots", (json_int_t)ns));
}

static void h_metrics(struct orch *o, struct http_resp *resp)
{
	static const char *const kinds[] = { "memnode", "compute", "devnode" };
	static const char *const nstates[] = { "up", "down", "drained" };
	static const char *const sstates[] = { "creating", "running",    "resizing",
					       "deleting", "migrating",  "unresolved",
					       "failed",   "lost",       "degraded" };
	_cleanup_free_ struct node_rec *nodes = NULL;
	_cleanup_free_ struct slot_rec *slots = NULL;
	size_t nn = 0, ns = 0;
	int64_t nsec = 0;
	struct strbuf sb;
	char labels[128];
	char *out;

	strbuf_init(&sb);
	for (int i = 0; i < RT__MAX; i++) {
		static const char *const classes[] = { "1xx", "1xx", "2xx", "3xx", "4xx", "5xx" };

		for (int c = 2; c < 6; c++) {
			uint64_t v = atomic_load(&o->routes[i].by_class[c]);

			if (!v)
				continue;
			snprintf(labels, sizeof(labels), "route=\"%s\",code=\"%s\"", route_names[i],
				 classes[c]);
			metrics_counter(&sb, "disagg_orch_requests_total",
					sb.len ? NULL : "API requests by route and status class",
					labels, v);
		}
	}
	for (int i = 0, first = 1; i < RT__MAX; i++) {
		if (!atomic_load(&o->routes[i].latency.count))
			continue;
		snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[i]);
		metrics_hist(&sb, "disagg_orch_request_seconds",
			     first ? "API request latency by route" : NULL, labels,
			     &o->routes[i].latency);
		first = 0;
	}
	if (o->store->ops->node_list(o->store, NULL, &nodes, &nn) == 0) {
		for (size_t k = 0; k < ARRAY_SIZE(kinds); k++)
			for (size_t s = 0; s < ARRAY_SIZE(nstates); s++) {
				uint64_t cnt = 0;

				for (size_t i = 0; i < nn; i++) {
					const char *st = strcmp(nodes[i].state, "up") ? nodes[i].state
						       : nodes[i].drained ? "drained" : "up";

					cnt += !strcmp(nodes[i].kind, kinds[k]) &&
					       !strcmp(st, nstates[s]);
				}
				snprintf(labels, sizeof(labels), "kind=\"%s\",state=\"%s\"",
					 kinds[k], nstates[s]);
				metrics_gauge(&sb, "disagg_orch_nodes",
					      k == 0 && s == 0 ? "Nodes by kind and state" : NULL,
					      labels, (double)cnt);
			}
	}
	if (o->store->ops->slot_list(o->store, 0, 0, &slots, &ns) == 0) {
		for (size_t s = 0; s < ARRAY_SIZE(sstates); s++) {
			uint64_t cnt = 0;

			for (size_t i = 0; i < ns; i++)
				cnt += !strcmp(slots[i].state, sstates[s]);
			snprintf(labels, sizeof(labels), "state=\"%s\"", sstates[s]);
			metrics_gauge(&sb, "disagg_orch_slots", s == 0 ? "Slots by state" : NULL,
				      labels, (double)cnt);
		}
	}
	if (o->store->ops->section_count(o->store, &nsec) == 0)
		metrics_gauge(&sb, "disagg_orch_sections_allocated",
			      "Remote sections allocated on memory nodes for slots", "",
			      (double)nsec);
	if (o->regions)
		o->regions->metrics(o, &sb);
	if (o->volumes)
		o->volumes->metrics(o, &sb);
	apiauth_metrics(&sb, "orchestrator");
	out = strbuf_steal(&sb);
	strbuf_free(&sb);
	if (!out) {
		http_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	http_resp_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8", out);
}

/* GET /v1/sections?node=ID&slot=NAME&region=NAME: slots' and regions' remote sections. */
static void h_sections(struct orch *o, const struct http_req *req, struct http_resp *resp)
{
	_cleanup_free_ struct section_rec *secs = NULL;
	const char *slot = http_req_query(req, "slot"), *region = http_req_query(req, "region");
	int64_t node, slot_id = 0;
	struct slot_rec s;
	size_t n = 0;
	json_t *arr;
	int r = 0;

	if (http_req_query_num(req, "node", 0, INT64_MAX, &node) < 0) {
		http_resp_error(resp, 400, "bad_request", "node must be a node id");
		return;
	}
	if (slot && region) {
		http_resp_error(resp, 400, "bad_request",
				"slot and region each name an owner: give one of them");
		return;
	}
	if (slot) {
		r = o->store->ops->slot_get(o->store, slot, &s);
		if (r == -ENOENT) {
			/* No such slot: none of its sections. */
			http_resp_json(resp, 200, json_pack("{s:[]}", "sections"));
			return;
		}
		slot_id = r < 0 ? 0 : s.id;
	}
	arr = json_array();
	if (!region && r >= 0 && o->store->rep) {
		/* With replicas (positions 1.. say which, "replica"): the same, and them. */
		_cleanup_free_ struct replica_rec *reps = NULL;

		r = o->store->rep->replica_list(o->store, slot_id, (uint64_t)node, &reps, &n);
		for (size_t i = 0; r >= 0 && i < n; i++) {
			json_t *e = json_pack("{s:I, s:I, s:I, s:s, s:I}", "memnode",
					      (json_int_t)reps[i].memnode, "section",
					      (json_int_t)reps[i].section, "generation",
					      (json_int_t)reps[i].generation, "slot", reps[i].slot,
					      "index", (json_int_t)reps[i].idx);

			if (e && reps[i].replica)
				json_object_set_new(e, "replica", json_integer(reps[i].replica));
			json_array_append_new(arr, e);
		}
	} else if (!region && r >= 0) {
		/* Slots' sections: slot_id 0 lists every slot's. */
		r = o->store->ops->section_list(o->store, slot_id, (uint64_t)node, &secs, &n);
		for (size_t i = 0; r >= 0 && i < n; i++) {
			if (!secs[i].remote)
				continue;
			json_array_append_new(arr, json_pack("{s:I, s:I, s:I, s:s, s:I}", "memnode",
							     (json_int_t)secs[i].memnode, "section",
							     (json_int_t)secs[i].section, "generation",
							     (json_int_t)secs[i].generation, "slot",
							     secs[i].slot, "index",
							     (json_int_t)secs[i].idx));
		}
	}
	if (r >= 0 && !slot && o->regions)
		r = o->regions->sections(o, region, (uint64_t)node, arr);
	if (r < 0) {
		json_decref(arr);
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		return;
	}
	http_resp_json(resp, 200, json_pack("{s:o}", "sections", arr));
}

/* ---- routing ------------------------------------------------------------- */

static bool is_method(const struct http_req *req, const char *m)
{
	return strcmp(req->method, m) == 0;
}

static void method_not_allowed(struct http_resp *resp, const char *allow)
{
	http_resp_error(resp, 405, "method_not_allowed", "use %s on this path", allow);
}

/* Parse a node id path segment of length n. */
static int parse_id(const char *s, size_t n, uint64_t *ret)
{
	uint64_t v = 0;

	if (n == 0 || n > 19)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*ret = v;
	return 0;
}

static enum orch_route route_nodes(struct orch *o, const char *rest, const struct http_req *req,
				   struct http_resp *resp, uint64_t as_node)
{
	size_t n = strcspn(rest, "/");
	const char *tail = rest + n;
	uint64_t id;

	if (*rest == '\0') {
		if (is_method(req, "GET"))
			nodes_list(o, resp);
		else
			method_not_allowed(resp, "GET");
		return RT_NODES_LIST;
	}
	if (strcmp(rest, "register") == 0) {
		if (is_method(req, "POST"))
			nodes_register(o, req, resp, as_node);
		else
			method_not_allowed(resp, "POST");
		return RT_NODES_REGISTER;
	}
	if (parse_id(rest, n, &id) < 0) {
		http_resp_error(resp, 404, "not_found", "no such path %s", req->path);
		return RT_OTHER;
	}
	if (*tail == '\0') {
		if (is_method(req, "GET"))
			nodes_get(o, id, resp);
		else
			method_not_allowed(resp, "GET");
		return RT_NODES_GET;
	}
	if (strcmp(tail, "/heartbeat") == 0) {
		if (is_method(req, "POST"))
			nodes_heartbeat(o, id, req, resp);
		else
			method_not_allowed(resp, "POST");
		return RT_NODES_HEARTBEAT;
	}
	if (strncmp(tail, "/regions/", 9) == 0) {
		char name[STORE_NAME_MAX];
		const char *verb = strchr(tail + 9, '/');
		size_t len = verb ? (size_t)(verb - (tail + 9)) : 0;
		bool lock = verb && !strcmp(verb, "/lock");

		if (!verb || len == 0 || len >= sizeof(name) || (!lock && strcmp(verb, "/unlock"))) {
			http_resp_error(resp, 404, "not_found", "no such path %s", req->path);
			return RT_OTHER;
		}
		if (!is_method(req, "POST")) {
			method_not_allowed(resp, "POST");
			return RT_OTHER;
		}
		memcpy(name, tail + 9, len);
		name[len] = '\0';
		if (o->regions && o->regions->node_lock)
			o->regions->node_lock(o, id, name, lock, req, resp);
		else
			http_resp_error(resp, 404, "not_found", "no regions here");
		return lock ? RT_REGIONS_LOCK : RT_REGIONS_UNLOCK;
	}
	if (strcmp(tail, "/drain") == 0 || strcmp(tail, "/undrain") == 0) {
		if (is_method(req, "POST"))
			nodes_drain(o, id, tail[1] == 'd', resp);
		else
			method_not_allowed(resp, "POST");
		return RT_NODES_DRAIN;
	}
	if (strcmp(tail, "/labels") == 0 || strcmp(tail, "/remove") == 0) {
		if (!is_method(req, "POST"))
			method_not_allowed(resp, "POST");
		else if (!o->replicas)
			http_resp_error(resp, 404, "not_found", "no such path %s", req->path);
		else if (tail[1] == 'l')
			o->replicas->node_labels(o, id, req, resp);
		else
			o->replicas->node_remove(o, id, resp);
		return RT_NODES_DRAIN;
	}
	if (strcmp(tail, "/revoke") == 0) {
		if (is_method(req, "POST"))
			nodes_revoke(o, id, resp);
		else
			method_not_allowed(resp, "POST");
		return RT_NODES_REVOKE;
	}
	http_resp_error(resp, 404, "not_found", "no such path %s", req->path);
	return RT_OTHER;
}

static enum orch_route route_slots(struct orch *o, const char *rest, const struct http_req *req,
				   struct http_resp *resp)
{
	size_t n = strcspn(rest, "/");
	const char *tail = rest + n;
	char name[STORE_NAME_MAX];

	if (*rest == '\0') {
		if (is_method(req, "GET")) {
			slots_list(o, resp);
			return RT_SLOTS_LIST;
		}
		if (is_method(req, "POST")) {
			slots_create(o, req, resp);
			return RT_SLOTS_CREATE;
		}
		method_not_allowed(resp, "GET, POST");
		return RT_OTHER;
	}
	if (n >= sizeof(name)) {
		http_resp_error(resp, 404, "not_found", "unknown slot");
		return RT_SLOTS_GET;
	}
	memcpy(name, rest, n);
	name[n] = '\0';
	if (*tail == '\0') {
		if (is_method(req, "GET")) {
			slots_get(o, name, resp);
			return RT_SLOTS_GET;
		}
		if (is_method(req, "DELETE")) {
			const char *keep = http_req_query(req, "keep_disk");

			slots_delete(o, name, keep && (!strcmp(keep, "true") || !strcmp(keep, "1")),
				     resp);
			return RT_SLOTS_DELETE;
		}
		method_not_allowed(resp, "GET, DELETE");
		return RT_OTHER;
	}
	if (strcmp(tail, "/resize") == 0) {
		if (is_method(req, "POST"))
			slots_resize(o, name, req, resp);
		else
			method_not_allowed(resp, "POST");
		return RT_SLOTS_RESIZE;
	}
	if (strcmp(tail, "/console") == 0 || strcmp(tail, "/console/output") == 0) {
		if (is_method(req, "GET"))
			slots_console(o, name, tail + 8, req, resp);
		else
			method_not_allowed(resp, "GET");
		return RT_SLOTS_CONSOLE;
	}
	if (strcmp(tail, "/console/input") == 0) {
		if (is_method(req, "POST"))
			slots_console(o, name, tail + 8, req, resp);
		else
			method_not_allowed(resp, "POST");
		return RT_SLOTS_CONSOLE;
	}
	if (strcmp(tail, "/migrate") == 0) {
		if (!is_method(req, "POST"))
			method_not_allowed(resp, "POST");
		else
			migrate_compute(o, name, req, resp);
		return RT_SLOTS_MIGRATE;
	}
	if (o->volumes && strncmp(tail, "/disks", 6) == 0 && (tail[6] == '\0' || tail[6] == '/'))
		return o->volumes->slot_disks(o, name, tail + 6, req, resp);
	if (strcmp(tail, "/migrate-memory") == 0) {
		if (is_method(req, "POST"))
			migrate_memory(o, name, req, resp);
		else
			method_not_allowed(resp, "POST");
		return RT_SLOTS_MIGRATE_MEMORY;
	}
	if (o->web && strcmp(tail, "/pager") == 0) {
		if (is_method(req, "GET"))
			o->web->pager(o, name, resp);
		else
			method_not_allowed(resp, "GET");
		return RT_SLOTS_PAGER;
	}
	if (strcmp(tail, "/guest") == 0) {
		if (is_method(req, "POST"))
			slots_guest(o, name, req, resp);
		else
			method_not_allowed(resp, "POST");
		return RT_SLOTS_GUEST;
	}
	http_resp_error(resp, 404, "not_found", "no such path %s", req->path);
	return RT_OTHER;
}

static enum orch_route dispatch(struct orch *o, const struct http_req *req,
				struct http_resp *resp, uint64_t as_node)
{
	const char *p = req->path;

	if (strcmp(p, "/healthz") == 0) {
		if (is_method(req, "GET"))
			h_healthz(o, resp);
		else
			method_not_allowed(resp, "GET");
		return RT_HEALTHZ;
	}
	if (strcmp(p, "/metrics") == 0) {
		if (is_method(req, "GET"))
			h_metrics(o, resp);
		else
			method_not_allowed(resp, "GET");
		return RT_METRICS;
	}
	if (strcmp(p, "/v1/nodes") == 0)
		return route_nodes(o, "", req, resp, as_node);
	if (strncmp(p, "/v1/nodes/", 10) == 0)
		return route_nodes(o, p + 10, req, resp, as_node);
	if (strcmp(p, "/v1/slots") == 0)
		return route_slots(o, "", req, resp);
	if (strncmp(p, "/v1/slots/", 10) == 0)
		return route_slots(o, p + 10, req, resp);
	if (o->regions && strncmp(p, "/v1/regions", 11) == 0 && (p[11] == '\0' || p[11] == '/'))
		return o->regions->route(o, p + 11, req, resp);
	if (o->volumes && strncmp(p, "/v1/volumes", 11) == 0 && (p[11] == '\0' || p[11] == '/'))
		return o->volumes->route(o, p + 11, req, resp, as_node);
	if (o->images && strncmp(p, "/v1/images", 10) == 0 && (p[10] == '\0' || p[10] == '/'))
		return o->images->route(o, p + 10, req, resp);
	if (strcmp(p, "/v1/sections") == 0) {
		if (is_method(req, "GET"))
			h_sections(o, req, resp);
		else
			method_not_allowed(resp, "GET");
		return RT_SECTIONS;
	}
	if (strcmp(p, "/v1/events") == 0) {
		if (!o->web)
			http_resp_error(resp, 404, "not_found", "no such path %s", p);
		else if (is_method(req, "GET"))
			o->web->events(o, req, resp);
		else
			method_not_allowed(resp, "GET");
		return RT_EVENTS;
	}
	if (o->web && o->web->is_ui(p))
		return o->web->ui(req, resp);
	http_resp_error(resp, 404, "not_found", "no such path %s", p);
	return RT_OTHER;
}

static bool valid_request_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > REQUEST_ID_MAX)
		return false;
	for (const char *c = s; *c; c++)
		if (*c < 0x21 || *c > 0x7e)
			return false;
	return true;
}

static char *new_request_id(void)
{
	uint8_t b[12];
	char *s = malloc(2 * sizeof(b) + 1);

	if (!s)
		return NULL;
	if (auth_random(b, sizeof(b)) < 0)
		memset(b, 0, sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++)
		sprintf(s + 2 * i, "%02x", b[i]);
	return s;
}

/*
 * "/v1/nodes/ID/heartbeat", or "/v1/nodes/ID/regions/NAME/lock|unlock" (a
 * guest's control-page write, docs/sharing.md): ID; else 0.
 */
static uint64_t heartbeat_path(const char *p)
{
	size_t n;
	uint64_t id;

	if (strncmp(p, "/v1/nodes/", 10) != 0)
		return 0;
	p += 10;
	n = strcspn(p, "/");
	if (parse_id(p, n, &id) < 0)
		return 0;
	if (strcmp(p + n, "/heartbeat") == 0)
		return id;
	if (strncmp(p + n, "/regions/", 9) == 0 && strchr(p + n + 9, '/') &&
	    (!strcmp(strchr(p + n + 9, '/'), "/lock") || !strcmp(strchr(p + n + 9, '/'), "/unlock")))
		return id;
	return 0;
}

/* "/v1/volumes/NAME/grant": a compute node asks for its own grant (volumes_api.c checks). */
static bool volume_grant_path(const char *p)
{
	const char *slash;

	if (strncmp(p, "/v1/volumes/", 12) != 0)
		return false;
	slash = strchr(p + 12, '/');
	return slash && slash > p + 12 && strcmp(slash, "/grant") == 0;
}

/* GET or HEAD /v1/images/NAME/kernel|initrd: what a compute node boots. */
static bool image_file_path(const struct http_req *req)
{
	const char *p = req->path, *slash;

	if ((!is_method(req, "GET") && !is_method(req, "HEAD")) ||
	    strncmp(p, "/v1/images/", 11) != 0)
		return false;
	slash = strchr(p + 11, '/');
	return slash && slash > p + 11 && (!strcmp(slash, "/kernel") || !strcmp(slash, "/initrd"));
}

/*
 * Who may call what, when authentication is on (docs/api.md#authentication):
 *   GET /healthz                                     anyone (liveness probes)
 *   GET /ui/...                                      anyone (the web view's files)
 *   POST /v1/nodes/register, /v1/nodes/ID/heartbeat a node token, ID's own
 *   POST /v1/nodes/ID/regions/NAME/lock|unlock       the same
 *   POST /v1/volumes/NAME/grant                      a people token, or a node
 *                                                    token (its own grants only)
 *   GET|HEAD /v1/images/NAME/kernel|initrd           a people token or a node token
 *   /metrics and everything else                     a people token
 * True when the request may go on, with *ret_node the node it comes from
 * (0 for a person); else resp holds the refusal (401 or 403), counted.
 */
static bool authorize(struct orch *o, const struct http_req *req, struct http_resp *resp,
		      uint64_t *ret_node)
{
	const char *tok;
	uint64_t hb = heartbeat_path(req->path), id = 0;
	bool node_route = hb || strcmp(req->path, "/v1/nodes/register") == 0;

	*ret_node = 0;
	if (!o->auth || strcmp(req->path, "/healthz") == 0 ||
	    (o->web && o->web->is_ui(req->path)))
		return true;
	tok = apiauth_bearer_of(req);
	if (!tok) {
		apiauth_refuse(resp, APIAUTH_MISSING,
			       "this API needs \"Authorization: Bearer TOKEN\" (docs/api.md)");
		return false;
	}
	if (strncmp(tok, "node.", 5) == 0) {
		if (apiauth_node_check(&o->node_secret, tok, false, &id) < 0) {
			apiauth_refuse(resp, APIAUTH_INVALID, "invalid node token");
			return false;
		}
		if (!node_route && !volume_grant_path(req->path) && !image_file_path(req)) {
			apiauth_refuse(resp, APIAUTH_FORBIDDEN,
				       "a node token only registers and heartbeats its node, "
				       "locks regions for its slots, asks for its volume grants "
				       "and fetches images' kernels");
			return false;
		}
		if (hb && hb != id) {
			apiauth_refuse(resp, APIAUTH_WRONG_NODE,
				       "the credential of node %" PRIu64
				       " cannot heartbeat or lock regions for node %" PRIu64, id, hb);
			return false;
		}
		*ret_node = id;
		return true;
	}
	if (!apiauth_tokens_check(o->api_tokens, tok)) {
		apiauth_refuse(resp, APIAUTH_INVALID, "invalid token");
		return false;
	}
	if (node_route) {
		apiauth_refuse(resp, APIAUTH_FORBIDDEN,
			       "nodes register with their own credential, not a people token");
		return false;
	}
	return true;
}

static void h_all(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct orch *o = opaque;
	const char *rid = http_req_header(req, "X-Request-Id");
	bool mutating = is_method(req, "POST") || is_method(req, "DELETE") ||
			is_method(req, "PUT");
	bool recorded = false;
	enum orch_route rt;
	uint64_t t0 = now_ns(), as_node = 0;
	int cls;

	if (!authorize(o, req, resp, &as_node)) {
		rt = RT_OTHER;
		goto done;
	}
	if (rid && !valid_request_id(rid)) {
		http_resp_error(resp, 400, "bad_request",
				"X-Request-Id must be 1 to %d printable characters", REQUEST_ID_MAX);
		rt = RT_OTHER;
		goto done;
	}
	if (rid && mutating) {
		_cleanup_free_ char *body = NULL, *key = NULL, *want = NULL;
		int status = 0, r;

		r = o->store->ops->request_begin(o->store, rid, req->method, req->path,
						 (int64_t)time(NULL), &status, &body, &key);
		if (r == -EEXIST) {
			rt = RT_OTHER;
			if (asprintf(&want, "%s %s", req->method, req->path) < 0)
				want = NULL;
			if (status == 0)
				http_resp_error(resp, 409, "busy",
						"request %s is still being handled", rid);
			else if (!key || !want || strcmp(key, want) != 0)
				http_resp_error(resp, 409, "conflict",
						"request id %s was used for %s", rid,
						key ? key : "another request");
			else
				http_resp_text(resp, status, "application/json", TAKE_PTR(body));
			goto done;
		}
		if (r < 0) {
			http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
			rt = RT_OTHER;
			goto done;
		}
		recorded = true;
	}
	rt = dispatch(o, req, resp, as_node);
	if (recorded) {
		if (resp->status >= 500)
			o->store->ops->request_forget(o->store, rid);
		else
			o->store->ops->request_finish(o->store, rid, resp->status, resp->body);
	}
done:
	cls = resp->status / 100;
	if (cls >= 1 && cls <= 5)
		atomic_fetch_add(&o->routes[rt].by_class[cls], 1);
	hist_observe(&o->routes[rt].latency, now_ns() - t0);
	resp->hdr_name = "X-Request-Id";
	resp->hdr_value = rid ? strdup(rid) : new_request_id();
	if (log_get_level() >= LOG_LVL_DEBUG)
		log_debug("%s %s -> %d (%.1f ms)", req->method, req->path, resp->status,
			  (double)(now_ns() - t0) / 1e6);
}

static const struct http_route routes[] = {
	{ NULL, "/", true, h_all },
};

const struct http_route *api_routes(size_t *ret_n)
{
	*ret_n = ARRAY_SIZE(routes);
	return routes;
}

int api_start(struct orch *o, const char *addr, const char *cert, const char *key)
{
	return http_server_start_tls(addr, routes, ARRAY_SIZE(routes), o, cert, key, &o->http);
}

void api_stop(struct orch *o)
{
	http_server_stop(o->http);
	o->http = NULL;
}
