// SPDX-License-Identifier: MIT
/*
 * Hot pages across a compute migration. The source lists the clusters its
 * last faults fetched that are resident (pager_hot_export) in its answer
 * to POST /v1/vms/NAME/migrate, as "hot"; the orchestrator hands them to
 * the destination with POST /v1/vms/NAME/prefetch once the guest runs
 * there, and the destination's pager fetches them between faults
 * (pager_prefetch). The guest does not wait for any of it: a page it
 * touches first is fetched by its fault as usual.
 */
#include "vm_prefetch.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "jsonhttp.h"
#include "log.h"
#include "pager_use.h"
#include "state.h"
#include "vm_internal.h"

#define HOT_MAX_PAGES 16384u        /* 64 MiB of hints at most */

json_t *vm_hot_json(struct vm *vm, uint64_t *ret_pages)
{
	_cleanup_free_ struct pager_hot_run *runs = NULL;
	struct pager *p = vm_pager_get(vm);
	json_t *arr = json_array();
	uint64_t pages = 0;
	size_t n = 0;
	int r = p && arr ? pager_hot_export(p, HOT_MAX_PAGES, &runs, &n) : -ESRCH;

	vm_pager_put(vm, p);
	*ret_pages = 0;
	if (r < 0)
		return arr;
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, json_pack("{s:I, s:I, s:I, s:I, s:I}", "memnode",
						     (json_int_t)runs[i].sec.grant.memnode_id,
						     "section", (json_int_t)runs[i].sec.grant.section,
						     "generation",
						     (json_int_t)runs[i].sec.grant.generation, "page",
						     (json_int_t)runs[i].page, "count",
						     (json_int_t)runs[i].count));
		pages += runs[i].count;
	}
	*ret_pages = pages;
	return arr;
}

/* POST /v1/vms/NAME/prefetch {"hot": [{"memnode", "section", "generation", "page", "count"}]} */
void vm_prefetch_http(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "hot", NULL };
	static const char *const rkeys[] = { "memnode", "section", "generation", "page", "count",
					     NULL };
	uint64_t queued = 0, unknown = 0;
	const char *bad = NULL;
	json_t *j, *hot, *e;
	struct pager *p;
	size_t i;

	j = http_json_args(req, resp, keys);
	if (!j)
		return;
	hot = json_object_get(j, "hot");
	if (!json_is_array(hot)) {
		http_resp_error(resp, 400, "bad_request", "\"hot\" must be an array of page runs");
		goto out;
	}
	json_array_foreach(hot, i, e) {
		json_t *f[5];
		bool okf = json_is_object(e) && json_check_keys(e, rkeys, &bad) == 0;

		for (unsigned k = 0; k < 5; k++) {
			f[k] = json_object_get(e, rkeys[k]);
			okf = okf && json_is_integer(f[k]) && json_integer_value(f[k]) >= 0 &&
			      json_integer_value(f[k]) <= (k ? UINT32_MAX : INT64_MAX);
		}
		if (!okf || !json_integer_value(f[4])) {
			http_resp_error(resp, 400, "bad_request",
					"\"hot\"[%zu] must be {\"memnode\", \"section\", \"generation\", "
					"\"page\", \"count\"} with numbers (count > 0)", i);
			goto out;
		}
	}
	p = vm_pager_get(vm);
	if (p && vm_get_state(vm) != VM_RUNNING) {
		vm_pager_put(vm, p);
		p = NULL;
	}
	if (!p) {
		http_resp_error(resp, 409, "not_running", "VM is %s",
				vm_state_name(vm_get_state(vm)));
		goto out;
	}
	json_array_foreach(hot, i, e) {
		struct pager_section m = { .kind = PAGER_SEC_REMOTE };
		uint32_t page = (uint32_t)json_integer_value(json_object_get(e, "page"));
		uint32_t count = (uint32_t)json_integer_value(json_object_get(e, "count"));
		unsigned index;
		int region;

		m.grant.memnode_id = (uint64_t)json_integer_value(json_object_get(e, "memnode"));
		m.grant.section = (uint32_t)json_integer_value(json_object_get(e, "section"));
		m.grant.generation = (uint32_t)json_integer_value(json_object_get(e, "generation"));
		if (pager_section_find(p, &m, &region, &index) < 0 ||
		    pager_prefetch(p, region, index, page, count) < 0) {
			unknown += count;   /* not one of ours (any more), or out of range */
			continue;
		}
		queued += count;
	}
	vm_pager_put(vm, p);
	log_debug("vm %s: prefetching %llu hot pages (%llu not ours)", vm->spec.name,
		  (unsigned long long)queued, (unsigned long long)unknown);
	http_resp_json(resp, 202, json_pack("{s:I, s:I}", "queued_pages", (json_int_t)queued,
					    "skipped_pages", (json_int_t)unknown));
out:
	json_decref(j);
}
