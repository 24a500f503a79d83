// SPDX-License-Identifier: MIT
/*
 * A compute migration of a replicated slot (docs/replication.md, "Compute
 * migration"): the destination is sent every replica that is in when the
 * move begins, but the source may take one out afterwards, during its
 * flush rounds or its final flush (a replica that stalls or fails while
 * another one takes the write). That replica missed writes; a destination
 * that read it would see old pages (a sealed slot's pages fail to open).
 *
 * So the destination of a replicated slot is created with "incoming":
 * {"replicas_pending": true}: its faults on remote pages wait. After the
 * switchover the source's answer names the replicas it took out
 * ("replicas_out", as of its final flush); they are taken out here as the
 * heartbeat's reports are (an event each, then repair), and the
 * destination is sent every replica of the slot that is out now
 * (POST /v1/vms/NAME/sections/replica {"action": "hand-over"}), drops
 * those it has and lets its faults go on. The wait costs the guest one
 * orchestrator-to-agent call after the switchover.
 *
 * Without the source's answer (lost; or the orchestrator restarted,
 * migrate_recover.c) the source's record is asked (GET /v1/vms/NAME: it
 * keeps "replicas_out" until the record is deleted, after the move). A
 * source whose record is gone cannot say which replicas missed writes:
 * the slot fails rather than read one of them.
 */
#include "replicas_handover.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"

#define HAND_OVER_TRIES 3

/* The source's "replicas_out" (a new reference), or NULL with why: -ENOENT, -EIO. */
static json_t *source_outs(const struct node_rec *src, const char *name, int *ret, char *why,
			   size_t len)
{
	char path[160];
	json_t *ans = NULL, *outs;
	int status;

	snprintf(path, sizeof(path), "/v1/vms/%s", name);
	status = mig_call(src, "GET", path, NULL, MIG_SHORT_TIMEOUT_MS, &ans);
	if (status != 200 || !json_is_object(ans)) {
		mig_why(status, ans, why, len);
		json_decref(ans);
		*ret = status == 404 ? -ENOENT : -EIO;
		return NULL;
	}
	outs = json_object_get(ans, "replicas_out");
	outs = json_is_array(outs) ? json_incref(outs) : json_array();
	json_decref(ans);
	*ret = 0;
	return outs;
}

/* Every replica of slot s that is out now: [{"memnode", "section", "generation"}]. */
static json_t *out_now(const struct replica_rec *reps, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < n && arr; i++)
		if (strcmp(reps[i].state, "in") != 0)
			json_array_append_new(arr, json_pack("{s:I, s:I, s:I}", "memnode",
							     (json_int_t)reps[i].memnode, "section",
							     (json_int_t)reps[i].section, "generation",
							     (json_int_t)reps[i].generation));
	return arr;
}

static int hand_over(struct orch *o, const struct slot_rec *s, const struct node_rec *src,
		     const struct node_rec *dst, json_t *outs, char *why, size_t len)
{
	struct store *st = o->store;
	_cleanup_free_ struct replica_rec *reps = NULL;
	json_t *mine = NULL, *body, *ans = NULL, *e;
	char path[160];
	size_t n = 0, i;
	int r = 0, status = -EIO;

	if (!st->rep)
		return 0;
	if (!json_is_array(outs)) {
		if (!src) {
			snprintf(why, len, "the source node is not known");
			return -ENOENT;
		}
		mine = source_outs(src, s->name, &r, why, len);
		if (!mine)
			return r;
		outs = mine;
	}
	r = st->rep->replica_list(st, s->id, 0, &reps, &n);
	if (r < 0) {
		snprintf(why, len, "store: %s", strerror(-r));
		json_decref(mine);
		return r;
	}
	json_array_foreach(outs, i, e)
		replicas_take_out(o, s, reps, n, e);
	json_decref(mine);
	body = json_pack("{s:s, s:o}", "action", "hand-over", "out", out_now(reps, n));
	snprintf(path, sizeof(path), "/v1/vms/%s/sections/replica", s->name);
	for (unsigned t = 0; t < HAND_OVER_TRIES && body; t++) {
		json_decref(ans);
		ans = NULL;
		status = mig_call(dst, "POST", path, body, MIG_SHORT_TIMEOUT_MS / HAND_OVER_TRIES,
				  &ans);
		if (status > 0 && status < 500)
			break;
	}
	json_decref(body);
	if (status == 200) {
		log_info("slot %s: replicas handed over to %s (%" PRId64 " out there, %" PRId64
			 " not there)", s->name, dst->name,
			 (int64_t)json_integer_value(json_object_get(ans, "dropped")),
			 (int64_t)json_integer_value(json_object_get(ans, "skipped")));
		json_decref(ans);
		return 0;
	}
	mig_why(status, ans, why, len);
	r = status == 409 ? -EDEADLK : status == 404 ? -ENOENT : -EIO;
	json_decref(ans);
	return r;
}

/*
 * Right after the switchover (migrate_compute.c): the hand-over, and when it
 * fails the slot settled: no answer makes it `unresolved` (the monitor
 * hands over again, migrate_recover.c); a source that cannot say any
 * more, or a section left with no replica in, fails it rather than let
 * the destination read a replica that missed writes.
 */
static int after_move(struct orch *o, struct slot_rec *s, const struct node_rec *src,
		      const struct node_rec *dst, json_t *outs, struct http_resp *resp)
{
	char why[200];
	int r = hand_over(o, s, src, dst, outs, why, sizeof(why));

	if (r == 0)
		return 0;
	if (r == -EIO) {
		mig_unresolved(o, s, "it moved to %s, which still waits for the replicas %s took "
			       "out (%.100s)", dst->name, src->name, why);
		http_resp_error(resp, 503, "migration_unresolved", "slot %s: %s", s->name,
				s->reason);
		return r;
	}
	snprintf(s->reason, sizeof(s->reason), "moved to %s, but which of its replicas missed "
		 "writes did not reach it (%.100s)", dst->name, why);
	fence_slot(o, s);
	s->compute = dst->id;
	mig_finish(o, s, "failed");
	slots_event(o, "migration_failed", dst->id, s->name, "slot %s: %s", s->name, s->reason);
	http_resp_error(resp, 503, "migration_failed", "slot %s: %s", s->name, s->reason);
	return r;
}

void replicas_handover_hooks(struct orch_replicas *ops)
{
	ops->hand_over = hand_over;
	ops->after_move = after_move;
}
