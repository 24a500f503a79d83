// SPDX-License-Identifier: MIT
/*
 * Grant renewal. The orchestrator mints a slot's grants to expire after
 * --grant-ttl seconds (an hour at most) and, every third of that, sends
 * every running slot's compute node new grants for the slot's remote
 * sections (POST /v1/vms/NAME/grants, the agent's vm_grants.c), minted
 * with the section's current ownership epoch. A slot in another state
 * (being created, resized or migrated, failed, lost) is left for the next
 * round: its flows mint fresh grants themselves, and a third of the life
 * of a grant is left when a round is missed. A compute node that does
 * not answer is logged and retried next round; grants it holds expire if
 * that goes on, and its memory nodes refuse them then (docs/security.md).
 */
#include "orch.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"

/* New grants of one slot as a JSON body; NULL if it has no remote section. */
static char *renew_body(struct orch *o, const struct slot_rec *s, uint64_t expiry)
{
	_cleanup_free_ struct section_rec *secs = NULL;
	json_t *arr = json_array(), *body;
	size_t n = 0;
	char *text;

	if (!arr || o->store->ops->section_list(o->store, s->id, 0, &secs, &n) < 0) {
		json_decref(arr);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct proto_grant g;
		char hex[GRANT_HEX_LEN + 1];

		if (!secs[i].remote)
			continue;
		if (grant_mint(o->grant_key, secs[i].memnode, s->compute, secs[i].section,
			       secs[i].generation, secs[i].epoch, PROTO_R_READ | PROTO_R_WRITE,
			       expiry, &g) < 0)
			continue;
		grant_to_hex(&g, hex);
		json_array_append_new(arr, json_string(hex));
	}
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		return NULL;
	}
	body = json_pack("{s:o}", "grants", arr);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	return text;
}

unsigned grants_renew_all(struct orch *o)
{
	_cleanup_free_ struct slot_rec *slots = NULL;
	uint64_t expiry = orch_grant_expiry(o);
	size_t n = 0;
	unsigned renewed = 0;

	if (o->store->ops->slot_list(o->store, 0, 0, &slots, &n) < 0)
		return 0;
	for (size_t i = 0; i < n && !atomic_load(&o->stopping); i++) {
		const struct slot_rec *s = &slots[i];
		_cleanup_free_ char *body = NULL, *answer = NULL;
		char path[STORE_NAME_MAX + 32];
		struct node_rec c;
		int st;

		if (strcmp(s->state, "running") != 0 ||
		    o->store->ops->node_get(o->store, s->compute, &c) < 0)
			continue;
		body = renew_body(o, s, expiry);
		if (!body)
			continue;
		snprintf(path, sizeof(path), "/v1/vms/%s/grants", s->name);
		st = cclient_call(c.http, "POST", path, body, 10000, &answer);
		if (st == 200) {
			renewed++;
			continue;
		}
		log_warn("slot %s: compute node %s did not take renewed grants: %s", s->name,
			 c.name, st < 0 ? strerror(-st) : answer ? answer : "no answer");
	}
	if (renewed)
		log_debug("grants renewed for %u slots (valid until %" PRIu64 ")", renewed, expiry);
	return renewed;
}
