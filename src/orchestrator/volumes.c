// SPDX-License-Identifier: MIT
/*
 * The volume catalog's machinery (volumes.h): records, operations' states,
 * device nodes (their refusals, placement, their reports; connections are
 * in volumes_conn.c), what a compute agent says of a volume attached to
 * one of its VMs, and settling what a restart interrupted (an attach or
 * detach: from the slot's agent; anything else: from the device node).
 *
 * What device nodes report (their volumes and bytes on disk, at each
 * heartbeat) is kept in memory: placement reads it, a restart forgets it
 * until the next heartbeat.
 */
#include "volumes.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "migrate.h"

#define USAGE_NODES 256

static int64_t run_id;          /* this run's number (volumes_recover) */

static pthread_mutex_t usage_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t node;
	int64_t volumes, bytes;
} usage[USAGE_NODES];

int64_t volumes_run(void)
{
	return run_id;
}

/* ---- the record ---------------------------------------------------------- */

void volumes_store_error(struct http_resp *resp, int r)
{
	http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
}

int volumes_get(struct orch *o, const char *name, struct volume_rec *v, struct http_resp *resp)
{
	int e = o->store->vol->volume_get(o->store, name, v);

	if (e == -ENOENT)
		http_resp_error(resp, 404, "not_found", "unknown volume %s", name);
	else if (e < 0)
		volumes_store_error(resp, e);
	return e;
}

json_t *volumes_json(const struct volume_rec *v, const struct dnc_volume *live)
{
	char created[32], key[20];
	json_t *j;

	orch_fmt_time(v->created, created, sizeof(created));
	snprintf(key, sizeof(key), "%016" PRIx64, v->key);
	j = json_pack("{s:s, s:s, s:I, s:I, s:o, s:b, s:o, s:o, s:s}", "name", v->name, "state",
		      v->state, "devnode", (json_int_t)v->devnode, "size", (json_int_t)v->size,
		      "key", v->key ? json_string(key) : json_null(), "image", v->image, "origin",
		      v->origin[0] ? json_string(v->origin) : json_null(), "attached",
		      v->slot_id ? json_string(v->slot) : json_null(), "created", created);
	if (j) {
		bool block = volumes_is_block(v);

		json_object_set_new(j, "epoch", json_integer(v->epoch));
		json_object_set_new(j, "kind", json_string(block ? "block" : "file"));
		/* A block device's size is the device's, and deleting it forgets it (volumes_adopt.c). */
		json_object_set_new(j, "resizable", json_boolean(!block));
		json_object_set_new(j, "delete", json_string(block ? "forget" : "node"));
	}
	if (j && v->slot_id) {
		json_object_set_new(j, "disk", v->disk[0] ? json_string(v->disk) : json_null());
		json_object_set_new(j, "read_only", json_boolean(v->read_only));
		json_object_set_new(j, "holder", json_integer((json_int_t)v->holder));
	}
	if (j && live) {
		json_object_set_new(j, "allocated", json_integer((json_int_t)live->allocated));
		json_object_set_new(j, "open", json_integer(live->users));
	}
	return j;
}

int volumes_grant(struct orch *o, const struct volume_rec *v, uint64_t holder, bool write,
		  uint64_t expiry, char hex[GRANT_HEX_LEN + 1])
{
	struct proto_grant g;
	int e = grant_mint(o->grant_key, v->devnode, holder, (uint32_t)v->key,
			   (uint32_t)(v->key >> 32), v->epoch,
			   PROTO_R_READ | (write ? PROTO_R_WRITE : 0), expiry, &g);

	if (e == 0)
		grant_to_hex(&g, hex);
	return e;
}

/* ---- operations' states ---------------------------------------------------- */

int volumes_begin(struct orch *o, const char *name, struct volume_rec *v,
		  struct http_resp *resp)
{
	struct store *st = o->store;

	for (int attempt = 0;; attempt++) {
		int e = st->ops->begin(st);

		if (e < 0) {
			volumes_store_error(resp, e);
			return e;
		}
		e = volumes_get(o, name, v, resp);
		if (e < 0) {
			st->ops->rollback(st);
			return e;
		}
		if (strcmp(v->state, "ready") == 0)
			return 0;
		st->ops->rollback(st);
		if (v->run == run_id || attempt > 0) {
			http_resp_error(resp, 409, "busy", "volume %s is %s", name, v->state);
			return -EBUSY;
		}
		/* An earlier run's operation: its device node says how it ended. */
		e = volumes_settle(o, v);
		if (e == -ENOENT) {
			http_resp_error(resp, 404, "not_found",
					"unknown volume %s (an orchestrator restart interrupted its "
					"%s; its device node has no such volume)", name, v->state);
			return e;
		}
		if (e < 0) {
			http_resp_error(resp, 503, "node_unreachable",
					"volume %s was %s when the orchestrator stopped, and device "
					"node %" PRIu64 " cannot say how that ended yet: %s", name,
					v->state, v->devnode, strerror(-e));
			return e;
		}
	}
}

int volumes_begin_commit(struct orch *o, struct volume_rec *v, const char *to,
			 struct http_resp *resp)
{
	struct store *st = o->store;
	int e;

	snprintf(v->state, sizeof(v->state), "%s", to);
	v->run = run_id;
	e = st->vol->volume_update(st, v);
	if (e == 0)
		e = st->ops->commit(st);
	else
		st->ops->rollback(st);
	if (e < 0)
		volumes_store_error(resp, e);
	return e;
}

/* v's row updated (drop: deleted) with event `kind` (node, slot), in one transaction. */
static int record(struct orch *o, const struct volume_rec *v, bool drop, const char *kind,
		  uint64_t node, const char *slot, const char *fmt, va_list ap)
{
	struct store *st = o->store;
	char msg[1024];
	int e;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	e = st->ops->begin(st);
	if (e < 0)
		return e;
	e = drop ? st->vol->volume_delete(st, v->id) : st->vol->volume_update(st, v);
	if (e == 0 && kind)
		e = st->ops->event_add(st, kind, node, slot, msg);
	if (e < 0) {
		st->ops->rollback(st);
		log_warn("volume %s: cannot record it: %s", v->name, strerror(-e));
		return e;
	}
	return st->ops->commit(st);
}

int volumes_finish(struct orch *o, struct volume_rec *v, const char *kind, const char *fmt, ...)
{
	va_list ap;
	int e;

	snprintf(v->state, sizeof(v->state), "ready");
	v->run = 0;
	va_start(ap, fmt);
	e = record(o, v, false, kind, v->devnode, NULL, fmt, ap);
	va_end(ap);
	return e;
}

int volumes_record(struct orch *o, struct volume_rec *v, const char *kind, uint64_t node,
		   const char *slot, const char *fmt, ...)
{
	va_list ap;
	int e;

	snprintf(v->state, sizeof(v->state), "ready");
	v->run = 0;
	va_start(ap, fmt);
	e = record(o, v, false, kind, node, slot, fmt, ap);
	va_end(ap);
	return e;
}

void volumes_end(struct orch *o, struct volume_rec *v)
{
	int e;

	snprintf(v->state, sizeof(v->state), "ready");
	v->run = 0;
	e = o->store->vol->volume_update(o->store, v);
	if (e < 0)
		log_warn("volume %s: cannot put it back to ready: %s (the next run settles it)",
			 v->name, strerror(-e));
}

int volumes_drop(struct orch *o, const struct volume_rec *v, const char *kind,
		 const char *fmt, ...)
{
	va_list ap;
	int e;

	va_start(ap, fmt);
	e = record(o, v, true, kind, v->devnode, NULL, fmt, ap);
	va_end(ap);
	return e;
}

/* ---- images' base volumes (images.c) ------------------------------------------ */

bool volumes_image_refuse(struct orch *o, const struct volume_rec *v, const char *what,
			  struct http_resp *resp)
{
	struct image_rec img;

	if (!v->image || o->store->vol->image_get(o->store, v->name, &img) < 0)
		return false;
	orch_refuse(o, resp, 409, "image_volume",
		    "volume %s is the base volume of image %s: it cannot %s%s", v->name, img.name,
		    what, strcmp(what, "be deleted") == 0 ? " (delete the image: disagg image delete)"
						       : " (clone it, and use the clone)");
	return true;
}

bool volumes_image_not_ready(struct orch *o, const struct volume_rec *v,
			     struct http_resp *resp)
{
	struct image_rec img;

	if (!v->image || o->store->vol->image_get(o->store, v->name, &img) < 0 ||
	    !strcmp(img.state, "ready"))
		return false;
	orch_refuse(o, resp, 409, "image_not_ready",
		    "volume %s is the base volume of image %s, which is %s: clone it once its import "
		    "is committed", v->name, img.name, img.state);
	return true;
}

/* ---- device nodes ------------------------------------------------------------ */

int volumes_devnode(struct orch *o, uint64_t id, struct node_rec *dn, struct http_resp *resp)
{
	int e = o->store->ops->node_get(o->store, id, dn);

	if (e == -ENOENT) {
		http_resp_error(resp, 404, "not_found", "no device node %" PRIu64, id);
	} else if (e < 0) {
		volumes_store_error(resp, e);
	} else if (strcmp(dn->kind, "devnode") != 0) {
		http_resp_error(resp, 400, "bad_request", "node %" PRIu64 " is a %s, not a device node",
				id, dn->kind);
		e = -EINVAL;
	}
	return e;
}

void volumes_node_error(struct http_resp *resp, const struct node_rec *dn, int r,
			const char *fmt, ...)
{
	const char *code = "devnode_refused", *why = NULL;
	char msg[512], whybuf[640];
	int status = 502;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	switch (r) {
	case -ETIMEDOUT: case -ECONNREFUSED: case -ECONNRESET: case -ECONNABORTED:
	case -EHOSTUNREACH: case -ENETUNREACH: case -EPIPE: case -EAGAIN:
		status = 503, code = "node_unreachable";
		snprintf(whybuf, sizeof(whybuf), "device node %" PRIu64 " (%s at %s) does not answer: %s%s",
			 dn->id, dn->name, dn->addr, strerror(-r),
			 strcmp(dn->state, "down") == 0 ? " (it is down: no heartbeat)" : "");
		why = whybuf;
		break;
	case -ESTALE:
		status = 503, code = "node_unreachable";
		snprintf(whybuf, sizeof(whybuf), "the node at %s is not device node %" PRIu64
			 " any more (restarted elsewhere? it registers again)", dn->addr, dn->id);
		why = whybuf;
		break;
	case -EEXIST:
		status = 409, code = "exists";
		why = "the device node has a volume of that name already (one the catalog does not "
		      "list)";
		break;
	case -EBUSY:
		status = 409, code = "volume_open";
		why = "the volume is open on the device node (a compute node uses it): close it first";
		break;
	case -ENOSPC:
		status = 409, code = "capacity";
		why = "the device node's disk is full";
		break;
	case -ENOENT:
		status = 409, code = "volume_missing";
		why = "the device node has no such volume (removed behind the orchestrator's back?)";
		break;
	case -EKEYREJECTED:
		why = "it does not hold this cluster's key, or on a TLS fabric its certificate is "
		      "not a device node's of the cluster CA";
		break;
	case -EACCES: case -ENOKEY:
		why = "it refuses the orchestrator's capability (is its --grant-pubkey the public "
		      "half of this orchestrator's --grant-key?)";
		break;
	case -EPROTONOSUPPORT:
		why = "the node at its address does not serve block volumes";
		break;
	}
	if (!why) {
		snprintf(whybuf, sizeof(whybuf), "device node %" PRIu64 " answered: %s", dn->id,
			 strerror(-r));
		why = whybuf;
	}
	http_resp_error(resp, status, code, "%s: %s", msg, why);
}

void volumes_undo_create(struct orch *o, struct mnc *c, const struct node_rec *dn,
			 const struct volume_rec *v, const char *why)
{
	int r = dnc_vol_delete(c, v->name);

	if (r < 0 && r != -ENOENT) {
		log_warn("volume %s stays on device node %" PRIu64 " without a record: %s", v->name,
			 dn->id, strerror(-r));
		slots_event(o, "volume_orphaned", dn->id, NULL,
			    "volume %s stays on device node %s, which the catalog does not list "
			    "(%s; deleting it again failed: %s): delete it there by hand", v->name,
			    dn->name, why, strerror(-r));
	}
	if (volumes_drop(o, v, "volume_create_failed", "volume %s not created on device node %s: %s",
			 v->name, dn->name, why) < 0)
		log_warn("volume %s: its row stays `creating` until the next start settles it",
			 v->name);
}

/* ---- placement and usage ------------------------------------------------------ */

/* The index of device node `node` (made if `create` and there is room), or -1. Lock held. */
static int usage_slot(uint64_t node, bool create)
{
	int free_i = -1;

	for (int i = 0; i < USAGE_NODES; i++) {
		if (usage[i].node == node)
			return i;
		if (!usage[i].node && free_i < 0)
			free_i = i;
	}
	if (!create || free_i < 0)
		return -1;
	usage[free_i].node = node;
	usage[free_i].volumes = usage[free_i].bytes = -1;
	return free_i;
}

void volumes_usage(struct orch *o, const struct node_rec *n, int64_t volumes, int64_t bytes)
{
	int i;

	(void)o;
	pthread_mutex_lock(&usage_mu);
	i = usage_slot(n->id, true);
	if (i >= 0 && volumes >= 0)
		usage[i].volumes = volumes;
	if (i >= 0 && bytes >= 0)
		usage[i].bytes = bytes;
	pthread_mutex_unlock(&usage_mu);
}

/* What device node `node` reported last: bytes on disk (-1: nothing yet), volumes. */
static int64_t usage_of(uint64_t node, int64_t *ret_volumes)
{
	int64_t b = -1;
	int i;

	pthread_mutex_lock(&usage_mu);
	i = usage_slot(node, false);
	if (i >= 0)
		b = usage[i].bytes;
	if (ret_volumes)
		*ret_volumes = i >= 0 ? usage[i].volumes : -1;
	pthread_mutex_unlock(&usage_mu);
	return b;
}

/* Bytes of the catalog's volumes on device node `node` (0 when the store fails). */
static uint64_t catalog_bytes(struct orch *o, uint64_t node, size_t *ret_n)
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	uint64_t sum = 0;
	size_t n = 0;

	if (o->store->vol->volume_list(o->store, node, &vs, &n) < 0)
		n = 0;
	for (size_t i = 0; i < n; i++)
		sum += vs[i].size;
	if (ret_n)
		*ret_n = n;
	return sum;
}

int volumes_place(struct orch *o, struct node_rec *ret)
{
	_cleanup_free_ struct node_rec *nodes = NULL;
	int64_t best_disk = 0;
	uint64_t best_cat = 0;
	size_t nn = 0, nup = 0, best = SIZE_MAX;
	int e;

	e = o->store->ops->node_list(o->store, "devnode", &nodes, &nn);
	if (e < 0)
		return e;
	for (size_t i = 0; i < nn; i++) {
		int64_t disk;
		uint64_t cat;

		if (strcmp(nodes[i].state, "up") != 0)
			continue;
		nup++;
		if (nodes[i].drained)
			continue;
		disk = MAX(usage_of(nodes[i].id, NULL), 0);
		cat = catalog_bytes(o, nodes[i].id, NULL);
		if (best == SIZE_MAX || disk < best_disk || (disk == best_disk && cat < best_cat)) {
			best = i;
			best_disk = disk;
			best_cat = cat;
		}
	}
	if (best == SIZE_MAX)
		return nn == 0 ? -ENODEV : nup == 0 ? -EHOSTDOWN : -ENOSPC;
	*ret = nodes[best];
	return 0;
}

void volumes_node_json(struct orch *o, const struct node_rec *n, json_t *j)
{
	int64_t volumes, bytes = usage_of(n->id, &volumes);
	size_t ncat = 0;
	uint64_t cat = catalog_bytes(o, n->id, &ncat);

	json_object_set_new(j, "volumes", volumes >= 0 ? json_integer(volumes) : json_null());
	json_object_set_new(j, "volume_bytes_allocated",
			    bytes >= 0 ? json_integer(bytes) : json_null());
	json_object_set_new(j, "catalog_volumes", json_integer((json_int_t)ncat));
	json_object_set_new(j, "catalog_bytes", json_integer((json_int_t)cat));
}

/* ---- the compute agents' disks --------------------------------------------------- */

int volumes_of_slot(struct orch *o, int64_t slot_id, struct volume_rec **ret, size_t *ret_n)
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	size_t n = 0, k = 0;
	int e = o->store->vol->volume_list(o->store, 0, &vs, &n);

	if (e < 0)
		return e;
	for (size_t i = 0; i < n; i++)
		if (vs[i].slot_id == slot_id)
			vs[k++] = vs[i];
	*ret = TAKE_PTR(vs);
	*ret_n = k;
	return 0;
}

void volumes_renew(struct orch *o, const struct slot_rec *s, uint64_t expiry, json_t *grants)
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	size_t n = 0;

	if (volumes_of_slot(o, s->id, &vs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		char hex[GRANT_HEX_LEN + 1];

		/* A volume in an operation (attach, detach, migration): that one mints its grants. */
		if (strcmp(vs[i].state, "ready") != 0 || !vs[i].disk[0])
			continue;
		if (volumes_grant(o, &vs[i], s->compute, !vs[i].read_only, expiry, hex) == 0)
			json_array_append_new(grants, json_string(hex));
	}
}

void volumes_agent_error(struct http_resp *resp, const struct node_rec *c, int status,
			 json_t *ans, const char *what)
{
	const char *code = mig_code(ans);
	char why[512];

	mig_why(status, ans, why, sizeof(why));
	if (status < 0)
		http_resp_error(resp, 503, "node_unreachable",
				"%s: compute node %s (%s) does not answer (%s)", what, c->name, c->http,
				why);
	else if (status == 404)
		http_resp_error(resp, 409, "not_running",
				"%s: compute node %s does not run the slot's VM (%s)", what, c->name,
				why);
	else if ((status == 409 || status == 502 || status == 503 || status == 504) && code[0])
		http_resp_error(resp, status, code, "%s: compute node %s refused (%s)", what, c->name,
				why);
	else
		http_resp_error(resp, 502, "agent_refused", "%s: compute node %s refused (%s)", what,
				c->name, why);
}

void volumes_detached(struct volume_rec *v)
{
	v->slot_id = 0;
	v->slot[0] = v->disk[0] = '\0';
	v->read_only = false;
}

int volumes_agent_disk(struct orch *o, const struct volume_rec *v, char id[VOLUMES_DISK_ID_MAX])
{
	_cleanup_free_ char *answer = NULL;
	json_t *ans, *x;
	struct slot_rec s;
	struct node_rec c;
	char path[128];
	size_t i;
	int r;

	r = o->store->ops->slot_get(o->store, v->slot, &s);
	if (r == -ENOENT)
		return 0;       /* the slot is gone, and its VM with it */
	if (r == 0)
		r = o->store->ops->node_get(o->store, s.compute, &c);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/v1/vms/%s/disks", s.name);
	r = cclient_call(c.id, c.http, "GET", path, NULL, VOLUMES_AGENT_SHORT_MS, &answer);
	if (r == 404)
		return 0;       /* no such VM there */
	if (r != 200)
		return r < 0 ? r : -EPROTO;
	ans = json_loads(answer ? answer : "", 0, NULL);
	if (!json_is_array(json_object_get(ans, "disks"))) {
		json_decref(ans);
		return -EPROTO;
	}
	r = 0;
	json_array_foreach(json_object_get(ans, "disks"), i, x) {
		const char *vol = json_string_value(json_object_get(x, "volume"));
		const char *d = json_string_value(json_object_get(x, "id"));

		if (vol && d && !strcmp(vol, v->name) && strlen(d) < VOLUMES_DISK_ID_MAX) {
			snprintf(id, VOLUMES_DISK_ID_MAX, "%s", d);
			r = 1;
			break;
		}
	}
	json_decref(ans);
	return r;
}

/*
 * v was being attached to or detached from its slot when an earlier run
 * stopped: the slot's agent says whether its VM has the disk. 0 (settled,
 * `ready`, attached or not), or -errno (nobody can tell yet).
 */
static int settle_disk(struct orch *o, struct volume_rec *v)
{
	char was[STORE_STATE_MAX], id[VOLUMES_DISK_ID_MAX], slot[STORE_NAME_MAX];
	int r = v->slot_id ? volumes_agent_disk(o, v, id) : 0;

	if (r < 0)
		return r;
	snprintf(was, sizeof(was), "%s", v->state);
	snprintf(slot, sizeof(slot), "%s", v->slot);
	if (r == 1)
		snprintf(v->disk, sizeof(v->disk), "%s", id);
	else
		volumes_detached(v);
	return volumes_finish(o, v, "volume_settled",
			      "volume %s was %s when the orchestrator stopped: %s%s%s%s", v->name,
			      was, r == 1 ? "attached to slot " : "not attached", r == 1 ? slot : "",
			      r == 1 ? " as " : "", r == 1 ? id : "");
}

/* ---- settling what a restart interrupted --------------------------------------- */

int volumes_settle(struct orch *o, struct volume_rec *v)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	struct dnc_volume live;
	struct node_rec dn;
	char was[STORE_STATE_MAX];
	bool made = strcmp(v->state, "creating") == 0, del = strcmp(v->state, "deleting") == 0;
	int r;

	if (!strcmp(v->state, "attaching") || !strcmp(v->state, "detaching"))
		return settle_disk(o, v);
	if (!strcmp(v->state, "migrating"))     /* the slot's recovery says where it runs */
		return volumes_record(o, v, "volume_settled", v->holder, v->slot,
				      "volume %s was migrating with slot %s when the orchestrator "
				      "stopped: attached to it on compute node %" PRIu64 " at epoch %"
				      PRIu32, v->name, v->slot, v->holder, v->epoch);
	snprintf(was, sizeof(was), "%s", v->state);
	r = o->store->ops->node_get(o->store, v->devnode, &dn);
	if (r == 0)
		r = volumes_connect(o, &dn, &c);
	if (r == 0)
		r = dnc_vol_stat(c, v->name, &live);
	if (r == -ENOENT && (made || del)) {
		r = volumes_drop(o, v, made ? "volume_create_failed" : "volume_deleted",
				 "volume %s %s (it was %s when the orchestrator stopped; device "
				 "node %" PRIu64 " has no such volume)", v->name,
				 made ? "not created" : "deleted", was, v->devnode);
		return r < 0 ? r : -ENOENT;
	}
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0) {
		v->size = live.size;
		v->key = live.key;
		snprintf(v->kind, sizeof(v->kind), "%s", live.block ? "block" : "file");
	}
	return volumes_finish(o, v, "volume_settled",
			      "volume %s was %s when the orchestrator stopped: %s, %" PRIu64
			      " bytes on device node %" PRIu64, v->name, was,
			      r == 0 ? "ready" : "ready, though its device node has no such volume",
			      v->size, v->devnode);
}

void volumes_recover(struct orch *o)
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	size_t n = 0;

	/* A number no earlier run had (0 is "none"). */
	do {
		if (auth_random(&run_id, sizeof(run_id)) < 0)
			run_id = (int64_t)time(NULL);
		run_id &= INT64_MAX;
	} while (run_id == 0);
	if (o->store->vol->volume_list(o->store, 0, &vs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		char was[STORE_STATE_MAX];
		int r;

		if (strcmp(vs[i].state, "ready") == 0)
			continue;
		snprintf(was, sizeof(was), "%s", vs[i].state);
		r = volumes_settle(o, &vs[i]);
		if (r < 0 && r != -ENOENT)
			log_warn("volume %s was %s when the orchestrator stopped; device node %" PRIu64
				 " cannot say how that ended yet (%s): settled when it is next used",
				 vs[i].name, was, vs[i].devnode, strerror(-r));
		else
			log_info("volume %s was %s when the orchestrator stopped: settled", vs[i].name,
				 was);
	}
}
