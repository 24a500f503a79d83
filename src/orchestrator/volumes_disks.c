// SPDX-License-Identifier: MIT
/*
 * Volumes attached to slots as disks (volumes_disks.h; docs/api.md,
 * "Disks"): the /v1/slots/NAME/disks paths, and what the rest of the
 * orchestrator asks about a slot's disks (its JSON, its delete) through
 * struct orch_volumes; a compute migration's are in volumes_migrate.c.
 *
 * Attach: in one transaction the slot is found `running` and the volume
 * `ready` and attached to no slot; the volume enters `attaching` with the
 * slot recorded, so that a second attach, a delete of the volume or of
 * the slot sees it, and its ownership epoch advanced (a new owner). Then
 * a grant for the slot's compute node is minted (the volume's device
 * node, its key and epoch, r or rw, --grant-ttl), the agent
 * attaches the disk (POST /v1/vms/NAME/disks), and the disk's id is
 * recorded with event volume_attached. An agent that answers without a
 * disk id (no answer, or a refusal) is asked (GET .../disks) what its VM
 * has ("ask, don't guess": a refusal may answer a request repeated after
 * the first one's answer was lost). It has the disk: recorded. It has
 * not: the volume is as it was, and the agent's code and message are the
 * answer. Nobody can tell: the volume stays attached, so that no other
 * slot takes it meanwhile, and a detach cleans up. A record that fails
 * after the agent attached: the agent detaches again.
 *
 * Detach (not while the slot is `migrating` or `unresolved`: which node
 * serves the disk is not settled): `detaching`, the agent's DELETE
 * .../disks/ID, then the volume is recorded free with event volume_detached. The agent's 404 (no such
 * disk or VM) counts as detached; any other failure leaves it attached.
 *
 * A slot's delete takes its volumes with it: the VM's disks close with
 * the VM, and the store's slot_id goes with the slot's row.
 */
#include "volumes_disks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "migrate.h"
#include "volumes.h"

/* ---- helpers ------------------------------------------------------------------ */

/* A disk as the API shows it: its volume, as attached to its slot. */
static json_t *disk_json(const struct volume_rec *v)
{
	return json_pack("{s:s, s:s, s:o, s:I, s:I, s:b, s:s, s:I, s:I}", "volume", v->name,
			 "slot", v->slot, "disk", v->disk[0] ? json_string(v->disk) : json_null(),
			 "devnode", (json_int_t)v->devnode, "size", (json_int_t)v->size, "read_only",
			 v->read_only, "state", strcmp(v->state, "ready") ? v->state : "attached",
			 "holder", (json_int_t)v->holder, "epoch", (json_int_t)v->epoch);
}

/* v attached to no slot, `ready` again (an attach that did nothing). */
static void unattach(struct orch *o, struct volume_rec *v)
{
	volumes_detached(v);
	volumes_end(o, v);
}

/* Slot s's compute node: 0, or -errno with 500 answered. */
static int compute_of(struct orch *o, const struct slot_rec *s, struct node_rec *c,
		      struct http_resp *resp)
{
	int e = o->store->ops->node_get(o->store, s->compute, c);

	if (e < 0)
		http_resp_error(resp, 500, "internal", "slot %s: its compute node %" PRIu64 ": %s",
				s->name, s->compute, strerror(-e));
	return e;
}

/*
 * An operation of volume `vname` for slot `sname` begins (volumes_begin:
 * the transaction stays open, v `ready`), with the slot read in it. 0, or
 * -errno answered (404 for either, 409 busy) and rolled back.
 */
static int begin(struct orch *o, const char *vname, const char *sname, struct volume_rec *v,
		 struct slot_rec *s, struct http_resp *resp)
{
	int e = volumes_begin(o, vname, v, resp);

	if (e < 0)
		return e;
	e = o->store->ops->slot_get(o->store, sname, s);
	if (e == -ENOENT)
		return orch_refuse(o, resp, 404, "not_found", "unknown slot %s", sname);
	if (e < 0)
		return orch_refuse(o, resp, 500, "internal", "store: %s", strerror(-e));
	return 0;
}

/* ---- attach ------------------------------------------------------------------- */

/* The disk id in an agent's answer to an attach: 1 (in id), or 0. */
static int answered_id(int status, json_t *ans, char id[VOLUMES_DISK_ID_MAX])
{
	const char *d = json_string_value(json_object_get(ans, "id"));

	if ((status != 200 && status != 201) || !d || !d[0] || strlen(d) >= VOLUMES_DISK_ID_MAX)
		return 0;
	snprintf(id, VOLUMES_DISK_ID_MAX, "%s", d);
	return 1;
}

/* The attach was recorded wrong: the agent lets go of the disk, then v is free again. */
static void detach_again(struct orch *o, struct volume_rec *v, const struct node_rec *c)
{
	char path[192];
	int status;

	snprintf(path, sizeof(path), "/v1/vms/%s/disks/%s", v->slot, v->disk);
	status = mig_call(c, "DELETE", path, NULL, o->compute_timeout_ms, NULL);
	if (status != 200 && status != 404) {
		log_warn("volume %s stays attached to slot %s as %s: its record failed, and so did "
			 "detaching it again (%d); the next start asks the agent", v->name, v->slot,
			 v->disk, status);
		return;         /* it stays `attaching`: settled from the agent at the next start */
	}
	unattach(o, v);
}

/*
 * v (`attaching` to slot s, recorded) to the agent of s's compute node:
 * 201 with the disk, or the error answered and v free again (or, when
 * nobody can tell, attached without a disk id).
 */
static void attach(struct orch *o, struct volume_rec *v, const struct slot_rec *s,
		   struct http_resp *resp)
{
	char hex[GRANT_HEX_LEN + 1], path[160], what[192], id[VOLUMES_DISK_ID_MAX] = "";
	_cleanup_(json_decrefp) json_t *ans = NULL;
	struct node_rec c, dn;
	json_t *body, *j;
	int status, known = 0, e;

	snprintf(what, sizeof(what), "cannot attach volume %s to slot %s", v->name, s->name);
	if (volumes_devnode(o, v->devnode, &dn, resp) < 0 || compute_of(o, s, &c, resp) < 0) {
		unattach(o, v);
		return;
	}
	e = volumes_grant(o, v, c.id, !v->read_only, orch_grant_expiry(o), hex);
	if (e < 0) {
		http_resp_error(resp, 500, "internal", "%s: cannot mint a grant: %s", what,
				strerror(-e));
		unattach(o, v);
		return;
	}
	body = json_pack("{s:s, s:s, s:s, s:b}", "volume", v->name, "devnode", dn.addr, "grant",
			 hex, "read_only", v->read_only);
	snprintf(path, sizeof(path), "/v1/vms/%s/disks", s->name);
	status = body ? mig_call(&c, "POST", path, body, o->compute_timeout_ms, &ans) : -ENOMEM;
	json_decref(body);
	/*
	 * Without a disk id in the answer, ask what it did: no answer, or a
	 * refusal of a request repeated after an answer was lost (libcurl
	 * sends a request again when a kept-alive connection closes without
	 * an answer: "attached already") must not leave its disk unrecorded.
	 */
	known = answered_id(status, ans, id);
	if (!known && status != 404)
		known = volumes_agent_disk(o, v, id);
	if (known == 1) {
		snprintf(v->disk, sizeof(v->disk), "%s", id);
		e = volumes_record(o, v, "volume_attached", c.id, s->name,
			   "volume %s attached to slot %s as %s (%s, device node %" PRIu64 ")",
			   v->name, s->name, id, v->read_only ? "read-only" : "read-write", dn.id);
		if (e < 0) {
			volumes_store_error(resp, e);
			detach_again(o, v, &c);
			return;
		}
		log_info("volume %s attached to slot %s as %s", v->name, s->name, id);
		j = disk_json(v);
		if (j && json_string_value(json_object_get(ans, "serial")))
			json_object_set(j, "serial", json_object_get(ans, "serial"));
		http_resp_json(resp, 201, j);
		return;
	}
	if (status < 0 && known < 0) {
		/* Nobody can tell: attached (no other slot takes it meanwhile); a detach cleans up. */
		v->disk[0] = '\0';
		if (volumes_record(o, v, "volume_attached", c.id, s->name,
			   "volume %s may be attached to slot %s: compute node %s did not answer "
			   "(%s); detach it to clean up", v->name, s->name, c.name,
			   strerror(-status)) < 0)
			log_warn("volume %s: stays attaching until the next start", v->name);
		volumes_agent_error(resp, &c, status, ans, what);
		return;
	}
	if (status == 200 || status == 201)
		http_resp_error(resp, 502, "agent_refused",
				"%s: compute node %s answered %d but does not list the disk", what,
				c.name, status);
	else
		volumes_agent_error(resp, &c, status, ans, what);
	unattach(o, v);
}

static void h_attach(struct orch *o, const char *sname, const struct http_req *req,
		     struct http_resp *resp)
{
	static const char *const keys[] = { "volume", "read_only", NULL };
	_cleanup_(json_decrefp) json_t *body = http_json_args(req, resp, keys);
	const char *vname = json_string_value(json_object_get(body, "volume"));
	json_t *ro = json_object_get(body, "read_only");
	struct volume_rec v;
	struct slot_rec s;

	if (!body)
		return;
	if (!vname || dnc_name_check(vname) < 0) {
		http_resp_error(resp, 400, "bad_request", "\"volume\" (a volume name) is required");
		return;
	}
	if (ro && !json_is_boolean(ro)) {
		http_resp_error(resp, 400, "bad_request", "\"read_only\" must be true or false");
		return;
	}
	if (begin(o, vname, sname, &v, &s, resp) < 0)
		return;
	if (v.slot_id) {
		orch_refuse(o, resp, 409, "volume_attached", "volume %s is attached to slot %s%s",
			    vname, v.slot, v.slot_id == s.id ? " already" : ": detach it first");
		return;
	}
	if (strcmp(s.state, "running") != 0) {
		orch_refuse(o, resp, 409, "not_running",
			    "slot %s is %s: volumes attach to running slots", sname, s.state);
		return;
	}
	if (!json_is_true(ro) && volumes_image_refuse(o, &v, "be attached read-write", resp))
		return;
	v.slot_id = s.id;
	snprintf(v.slot, sizeof(v.slot), "%s", s.name);
	v.disk[0] = '\0';
	v.read_only = json_is_true(ro);
	v.epoch++;      /* a new owner: on the disk before its grant goes out */
	if (volumes_begin_commit(o, &v, "attaching", resp) < 0)
		return;
	attach(o, &v, &s, resp);
}

/* ---- detach, list ------------------------------------------------------------- */

/* DELETE /v1/slots/NAME/disks/VOLUME */
static void h_detach(struct orch *o, const char *sname, const char *vname,
		     struct http_resp *resp)
{
	_cleanup_(json_decrefp) json_t *ans = NULL;
	char path[192], what[192], id[VOLUMES_DISK_ID_MAX];
	struct volume_rec v;
	struct slot_rec s;
	struct node_rec c;
	int e, status = 404;

	if (begin(o, vname, sname, &v, &s, resp) < 0)
		return;
	if (v.slot_id != s.id) {
		orch_refuse(o, resp, 409, "not_attached", "volume %s is not attached to slot %s%s%s",
			    vname, sname, v.slot_id ? " but to slot " : "",
			    v.slot_id ? v.slot : "");
		return;
	}
	/* Which compute node serves the disk is not settled while the slot moves. */
	if (!strcmp(s.state, "migrating") || !strcmp(s.state, "unresolved")) {
		orch_refuse(o, resp, 409, "busy", "slot %s is %s: detach volume %s when that is done",
			    sname, s.state, vname);
		return;
	}
	if (volumes_begin_commit(o, &v, "detaching", resp) < 0)
		return;
	snprintf(what, sizeof(what), "cannot detach volume %s from slot %s", vname, sname);
	if (compute_of(o, &s, &c, resp) < 0) {
		volumes_end(o, &v);
		return;
	}
	e = v.disk[0] ? 1 : volumes_agent_disk(o, &v, id);    /* an attach nobody could tell */
	if (e == 1 && !v.disk[0])
		snprintf(v.disk, sizeof(v.disk), "%s", id);
	if (e < 0) {
		http_resp_error(resp, 503, "node_unreachable",
				"%s: compute node %s cannot say whether its VM has it: %s", what,
				c.name, strerror(-e));
		volumes_end(o, &v);
		return;
	}
	if (e == 1) {
		snprintf(path, sizeof(path), "/v1/vms/%s/disks/%s", s.name, v.disk);
		status = mig_call(&c, "DELETE", path, NULL, o->compute_timeout_ms, &ans);
	}
	if (status != 200 && status != 404) {
		volumes_agent_error(resp, &c, status, ans, what);
		volumes_end(o, &v);     /* still attached */
		return;
	}
	snprintf(id, sizeof(id), "%s", v.disk);
	volumes_detached(&v);
	e = volumes_record(o, &v, "volume_detached", c.id, s.name, "volume %s detached from slot %s%s%s",
		   vname, sname, id[0] ? " (" : "", id[0] ? id : "");
	if (e < 0) {
		volumes_store_error(resp, e);   /* stays `detaching`: the next start settles it */
		return;
	}
	log_info("volume %s detached from slot %s", vname, sname);
	http_resp_json(resp, 200, json_pack("{s:s, s:s, s:o}", "volume", vname, "slot", sname,
					     "disk", id[0] ? json_string(id) : json_null()));
}

/* GET /v1/slots/NAME/disks, or one: GET /v1/slots/NAME/disks/VOLUME. */
static void h_list(struct orch *o, const char *sname, const char *vname, struct http_resp *resp)
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	struct slot_rec s;
	size_t n = 0;
	json_t *arr;
	int e;

	if (slots_get_slot(o, sname, &s, resp) < 0)
		return;
	e = volumes_of_slot(o, s.id, &vs, &n);
	if (e < 0) {
		volumes_store_error(resp, e);
		return;
	}
	if (vname) {
		for (size_t i = 0; i < n; i++)
			if (!strcmp(vs[i].name, vname)) {
				http_resp_json(resp, 200, disk_json(&vs[i]));
				return;
			}
		http_resp_error(resp, 404, "not_found", "slot %s has no volume %s attached", sname,
				vname);
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, disk_json(&vs[i]));
	http_resp_json(resp, 200, json_pack("{s:o}", "disks", arr));
}

/* ---- what the rest asks ------------------------------------------------------- */

enum orch_route disks_route(struct orch *o, const char *slot, const char *rest,
			    const struct http_req *req, struct http_resp *resp)
{
	char name[STORE_NAME_MAX];
	const char *tail = "";
	int item = orch_path_item(rest, name, &tail);
	bool get = !strcmp(req->method, "GET");

	if (item == 0) {
		if (get) {
			h_list(o, slot, NULL, resp);
			return RT_DISKS_LIST;
		}
		if (!strcmp(req->method, "POST")) {
			h_attach(o, slot, req, resp);
			return RT_DISKS_ATTACH;
		}
		http_resp_error(resp, 405, "method_not_allowed", "use GET or POST on this path");
		return RT_OTHER;
	}
	if (item < 0 || *tail) {
		http_resp_error(resp, 404, "not_found", "no such path %s", req->path);
		return RT_OTHER;
	}
	if (get) {
		h_list(o, slot, name, resp);
		return RT_DISKS_LIST;
	}
	if (!strcmp(req->method, "DELETE")) {
		h_detach(o, slot, name, resp);
		return RT_DISKS_DETACH;
	}
	http_resp_error(resp, 405, "method_not_allowed", "use GET or DELETE on this path");
	return RT_OTHER;
}

void disks_slot_json(struct orch *o, const struct slot_rec *s, json_t *j)
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	size_t n = 0;
	json_t *arr;

	if (volumes_of_slot(o, s->id, &vs, &n) < 0 || n == 0)
		return;
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, disk_json(&vs[i]));
	json_object_set_new(j, "disks", arr);
	if (o->boot) {      /* a slot created from an image: which, its root disk */
		char root[STORE_NAME_MAX], image[STORE_NAME_MAX];

		o->boot->root(o, s, root, image);
		if (root[0]) {
			json_object_set_new(j, "image", json_string(image));
			json_object_set_new(j, "root_disk", json_string(root));
		}
	}
}

int disks_slot_deleting(struct orch *o, const struct slot_rec *s, struct http_resp *resp)
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	size_t n = 0;
	int e = volumes_of_slot(o, s->id, &vs, &n);

	if (e < 0) {
		volumes_store_error(resp, e);
		return e;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(vs[i].state, "ready") != 0) {
			http_resp_error(resp, 409, "busy",
					"volume %s of slot %s is %s: delete the slot when that is done",
					vs[i].name, s->name, vs[i].state);
			return -EBUSY;
		}
	return 0;
}
