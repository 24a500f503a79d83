// SPDX-License-Identifier: MIT
/*
 * Bringing a volume that a device node has already into the catalog
 * (docs/api.md, "Volumes": adopt), and forgetting a block device's
 * volume (its DELETE).
 *
 * A block device given to a node with --block-device, or a file volume
 * made there with disagg-dnctl, is not in the catalog, so no slot can
 * attach it. Adopting it asks the node (VOL_STAT) for its size, key and
 * kind and records them: from then on it is listed, shown, attached,
 * detached, moved with its slot and cloned from like any other. Its row
 * is inserted `creating` first (the name is taken, and a restart in the
 * middle settles it from VOL_STAT, as a create's); a failure drops the
 * row and never touches the node's volume.
 *
 * A block device cannot be resized or deleted on its node (NOTSUP): its
 * DELETE only drops the row ("forget"); the node keeps serving it, and it
 * can be adopted again.
 */
#include "volumes_adopt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"

/* The row of v (inserted `creating`) goes again: the adoption did not happen. */
static void unadopt(struct orch *o, const struct volume_rec *v)
{
	if (volumes_drop(o, v, NULL, "volume %s not adopted", v->name) < 0)
		log_warn("volume %s: its row stays `creating` until the next start settles it",
			 v->name);
}

/* 0, or 409 answered with where the catalog has `name` already. */
static int not_in_catalog(struct orch *o, const char *name, struct http_resp *resp)
{
	struct volume_rec had;
	int e = o->store->vol->volume_get(o->store, name, &had);

	if (e == -ENOENT)
		return 0;
	if (e < 0) {
		volumes_store_error(resp, e);
		return e;
	}
	http_resp_error(resp, 409, "exists",
			"volume %s is in the catalog already (on device node %" PRIu64 ", %s)", name,
			had.devnode, had.state);
	return -EEXIST;
}

void volumes_adopt(struct orch *o, const char *name, const struct http_req *req,
		   struct http_resp *resp)
{
	static const char *const keys[] = { "devnode", "epoch", NULL };
	_cleanup_(json_decrefp) json_t *body = http_json_args(req, resp, keys);
	_cleanup_mnc_ struct mnc *c = NULL;
	struct volume_rec v = { .run = volumes_run(), .created = (int64_t)time(NULL) };
	struct dnc_volume live;
	struct node_rec dn;
	int64_t devnode = 0, epoch = 0;
	int e;

	if (!body || !http_json_int(body, "devnode", 1, INT64_MAX, &devnode, resp) ||
	    !http_json_int(body, "epoch", 0, UINT32_MAX, &epoch, resp))
		return;
	v.devnode = (uint64_t)devnode;
	if (dnc_name_check(name) < 0) {
		http_resp_error(resp, 400, "bad_request",
				"\"%s\" is not a volume name: 1 to 63 characters of [a-z0-9_-], "
				"starting with a letter or a digit", name);
		return;
	}
	if (!v.devnode) {
		http_resp_error(resp, 400, "bad_request",
				"\"devnode\" (the id of the device node that has the volume) is required");
		return;
	}
	if (volumes_devnode(o, v.devnode, &dn, resp) < 0 || not_in_catalog(o, name, resp) < 0)
		return;
	snprintf(v.name, sizeof(v.name), "%s", name);
	snprintf(v.state, sizeof(v.state), "creating");
	snprintf(v.kind, sizeof(v.kind), "file");
	v.epoch = (uint32_t)epoch;
	e = o->store->vol->volume_insert(o->store, &v);
	if (e == -EEXIST) {
		http_resp_error(resp, 409, "exists", "volume %s is in the catalog already", name);
		return;
	}
	if (e < 0) {
		volumes_store_error(resp, e);
		return;
	}
	e = volumes_connect(o, &dn, &c);
	if (e == 0)
		e = dnc_vol_stat(c, name, &live);
	if (e == -ENOENT)
		http_resp_error(resp, 404, "not_found",
				"device node %" PRIu64 " (%s) has no volume %s (disagg-dnctl vol-ls "
				"lists its volumes)", dn.id, dn.name, name);
	else if (e < 0)
		volumes_node_error(resp, &dn, e, "cannot adopt volume %s of device node %" PRIu64,
				   name, dn.id);
	if (e < 0) {
		unadopt(o, &v);
		return;
	}
	v.size = live.size;
	v.key = live.key;
	snprintf(v.kind, sizeof(v.kind), "%s", live.block ? "block" : "file");
	e = volumes_finish(o, &v, "volume_adopted",
			   "volume %s: a %s of %" PRIu64 " bytes on device node %s, adopted into "
			   "the catalog at epoch %" PRIu32, name, live.block ? "block device" : "file",
			   v.size, dn.name, v.epoch);
	if (e < 0) {
		/* It stays `creating`: the next start settles it from the node's VOL_STAT. */
		volumes_store_error(resp, e);
		return;
	}
	log_info("volume %s adopted: a %s of %" PRIu64 " bytes on device node %" PRIu64, name,
		 v.kind, v.size, dn.id);
	http_resp_json(resp, 201, volumes_json(&v, &live));
}

void volumes_forget(struct orch *o, const struct volume_rec *v, struct http_resp *resp)
{
	struct store *st = o->store;
	char msg[512];
	int e;

	snprintf(msg, sizeof(msg),
		 "volume %s forgotten: removed from the catalog only; device node %" PRIu64
		 " keeps serving its block device (remove its --block-device to take it away; "
		 "adopt it again with epoch %" PRIu32 ")", v->name, v->devnode, v->epoch);
	e = st->vol->volume_delete(st, v->id);
	if (e == 0)
		e = st->ops->event_add(st, "volume_forgotten", v->devnode, NULL, msg);
	if (e == 0)
		e = st->ops->commit(st);
	else
		st->ops->rollback(st);
	if (e < 0) {
		volumes_store_error(resp, e);
		return;
	}
	log_info("%s", msg);
	http_resp_json(resp, 200, json_pack("{s:s, s:I, s:b, s:I, s:s}", "name", v->name,
					     "devnode", (json_int_t)v->devnode, "forgotten", true,
					     "epoch", (json_int_t)v->epoch, "message", msg));
}
