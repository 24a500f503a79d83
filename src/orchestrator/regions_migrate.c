// SPDX-License-Identifier: MIT
/*
 * Shared regions in a compute migration (docs/sharing.md, "Migration"):
 * what migrate_compute.c asks of regions through struct orch_regions.
 *
 * Begin (the slot is `migrating`): the source agent says where each
 * region's device is in the guest (PCI address, BAR2: GET
 * /v1/vms/NAME/regions; ask, don't guess); every region the slot maps
 * enters the operation state `migrating` (pending: the slot), so that no
 * lock, unlock, attach or detach changes who writes while the VM moves;
 * the destination gets grants of its own (a strict region's directory
 * knows each VM of a compute node as a holder of its own: a destination
 * that runs another user of the region is fine), read-write for a strict
 * or release region and for the holder of an exclusive one (whose epoch
 * is raised first: the lock moves with the VM), read-only otherwise.
 *
 * End: moved (the source handed the VM over), the holder's regions are
 * fenced at the raised epoch, so that nothing the source might still
 * write lands; the attachment follows the slot's compute node (the store
 * joins them) and event region_moved is recorded. Not moved: the regions
 * are `ready` again as they were (a raised epoch nobody was fenced at is
 * harmless). A strict region is never fenced: its other users write at
 * the same epoch, and the source had written back and left the directory
 * before its switchover. Nor is a release region (the same epoch for all
 * its users): the source's final flush published its diffs.
 */
#include "regions_migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "migrate.h"
#include "regions.h"

int regions_fence(struct orch *o, const struct region_rec *r)
{
	_cleanup_free_ struct region_section_rec *secs = NULL;
	size_t n = 0;
	int e, failed = 0;

	e = o->store->ops->region_section_list(o->store, r->id, 0, &secs, &n);
	if (e < 0)
		return e;
	for (size_t i = 0; i < n; i++) {
		struct section_rec x = { .remote = true, .memnode = secs[i].memnode,
					 .section = secs[i].section,
					 .generation = secs[i].generation };

		e = fence_section(o, &x, r->epoch);
		if (e == 0)
			continue;
		failed++;
		log_warn("region %s section %" PRId64 ": memory node %" PRIu64
			 " could not be fenced at epoch %" PRIu32 ": %s",
			 r->name, secs[i].idx, secs[i].memnode, r->epoch, strerror(-e));
		slots_event(o, "fence_failed", secs[i].memnode, NULL,
			    "region %s section %" PRId64 ": memory node %" PRIu64
			    " did not learn epoch %" PRIu32 " (%s)",
			    r->name, secs[i].idx, secs[i].memnode, r->epoch, strerror(-e));
	}
	return failed;
}

/* Every region of slot s in `migrating` for it goes back to `ready` (event kind, or none). */
static void end_all(struct orch *o, const struct slot_rec *s, bool moved, uint64_t from,
		    uint64_t to)
{
	_cleanup_free_ struct region_attach_rec *att = NULL;
	size_t n = 0;

	if (o->store->ops->attach_list(o->store, 0, s->id, &att, &n) < 0) {
		log_error("slot %s: cannot list its regions after its migration: they stay "
			  "`migrating` until a restart settles them", s->name);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct region_rec r;
		bool held;
		int f = 0;

		if (o->store->ops->region_get(o->store, att[i].region, &r) < 0 ||
		    strcmp(r.state, "migrating") != 0 || r.pending != s->id)
			continue;
		held = !strcmp(r.mode, "exclusive") && r.holder == s->id;
		if (moved && held)
			f = regions_fence(o, &r);
		if (!moved) {
			regions_finish(o, &r, "ready", NULL, 0, NULL, "-");
			continue;
		}
		regions_finish(o, &r, "ready", "region_moved", to, s->name,
			       "region %s of slot %s moved from compute node %" PRIu64 " to %" PRIu64
			       " at %s%s%s", r.name, s->name, from, to, att[i].pci,
			       held ? " with its lock" : "",
			       f ? " (some sections could not be fenced: see fence_failed)" : "");
		log_info("region %s moved with slot %s to compute node %" PRIu64, r.name, s->name,
			 to);
	}
}

/*
 * Region `name` of slot s enters `migrating` and its entry for the
 * destination is appended to out. 0, or -errno with resp answered.
 */
static int begin_one(struct orch *o, const struct slot_rec *s, const struct node_rec *dst,
		     const char *name, json_t *list, json_t *out, struct http_resp *resp)
{
	_cleanup_free_ struct region_attach_rec *att = NULL;
	struct region_rec r;
	json_t *e, *g;
	size_t n = 0;
	bool write;

	if (regions_begin(o, name, &r, resp) < 0)
		return -EBUSY;
	if (o->store->ops->attach_list(o->store, r.id, s->id, &att, &n) < 0 || n == 0)
		return orch_refuse(o, resp, 409, "conflict", "slot %s was detached from region "
				   "%s meanwhile", s->name, r.name);
	e = mig_entry(json_object_get(list, "regions"), "region", r.name);
	if (!e || !json_is_true(json_object_get(e, "mapped")))
		return orch_refuse(o, resp, 409, "region_not_mapped",
				   "compute node %" PRIu64 " does not map region %s for slot %s: "
				   "detach it or attach it again first", s->compute, r.name,
				   s->name);
	if (json_is_string(json_object_get(e, "waiting")))
		return orch_refuse(o, resp, 409, "lock_wait",
				   "slot %s's guest waits for region %s's %s, and QEMU cannot "
				   "pause a vCPU that waits: migrate it once the guest holds the "
				   "region (`disagg region unlock %s` where it is held) or stops "
				   "waiting", s->name, r.name,
				   json_string_value(json_object_get(e, "waiting")), r.name);
	write = regions_writes(&r, s->id);
	if (write && !strcmp(r.mode, "exclusive"))
		r.epoch++;   /* the lock moves: the destination writes at an epoch of its own */
	if (regions_begin_commit(o, &r, "migrating", s->id, resp) < 0)
		return -EIO;
	g = regions_grants(o, &r, dst->id, write, orch_grant_expiry(o), true);
	if (!g || json_array_append_new(out, json_pack("{s:s, s:s, s:I, s:o, s:b, s:O, s:O}",
						       "region", r.name, "mode", r.mode, "size",
						       (json_int_t)r.size, "sections", g,
						       "writable", write, "pci",
						       json_object_get(e, "pci"), "bar",
						       json_object_get(e, "bar"))) < 0) {
		http_resp_error(resp, 500, "internal", "cannot mint the grants of region %s",
				r.name);
		return -ENOMEM;
	}
	return 0;
}

int regions_migrate_begin(struct orch *o, const struct slot_rec *s, const struct node_rec *dst,
			  json_t **ret_regions, struct http_resp *resp)
{
	_cleanup_free_ struct region_attach_rec *att = NULL;
	json_t *out = json_array(), *list = NULL;
	size_t n = 0;
	int e = o->store->ops->attach_list(o->store, 0, s->id, &att, &n), status;

	if (e < 0) {
		json_decref(out);
		regions_store_error(resp, e);
		return e;
	}
	if (n) {
		status = regions_call(o, s->compute, s->name, NULL, NULL, "GET", NULL,
				      REGION_SHORT_TIMEOUT_MS, &list);
		if (status != 200) {
			regions_agent_error(resp, status, list, "compute node %" PRIu64 " did not "
					    "say where slot %s maps its regions: it stays there",
					    s->compute, s->name);
			e = -EIO;
		}
	}
	for (size_t i = 0; e == 0 && i < n; i++)
		e = begin_one(o, s, dst, att[i].region, list, out, resp);
	json_decref(list);
	if (e < 0) {
		end_all(o, s, false, s->compute, dst->id);
		json_decref(out);
		return e;
	}
	*ret_regions = out;
	return 0;
}

void regions_migrate_end(struct orch *o, const struct slot_rec *s, bool moved, uint64_t from,
			 uint64_t to)
{
	end_all(o, s, moved, from, to);
}
