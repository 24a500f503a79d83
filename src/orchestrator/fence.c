// SPDX-License-Identifier: MIT
/*
 * Ownership epochs and fencing, the orchestrator's half (docs/api.md,
 * "Ownership epochs"; the memory node's half is src/memnode/fence.c).
 *
 * Every remote section of a slot has an epoch in the store, and every
 * grant the orchestrator mints for it carries that epoch. The store's
 * epoch is never lower than one minted, so a FENCE at the store's epoch
 * refuses every grant handed out before the last advance, and none since.
 *
 * At each change of owner:
 *   - compute migration: fence_advance() raises the epochs (durably, in
 *     one transaction) before the destination's grants are minted with
 *     them; once the source says the VM has migrated (its last write-back
 *     is acknowledged and its vCPUs are stopped for good), fence_slot()
 *     makes each memory node learn the new epoch. The destination's own
 *     first write to a section would raise it as well, so the fence covers
 *     every section, written or not, without waiting for it.
 *   - memory-migration commit: the target section is granted at the
 *     source's epoch + 1, and the source section is fenced at that epoch
 *     before it is freed (slots_free_remote);
 *   - slot delete, shrink, rollbacks: every section is fenced before it is
 *     freed (slots_free_remote), so even a free that fails leaves no old
 *     grant able to write.
 *
 * The FENCE itself presents a grant the orchestrator mints for itself
 * (holder: its node id, write rights, the new epoch, short expiry): the
 * memory node checks it like any grant, whoever signs grants.
 */
#include "orch.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define FENCE_GRANT_TTL_S 300

int fence_section_on(struct orch *o, const struct node_rec *mn, const struct section_rec *x,
		     uint32_t epoch)
{
	struct proto_grant g;
	uint32_t now_epoch = 0;
	int r;

	r = grant_mint(o->grant_key, mn->id, o->node_id, x->section, x->generation, epoch,
		       PROTO_R_WRITE, (uint64_t)time(NULL) + FENCE_GRANT_TTL_S, &g);
	if (r == 0)
		r = mnpool_fence(o->mnpool, mn, &g, &now_epoch);
	if (r == 0)
		log_debug("section %" PRIu32 " generation %" PRIu32 " on memory node %" PRIu64
			  ": epoch %" PRIu32 " (asked %" PRIu32 ")",
			  x->section, x->generation, mn->id, now_epoch, epoch);
	return r;
}

int fence_section(struct orch *o, const struct section_rec *x, uint32_t epoch)
{
	struct node_rec mn;
	int r = o->store->ops->node_get(o->store, x->memnode, &mn);

	return r < 0 ? r : fence_section_on(o, &mn, x, epoch);
}

/* Every replica of section x (x->epoch raised) takes the new epoch (in the caller's transaction). */
static int advance_replicas(struct orch *o, const struct section_rec *x)
{
	_cleanup_free_ struct replica_rec *reps = NULL;
	struct store *st = o->store;
	size_t n = 0;
	int r = st->rep ? st->rep->replica_list(st, x->slot_id, 0, &reps, &n) : 0;

	for (size_t i = 0; r == 0 && i < n; i++) {
		if (reps[i].idx != x->idx)
			continue;
		reps[i].epoch = reps[i].replica ? MAX(reps[i].epoch + 1, x->epoch) : x->epoch;
		r = st->rep->replica_update(st, &reps[i]);
	}
	return r;
}

/* Fence the replicas (positions 1..) of slot s at their epochs: how many failed. */
static size_t fence_replicas(struct orch *o, const struct slot_rec *s)
{
	_cleanup_free_ struct replica_rec *reps = NULL;
	size_t n = 0, failed = 0;

	if (!o->store->rep || o->store->rep->replica_list(o->store, s->id, 0, &reps, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct section_rec x = { .slot_id = s->id, .idx = reps[i].idx, .remote = true,
					 .memnode = reps[i].memnode, .section = reps[i].section,
					 .generation = reps[i].generation, .epoch = reps[i].epoch };
		int r;

		if (reps[i].replica < 1)
			continue;
		r = fence_section(o, &x, x.epoch);
		if (r == 0 || r == -ENOENT || r == -ESTALE)
			continue;
		failed++;
		slots_event(o, "fence_failed", x.memnode, s->name,
			    "slot %s section %" PRId64 " replica %" PRId64 ": memory node %" PRIu64
			    " did not learn epoch %" PRIu32 " (%s)", s->name, x.idx,
			    reps[i].replica, x.memnode, x.epoch, strerror(-r));
	}
	return failed;
}

int fence_advance(struct orch *o, struct section_rec *secs, size_t n)
{
	struct store *st = o->store;
	int r = st->ops->begin(st);

	for (size_t i = 0; r == 0 && i < n; i++) {
		if (!secs[i].remote)
			continue;
		secs[i].epoch++;
		if (st->rep) {   /* every replica, position 0 keeping its state */
			r = advance_replicas(o, &secs[i]);
			continue;
		}
		r = st->ops->section_remove(st, secs[i].slot_id, secs[i].idx);
		if (r == 0)
			r = st->ops->section_add(st, &secs[i]);
	}
	if (r == 0)
		return st->ops->commit(st);
	st->ops->rollback(st);
	return r;
}

int fence_slot(struct orch *o, const struct slot_rec *s)
{
	_cleanup_free_ struct section_rec *secs = NULL;
	size_t n = 0, failed = 0;
	int r = o->store->ops->section_list(o->store, s->id, 0, &secs, &n);

	if (r < 0) {
		log_warn("slot %s: cannot list its sections to fence them: %s", s->name,
			 strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (!secs[i].remote)
			continue;
		r = fence_section(o, &secs[i], secs[i].epoch);
		if (r == 0 || r == -ENOENT || r == -ESTALE)
			continue;   /* fenced, or gone: no grant of it writes anywhere */
		failed++;
		log_warn("slot %s section %" PRId64 ": memory node %" PRIu64
			 " could not be fenced at epoch %" PRIu32 ": %s",
			 s->name, secs[i].idx, secs[i].memnode, secs[i].epoch, strerror(-r));
		slots_event(o, "fence_failed", secs[i].memnode, s->name,
			    "slot %s section %" PRId64 ": memory node %" PRIu64
			    " did not learn epoch %" PRIu32 " (%s); the new owner's first write "
			    "there will",
			    s->name, secs[i].idx, secs[i].memnode, secs[i].epoch, strerror(-r));
	}
	failed += fence_replicas(o, s);
	return failed ? -EIO : 0;
}
