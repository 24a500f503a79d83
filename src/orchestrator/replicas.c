// SPDX-License-Identifier: MIT
/*
 * Replicated far memory (docs/replication.md): a slot asks for
 * `replicas` (1..3, default --replicas) and every remote section of its
 * RAM then lives on that many memory nodes. This file places and records
 * the replicas (create, hot-add), frees them (delete, shrink, rollbacks),
 * shows them (GET /v1/slots: each section's replicas, the slot's
 * `redundancy`), adds them to the sections the compute agent is sent
 * (create, hot-add, incoming compute migration: "replicas": [{addr, grant}]
 * for positions 1.. in order) and takes replicas out that the agent
 * reports out (heartbeat vm_states[].replicas_out). Taking out the
 * replicas of lost memory nodes and repair are replicas_repair.c's.
 *
 * Placement: the replicas of one section go to distinct memory nodes, in
 * distinct zones (the `zone` label; a memory node without one is a zone of
 * its own), each the usable node (up, undrained, matching the slot's memory
 * labels, with a free section) with the most free sections (`pack`: the
 * fewest) outside the zones already used. A create that cannot be placed
 * so is refused before anything is allocated (409 no_capacity).
 */
#include "replicas.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"

#define PLACE_RETRIES 8

void replicas_zone(const struct node_rec *n, char *buf, size_t len)
{
	json_t *l = json_loads(n->labels, 0, NULL);
	const char *z = json_string_value(json_object_get(l, "zone"));

	if (z && *z)
		snprintf(buf, len, "zone:%s", z);
	else
		snprintf(buf, len, "node:%" PRIu64, n->id);
	json_decref(l);
}

static bool has_id(const uint64_t *ids, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* A memory node a replica of slot s may go to (capacity aside). */
static bool usable(struct orch *o, const struct node_rec *n, json_t *labels)
{
	return strcmp(n->state, "up") == 0 && !n->drained && n->section_size == o->section_size &&
	       orch_labels_match(n->labels, labels);
}

/* Pick (and reserve) one node: see replicas_alloc. Call with place_mu held. */
static int place_one(struct orch *o, const struct slot_rec *s, json_t *labels,
		     const uint64_t *nodes, size_t nn, const uint64_t *zone_nodes, size_t nz,
		     const uint64_t *avoid, size_t navoid, struct node_rec *ret, char *why,
		     size_t whylen)
{
	_cleanup_free_ struct node_rec *all = NULL;
	bool pack = strcmp(s->policy, "pack") == 0;
	size_t n = 0, best = SIZE_MAX;
	char zones[REPLICAS_MAX * 2][STORE_NAME_MAX + 8];
	size_t nzones = 0;
	int r;

	r = o->store->ops->node_list(o->store, "memnode", &all, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (has_id(zone_nodes, nz, all[i].id) && nzones < ARRAY_SIZE(zones))
			replicas_zone(&all[i], zones[nzones++], sizeof(zones[0]));
	for (size_t i = 0; i < n; i++) {
		char z[STORE_NAME_MAX + 8];
		bool zone_used = false;

		if (!usable(o, &all[i], labels) || all[i].sections_free <= 0 ||
		    has_id(nodes, nn, all[i].id) || has_id(avoid, navoid, all[i].id))
			continue;
		replicas_zone(&all[i], z, sizeof(z));
		for (size_t k = 0; k < nzones; k++)
			zone_used = zone_used || strcmp(zones[k], z) == 0;
		if (zone_used)
			continue;
		if (best == SIZE_MAX ||
		    (pack ? all[i].sections_free < all[best].sections_free
			  : all[i].sections_free > all[best].sections_free))
			best = i;
	}
	if (best == SIZE_MAX) {
		snprintf(why, whylen,
			 "no usable memory node with a free section is outside the nodes and zones "
			 "of the section's other %zu replica%s",
			 nn, nn == 1 ? "" : "s");
		return -ENOSPC;
	}
	*ret = all[best];
	return o->store->ops->node_adjust_free(o->store, ret->id, -1);
}

int replicas_alloc(struct orch *o, const struct slot_rec *s, const uint64_t *nodes, size_t nn,
		   const uint64_t *zone_nodes, size_t nz, struct node_rec *ret_mn,
		   uint32_t *ret_sec, uint32_t *ret_gen, char *why, size_t whylen)
{
	json_t *cons = json_loads(s->constraints, 0, NULL);
	json_t *labels = json_object_get(cons, "memory");
	uint64_t avoid[PLACE_RETRIES];
	size_t navoid = 0;
	int r;

	for (;;) {
		pthread_mutex_lock(&o->place_mu);
		r = place_one(o, s, labels, nodes, nn, zone_nodes, nz, avoid, navoid, ret_mn, why,
			      whylen);
		pthread_mutex_unlock(&o->place_mu);
		if (r < 0)
			break;
		r = mnpool_alloc(o->mnpool, ret_mn, (uint64_t)s->id, ret_sec, ret_gen);
		if (r == 0)
			break;
		log_info("slot %s: memory node %s could not allocate a replica: %s", s->name,
			 ret_mn->name, strerror(-r));
		o->store->ops->node_set_free(o->store, ret_mn->id, 0);
		if (navoid == ARRAY_SIZE(avoid)) {
			snprintf(why, whylen, "memory nodes keep failing to allocate: %s",
				 strerror(-r));
			r = r == -ENOSPC ? -ENOSPC : -EHOSTUNREACH;
			break;
		}
		avoid[navoid++] = ret_mn->id;
	}
	json_decref(cons);
	return r;
}

void replicas_as_section(const struct replica_rec *r, struct section_rec *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->slot_id = r->slot_id;
	snprintf(ret->slot, sizeof(ret->slot), "%s", r->slot);
	ret->idx = r->idx;
	ret->remote = true;
	ret->memnode = r->memnode;
	ret->section = r->section;
	ret->generation = r->generation;
	ret->epoch = r->epoch;
	ret->hot_index = -1;
}

void replicas_free(struct orch *o, const struct replica_rec *r)
{
	struct section_rec x;

	replicas_as_section(r, &x);
	slots_free_remote(o, &x);
}

json_t *replicas_entry(struct orch *o, const struct node_rec *mn, uint64_t holder,
		       const struct replica_rec *r)
{
	json_t *j = slots_remote_json(o, mn, holder, r->section, r->generation, r->epoch);

	if (j)
		json_object_del(j, "kind");
	return j;
}

int replicas_record(struct orch *o, const struct replica_rec *r, const char *kind,
		    uint64_t node, const char *fmt, ...)
{
	struct store *st = o->store;
	char msg[1024];
	va_list ap;
	int e;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e = st->ops->begin(st);
	if (e < 0)
		return e;
	e = st->rep->replica_update(st, r);
	if (e == 0)
		e = st->ops->event_add(st, kind, node, r->slot, msg);
	if (e == 0)
		return st->ops->commit(st);
	st->ops->rollback(st);
	return e;
}

/* ---- the hooks ---------------------------------------------------------------- */

/* Distinct zones of the memory nodes that could hold slot s's replicas now. */
static size_t zones_available(struct orch *o, json_t *labels, char *list, size_t len)
{
	_cleanup_free_ struct node_rec *all = NULL;
	char zones[64][STORE_NAME_MAX + 8];
	size_t n = 0, nz = 0, off = 0;

	if (o->store->ops->node_list(o->store, "memnode", &all, &n) < 0)
		return 0;
	list[0] = '\0';
	for (size_t i = 0; i < n && nz < ARRAY_SIZE(zones); i++) {
		bool seen = false;

		if (!usable(o, &all[i], labels) || all[i].sections_free <= 0)
			continue;
		replicas_zone(&all[i], zones[nz], sizeof(zones[0]));
		for (size_t k = 0; k < nz; k++)
			seen = seen || strcmp(zones[k], zones[nz]) == 0;
		if (seen)
			continue;
		if (off < len)
			off += (size_t)snprintf(list + off, len - off, "%s%s", nz ? ", " : "",
						zones[nz]);
		nz++;
	}
	return nz;
}

static int rep_parse(struct orch *o, json_t *body, struct slot_rec *s, json_t *cons,
		     struct http_resp *resp)
{
	json_t *v = json_object_get(body, "replicas");
	size_t nsec, nremote, nz;
	char zl[512];

	s->replicas = o->replicas_default > 0 ? o->replicas_default : 1;
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > REPLICAS_MAX) {
			http_resp_error(resp, 400, "bad_request",
					"\"replicas\" must be an integer from 1 to %d", REPLICAS_MAX);
			return -EINVAL;
		}
		s->replicas = json_integer_value(v);
	}
	nsec = (size_t)(s->memory / o->section_size);
	nremote = nsec - (nsec * (size_t)(100 - s->remote_percent) + 50) / 100;
	if (s->replicas == 1 || nremote == 0)
		return 0;
	nz = zones_available(o, cons ? json_object_get(cons, "memory") : NULL, zl, sizeof(zl));
	if (nz < (size_t)s->replicas) {
		http_resp_error(resp, 409, "no_capacity",
				"slot %s: %" PRId64 " replicas need %" PRId64 " memory nodes in "
				"distinct zones with free sections; there %s %zu (%s)",
				s->name, s->replicas, s->replicas, nz == 1 ? "is" : "are", nz,
				nz ? zl : "none");
		return -EINVAL;
	}
	return 0;
}

static void rep_drop(struct orch *o, const struct slot_rec *s, int64_t idx)
{
	struct store *st = o->store;
	_cleanup_free_ struct replica_rec *reps = NULL;
	size_t n = 0;

	if (!st->rep || st->rep->replica_list(st, s->id, 0, &reps, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (reps[i].replica >= 1 && (idx < 0 || reps[i].idx == idx))
			replicas_free(o, &reps[i]);
	st->rep->replica_remove(st, s->id, idx);
}

static int rep_add(struct orch *o, const struct slot_rec *s, uint64_t holder,
		   const struct section_rec *x, json_t *sec, char *why, size_t whylen)
{
	struct store *st = o->store;
	uint64_t nodes[REPLICAS_MAX] = { x->memnode };
	size_t nn = 1;
	json_t *arr;
	int r = 0;

	if (s->replicas <= 1 || !st->rep || !x->remote)
		return 0;
	arr = json_array();
	for (int64_t k = 1; k < s->replicas && k < REPLICAS_MAX; k++) {
		struct replica_rec rr = { .slot_id = s->id, .idx = x->idx, .replica = k,
					  .epoch = x->epoch, .state = "in" };
		struct node_rec mn;

		snprintf(rr.slot, sizeof(rr.slot), "%s", s->name);
		r = replicas_alloc(o, s, nodes, nn, nodes, nn, &mn, &rr.section, &rr.generation,
				   why, whylen);
		if (r < 0)
			break;
		rr.memnode = mn.id;
		r = st->rep->replica_put(st, &rr);
		if (r < 0) {
			snprintf(why, whylen, "store: %s", strerror(-r));
			replicas_free(o, &rr);
			break;
		}
		nodes[nn++] = mn.id;
		json_array_append_new(arr, replicas_entry(o, &mn, holder, &rr));
	}
	if (r < 0) {
		rep_drop(o, s, x->idx);
		json_decref(arr);
		return r;
	}
	json_object_set_new(sec, "replicas", arr);
	return 0;
}

static void rep_agent_json(struct orch *o, const struct slot_rec *s, uint64_t holder,
			   const struct section_rec *x, json_t *sec)
{
	struct store *st = o->store;
	_cleanup_free_ struct replica_rec *reps = NULL;
	size_t n = 0;
	json_t *arr;

	if (!st->rep || !x->remote || st->rep->replica_list(st, s->id, 0, &reps, &n) < 0)
		return;
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		struct node_rec mn;

		/* An out replica missed writes: the agent is not given it. */
		if (reps[i].idx != x->idx || reps[i].replica < 1 || strcmp(reps[i].state, "in") ||
		    st->ops->node_get(st, reps[i].memnode, &mn) < 0)
			continue;
		json_array_append_new(arr, replicas_entry(o, &mn, holder, &reps[i]));
	}
	if (json_array_size(arr))
		json_object_set_new(sec, "replicas", arr);
	else
		json_decref(arr);
}

/* The section object of arr whose "index" is idx, or NULL. */
static json_t *section_of(json_t *arr, int64_t idx)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
		if (json_integer_value(json_object_get(v, "index")) == idx)
			return v;
	return NULL;
}

static void rep_slot_json(struct orch *o, const struct slot_rec *s, json_t *j)
{
	struct store *st = o->store;
	_cleanup_free_ struct replica_rec *reps = NULL;
	json_t *secs = json_object_get(j, "sections");
	int64_t want = s->replicas > 0 ? s->replicas : 1, least = want, in = 0;
	size_t n = 0;
	char text[64];

	json_object_set_new(j, "replicas", json_integer(want));
	if (!st->rep || st->rep->replica_list(st, s->id, 0, &reps, &n) < 0)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *x = section_of(secs, reps[i].idx), *arr;

		in += strcmp(reps[i].state, "in") == 0;
		if (i + 1 == n || reps[i + 1].idx != reps[i].idx) {   /* the section's last */
			least = MIN(least, in);
			in = 0;
		}
		if (!x)
			continue;
		if (reps[i].replica == 0) {
			json_object_set_new(x, "state", json_string(reps[i].state));
			if (reps[i].reason[0])
				json_object_set_new(x, "reason", json_string(reps[i].reason));
			continue;
		}
		if (!(arr = json_object_get(x, "replicas"))) {
			arr = json_array();
			json_object_set_new(x, "replicas", arr);
		}
		json_t *e = json_pack("{s:I, s:I, s:I, s:I, s:I, s:s}", "replica",
				      (json_int_t)reps[i].replica, "memnode",
				      (json_int_t)reps[i].memnode, "section",
				      (json_int_t)reps[i].section, "generation",
				      (json_int_t)reps[i].generation, "epoch",
				      (json_int_t)reps[i].epoch, "state", reps[i].state);

		if (e && reps[i].reason[0])
			json_object_set_new(e, "reason", json_string(reps[i].reason));
		json_array_append_new(arr, e);
	}
	if (least >= want)
		snprintf(text, sizeof(text), "ok (%" PRId64 "/%" PRId64 " replicas)", want, want);
	else
		snprintf(text, sizeof(text), "degraded (%" PRId64 "/%" PRId64 " replicas)", least,
			 want);
	json_object_set_new(j, "redundancy",
			    json_pack("{s:s, s:I, s:I, s:s}", "state",
				      least >= want ? "ok" : "degraded", "in", (json_int_t)least,
				      "want", (json_int_t)want, "text", text));
}

/* replicas.h */
void replicas_take_out(struct orch *o, const struct slot_rec *s, struct replica_rec *reps,
		       size_t n, json_t *e)
{
	json_t *mv = json_object_get(e, "memnode"), *sv = json_object_get(e, "section"),
	       *gv = json_object_get(e, "generation");
	const char *why = json_string_value(json_object_get(e, "reason"));

	if (!json_is_integer(mv) || !json_is_integer(sv) || !json_is_integer(gv))
		return;
	for (size_t i = 0; i < n; i++) {
		struct replica_rec *r = &reps[i];

		if (r->memnode != (uint64_t)json_integer_value(mv) ||
		    r->section != (uint32_t)json_integer_value(sv) ||
		    r->generation != (uint32_t)json_integer_value(gv))
			continue;
		if (strcmp(r->state, "in") != 0)
			return;   /* out already, or being repaired */
		snprintf(r->state, sizeof(r->state), "out");
		snprintf(r->reason, sizeof(r->reason), "%s",
			 why && *why ? why : "the compute node took it out");
		if (replicas_record(o, r, "replica_out", r->memnode,
				    "slot %s section %" PRId64 " replica %" PRId64 " (memory node %"
				    PRIu64 " section %" PRIu32 ") is out: %s",
				    s->name, r->idx, r->replica, r->memnode, r->section,
				    r->reason) == 0)
			log_warn("slot %s section %" PRId64 ": replica %" PRId64 " on memory node %"
				 PRIu64 " is out: %s", s->name, r->idx, r->replica, r->memnode,
				 r->reason);
		return;
	}
}

static void rep_vms_out(struct orch *o, const struct node_rec *n, json_t *vms)
{
	struct store *st = o->store;
	size_t i;
	json_t *vm;

	if (!st->rep)
		return;
	json_array_foreach(vms, i, vm) {
		json_t *outs = json_object_get(vm, "replicas_out"), *e;
		const char *name = json_string_value(json_object_get(vm, "name"));
		_cleanup_free_ struct replica_rec *reps = NULL;
		struct slot_rec s;
		size_t k, nr = 0;

		if (!name || !json_array_size(outs) || st->ops->slot_get(st, name, &s) < 0 ||
		    s.compute != n->id || st->rep->replica_list(st, s.id, 0, &reps, &nr) < 0)
			continue;
		json_array_foreach(outs, k, e)
			replicas_take_out(o, &s, reps, nr, e);
	}
}

static int rep_compute_check(struct orch *o, const struct slot_rec *s, struct http_resp *resp)
{
	struct store *st = o->store;
	_cleanup_free_ struct replica_rec *reps = NULL;
	size_t n = 0;

	if (!st->rep || st->rep->replica_list(st, s->id, 0, &reps, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(reps[i].state, "in") != 0) {
			http_resp_error(resp, 409, "conflict",
					"slot %s section %" PRId64 ": replica %" PRId64 " is %s (%s); "
					"it is repaired before the slot moves: try again then",
					s->name, reps[i].idx, reps[i].replica, reps[i].state,
					reps[i].reason[0] ? reps[i].reason : "no reason");
			return -EBUSY;
		}
	return 0;
}

static struct orch_replicas replicas_ops = {
	.parse = rep_parse,
	.add = rep_add,
	.drop = rep_drop,
	.slot_json = rep_slot_json,
	.agent_json = rep_agent_json,
	.vms_out = rep_vms_out,
	.compute_check = rep_compute_check,
};

void replicas_start(struct orch *o, void (*more)(struct orch_replicas *ops))
{
	if (more)
		more(&replicas_ops);
	o->replicas = &replicas_ops;
}
