// SPDX-License-Identifier: MIT
/*
 * The monitor's periodic upkeep of sections: the orphan sweep (sections a
 * memory node holds for this orchestrator's slots that no slot uses any
 * more, freed) and grant renewal (further down); and node revocation
 * (POST /v1/nodes/ID/revoke, at the end), whose list every sweep pushes
 * again.
 *
 * A free can fail: the memory node was killed, partitioned or restarting
 * when a section had to go (a failed memory migration's target, a deleted
 * slot's sections). Such a section would stay allocated for ever. So the
 * monitor asks every up memory node for its list now and then (and a
 * memory node that registers again at once), and frees each section that
 *   - carries an owner (the slot id it was allocated for; 0: not ours),
 *   - whose slot is gone, or is settled (running, degraded, failed, lost:
 *     no operation in progress that may have allocated it) and does not
 *     list it (memory node, section, generation).
 * The memory node's list is read before the store, so a section that an
 * operation allocated and recorded meanwhile is in the store already.
 * A shared region's section (owner ORCH_REGION_OWNER | its id) is freed
 * when the region is gone, or is settled and does not list it (regions.c). A
 * section of a slot in an operation, or `unresolved`, is left alone: its
 * outcome decides. Freed orphans are logged and recorded as events
 * (`section_orphan_freed`). The free is the orchestrator's (the authority
 * over epochs): it is sent with the highest epoch.
 *
 * Each sweep also pushes the revocation list to every up memory node (on
 * the connection it lists sections with) and device node (one connection
 * each), so that a node that was down at `disagg node revoke` has it soon.
 */
#include "orch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "mnclient.h"

static bool settled(const char *state)
{
	return !strcmp(state, "running") || !strcmp(state, "degraded") ||
	       !strcmp(state, "failed") || !strcmp(state, "lost");
}

/* What the memory node holds: *ret malloc'd. */
static int list_node(struct orch *o, const struct node_rec *n, struct proto_section **ret,
		     size_t *ret_n)
{
	struct mnc_opts opts = {
		.addr = n->addr, .key = &o->key, .orch_key = o->grant_key, .node_id = o->node_id,
		.timeout_ms = 5000,
	};
	_cleanup_mnc_ struct mnc *c = NULL;
	struct proto_section *all = NULL;
	uint32_t start = 0;
	size_t total = 0;
	int r;

	r = mnc_connect(&opts, &c);
	if (r < 0)
		return r;
	if (mnc_info(c)->node_id != n->id)
		return -ESTALE;
	/* Every sweep also brings the node's revocation list up to date (common/revlist.c). */
	r = revoke_push(o, c);
	if (r < 0)
		log_warn("memory node %llu: cannot push the revocation list: %s",
			 (unsigned long long)n->id, strerror(-r));
	for (;;) {
		struct proto_section buf[256], *na;
		uint32_t count = 0, next = 0;

		r = mnc_list(c, start, ARRAY_SIZE(buf), buf, &count, &next);
		if (r < 0)
			break;
		na = realloc(all, (total + count + 1) * sizeof(*all));
		if (!na) {
			r = -ENOMEM;
			break;
		}
		all = na;
		memcpy(all + total, buf, count * sizeof(*buf));
		total += count;
		if (count == 0 || next <= start || next >= mnc_info(c)->nsections)
			break;
		start = next;
	}
	if (r < 0) {
		free(all);
		return r;
	}
	*ret = all;
	*ret_n = total;
	return 0;
}

int sweep_memnode(struct orch *o, const struct node_rec *n)
{
	struct store *st = o->store;
	_cleanup_free_ struct proto_section *held = NULL;
	_cleanup_free_ struct slot_rec *slots = NULL;
	_cleanup_free_ struct section_rec *used = NULL;
	_cleanup_free_ struct replica_rec *reps = NULL;
	size_t nheld = 0, nslots = 0, nused = 0, nreps = 0;
	int r, freed = 0;

	r = list_node(o, n, &held, &nheld);
	if (r < 0)
		return r;
	r = st->ops->slot_list(st, 0, 0, &slots, &nslots);
	if (r == 0)
		r = st->ops->section_list(st, 0, n->id, &used, &nused);
	if (r == 0 && st->rep)   /* replicas (positions 1..) are used too */
		r = st->rep->replica_list(st, 0, n->id, &reps, &nreps);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nheld; i++) {
		const struct proto_section *h = &held[i];
		const struct slot_rec *s = NULL;
		bool in_use = false, reg = h->owner_id & ORCH_REGION_OWNER;
		uint64_t id = h->owner_id & ~ORCH_REGION_OWNER;
		int e;

		if (!h->owner_id)
			continue;   /* not allocated for a slot of ours */
		if (reg) {
			/* A shared region's: its region decides. */
			if (!o->regions || !o->regions->orphan(o, n, h->owner_id, h->section,
							       h->generation))
				continue;
		} else {
			for (size_t k = 0; k < nslots && !s; k++)
				if ((uint64_t)slots[k].id == h->owner_id)
					s = &slots[k];
			if (s && !settled(s->state))
				continue;   /* an operation in progress decides */
			for (size_t k = 0; k < nused && !in_use; k++)
				in_use = used[k].remote && used[k].section == h->section &&
					 used[k].generation == h->generation;
			for (size_t k = 0; k < nreps && !in_use; k++)
				in_use = reps[k].section == h->section &&
					 reps[k].generation == h->generation;
			if (in_use)
				continue;
		}
		e = mnpool_free_section(o->mnpool, n, h->section, h->generation, UINT32_MAX);
		if (e < 0 && e != -ENOENT && e != -ESTALE) {
			log_warn("memory node %s: cannot free orphan section %" PRIu32 ": %s", n->name,
				 h->section, strerror(-e));
			continue;
		}
		if (e == 0) {
			freed++;
			st->ops->node_adjust_free(st, n->id, +1);
			log_info("memory node %s: freed section %" PRIu32 " (generation %" PRIu32
				 ") of %s %s %" PRIu64 ", which nothing uses",
				 n->name, h->section, h->generation,
				 reg ? "unused or deleted" : s ? "settled" : "deleted",
				 reg ? "region" : "slot", id);
			slots_event(o, "section_orphan_freed", n->id, s ? s->name : NULL,
				    "section %" PRIu32 " generation %" PRIu32
				    " of %s id %" PRIu64 " was held on %s by nothing: freed",
				    h->section, h->generation, reg ? "region" : "slot", id, n->name);
		}
	}
	return freed;
}

/* The revocation list to every up device node (nodes_revoke tells them at once). */
static void sweep_devnodes(struct orch *o)
{
	_cleanup_free_ struct node_rec *nodes = NULL;
	size_t n = 0;

	if (!o->volumes || o->store->ops->node_list(o->store, "devnode", &nodes, &n) < 0)
		return;
	for (size_t i = 0; i < n && !atomic_load(&o->stopping); i++) {
		int r;

		if (strcmp(nodes[i].state, "up") != 0)
			continue;
		r = o->volumes->revoke(o, &nodes[i]);
		if (r < 0)
			log_debug("device node %s: cannot push the revocation list: %s", nodes[i].name,
				  strerror(-r));
	}
}

void sweep_all(struct orch *o)
{
	_cleanup_free_ struct node_rec *nodes = NULL;
	size_t n = 0;

	if (o->store->ops->node_list(o->store, "memnode", &nodes, &n) == 0)
		for (size_t i = 0; i < n && !atomic_load(&o->stopping); i++) {
			int r;

			if (strcmp(nodes[i].state, "up") != 0)
				continue;
			r = sweep_memnode(o, &nodes[i]);
			if (r < 0)
				log_debug("orphan sweep of memory node %s: %s", nodes[i].name,
					  strerror(-r));
		}
	sweep_devnodes(o);
}

/* ---- grant renewal ------------------------------------------------------ */

/*
 * Grant renewal. The orchestrator mints a slot's grants to expire after
 * --grant-ttl seconds (an hour at most) and, every third of that, sends
 * every running (or degraded) slot's compute node new grants for the
 * slot's remote sections (POST /v1/vms/NAME/grants, the agent's vm_grants.c), minted
 * with the section's current ownership epoch, for the sections of the
 * shared regions it maps (read-only, read-write for the lock holder), and
 * for the volumes attached to it as disks (the volume's epoch). A
 * slot in another state (being created, resized or migrated, failed,
 * lost) is left for the next round: its flows mint fresh grants
 * themselves, and a third of the life of a grant is left when a round is
 * missed. A compute node that does
 * not answer is logged and retried next round; grants it holds expire if
 * that goes on, and its memory nodes refuse them then (docs/security.md).
 */

/* Grants of the replicas (positions 1..) of slot s's sections, appended to arr. */
static void renew_replicas(struct orch *o, const struct slot_rec *s, uint64_t expiry,
			   json_t *arr)
{
	_cleanup_free_ struct replica_rec *reps = NULL;
	size_t n = 0;

	if (!o->store->rep || o->store->rep->replica_list(o->store, s->id, 0, &reps, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct proto_grant g;
		char hex[GRANT_HEX_LEN + 1];

		if (reps[i].replica < 1 ||
		    grant_mint(o->grant_key, reps[i].memnode, s->compute, reps[i].section,
			       reps[i].generation, reps[i].epoch, PROTO_R_READ | PROTO_R_WRITE,
			       expiry, &g) < 0)
			continue;
		grant_to_hex(&g, hex);
		json_array_append_new(arr, json_string(hex));
	}
}

/* New grants of one slot as a JSON body; NULL if it has no remote section nor region. */
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
	renew_replicas(o, s, expiry, arr);
	if (o->regions)
		o->regions->renew(o, s, expiry, arr);   /* and of the regions it maps */
	if (o->volumes)
		o->volumes->renew(o, s, expiry, arr);   /* and of its disks' volumes */
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

		/* degraded: perhaps waiting for exactly these grants (vm/health.c). */
		if ((strcmp(s->state, "running") != 0 && strcmp(s->state, "degraded") != 0) ||
		    o->store->ops->node_get(o->store, s->compute, &c) < 0)
			continue;
		body = renew_body(o, s, expiry);
		if (!body)
			continue;
		snprintf(path, sizeof(path), "/v1/vms/%s/grants", s->name);
		st = cclient_call(c.id, c.http, "POST", path, body, 10000, &answer);
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

/* ---- revocation ---------------------------------------------------------- */

/* The whole list to every up node of `kind` ("memnode", "devnode"); the others' ids into fails. */
static int revoke_tell(struct orch *o, uint64_t id, const char *kind, json_t *fails,
		       size_t *ret_told)
{
	_cleanup_free_ struct node_rec *ns = NULL;
	bool mem = strcmp(kind, "memnode") == 0;
	const char *what = mem ? "memory node" : "device node";
	size_t n = 0, told = 0;
	int r = o->store->ops->node_list(o->store, kind, &ns, &n);

	if (r < 0)
		return r;
	log_info("node %" PRIu64 " revoked: telling %zu %s%s", id, n, what, n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ns[i].state, "up") != 0)
			continue;   /* told when the orchestrator next connects to it, or sweeps */
		if (mem)
			r = mnpool_revoke(o->mnpool, &ns[i]);
		else
			r = o->volumes ? o->volumes->revoke(o, &ns[i]) : -EOPNOTSUPP;
		if (r < 0) {
			log_warn("%s %" PRIu64 " (%s): cannot push the revocation list: %s", what,
				 ns[i].id, ns[i].addr, strerror(-r));
			json_array_append_new(fails, json_integer((json_int_t)ns[i].id));
		} else {
			told++;
		}
	}
	*ret_told = told;
	return 0;
}

/*
 * POST /v1/nodes/ID/revoke: store the id and push the whole list to every
 * memory node and device node that is up; one that is not gets it when the
 * orchestrator next connects to it (mnpool.c) or sweeps it (sweep.c).
 */
void nodes_revoke(struct orch *o, uint64_t id, struct http_resp *resp)
{
	struct store *st = o->store;
	json_t *mfails = json_array(), *dfails = json_array();
	size_t mtold = 0, dtold = 0;
	char msg[128];
	int r;

	if (!mfails || !dfails) {
		json_decref(mfails);
		json_decref(dfails);
		http_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	if (id == 0) {
		json_decref(mfails);
		json_decref(dfails);
		http_resp_error(resp, 400, "invalid", "node id 0 is not a node");
		return;
	}
	r = st->ops->revoked_add(st, id, (int64_t)time(NULL));
	if (r == 0) {
		snprintf(msg, sizeof(msg), "node %" PRIu64 " revoked", id);
		r = st->ops->event_add(st, "node_revoked", id, NULL, msg);
	}
	if (r == 0)
		r = revoke_tell(o, id, "memnode", mfails, &mtold);
	if (r == 0)
		r = revoke_tell(o, id, "devnode", dfails, &dtold);
	if (r < 0) {
		json_decref(mfails);
		json_decref(dfails);
		http_resp_error(resp, 500, "store", "cannot store the revocation: %s", strerror(-r));
		return;
	}
	http_resp_json(resp, 200,
		       json_pack("{s:I, s:b, s:I, s:o, s:I, s:o}", "node_id", (json_int_t)id,
				 "revoked", 1, "memnodes_told", (json_int_t)mtold, "memnodes_failed",
				 mfails, "devnodes_told", (json_int_t)dtold, "devnodes_failed",
				 dfails));
}
