// SPDX-License-Identifier: MIT
/*
 * The sync points of a shared region in mode release (docs/sharing.md):
 * a slot's release publishes what its guest changed (diffs of every page
 * it wrote) and its acquire drops its clean cached pages, so that it reads
 * what others released. Both are the slot's compute agent's own work
 * (POST /v1/vms/SLOT/regions/NAME/release|acquire): nothing in the
 * orchestrator changes, no epoch, no grant, no lock, so they do not take
 * the region's operation state either, and several slots release at once.
 * The agent serializes them with the slot's own attach and detach.
 */
#include "regions_sync.h"

#include <errno.h>
#include <string.h>

#include "regions.h"

#define SYNC_TIMEOUT_MS 120000

static void sync_point(struct orch *o, const char *name, const struct http_req *req,
		       struct http_resp *resp, bool acquire)
{
	static const char *const keys[] = { "slot", NULL };
	const char *op = acquire ? "acquire" : "release";
	_cleanup_free_ struct region_attach_rec *att = NULL;
	json_t *body = http_json_args(req, resp, keys), *ans = NULL;
	struct region_rec r;
	struct slot_rec s;
	const char *sname;
	size_t n = 0;
	int e, status;

	if (!body)
		return;
	sname = json_string_value(json_object_get(body, "slot"));
	if (!sname) {
		http_resp_error(resp, 400, "bad_request", "\"slot\" (a slot name) is required");
		goto out;
	}
	if (regions_get(o, name, &r, resp) < 0)
		goto out;
	if (strcmp(r.mode, "release") != 0) {
		http_resp_error(resp, 409, "mode_not_release", "region %s is in mode %s: %s is for "
				"regions in mode release (lock and unlock an exclusive one)", r.name,
				r.mode, op);
		goto out;
	}
	e = o->store->ops->slot_get(o->store, sname, &s);
	if (e == -ENOENT) {
		http_resp_error(resp, 404, "not_found", "unknown slot %s", sname);
		goto out;
	}
	if (e == 0)
		e = o->store->ops->attach_list(o->store, r.id, s.id, &att, &n);
	if (e < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-e));
		goto out;
	}
	if (!n || strcmp(att[0].state, "attached") != 0) {
		http_resp_error(resp, 409, "not_attached", "slot %s does not map region %s (%s)",
				s.name, r.name, n ? att[0].state : "not attached");
		goto out;
	}
	json_decref(body);
	body = json_object();
	status = body ? regions_call(o, s.compute, s.name, r.name, op, "POST", body,
				     SYNC_TIMEOUT_MS, &ans) : -ENOMEM;
	if (status != 200 || !json_is_object(ans)) {
		regions_agent_error(resp, status, ans, "slot %s could not %s region %s", s.name,
				    op, r.name);
		goto out;
	}
	json_object_set_new(ans, "region", json_string(r.name));
	json_object_set_new(ans, "slot", json_string(s.name));
	http_resp_json(resp, 200, json_incref(ans));
out:
	json_decref(ans);
	json_decref(body);
}

void regions_release(struct orch *o, const char *name, const struct http_req *req,
		     struct http_resp *resp)
{
	sync_point(o, name, req, resp, false);
}

void regions_acquire(struct orch *o, const char *name, const struct http_req *req,
		     struct http_resp *resp)
{
	sync_point(o, name, req, resp, true);
}
