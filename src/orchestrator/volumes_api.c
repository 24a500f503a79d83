// SPDX-License-Identifier: MIT
/*
 * The /v1/volumes paths of the orchestrator's API (docs/api.md,
 * "Volumes"): create (and clone), list, show, resize, delete and grant
 * (adopt is volumes_adopt.c),
 * and the struct orch_volumes table that main.c hands the orchestrator
 * (with the disks of slots, volumes_disks.c).
 *
 * Each change is made on the device node first (VOL_*), then recorded
 * with its event. A new volume's row is inserted `creating` before the
 * node makes it, so that the name is taken cluster-wide from then on; a
 * volume the node made but whose record then fails is deleted again
 * (volumes_undo_create). A delete whose record fails leaves the row
 * `deleting`, which the next start settles (the node has no such volume:
 * the row goes).
 */
#include "volumes_api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "volumes_adopt.h"
#include "volumes_disks.h"
#include "volumes_migrate.h"

/* ---- arguments ------------------------------------------------------------- */

int volumes_name_arg(json_t *body, const char *key, bool required, char dst[STORE_NAME_MAX],
		     struct http_resp *resp)
{
	json_t *v = json_object_get(body, key);
	const char *s = json_string_value(v);

	dst[0] = '\0';
	if (!v && !required)
		return 0;
	if (!s || dnc_name_check(s) < 0) {
		http_resp_error(resp, 400, "bad_request",
				"\"%s\" must be a volume name: 1 to 63 characters of [a-z0-9_-], "
				"starting with a letter or a digit", key);
		return -EINVAL;
	}
	snprintf(dst, STORE_NAME_MAX, "%s", s);
	return 0;
}

int volumes_size_arg(json_t *body, const char *key, uint64_t *ret, struct http_resp *resp)
{
	json_t *v = json_object_get(body, key);

	*ret = 0;
	if (!v)
		return 0;
	if (json_size(v, ret) < 0 || *ret == 0 || *ret % PROTO_BLK_SECTOR ||
	    *ret > VOLUMES_MAX_SIZE) {
		http_resp_error(resp, 400, "bad_size",
				"\"%s\" must be a size (bytes, or a number with K, M, G or T such as "
				"\"10G\"): a multiple of 512 bytes, from 512 to 16T", key);
		return -EINVAL;
	}
	return 0;
}

/* body[key], a boolean (*ret false when absent). 0 or -EINVAL (400). */
static int bool_arg(json_t *body, const char *key, bool *ret, struct http_resp *resp)
{
	json_t *v = json_object_get(body, key);

	*ret = json_is_true(v);
	if (v && !json_is_boolean(v)) {
		http_resp_error(resp, 400, "bad_request", "\"%s\" must be true or false", key);
		return -EINVAL;
	}
	return 0;
}

int volumes_id_arg(json_t *body, const char *key, const char *what, uint64_t *ret,
		   struct http_resp *resp)
{
	json_t *v = json_object_get(body, key);

	*ret = 0;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		http_resp_error(resp, 400, "bad_request", "\"%s\" must be %s's id", key, what);
		return -EINVAL;
	}
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

/* ---- create and clone -------------------------------------------------------- */

void volumes_make(struct orch *o, const struct volumes_new *a, const struct node_rec *dn,
		  const struct volume_rec *src, struct http_resp *resp, struct volume_rec *ret)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	struct store *st = o->store;
	struct dnc_volume live;
	struct volume_rec v = { .devnode = dn->id, .size = a->size, .image = a->image,
				.run = volumes_run(), .created = (int64_t)time(NULL) };
	char why[256];
	int e;

	snprintf(v.name, sizeof(v.name), "%s", a->name);
	snprintf(v.state, sizeof(v.state), "creating");
	snprintf(v.origin, sizeof(v.origin), "%s", src ? src->name : "");
	snprintf(v.kind, sizeof(v.kind), "file");      /* a clone of a block device's too */
	e = st->vol->volume_insert(st, &v);
	if (e == -EEXIST) {
		http_resp_error(resp, 409, "exists", "volume %s exists", a->name);
		return;
	}
	if (e < 0) {
		volumes_store_error(resp, e);
		return;
	}
	e = volumes_connect(o, dn, &c);
	if (e == 0)
		e = src ? dnc_vol_clone(c, src->name, a->name, &live)
			: dnc_vol_create(c, a->name, a->size, &live);
	if (e < 0) {
		volumes_node_error(resp, dn, e, "cannot %s volume %s%s%s on device node %" PRIu64,
				   src ? "clone" : "create", a->name, src ? " from " : "",
				   src ? src->name : "", dn->id);
		volumes_drop(o, &v, "volume_create_failed", "volume %s not created on %s: %s",
			     a->name, dn->name, strerror(-e));
		return;
	}
	if (src && a->size > live.size) {
		e = dnc_vol_resize(c, a->name, a->size, false, &live);
		if (e < 0) {
			volumes_node_error(resp, dn, e, "cannot grow clone %s to %" PRIu64 " bytes",
					   a->name, a->size);
			snprintf(why, sizeof(why), "growing it failed: %s", strerror(-e));
			volumes_undo_create(o, c, dn, &v, why);
			return;
		}
	}
	v.size = live.size;
	v.key = live.key;
	if (src)
		e = volumes_finish(o, &v, "volume_cloned",
				   "volume %s: a clone of %s, %" PRIu64 " bytes on device node %s%s",
				   v.name, src->name, v.size, dn->name,
				   live.reflinked ? " (blocks shared)" : "");
	else
		e = volumes_finish(o, &v, "volume_created",
				   "volume %s: %" PRIu64 " bytes on device node %s%s", v.name, v.size,
				   dn->name, v.image ? " (an image)" : "");
	if (e < 0) {
		volumes_store_error(resp, e);
		snprintf(why, sizeof(why), "its record failed: %s", strerror(-e));
		volumes_undo_create(o, c, dn, &v, why);
		return;
	}
	log_info("volume %s %s: %" PRIu64 " bytes on device node %" PRIu64, v.name,
		 src ? "cloned" : "created", v.size, dn->id);
	http_resp_json(resp, 201, volumes_json(&v, NULL));
	if (ret)
		*ret = v;
}

/* A clone of a->from: on its device node, at least its size; the source is `cloning` meanwhile. */
static void clone_volume(struct orch *o, const struct volumes_new *a, struct http_resp *resp)
{
	struct volumes_new ca = *a;
	struct volume_rec src;
	struct node_rec dn;

	if (volumes_begin(o, a->from, &src, resp) < 0)
		return;
	if (volumes_image_not_ready(o, &src, resp))
		return;
	if (a->devnode && a->devnode != src.devnode) {
		orch_refuse(o, resp, 400, "bad_request",
			    "\"devnode\": a clone is made on its source's device node, %" PRIu64,
			    src.devnode);
		return;
	}
	if (a->size && a->size < src.size) {
		orch_refuse(o, resp, 400, "bad_size",
			    "\"size\": a clone is at least as large as its source (%" PRIu64
			    " bytes); shrink it afterwards", src.size);
		return;
	}
	if (volumes_begin_commit(o, &src, "cloning", resp) < 0)
		return;
	ca.size = MAX(a->size, src.size);
	if (volumes_devnode(o, src.devnode, &dn, resp) == 0)
		volumes_make(o, &ca, &dn, &src, resp, NULL);
	volumes_end(o, &src);
}

int volumes_pick(struct orch *o, uint64_t devnode, struct node_rec *dn, struct http_resp *resp)
{
	int e;

	if (devnode) {
		if (volumes_devnode(o, devnode, dn, resp) < 0)
			return -EINVAL;
		if (dn->drained) {
			http_resp_error(resp, 409, "conflict",
					"device node %" PRIu64 " is drained: it takes no new volumes",
					dn->id);
			return -EBUSY;
		}
		return 0;
	}
	e = volumes_place(o, dn);
	if (e == -ENODEV || e == -ENOSPC)
		http_resp_error(resp, 409, "capacity", "%s",
				e == -ENODEV ? "no device node is registered"
					     : "every device node that is up is drained");
	else if (e == -EHOSTDOWN)
		http_resp_error(resp, 503, "node_unreachable",
				"no device node is up (every one registered is down: no heartbeat)");
	else if (e < 0)
		volumes_store_error(resp, e);
	return e;
}

static void h_create(struct orch *o, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "name", "size", "devnode", "from", "image", NULL };
	_cleanup_(json_decrefp) json_t *body = http_json_args(req, resp, keys);
	struct volumes_new a;
	struct node_rec dn;

	if (!body || volumes_name_arg(body, "name", true, a.name, resp) < 0 ||
	    volumes_size_arg(body, "size", &a.size, resp) < 0 ||
	    volumes_id_arg(body, "devnode", "a device node", &a.devnode, resp) < 0 ||
	    volumes_name_arg(body, "from", false, a.from, resp) < 0 ||
	    bool_arg(body, "image", &a.image, resp) < 0)
		return;
	if (a.from[0]) {
		clone_volume(o, &a, resp);
		return;
	}
	if (!a.size) {
		http_resp_error(resp, 400, "bad_size", "\"size\" is required (but for a clone)");
		return;
	}
	if (volumes_pick(o, a.devnode, &dn, resp) == 0)
		volumes_make(o, &a, &dn, NULL, resp, NULL);
}

/* ---- list, show ---------------------------------------------------------------- */

static void h_list(struct orch *o, const struct http_req *req, struct http_resp *resp)
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	const char *q = http_req_query(req, "devnode");
	uint64_t devnode = 0;
	size_t n = 0;
	json_t *arr;
	int e;

	if (q && (u64_parse(q, &devnode) < 0 || devnode == 0)) {
		http_resp_error(resp, 400, "bad_request", "devnode must be a device node's id");
		return;
	}
	e = o->store->vol->volume_list(o->store, devnode, &vs, &n);
	if (e < 0) {
		volumes_store_error(resp, e);
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, volumes_json(&vs[i], NULL));
	http_resp_json(resp, 200, json_pack("{s:o}", "volumes", arr));
}

/* The catalog's record, with what its device node says now (or why it says nothing). */
static void h_show(struct orch *o, const char *name, struct http_resp *resp)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	struct dnc_volume live;
	struct volume_rec v;
	struct node_rec dn;
	json_t *j;
	int e;

	if (volumes_get(o, name, &v, resp) < 0)
		return;
	e = o->store->ops->node_get(o->store, v.devnode, &dn);
	if (e == 0)
		e = volumes_connect(o, &dn, &c);
	if (e == 0)
		e = dnc_vol_stat(c, v.name, &live);
	j = volumes_json(&v, e == 0 ? &live : NULL);
	if (j && e < 0)
		json_object_set_new(j, "devnode_error", json_string(strerror(-e)));
	http_resp_json(resp, 200, j);
}

/* ---- resize, delete ------------------------------------------------------------ */

/*
 * Connect to the device node of v, which an operation holds: 0, or -errno
 * with the error answered and v put back to `ready`.
 */
static int connect_to(struct orch *o, struct volume_rec *v, struct node_rec *dn,
		      struct mnc **ret, struct http_resp *resp)
{
	int e = volumes_devnode(o, v->devnode, dn, resp);

	if (e == 0) {
		e = volumes_connect(o, dn, ret);
		if (e < 0)
			volumes_node_error(resp, dn, e, "cannot reach volume %s", v->name);
	}
	if (e < 0)
		volumes_end(o, v);
	return e;
}

static void h_resize(struct orch *o, const char *name, const struct http_req *req,
		     struct http_resp *resp)
{
	static const char *const keys[] = { "size", "shrink", NULL };
	_cleanup_(json_decrefp) json_t *body = http_json_args(req, resp, keys);
	_cleanup_mnc_ struct mnc *c = NULL;
	struct dnc_volume live;
	struct volume_rec v;
	struct node_rec dn;
	uint64_t size, was;
	bool shrink;
	int e;

	if (!body || volumes_size_arg(body, "size", &size, resp) < 0 ||
	    bool_arg(body, "shrink", &shrink, resp) < 0)
		return;
	if (!size) {
		http_resp_error(resp, 400, "bad_size", "\"size\" is required");
		return;
	}
	if (volumes_begin(o, name, &v, resp) < 0)
		return;
	if (volumes_is_block(&v)) {
		orch_refuse(o, resp, 409, "block_device",
			    "volume %s is a block device that device node %" PRIu64 " serves: its "
			    "size is the device's, and it cannot be resized", name, v.devnode);
		return;
	}
	if (size == v.size) {
		o->store->ops->rollback(o->store);
		http_resp_json(resp, 200, volumes_json(&v, NULL));
		return;
	}
	if (volumes_image_refuse(o, &v, "be resized", resp))
		return;
	if (size < v.size && !shrink) {
		orch_refuse(o, resp, 400, "bad_size",
			    "\"size\" %" PRIu64 " is smaller than volume %s's %" PRIu64
			    " bytes: give \"shrink\": true to drop the data past it", size, name,
			    v.size);
		return;
	}
	if (size < v.size && v.slot_id) {
		orch_refuse(o, resp, 409, "volume_attached",
			    "volume %s is attached to slot %s: detach it before shrinking it",
			    name, v.slot);
		return;
	}
	if (volumes_begin_commit(o, &v, "resizing", resp) < 0)
		return;
	was = v.size;
	if (connect_to(o, &v, &dn, &c, resp) < 0)
		return;
	e = dnc_vol_resize(c, name, size, shrink, &live);
	if (e < 0) {
		volumes_node_error(resp, &dn, e, "cannot resize volume %s", name);
		volumes_end(o, &v);
		return;
	}
	v.size = live.size;
	e = volumes_finish(o, &v, "volume_resized",
			   "volume %s resized from %" PRIu64 " to %" PRIu64 " bytes on device node %s",
			   name, was, v.size, dn.name);
	if (e < 0) {
		/* The node has the new size; the next start settles the row from it. */
		volumes_store_error(resp, e);
		return;
	}
	http_resp_json(resp, 200, volumes_json(&v, &live));
}

void volumes_delete(struct orch *o, const char *name, bool image, struct http_resp *resp)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	struct volume_rec v;
	struct node_rec dn;
	int e;

	if (volumes_begin(o, name, &v, resp) < 0)
		return;
	if (!image && volumes_image_refuse(o, &v, "be deleted", resp))
		return;
	if (v.slot_id) {
		orch_refuse(o, resp, 409, "volume_attached",
			    "volume %s is attached to slot %s: detach it first", name, v.slot);
		return;
	}
	if (volumes_is_block(&v)) {
		volumes_forget(o, &v, resp);
		return;
	}
	if (volumes_begin_commit(o, &v, "deleting", resp) < 0)
		return;
	if (connect_to(o, &v, &dn, &c, resp) < 0)
		return;
	e = dnc_vol_delete(c, name);
	if (e < 0 && e != -ENOENT) {   /* ENOENT: gone already, the catalog follows */
		volumes_node_error(resp, &dn, e, "cannot delete volume %s", name);
		volumes_end(o, &v);
		return;
	}
	e = volumes_drop(o, &v, "volume_deleted", "volume %s deleted from device node %s", name,
			 dn.name);
	if (e < 0) {
		/* It stays `deleting`: the next start drops the row (the node has no such volume). */
		volumes_store_error(resp, e);
		return;
	}
	log_info("volume %s deleted from device node %" PRIu64, name, dn.id);
	http_resp_text(resp, 204, "application/json", NULL);
}

/* ---- grant ------------------------------------------------------------------------ */

/*
 * POST /v1/volumes/NAME/grant {"holder": ID, "rights": "rw"|"r", "ttl": S}:
 * a grant for compute node ID to open the volume on its device node. A
 * node token may ask for its own grants only (as_node: its node).
 */
static void h_grant(struct orch *o, const char *name, const struct http_req *req,
		    struct http_resp *resp, uint64_t as_node)
{
	static const char *const keys[] = { "holder", "rights", "ttl", NULL };
	_cleanup_(json_decrefp) json_t *body = http_json_args(req, resp, keys);
	const char *rights = "rw";
	char hex[GRANT_HEX_LEN + 1], key[20];
	int64_t ttl = 0;
	struct volume_rec v;
	struct node_rec dn, h;
	uint64_t holder, expiry;
	int e;

	if (!body || volumes_id_arg(body, "holder", "a compute node", &holder, resp) < 0)
		return;
	if (!holder) {
		http_resp_error(resp, 400, "bad_request", "\"holder\" (a compute node's id) is required");
		return;
	}
	if (json_object_get(body, "rights") &&
	    (!(rights = json_string_value(json_object_get(body, "rights"))) ||
	     (strcmp(rights, "rw") != 0 && strcmp(rights, "r") != 0))) {
		http_resp_error(resp, 400, "bad_request", "\"rights\" is \"rw\" or \"r\"");
		return;
	}
	ttl = o->grant_ttl_s;
	if (!http_json_int(body, "ttl", 10, VOLUMES_GRANT_TTL_MAX, &ttl, resp))
		return;
	if (as_node && as_node != holder) {
		apiauth_refuse(resp, APIAUTH_WRONG_NODE,
			       "the credential of node %" PRIu64 " cannot ask for node %" PRIu64
			       "'s grants", as_node, holder);
		return;
	}
	e = o->store->ops->node_get(o->store, holder, &h);
	if (e == -ENOENT || (e == 0 && strcmp(h.kind, "compute") != 0)) {
		http_resp_error(resp, e ? 404 : 400, e ? "not_found" : "bad_request",
				"\"holder\": node %" PRIu64 " is %s", holder,
				e ? "not registered" : "not a compute node");
		return;
	}
	if (e < 0 || volumes_get(o, name, &v, resp) < 0) {
		if (e < 0)
			volumes_store_error(resp, e);
		return;
	}
	if (!strcmp(v.state, "creating") || !strcmp(v.state, "deleting")) {
		http_resp_error(resp, 409, "busy", "volume %s is %s", name, v.state);
		return;
	}
	if (volumes_devnode(o, v.devnode, &dn, resp) < 0)
		return;
	expiry = (uint64_t)time(NULL) + (uint64_t)ttl;
	e = volumes_grant(o, &v, holder, rights[1] != '\0', expiry, hex);
	if (e < 0) {
		http_resp_error(resp, 500, "internal", "cannot mint a grant: %s", strerror(-e));
		return;
	}
	snprintf(key, sizeof(key), "%016" PRIx64, v.key);
	log_debug("volume %s: grant for node %" PRIu64 " (%s, %" PRId64 " s)", name, holder, rights,
		  ttl);
	http_resp_json(resp, 200, json_pack("{s:s, s:I, s:s, s:I, s:s, s:I, s:s, s:s, s:I, s:I}",
					     "volume", v.name, "devnode", (json_int_t)dn.id,
					     "addr", dn.addr, "holder", (json_int_t)holder,
					     "rights", rights, "expiry", (json_int_t)expiry,
					     "grant", hex, "key", key, "size",
					     (json_int_t)v.size, "epoch", (json_int_t)v.epoch));
}

/* ---- routing and the table -------------------------------------------------------- */

static bool is_method(const struct http_req *req, const char *m)
{
	return strcmp(req->method, m) == 0;
}

/* rest: what follows "/v1/volumes": "", "/NAME" or "/NAME/VERB". */
static enum orch_route route(struct orch *o, const char *rest, const struct http_req *req,
			     struct http_resp *resp, uint64_t as_node)
{
	char name[STORE_NAME_MAX];
	const char *tail;
	int item = orch_path_item(rest, name, &tail);

	if (item == 0) {
		if (is_method(req, "GET")) {
			h_list(o, req, resp);
			return RT_VOLUMES_LIST;
		}
		if (is_method(req, "POST")) {
			h_create(o, req, resp);
			return RT_VOLUMES_CREATE;
		}
		http_resp_error(resp, 405, "method_not_allowed", "use GET or POST on this path");
		return RT_OTHER;
	}
	if (item < 0) {
		http_resp_error(resp, 404, "not_found", "unknown volume");
		return RT_VOLUMES_GET;
	}
	if (*tail == '\0') {
		if (is_method(req, "GET")) {
			h_show(o, name, resp);
			return RT_VOLUMES_GET;
		}
		if (is_method(req, "DELETE")) {
			volumes_delete(o, name, false, resp);
			return RT_VOLUMES_DELETE;
		}
		http_resp_error(resp, 405, "method_not_allowed", "use GET or DELETE on this path");
		return RT_OTHER;
	}
	if (strcmp(tail, "/resize") != 0 && strcmp(tail, "/grant") != 0 &&
	    strcmp(tail, "/adopt") != 0) {
		http_resp_error(resp, 404, "not_found", "no such path %s", req->path);
		return RT_OTHER;
	}
	if (!is_method(req, "POST")) {
		http_resp_error(resp, 405, "method_not_allowed", "use POST on this path");
		return RT_OTHER;
	}
	if (tail[1] == 'r') {
		h_resize(o, name, req, resp);
		return RT_VOLUMES_RESIZE;
	}
	if (tail[1] == 'a') {
		volumes_adopt(o, name, req, resp);
		return RT_VOLUMES_ADOPT;
	}
	h_grant(o, name, req, resp, as_node);
	return RT_VOLUMES_GRANT;
}

static void metrics(struct orch *o, struct strbuf *sb)
{
	static const char *const states[] = { "creating", "ready", "resizing", "cloning",
					      "deleting", "attaching", "detaching", "migrating" };
	_cleanup_free_ struct volume_rec *vs = NULL;
	uint64_t bytes = 0;
	size_t n = 0;
	char labels[64];

	if (o->store->vol->volume_list(o->store, 0, &vs, &n) < 0)
		return;
	for (size_t s = 0; s < ARRAY_SIZE(states); s++) {
		uint64_t cnt = 0;

		for (size_t i = 0; i < n; i++)
			cnt += !strcmp(vs[i].state, states[s]);
		snprintf(labels, sizeof(labels), "state=\"%s\"", states[s]);
		metrics_gauge(sb, "disagg_orch_volumes", s == 0 ? "Volumes by state" : NULL, labels,
			      (double)cnt);
	}
	for (size_t i = 0; i < n; i++)
		bytes += vs[i].size;
	metrics_gauge(sb, "disagg_orch_volume_bytes", "Bytes of the volumes in the catalog", "",
		      (double)bytes);
}

static int push_revocations(struct orch *o, const struct node_rec *dn)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	int r = volumes_connect(o, dn, &c);

	return r < 0 ? r : revoke_push(o, c);
}

static const struct orch_volumes hooks = {
	.route = route,
	.usage = volumes_usage,
	.node_json = volumes_node_json,
	.metrics = metrics,
	.slot_disks = disks_route,
	.slot_json = disks_slot_json,
	.slot_deleting = disks_slot_deleting,
	.migrate_begin = volumes_migrate_begin,
	.migrate_end = volumes_migrate_end,
	.renew = volumes_renew,
	.revoke = push_revocations,
};

void volumes_start(struct orch *o)
{
	if (!o->store->vol)
		return;
	volumes_recover(o);
	o->volumes = &hooks;
}
