// SPDX-License-Identifier: MIT
/*
 * The operator's edits of nodes (docs/api.md, "Nodes"), which replicated
 * far memory relies on:
 *
 *   POST /v1/nodes/ID/labels {"labels": {"zone": "b", "rack": null}}
 *     merges into the node's labels (null: remove that one). A memory
 *     node's `zone` decides where replicas go (replicas.c); a label the
 *     node registers itself with is replaced when it registers again.
 *   POST /v1/nodes/ID/remove
 *     drains the node and takes out, at once, the replicas on it whose
 *     sections have another replica in (the agents are told to drop them;
 *     repair moves them elsewhere), then forgets the node if nothing
 *     names it any more (200); else 409 in_use, saying what still does:
 *     remove again once the replicas are repaired, or after the slots
 *     using it are gone. A node that still heartbeats registers again:
 *     stop it first.
 */
#include "replicas_nodes.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "replicas_handover.h"

static void store_failed(struct http_resp *resp, int r)
{
	http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
}

static void node_labels(struct orch *o, uint64_t id, const struct http_req *req,
			struct http_resp *resp)
{
	static const char *const keys[] = { "labels", NULL };
	struct store *st = o->store;
	_cleanup_free_ char *text = NULL;
	json_t *body, *want, *labels = NULL, *v;
	struct node_rec n;
	const char *k;
	int r;

	body = http_json_args(req, resp, keys);
	if (!body)
		return;
	want = json_object_get(body, "labels");
	if (!json_is_object(want) || json_object_size(want) == 0) {
		http_resp_error(resp, 400, "bad_request",
				"\"labels\" must be an object of strings (null: remove)");
		goto out;
	}
	json_object_foreach(want, k, v)
		if (!*k || (!json_is_string(v) && !json_is_null(v))) {
			http_resp_error(resp, 400, "bad_request",
					"label \"%s\" must be a string or null", k);
			goto out;
		}
	r = st->ops->begin(st);
	if (r < 0) {
		store_failed(resp, r);
		goto out;
	}
	r = st->ops->node_get(st, id, &n);
	if (r < 0) {
		st->ops->rollback(st);
		if (r == -ENOENT)
			http_resp_error(resp, 404, "not_found", "unknown node %" PRIu64, id);
		else
			store_failed(resp, r);
		goto out;
	}
	labels = json_loads(n.labels, 0, NULL);
	if (!json_is_object(labels)) {
		json_decref(labels);
		labels = json_object();
	}
	json_object_foreach(want, k, v) {
		if (json_is_null(v))
			json_object_del(labels, k);
		else
			json_object_set(labels, k, v);
	}
	text = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text || strlen(text) >= sizeof(n.labels)) {
		st->ops->rollback(st);
		http_resp_error(resp, 400, "bad_request", "the labels are too long");
		goto out;
	}
	r = st->rep->node_set_labels(st, id, text);
	if (r == 0)
		r = st->ops->event_add(st, "node_labeled", id, NULL, text);
	if (r == 0)
		r = st->ops->commit(st);
	else
		st->ops->rollback(st);
	if (r < 0) {
		store_failed(resp, r);
		goto out;
	}
	snprintf(n.labels, sizeof(n.labels), "%s", text);
	log_info("node %" PRIu64 " (%s): labels %s", id, n.name, text);
	http_resp_json(resp, 200, nodes_json(&n));
out:
	json_decref(labels);
	json_decref(body);
}

/* What still names node id: "N slots, M sections, K replicas" into buf. */
static void users(struct orch *o, uint64_t id, char *buf, size_t len)
{
	struct store *st = o->store;
	_cleanup_free_ struct slot_rec *slots = NULL;
	_cleanup_free_ struct section_rec *secs = NULL;
	_cleanup_free_ struct replica_rec *reps = NULL;
	size_t ns = 0, nx = 0, nr = 0, extra;

	st->ops->slot_list(st, id, 0, &slots, &ns);
	st->ops->section_list(st, 0, id, &secs, &nx);
	st->rep->replica_list(st, 0, id, &reps, &nr);
	extra = nr > nx ? nr - nx : 0;   /* the list has position 0 (the sections) too */
	snprintf(buf, len, "%zu slot%s run on it, %zu section%s and %zu replica%s of slots are "
		 "on it (out replicas are being repaired elsewhere)",
		 ns, ns == 1 ? "" : "s", nx, nx == 1 ? "" : "s", extra, extra == 1 ? "" : "s");
}

static void node_remove(struct orch *o, uint64_t id, struct http_resp *resp)
{
	struct store *st = o->store;
	struct node_rec n;
	char what[256], msg[320];
	int r;

	r = st->ops->node_get(st, id, &n);
	if (r == -ENOENT) {
		http_resp_error(resp, 404, "not_found", "unknown node %" PRIu64, id);
		return;
	}
	if (r == 0 && !n.drained)
		r = st->ops->node_set_drained(st, id, true);
	if (r < 0) {
		store_failed(resp, r);
		return;
	}
	replicas_take_out_lost(o);   /* drained now: its replicas go out, the agents drop them */
	r = st->ops->begin(st);
	if (r == 0) {
		snprintf(msg, sizeof(msg), "%s removed", n.name);
		r = st->rep->node_remove(st, id);
		if (r == 0)
			r = st->ops->event_add(st, "node_removed", id, NULL, msg);
		if (r == 0)
			r = st->ops->commit(st);
		else
			st->ops->rollback(st);
	}
	if (r == -EEXIST) {
		users(o, id, what, sizeof(what));
		http_resp_error(resp, 409, "in_use", "node %" PRIu64 " (%s) is drained but still "
				"in use: %s; remove it again later", id, n.name, what);
		return;
	}
	if (r < 0) {
		store_failed(resp, r);
		return;
	}
	mnpool_forget(o->mnpool, id);
	log_info("node %" PRIu64 " (%s) removed", id, n.name);
	http_resp_json(resp, 200, json_pack("{s:I, s:b}", "node_id", (json_int_t)id, "removed",
					     1));
}

void replicas_nodes_hooks(struct orch_replicas *ops)
{
	replicas_repair_hooks(ops);
	replicas_handover_hooks(ops);
	ops->node_labels = node_labels;
	ops->node_remove = node_remove;
}
