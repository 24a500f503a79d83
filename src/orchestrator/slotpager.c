// SPDX-License-Identifier: MIT
/*
 * GET /v1/slots/NAME/pager (docs/api.md): the pager's counters of a slot's
 * VM, read from its compute node's status of the VM, for the web view's
 * charts and for scripts. Read-only; the counters are cumulative since the
 * VM started on that compute node (a compute migration starts them anew).
 */
#include "slotpager.h"

#include <string.h>
#include <time.h>

#include "macro.h"

#define PAGER_TIMEOUT_MS 5000

void slots_pager(struct orch *o, const char *name, struct http_resp *resp)
{
	_cleanup_free_ char *answer = NULL;
	struct slot_rec s;
	struct node_rec c;
	struct timespec ts;
	json_t *vm, *pager, *out;
	char path[192];
	int status;

	if (slots_get_slot(o, name, &s, resp) < 0)
		return;
	if (o->store->ops->node_get(o->store, s.compute, &c) < 0) {
		http_resp_error(resp, 404, "not_found", "slot %s has no compute node", name);
		return;
	}
	snprintf(path, sizeof(path), "/v1/vms/%s", s.name);
	status = cclient_call(c.id, c.http, "GET", path, NULL, PAGER_TIMEOUT_MS, &answer);
	if (status != 200) {
		slots_compute_error(resp, &c, "the pager figures", status, answer);
		return;
	}
	vm = json_loads(answer, 0, NULL);
	pager = vm ? json_object_get(vm, "pager") : NULL;
	clock_gettime(CLOCK_REALTIME, &ts);
	out = json_pack("{s:s, s:I, s:O, s:O, s:O, s:I}", "slot", s.name, "compute",
			(json_int_t)c.id, "state",
			vm && json_object_get(vm, "state") ? json_object_get(vm, "state")
							   : json_null(),
			"cache_bytes",
			vm && json_object_get(vm, "cache_bytes") ? json_object_get(vm, "cache_bytes")
								 : json_null(),
			"pager", pager ? pager : json_null(), "time_ms",
			(json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	json_decref(vm);
	http_resp_json(resp, 200, out);
}
