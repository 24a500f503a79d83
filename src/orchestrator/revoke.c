// SPDX-License-Identifier: MIT
/*
 * Node revocation: POST /v1/nodes/ID/revoke stores the id in the revoked
 * table and pushes the whole list to every memory node that is up
 * (REVOKE, the orchestrator's capability); mnpool.c pushes it again on
 * every new connection to a memory node, so one that was down or
 * restarted catches up before it serves the orchestrator anything. A
 * memory node closes the revoked node's connections at once and refuses
 * its handshakes (docs/security.md).
 */
#include "orch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "mnadmin.h"

int revoke_push(struct orch *o, struct mnc *c)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r;

	r = o->store->ops->revoked_list(o->store, &ids, &n);
	if (r < 0)
		return r;
	r = mnc_revoke(c, ids, n);
	if (r == -EOPNOTSUPP && n == 0)
		return 0;         /* an older node, and nothing to tell it */
	return r;
}

void nodes_revoke(struct orch *o, uint64_t id, struct http_resp *resp)
{
	struct store *st = o->store;
	_cleanup_free_ struct node_rec *mem = NULL;
	size_t nmem = 0, pushed = 0, failed = 0;
	json_t *fails = json_array();
	char msg[128];
	int r;

	if (!fails) {
		http_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	if (id == 0) {
		json_decref(fails);
		http_resp_error(resp, 400, "invalid", "node id 0 is not a node");
		return;
	}
	r = st->ops->revoked_add(st, id, (int64_t)time(NULL));
	if (r == 0) {
		snprintf(msg, sizeof(msg), "node %" PRIu64 " revoked", id);
		r = st->ops->event_add(st, "node_revoked", id, NULL, msg);
	}
	if (r == 0)
		r = st->ops->node_list(st, "memnode", &mem, &nmem);
	if (r < 0) {
		json_decref(fails);
		http_resp_error(resp, 500, "store", "cannot store the revocation: %s", strerror(-r));
		return;
	}
	log_info("node %" PRIu64 " revoked: telling %zu memory node%s", id, nmem,
		 nmem == 1 ? "" : "s");
	for (size_t i = 0; i < nmem; i++) {
		if (strcmp(mem[i].state, "up") != 0)
			continue;   /* told when the orchestrator next connects to it */
		r = mnpool_revoke(o->mnpool, &mem[i]);
		if (r < 0) {
			failed++;
			log_warn("memory node %" PRIu64 " (%s): cannot push the revocation list: %s",
				 mem[i].id, mem[i].addr, strerror(-r));
			json_array_append_new(fails, json_integer((json_int_t)mem[i].id));
		} else {
			pushed++;
		}
	}
	http_resp_json(resp, 200,
		       json_pack("{s:I, s:b, s:I, s:o}", "node_id", (json_int_t)id, "revoked", 1,
				 "memnodes_told", (json_int_t)pushed, "memnodes_failed", fails));
}
