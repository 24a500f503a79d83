// SPDX-License-Identifier: MIT
/*
 * Regions a VM maps that its slot is not attached to (docs/api.md, "A slot
 * whose VM is gone"). A slot detached from a region while its VM was gone
 * (its compute node lost) keeps the device in its guest if the node comes
 * back with the VM, with grants that were fenced out: its releases are
 * refused and its guest's stores to the control pages would wait for
 * ever. When such a slot runs again (regions_slot_back, from the
 * heartbeat that says so), the monitor asks its agent which regions the
 * VM maps and unplugs each that the slot is not attached to (DELETE
 * /v1/vms/NAME/regions/ID: its agent's last release is refused, and what
 * the VM wrote since its previous one is lost), with event
 * region_detached. A region it is attached to and its VM writes, but
 * whose lock it lost while its VM was gone (the lock's lease), becomes
 * read-only there again (demote): event region_demoted. A slot whose agent
 * does not answer is asked again at the next upkeep.
 *
 * The slots to look at are kept in memory: an orchestrator that restarts
 * meanwhile still sees the slot come back from `lost` (the store keeps
 * that state), and queues it then.
 */
#include "regions_strays.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "migrate.h"
#include "regions.h"

#define STRAYS_MAX 1024

static struct {
	pthread_mutex_t mu;
	char names[STRAYS_MAX][STORE_NAME_MAX];
	size_t n;
} back = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void queue(const char *slot)
{
	pthread_mutex_lock(&back.mu);
	for (size_t i = 0; i < back.n; i++)
		if (!strcmp(back.names[i], slot))
			goto out;
	if (back.n < STRAYS_MAX)
		snprintf(back.names[back.n++], STORE_NAME_MAX, "%s", slot);
	else
		log_warn("slot %s: too many slots to look at for stray regions: not looked at",
			 slot);
out:
	pthread_mutex_unlock(&back.mu);
}

void regions_slot_back(struct orch *o, const struct slot_rec *s)
{
	(void)o;
	queue(s->name);
}

/* Is slot s attached to region `name` (in any state)? */
static bool attached(struct orch *o, const struct slot_rec *s, const char *name)
{
	_cleanup_free_ struct region_attach_rec *att = NULL;
	size_t n = 0;

	if (o->store->ops->attach_list(o->store, 0, s->id, &att, &n) < 0)
		return true;   /* cannot tell: leave it */
	for (size_t i = 0; i < n; i++)
		if (!strcmp(att[i].region, name))
			return true;
	return false;
}

/* Does slot s write region `name` (true when it cannot tell)? */
static bool writes(struct orch *o, const struct slot_rec *s, const char *name)
{
	struct region_rec r;

	return o->store->ops->region_get(o->store, name, &r) < 0 || regions_writes(&r, s->id);
}

/* Unplug region `name` from slot s's VM. 0, or -EIO to try again. */
static int unplug(struct orch *o, const struct slot_rec *s, const char *name)
{
	json_t *ans = NULL;
	char why[256];
	int status = regions_call(o, s->compute, s->name, name, NULL, "DELETE", NULL,
				  o->compute_timeout_ms, &ans);
	bool fenced = json_is_true(json_object_get(ans, "fenced"));

	if (status == 200 || status == 404) {
		log_warn("region %s unplugged from slot %s: it was detached while the VM was "
			 "gone%s", name, s->name, fenced ? " (fenced out: what the VM wrote to it "
			 "since its last release is lost)" : "");
		slots_event(o, "region_detached", s->compute, s->name,
			    "region %s unplugged from slot %s at its return: it was detached while "
			    "the VM was gone%s", name, s->name,
			    fenced ? " (fenced out: what the VM wrote to it since its last release "
				     "is lost)" : "");
		json_decref(ans);
		return 0;
	}
	mig_why(status, ans, why, sizeof(why));
	log_warn("slot %s: region %s is not attached to it, but its VM maps it and did not "
		 "unplug it: %s (tried again)", s->name, name, why);
	json_decref(ans);
	return -EIO;
}

/*
 * Slot s's VM writes region `name`, which s does not hold: the lock was
 * taken back while its VM was gone (the lock's lease). Inside the region's
 * operation, so that no lock moves meanwhile: read grants (its agent's
 * write-back is refused, fenced, and dropped), then its cached pages
 * dropped. Its guest's next write then waits for the lock, and its reads
 * see the holder's releases. 0, or -EIO to try again.
 */
static int demote(struct orch *o, const struct slot_rec *s, const char *name)
{
	struct http_resp resp = { 0 };
	struct region_rec r;
	json_t *g, *body, *ans = NULL;
	char why[256];
	int status;

	if (regions_begin(o, name, &r, &resp) < 0) {
		free(resp.body);
		return -EIO;   /* in an operation: later */
	}
	if (regions_writes(&r, s->id)) {
		o->store->ops->rollback(o->store);   /* it holds it (again) */
		return 0;
	}
	if (regions_begin_commit(o, &r, "unlocking", s->id, &resp) < 0) {
		free(resp.body);
		return -EIO;
	}
	g = regions_grants(o, &r, s->compute, false, orch_grant_expiry(o), false);
	body = g ? json_pack("{s:o}", "grants", g) : NULL;
	status = body ? regions_call(o, s->compute, s->name, r.name, "release", "POST", body,
				     o->compute_timeout_ms, &ans) : -ENOMEM;
	json_decref(body);
	if (status == 200) {
		json_decref(ans);
		ans = NULL;
		body = json_object();
		status = regions_call(o, s->compute, s->name, r.name, "invalidate", "POST", body,
				      REGION_SHORT_TIMEOUT_MS, &ans);
		json_decref(body);
	}
	mig_why(status, ans, why, sizeof(why));
	json_decref(ans);
	if (status != 200) {
		regions_finish(o, &r, "ready", NULL, 0, NULL, "-");
		log_warn("slot %s: its VM writes region %s, whose lock it lost while it was gone, "
			 "and could not be made read-only: %s (tried again)", s->name, name, why);
		return -EIO;
	}
	regions_finish(o, &r, "ready", "region_demoted", s->compute, s->name,
		       "region %s is read-only again in slot %s at its return: it lost the lock "
		       "while its VM was gone (what it wrote since its last release is lost)",
		       r.name, s->name);
	log_warn("region %s: slot %s is back and read-only again (it lost the lock while its VM "
		 "was gone)", r.name, s->name);
	return 0;
}

/*
 * Unplug every region slot `name`'s VM maps and is not attached to, and
 * make read-only each it writes but does not hold: 0, or -EIO.
 */
static int strays_of(struct orch *o, const char *name)
{
	struct slot_rec s;
	struct node_rec c;
	json_t *ans = NULL, *x;
	char path[STORE_NAME_MAX + 16];
	size_t i;
	int status, rc = 0;

	/* Gone, or not running: nothing to unplug now (it is queued again when it runs). */
	if (o->store->ops->slot_get(o->store, name, &s) < 0 ||
	    (strcmp(s.state, "running") && strcmp(s.state, "degraded")) ||
	    o->store->ops->node_get(o->store, s.compute, &c) < 0)
		return 0;
	snprintf(path, sizeof(path), "/v1/vms/%s", s.name);
	status = mig_call(&c, "GET", path, NULL, REGION_SHORT_TIMEOUT_MS, &ans);
	if (status == 404) {
		json_decref(ans);
		return 0;
	}
	if (status != 200) {
		json_decref(ans);
		return -EIO;
	}
	json_array_foreach(json_object_get(ans, "regions"), i, x) {
		const char *id = json_string_value(json_object_get(x, "region"));

		if (!id)
			continue;
		if (!attached(o, &s, id)) {
			if (unplug(o, &s, id) < 0)
				rc = -EIO;
		} else if (json_is_true(json_object_get(x, "writable")) && !writes(o, &s, id) &&
			   demote(o, &s, id) < 0) {
			rc = -EIO;
		}
	}
	json_decref(ans);
	return rc;
}

void regions_strays_upkeep(struct orch *o)
{
	char (*names)[STORE_NAME_MAX];
	size_t n;

	pthread_mutex_lock(&back.mu);
	n = back.n;
	names = n ? malloc(n * sizeof(*names)) : NULL;
	if (names) {
		memcpy(names, back.names, n * sizeof(*names));
		back.n = 0;
	}
	pthread_mutex_unlock(&back.mu);
	for (size_t i = 0; names && i < n; i++)
		if (strays_of(o, names[i]) < 0)
			queue(names[i]);
	free(names);
}
