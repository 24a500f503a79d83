// SPDX-License-Identifier: MIT
/*
 * Placement: which compute node runs a slot and which memory nodes hold
 * its remote sections.
 *
 * Candidates are the nodes of the right kind that are up, not drained and
 * carry every label of the slot's constraint. A compute node fits when the
 * vCPUs of its live slots plus the new ones stay within what it
 * registered. `spread` picks the compute node with the most free vCPUs and
 * puts each next section on the memory node with the most free sections;
 * `pack` picks the compute node with the fewest free vCPUs that still fits
 * and fills the fullest memory node that still fits the rest (when none
 * fits all of it, the one with the most room, and so on). Ties go to the
 * lower node id, so placement is deterministic.
 *
 * Capacity comes from the store: sections_free is what the node reported
 * in its last heartbeat, minus what we allocated since (place_memnodes
 * reserves by decrementing it under place_mu, a failed or freed section
 * gives it back). The memory node itself stays the truth: if it answers
 * NOSPC, the caller marks it full and asks again, avoiding it.
 */
#include "orch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

static bool usable(const struct node_rec *n)
{
	return strcmp(n->state, "up") == 0 && !n->drained;
}

static bool is_avoided(uint64_t id, const uint64_t *avoid, size_t navoid)
{
	for (size_t i = 0; i < navoid; i++)
		if (avoid[i] == id)
			return true;
	return false;
}

int place_compute(struct orch *o, const struct placement_req *pr, struct node_rec *ret,
		  char *why, size_t whylen)
{
	_cleanup_free_ struct node_rec *nodes = NULL;
	size_t n = 0, best = SIZE_MAX, candidates = 0;
	bool pack = pr->policy && strcmp(pr->policy, "pack") == 0;
	int r;

	r = o->store->ops->node_list(o->store, "compute", &nodes, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		int64_t free_v;

		if (!usable(&nodes[i]) || !orch_labels_match(nodes[i].labels, pr->compute_labels))
			continue;
		candidates++;
		free_v = nodes[i].vcpus - nodes[i].vcpus_used;
		if (free_v < pr->vcpus)
			continue;
		if (best == SIZE_MAX)
			best = i;
		else if (pack ? free_v < nodes[best].vcpus - nodes[best].vcpus_used
			      : free_v > nodes[best].vcpus - nodes[best].vcpus_used)
			best = i;
	}
	if (best == SIZE_MAX) {
		if (candidates == 0)
			snprintf(why, whylen, "no compute node is up, undrained and matches the "
					      "constraints");
		else
			snprintf(why, whylen, "no compute node has %lld free vCPUs",
				 (long long)pr->vcpus);
		return -ENOSPC;
	}
	*ret = nodes[best];
	return 0;
}

int place_memnodes(struct orch *o, const struct placement_req *pr, size_t want,
		   const uint64_t *avoid, size_t navoid, struct node_rec *ret, char *why,
		   size_t whylen)
{
	_cleanup_free_ struct node_rec *nodes = NULL;
	_cleanup_free_ size_t *cand = NULL;
	size_t n = 0, nc = 0;
	int64_t total = 0;
	bool pack = pr->policy && strcmp(pr->policy, "pack") == 0;
	int r;

	if (want == 0)
		return 0;
	r = o->store->ops->node_list(o->store, "memnode", &nodes, &n);
	if (r < 0)
		return r;
	cand = calloc(n ? n : 1, sizeof(*cand));
	if (!cand)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!usable(&nodes[i]) || nodes[i].sections_free <= 0 ||
		    nodes[i].section_size != o->section_size ||
		    is_avoided(nodes[i].id, avoid, navoid) ||
		    !orch_labels_match(nodes[i].labels, pr->memory_labels))
			continue;
		cand[nc++] = i;
		total += nodes[i].sections_free;
	}
	if ((size_t)total < want) {
		snprintf(why, whylen,
			 "the usable memory nodes have %lld free sections, %zu are needed",
			 (long long)total, want);
		return -ENOSPC;
	}

	for (size_t k = 0; k < want;) {
		size_t best = SIZE_MAX;

		if (pack) {
			/* The fullest node that fits everything left; else the roomiest. */
			for (size_t c = 0; c < nc; c++) {
				struct node_rec *x = &nodes[cand[c]];

				if (x->sections_free < (int64_t)(want - k))
					continue;
				if (best == SIZE_MAX || x->sections_free < nodes[best].sections_free)
					best = cand[c];
			}
		}
		if (best == SIZE_MAX) {
			for (size_t c = 0; c < nc; c++) {
				struct node_rec *x = &nodes[cand[c]];

				if (x->sections_free <= 0)
					continue;
				if (best == SIZE_MAX || x->sections_free > nodes[best].sections_free)
					best = cand[c];
			}
		}
		if (best == SIZE_MAX)
			return -ENOSPC; /* cannot happen: total was enough */
		if (pack) {
			/* Fill it: as many of the remaining sections as it holds. */
			while (k < want && nodes[best].sections_free > 0) {
				ret[k++] = nodes[best];
				nodes[best].sections_free--;
			}
		} else {
			ret[k++] = nodes[best];
			nodes[best].sections_free--;
		}
	}

	/* Reserve: what we took is no longer free until the node says otherwise. */
	r = o->store->ops->begin(o->store);
	if (r < 0)
		return r;
	for (size_t k = 0; k < want && r == 0; k++)
		r = o->store->ops->node_adjust_free(o->store, ret[k].id, -1);
	if (r < 0) {
		o->store->ops->rollback(o->store);
		return r;
	}
	return o->store->ops->commit(o->store);
}

void placement_from_slot(const struct slot_rec *s, json_t *cons, struct placement_req *pr)
{
	pr->vcpus = s->vcpus;
	pr->policy = s->policy;
	pr->compute_labels = cons ? json_object_get(cons, "compute") : NULL;
	pr->memory_labels = cons ? json_object_get(cons, "memory") : NULL;
}

static int parse_labels(json_t *v, const char *what, struct http_resp *resp)
{
	const char *k;
	json_t *x;

	if (!v)
		return 0;
	if (!json_is_object(v)) {
		http_resp_error(resp, 400, "bad_request", "constraint \"%s\" must be an object", what);
		return -EINVAL;
	}
	json_object_foreach(v, k, x) {
		if (!json_is_string(x)) {
			http_resp_error(resp, 400, "bad_request",
					"constraint %s.%s must be a string", what, k);
			return -EINVAL;
		}
	}
	return 0;
}

int placement_parse_constraints(json_t *body, char *out, size_t outlen, json_t **ret_cons,
				struct http_resp *resp)
{
	static const char *const ckeys[] = { "compute", "memory", NULL };
	const char *bad = NULL;
	json_t *v;
	char *cj;

	snprintf(out, outlen, "{}");
	*ret_cons = NULL;
	if (!(v = json_object_get(body, "constraints")))
		return 0;
	if (!json_is_object(v)) {
		http_resp_error(resp, 400, "bad_request", "\"constraints\" must be an object");
		return -EINVAL;
	}
	if (json_check_keys(v, ckeys, &bad) < 0) {
		http_resp_error(resp, 400, "unknown_field", "unknown constraint \"%s\"", bad);
		return -EINVAL;
	}
	if (parse_labels(json_object_get(v, "compute"), "compute", resp) < 0 ||
	    parse_labels(json_object_get(v, "memory"), "memory", resp) < 0)
		return -EINVAL;
	cj = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	if (!cj || strlen(cj) >= outlen) {
		free(cj);
		http_resp_error(resp, 400, "bad_request", "\"constraints\" too long");
		return -EINVAL;
	}
	snprintf(out, outlen, "%s", cj);
	free(cj);
	*ret_cons = v;
	return 0;
}
