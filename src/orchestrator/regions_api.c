// SPDX-License-Identifier: MIT
/*
 * The /v1/regions paths of the orchestrator's API (docs/api.md, "Shared
 * regions") and the table through which slot delete, migration, the
 * orphan sweep, grant renewal and the monitor reach shared regions
 * (struct orch_regions in orch.h; regions.h says which file does what).
 */
#include "regions_api.h"

#include <stdio.h>
#include <string.h>

#include "regions.h"
#include "regions_drops.h"
#include "regions_strays.h"
#include "regions_flow.h"
#include "regions_memmig.h"
#include "regions_migrate.h"
#include "regions_sync.h"

static bool is_method(const struct http_req *req, const char *m)
{
	return strcmp(req->method, m) == 0;
}

typedef void (*region_op_fn)(struct orch *o, const char *name, const struct http_req *req,
			     struct http_resp *resp);

static const struct {
	const char *tail;
	region_op_fn fn;
	enum orch_route rt;
} ops[] = {
	{ "/attach", regions_attach, RT_REGIONS_ATTACH },
	{ "/detach", regions_detach, RT_REGIONS_DETACH },
	{ "/lock", regions_lock, RT_REGIONS_LOCK },
	{ "/unlock", regions_unlock, RT_REGIONS_UNLOCK },
	{ "/release", regions_release, RT_REGIONS_SYNC },
	{ "/acquire", regions_acquire, RT_REGIONS_SYNC },
	{ "/migrate", regions_memmig, RT_REGIONS_MIGRATE },
};

/* rest: what follows "/v1/regions": "", "/NAME" or "/NAME/VERB". */
static enum orch_route route(struct orch *o, const char *rest, const struct http_req *req,
			     struct http_resp *resp)
{
	char name[STORE_NAME_MAX];
	const char *tail;
	int item = orch_path_item(rest, name, &tail);

	if (item == 0) {
		if (is_method(req, "GET")) {
			regions_list(o, resp);
			return RT_REGIONS_LIST;
		}
		if (is_method(req, "POST")) {
			regions_create(o, req, resp);
			return RT_REGIONS_CREATE;
		}
		http_resp_error(resp, 405, "method_not_allowed", "use GET or POST on this path");
		return RT_OTHER;
	}
	if (item < 0) {
		http_resp_error(resp, 404, "not_found", "unknown region");
		return RT_REGIONS_GET;
	}
	if (*tail == '\0') {
		if (is_method(req, "GET")) {
			regions_show(o, name, resp);
			return RT_REGIONS_GET;
		}
		if (is_method(req, "DELETE")) {
			regions_delete(o, name, resp);
			return RT_REGIONS_DELETE;
		}
		http_resp_error(resp, 405, "method_not_allowed", "use GET or DELETE on this path");
		return RT_OTHER;
	}
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		if (strcmp(tail, ops[i].tail) != 0)
			continue;
		if (is_method(req, "POST"))
			ops[i].fn(o, name, req, resp);
		else
			http_resp_error(resp, 405, "method_not_allowed", "use POST on this path");
		return ops[i].rt;
	}
	http_resp_error(resp, 404, "not_found", "no such path %s", req->path);
	return RT_OTHER;
}

static int sections(struct orch *o, const char *name, uint64_t memnode, json_t *arr)
{
	_cleanup_free_ struct region_section_rec *secs = NULL;
	_cleanup_free_ struct region_rec *regs = NULL;
	size_t n = 0, nr = 0;
	int r;

	r = o->store->ops->region_list(o->store, &regs, &nr);
	if (r >= 0)
		r = o->store->ops->region_section_list(o->store, 0, memnode, &secs, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		const struct region_rec *g = NULL;

		for (size_t k = 0; k < nr && !g; k++)
			if (regs[k].id == secs[i].region_id)
				g = &regs[k];
		if (!g || (name && strcmp(name, g->name) != 0))
			continue;
		json_array_append_new(arr, json_pack("{s:I, s:I, s:I, s:s, s:I}", "memnode",
						     (json_int_t)secs[i].memnode, "section",
						     (json_int_t)secs[i].section, "generation",
						     (json_int_t)secs[i].generation, "region", g->name,
						     "index", (json_int_t)secs[i].idx));
	}
	return 0;
}

static void metrics(struct orch *o, struct strbuf *sb)
{
	static const char *const states[] = { "creating", "ready", "attaching", "detaching",
					      "locking", "unlocking", "migrating", "moving",
					      "deleting" };
	_cleanup_free_ struct region_section_rec *secs = NULL;
	_cleanup_free_ struct region_rec *regs = NULL;
	size_t n = 0, nr = 0;
	char labels[64];

	if (o->store->ops->region_list(o->store, &regs, &nr) == 0)
		for (size_t s = 0; s < ARRAY_SIZE(states); s++) {
			uint64_t cnt = 0;

			for (size_t i = 0; i < nr; i++)
				cnt += !strcmp(regs[i].state, states[s]);
			snprintf(labels, sizeof(labels), "state=\"%s\"", states[s]);
			metrics_gauge(sb, "disagg_orch_regions", s == 0 ? "Shared regions by state" : NULL,
				      labels, (double)cnt);
		}
	if (o->store->ops->region_section_list(o->store, 0, 0, &secs, &n) == 0)
		metrics_gauge(sb, "disagg_orch_region_sections_allocated",
			      "Remote sections allocated on memory nodes for shared regions", "",
			      (double)n);
}

static const struct orch_regions hooks = {
	.route = route,
	.slot_deleting = regions_slot_deleting,
	.migrate_begin = regions_migrate_begin,
	.migrate_end = regions_migrate_end,
	.renew = regions_renew,
	.node_lock = regions_node_lock,
	.orphan = regions_orphan,
	.upkeep = regions_upkeep,
	.dir_drops = regions_dir_drops,
	.slot_back = regions_slot_back,
	.sections = sections,
	.metrics = metrics,
};

void regions_start(struct orch *o)
{
	regions_memmig_recover(o);   /* first: a region caught `moving` */
	regions_recover(o);
	o->regions = &hooks;
}
