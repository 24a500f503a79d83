// SPDX-License-Identifier: MIT
/*
 * Strict-region holders a memory node's coherence directory lost
 * (docs/sharing.md, "Failure (strict)"). A holder that leaves a recall
 * unanswered for the lease, or whose recall channel closes, is dropped by
 * the directory, and what it wrote to the pages it owned is lost. The
 * memory node lists its last drops in its heartbeats ("dir_drops", each
 * numbered: "seq"); every drop not seen before becomes an event
 * `region_holder_lost` naming the region, the compute node and the pages.
 *
 * The numbers seen are kept in memory, per memory node (every heartbeat of
 * a memory node comes here, with drops or without): after a restart of
 * the orchestrator, the first heartbeat of each memory node only sets
 * where to start (drops older than that are not reported twice, and the
 * ones between the restart and that heartbeat are not reported at all).
 * A memory node that restarts numbers from 1 again: a number lower than
 * the last one seen starts over.
 */
#include "regions_drops.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"

#define DROPS_NODES 256

static pthread_mutex_t drops_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t node, last;
} seen[DROPS_NODES];

/* The last number seen of memory node `node` (slot created: *fresh). */
static uint64_t *last_of(uint64_t node, bool *fresh)
{
	unsigned free_i = DROPS_NODES;

	*fresh = false;
	for (unsigned i = 0; i < DROPS_NODES; i++) {
		if (seen[i].node == node)
			return &seen[i].last;
		if (!seen[i].node && free_i == DROPS_NODES)
			free_i = i;
	}
	if (free_i == DROPS_NODES) {
		static bool warned;

		if (!warned)
			log_warn("more than %u memory nodes: the lost strict holders of memory "
				 "node %" PRIu64 " (and others) are not reported as events",
				 DROPS_NODES, node);
		warned = true;
		return NULL;
	}
	seen[free_i].node = node;
	*fresh = true;
	return &seen[free_i].last;
}

/* The region whose section `idx` is memory node mn's sec/gen: its name, or "". */
static void region_of(struct orch *o, uint64_t mn, uint32_t sec, uint32_t gen, char *name,
		      size_t len)
{
	_cleanup_free_ struct region_rec *regs = NULL;
	size_t n = 0;

	name[0] = '\0';
	if (o->store->ops->region_list(o->store, &regs, &n) < 0)
		return;
	for (size_t i = 0; i < n && !name[0]; i++) {
		_cleanup_free_ struct region_section_rec *secs = NULL;
		size_t k = 0;

		if (o->store->ops->region_section_list(o->store, regs[i].id, 0, &secs, &k) < 0)
			continue;
		for (size_t j = 0; j < k; j++)
			if (secs[j].memnode == mn && secs[j].section == sec &&
			    secs[j].generation == gen)
				snprintf(name, len, "%s", regs[i].name);
	}
}

static void report(struct orch *o, const struct node_rec *mn, json_t *d)
{
	uint64_t node = (uint64_t)json_integer_value(json_object_get(d, "node"));
	uint32_t sec = (uint32_t)json_integer_value(json_object_get(d, "section"));
	uint32_t gen = (uint32_t)json_integer_value(json_object_get(d, "generation"));
	json_int_t pages = json_integer_value(json_object_get(d, "pages"));
	char region[STORE_NAME_MAX], cname[STORE_NAME_MAX] = "";
	struct node_rec c;

	region_of(o, mn->id, sec, gen, region, sizeof(region));
	if (o->store->ops->node_get(o->store, node, &c) == 0)
		snprintf(cname, sizeof(cname), "%s", c.name);
	log_warn("region %s: memory node %s dropped compute node %s (%" PRIu64 ") from the "
		 "directory of section %" PRIu32 ": %lld pages it owned lost",
		 region[0] ? region : "?", mn->name, cname[0] ? cname : "?", node, sec,
		 (long long)pages);
	slots_event(o, "region_holder_lost", node, NULL,
		    "region %s: memory node %s dropped compute node %s (%" PRIu64 ", holder tag %"
		    JSON_INTEGER_FORMAT ") from its directory (%s): what it wrote to the %"
		    JSON_INTEGER_FORMAT " pages it owned is lost; the other users go on",
		    region[0] ? region : "(unknown)", mn->name, cname[0] ? cname : "(unknown)",
		    node, json_integer_value(json_object_get(d, "tag")),
		    json_is_true(json_object_get(d, "lease")) ?
		    "no answer to a recall within the lease" : "its recall channel closed", pages);
}

void regions_dir_drops(struct orch *o, const struct node_rec *mn, json_t *drops)
{
	uint64_t *last, max = 0, from;
	bool fresh;
	size_t i;
	json_t *d;

	if (drops && !json_is_array(drops))
		return;
	json_array_foreach(drops, i, d) {
		json_t *s = json_object_get(d, "seq");

		if (json_is_integer(s) && json_integer_value(s) > 0)
			max = MAX(max, (uint64_t)json_integer_value(s));
	}
	pthread_mutex_lock(&drops_mu);
	last = last_of(mn->id, &fresh);
	if (!last) {
		pthread_mutex_unlock(&drops_mu);
		return;
	}
	from = *last;
	if (max < from)
		from = 0;                /* the memory node restarted: numbers start over */
	*last = max;
	pthread_mutex_unlock(&drops_mu);
	if (fresh)
		return;                  /* where to start; see the top */
	json_array_foreach(drops, i, d) {
		json_t *s = json_object_get(d, "seq");

		if (json_is_integer(s) && (uint64_t)json_integer_value(s) > from &&
		    json_is_object(d))
			report(o, mn, d);
	}
}
