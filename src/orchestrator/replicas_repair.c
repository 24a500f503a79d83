// SPDX-License-Identifier: MIT
/*
 * Repair of replicated far memory (docs/replication.md, "Repair"), in a
 * thread of its own that wakes up every second:
 *
 *   1. A replica that is `in` on a memory node that is down (it missed
 *      its heartbeats) or drained is taken out, when another replica of
 *      its section is in (an unreplicated section, or the last in-replica,
 *      keeps today's behaviour: the VM waits for the node), with an event
 *      `replica_out`; its slot's agent is told to drop it (POST
 *      /v1/vms/NAME/sections/replica {"action": "drop"}) so that a
 *      partitioned node is not written any more. 404 / 409 last_replica
 *      are logged and the thread goes on.
 *   2. One out replica of a running slot is repaired per tick: the slot
 *      enters `migrating` with the repair recorded in its op (kind
 *      "repair"), a section is allocated on a memory node that holds no
 *      other replica of the section, outside their zones, the replica
 *      becomes `repairing`, and the agent migrates the out replica to it
 *      (POST .../sections/migrate begin, with `from` the out replica),
 *      a live replica's memory node COPYs its section to the new one,
 *      commit; the replica's row then names the new section, `in`, and the
 *      out section is freed if its memory node is up (else the orphan
 *      sweep frees it when the node is back: the store no longer names
 *      it). A failure aborts the agent's migration, frees the new section,
 *      puts the replica back `out` (event `replica_repair_failed`); the
 *      next try waits a few seconds.
 *
 * Step 1 does not wait for a node's missed heartbeats (--node-timeout)
 * when a pager has told of trouble: a memory node that holds an out
 * replica (taken out by a compute node) is probed at each tick (connect,
 * HELLO, PING within PROBE_TIMEOUT_MS), and while it does not answer its
 * in-replicas are taken out as a down node's are (docs/replication.md,
 * "Detection"). A node that answers is left to its heartbeats.
 *
 * A commit that got no answer is decided by the agent's view of the VM
 * (GET /v1/vms/NAME names the new section or not). A restart in the middle
 * (the slot left `migrating` with a repair op) is settled the same way by
 * replicas_repair_recover: committed, the replica is the new section;
 * otherwise the agent's migration is aborted, the new section freed and
 * the replica is out again, to be repaired anew.
 *
 * A memory migration (POST /v1/slots/NAME/migrate-memory) moves the
 * replicas (positions 1..) on its source node after the sections
 * themselves, each the same way (the COPY from the replica itself), never
 * onto a memory node, nor into a zone, that holds another replica of the
 * same section; an out replica is repaired, not migrated.
 */
#include "replicas_repair.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "mnclient.h"
#include "thread.h"

#define REPAIR_TICK_MS 1000
#define REPAIR_RETRY_S 3         /* a replica whose repair failed waits this long */
#define REPAIR_FAILED_MAX 64      /* failed repairs remembered (the oldest is forgotten) */
#define PROBE_TIMEOUT_MS 500      /* a probed memory node answers within this */
#define PROBE_MAX 4               /* memory nodes probed per tick */

struct failed_repair {
	int64_t slot_id, idx, replica;
	int64_t until;
};

static struct {
	pthread_t thread;
	bool started;
	atomic_bool stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct failed_repair failed[REPAIR_FAILED_MAX];   /* only the repair thread's */
	size_t nfailed;
} rp = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static bool live_slot(const struct slot_rec *s)
{
	return !strcmp(s->state, "running") || !strcmp(s->state, "degraded");
}

static const struct slot_rec *slot_by_id(const struct slot_rec *slots, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (slots[i].id == id)
			return &slots[i];
	return NULL;
}

/* In-replicas of r's section other than r. */
static size_t others_in(const struct replica_rec *reps, size_t n, const struct replica_rec *r)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += reps[i].slot_id == r->slot_id && reps[i].idx == r->idx &&
		     reps[i].replica != r->replica && strcmp(reps[i].state, "in") == 0;
	return k;
}

/* {"memnode", "section", "generation"} of r. */
static json_t *ref(const struct replica_rec *r)
{
	return mig_sec_ref(r->memnode, r->section, r->generation);
}

/* Tell slot s's agent to drop replica r (it is out). */
static void tell_drop(struct orch *o, const struct slot_rec *s, const struct replica_rec *r)
{
	struct node_rec c;
	char path[STORE_NAME_MAX + 48], why[256];
	json_t *b, *ans = NULL;
	int status;

	if (o->store->ops->node_get(o->store, s->compute, &c) < 0)
		return;
	snprintf(path, sizeof(path), "/v1/vms/%s/sections/replica", s->name);
	b = json_pack("{s:s, s:o}", "action", "drop", "replica", ref(r));
	status = b ? mig_call(&c, "POST", path, b, MIG_SHORT_TIMEOUT_MS, &ans) : -ENOMEM;
	json_decref(b);
	if (status != 200) {
		mig_why(status, ans, why, sizeof(why));
		log_warn("slot %s section %" PRId64 ": compute node %s did not drop replica %" PRId64
			 " (HTTP %d %s): %s", s->name, r->idx, c.name, r->replica, status,
			 mig_code(ans), why);
	}
	json_decref(ans);
}

/* Memory nodes that an out replica names and that did not answer a probe. */
struct silent {
	uint64_t id[PROBE_MAX];
	int err[PROBE_MAX];
	size_t n;
};

/* Does memory node n answer the orchestrator? 0, or -errno. */
static int probe(struct orch *o, const struct node_rec *n)
{
	struct mnc_opts opts = {
		.addr = n->addr, .key = &o->key, .orch_key = o->grant_key, .node_id = o->node_id,
		.timeout_ms = PROBE_TIMEOUT_MS,
	};
	_cleanup_mnc_ struct mnc *c = NULL;
	int r = mnc_connect(&opts, &c);

	if (r == 0 && mnc_info(c)->node_id != n->id)
		r = -ESTALE;
	return r < 0 ? r : mnc_ping(c);
}

/*
 * Probe the up memory nodes (PROBE_MAX at most) that hold an out replica
 * and an in-replica that could be taken out; the silent ones into *ret.
 */
static void probe_suspects(struct orch *o, const struct replica_rec *reps, size_t n,
			   struct silent *ret)
{
	uint64_t asked[PROBE_MAX];
	size_t nasked = 0;

	ret->n = 0;
	for (size_t i = 0; i < n && nasked < PROBE_MAX && !atomic_load(&rp.stop); i++) {
		const struct replica_rec *r = &reps[i];
		bool seen = false, in = false;
		struct node_rec mn;
		int e;

		if (strcmp(r->state, "out") != 0)
			continue;
		for (size_t k = 0; k < nasked; k++)
			seen |= asked[k] == r->memnode;
		for (size_t k = 0; k < n && !in; k++)
			in = reps[k].memnode == r->memnode && !strcmp(reps[k].state, "in") &&
			     others_in(reps, n, &reps[k]) > 0;
		if (seen || !in || o->store->ops->node_get(o->store, r->memnode, &mn) < 0 ||
		    strcmp(mn.state, "up") != 0 || mn.drained)
			continue;
		asked[nasked++] = mn.id;
		e = probe(o, &mn);
		if (e < 0) {
			ret->id[ret->n] = mn.id;
			ret->err[ret->n++] = e;
		}
	}
}

/* Why replica r's node is lost (down, drained, silent), or NULL when it is not. */
static const char *lost_why(const struct node_rec *mn, const struct silent *sil, char *buf,
			    size_t len)
{
	if (strcmp(mn->state, "up") != 0 || mn->drained) {
		snprintf(buf, len, "memory node %s is %s", mn->name,
			 mn->drained ? "drained" : mn->state);
		return buf;
	}
	for (size_t k = 0; k < sil->n; k++)
		if (sil->id[k] == mn->id) {
			snprintf(buf, len, "memory node %s does not answer: %s (probed after a "
				 "compute node took another of its replicas out)", mn->name,
				 strerror(-sil->err[k]));
			return buf;
		}
	return NULL;
}

/* 1. Replicas on memory nodes that are down, drained or silent: out. */
static void take_out_lost(struct orch *o, struct replica_rec *reps, size_t n,
			  const struct slot_rec *slots, size_t ns, const struct silent *sil)
{
	for (size_t i = 0; i < n && !atomic_load(&rp.stop); i++) {
		struct replica_rec *r = &reps[i];
		const struct slot_rec *s = slot_by_id(slots, ns, r->slot_id);
		struct node_rec mn;
		char why[sizeof(r->reason)];

		if (strcmp(r->state, "in") || !s || !live_slot(s) ||
		    o->store->ops->node_get(o->store, r->memnode, &mn) < 0 ||
		    !lost_why(&mn, sil, why, sizeof(why)) || others_in(reps, n, r) == 0)
			continue;
		snprintf(r->state, sizeof(r->state), "out");
		snprintf(r->reason, sizeof(r->reason), "%s", why);
		if (replicas_record(o, r, "replica_out", r->memnode,
				    "slot %s section %" PRId64 " replica %" PRId64 " (memory node %s "
				    "section %" PRIu32 ") is out: %s", s->name, r->idx, r->replica,
				    mn.name, r->section, r->reason) < 0)
			continue;
		log_warn("slot %s section %" PRId64 ": replica %" PRId64 " is out: %s", s->name,
			 r->idx, r->replica, r->reason);
		tell_drop(o, s, r);
	}
}

/* Does j (an agent's VM) name section sec/gen of memory node mn anywhere? */
static bool names(json_t *j, uint64_t mn, uint32_t sec, uint32_t gen)
{
	const char *k;
	size_t i;
	json_t *v;

	if (json_is_object(j)) {
		if (json_integer_value(json_object_get(j, "memnode")) == (json_int_t)mn &&
		    json_integer_value(json_object_get(j, "section")) == (json_int_t)sec &&
		    json_integer_value(json_object_get(j, "generation")) == (json_int_t)gen &&
		    json_object_get(j, "section"))
			return true;
		json_object_foreach(j, k, v)
			if (names(v, mn, sec, gen))
				return true;
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			if (names(v, mn, sec, gen))
				return true;
	}
	return false;
}

/* Does the agent use the new section nx? 1 yes, 0 no, -errno: it cannot be asked. */
static int agent_uses(const struct node_rec *c, const char *name, const struct replica_rec *nx)
{
	char path[STORE_NAME_MAX + 16];
	json_t *vm = NULL;
	int status, r;

	snprintf(path, sizeof(path), "/v1/vms/%s", name);
	status = mig_call(c, "GET", path, NULL, MIG_SHORT_TIMEOUT_MS, &vm);
	r = status == 200 ? names(vm, nx->memnode, nx->section, nx->generation)
			  : status < 0 ? status : -EPROTO;
	json_decref(vm);
	return r;
}

/* POST .../sections/migrate phase from r (on fromn) to nx (on ton). */
static int phase(struct orch *o, const struct slot_rec *s, const struct node_rec *c,
		 const char *ph, const struct node_rec *fromn, const struct replica_rec *r,
		 const struct node_rec *ton, const struct replica_rec *nx, json_t **ret)
{
	char path[STORE_NAME_MAX + 48];
	json_t *b = json_pack("{s:s, s:o, s:o}", "phase", ph, "from",
			      replicas_entry(o, fromn, c->id, r), "to",
			      replicas_entry(o, ton, c->id, nx));
	int status;

	snprintf(path, sizeof(path), "/v1/vms/%s/sections/migrate", s->name);
	status = b ? mig_call(c, "POST", path, b, o->compute_timeout_ms, ret) : -ENOMEM;
	json_decref(b);
	return status;
}

/*
 * The repair of r ended: committed (nx is the replica now) or not (nx freed).
 * The replica's row, its event and the slot's return to `running` are one
 * transaction, so that nobody reads the slot's redundancy `ok` while it is
 * still `migrating`; the sections are freed outside it (the memory nodes are
 * asked over the network).
 */
static void repair_end(struct orch *o, struct slot_rec *s, struct replica_rec *r,
		       struct replica_rec *nx, bool committed, const char *why)
{
	struct store *st = o->store;
	struct replica_rec old = *r;
	struct node_rec outn;
	bool tx;

	if (!committed)
		replicas_free(o, nx);
	tx = st->ops->begin(st) == 0;
	if (committed) {
		snprintf(nx->state, sizeof(nx->state), "in");
		nx->reason[0] = '\0';
		replicas_record(o, nx, "replica_repaired", nx->memnode,
				"slot %s section %" PRId64 " replica %" PRId64 " repaired: memory "
				"node %" PRIu64 " section %" PRIu32 " (was memory node %" PRIu64
				" section %" PRIu32 ")%s%s", s->name, r->idx, r->replica, nx->memnode,
				nx->section, old.memnode, old.section, why ? ": " : "", why ? why : "");
		log_info("slot %s section %" PRId64 ": replica %" PRId64 " repaired on memory node %"
			 PRIu64, s->name, r->idx, r->replica, nx->memnode);
	} else {
		snprintf(r->state, sizeof(r->state), "out");
		replicas_record(o, r, "replica_repair_failed", nx->memnode,
				"slot %s section %" PRId64 " replica %" PRId64 " not repaired onto "
				"memory node %" PRIu64 ": %s", s->name, r->idx, r->replica,
				nx->memnode, why ? why : "failed");
		log_warn("slot %s section %" PRId64 ": replica %" PRId64 " not repaired: %s",
			 s->name, r->idx, r->replica, why ? why : "failed");
	}
	mig_finish(o, s, "running");
	if (tx && st->ops->commit(st) < 0)
		log_warn("slot %s: the repair's end was not stored", s->name);
	/* The old section goes if its node answers; else the orphan sweep's. */
	if (committed && st->ops->node_get(st, old.memnode, &outn) == 0 &&
	    strcmp(outn.state, "up") == 0)
		replicas_free(o, &old);
}

/* Is replica r (its section, generation) still in, by the store? */
static bool still_in(struct orch *o, const struct replica_rec *r)
{
	_cleanup_free_ struct replica_rec *reps = NULL;
	size_t n = 0;

	if (o->store->rep->replica_list(o->store, r->slot_id, r->memnode, &reps, &n) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (reps[i].idx == r->idx && reps[i].replica == r->replica &&
		    reps[i].section == r->section && reps[i].generation == r->generation)
			return strcmp(reps[i].state, "in") == 0;
	return false;
}

/*
 * Migrate replica r of slot s (compute node c; r on outn) to nx (allocated
 * on ton): begin, COPY from the live replica `live` (on liven: r itself when
 * it is in) to nx, commit. 1: the agent uses nx now; 0: it does not (its
 * migration aborted, why says why). The store is the caller's.
 */
static int move_one(struct orch *o, struct slot_rec *s, const struct node_rec *c,
		    const struct node_rec *outn, const struct replica_rec *r,
		    const struct node_rec *liven, const struct replica_rec *live,
		    const struct node_rec *ton, const struct replica_rec *nx, char *why,
		    size_t whylen)
{
	struct proto_copy_rep cr = { 0 };
	struct proto_grant cg;
	json_t *ans = NULL;
	char w[256];
	int e, status;

	status = phase(o, s, c, "begin", outn, r, ton, nx, &ans);
	if (status != 200) {
		mig_why(status, ans, w, sizeof(w));
		snprintf(why, whylen, "compute node %s refused to begin: %s", c->name, w);
		json_decref(ans);
		return 0;
	}
	json_decref(ans);
	ans = NULL;
	if (!still_in(o, live)) {   /* taken out meanwhile: its copy would be stale */
		snprintf(why, whylen, "the live replica on %s went out", liven->name);
		goto abort;
	}
	e = grant_mint(o->grant_key, ton->id, liven->id, nx->section, nx->generation, nx->epoch,
		       PROTO_R_WRITE, orch_grant_expiry(o), &cg);
	if (e == 0)
		e = mnpool_copy(o->mnpool, liven, live->section, live->generation, &cg, ton->addr,
				&cr);
	if (e < 0) {
		snprintf(why, whylen, "memory node %s could not copy to %s: %s", liven->name,
			 ton->name, strerror(-e));
		goto abort;
	}
	status = phase(o, s, c, "commit", outn, r, ton, nx, &ans);
	if (status < 0) {
		json_decref(ans);
		ans = NULL;
		status = phase(o, s, c, "commit", outn, r, ton, nx, &ans);
	}
	if (status < 0 && agent_uses(c, s->name, nx) == 1) {
		json_decref(ans);
		return 1;   /* no answer, but the agent's view of the VM names nx */
	}
	if (status != 200) {
		mig_why(status, ans, w, sizeof(w));
		snprintf(why, whylen, "the commit %s: %s", status < 0 ? "got no answer" : "failed",
			 w);
		goto abort;
	}
	json_decref(ans);
	return 1;
abort:
	json_decref(ans);
	phase(o, s, c, "abort", outn, r, ton, nx, NULL);
	return 0;
}

/* 2. Repair reps[i] (out) of slot `name` from the live replica `live`. */
static int repair_one(struct orch *o, const char *name, struct replica_rec *reps, size_t n,
		      struct replica_rec *r, const struct replica_rec *live,
		      const struct silent *sil)
{
	static const char *const from[] = { "running", NULL };
	struct http_resp resp = { 0 };
	struct node_rec c, outn, liven, ton;
	uint64_t nodes[REPLICAS_MAX * 2 + PROBE_MAX], zn[REPLICAS_MAX * 2];
	struct replica_rec nx = *r;
	struct slot_rec s;
	size_t nn = 0, nz = 0;
	char why[512] = "";
	json_t *op;
	int e;

	e = slots_begin_op(o, name, from, "migrating", &s, &resp);
	free(resp.body);
	free(resp.hdr_value);
	if (e < 0)
		return e;
	if (o->store->ops->node_get(o->store, s.compute, &c) < 0 ||
	    o->store->ops->node_get(o->store, r->memnode, &outn) < 0 ||
	    o->store->ops->node_get(o->store, live->memnode, &liven) < 0) {
		mig_finish(o, &s, "running");
		return -ENOENT;
	}
	for (size_t i = 0; i < n; i++) {
		if (reps[i].slot_id != r->slot_id || reps[i].idx != r->idx ||
		    nn == ARRAY_SIZE(nodes))
			continue;
		nodes[nn++] = reps[i].memnode;
		if (reps[i].replica != r->replica)
			zn[nz++] = reps[i].memnode;
	}
	for (size_t k = 0; k < sil->n && nn < ARRAY_SIZE(nodes); k++)
		nodes[nn++] = sil->id[k];   /* up by its heartbeats, but silent */
	e = replicas_alloc(o, &s, nodes, nn, zn, nz, &ton, &nx.section, &nx.generation, why,
			   sizeof(why));
	if (e < 0) {
		slots_event(o, "replica_repair_failed", r->memnode, s.name,
			    "slot %s section %" PRId64 " replica %" PRId64 ": no target: %s",
			    s.name, r->idx, r->replica, why);
		mig_finish(o, &s, "running");
		return e;
	}
	nx.memnode = ton.id;
	nx.epoch = r->epoch + 1;
	op = json_pack("{s:s, s:I, s:I, s:I, s:I, s:o, s:o}", "kind", "repair", "index",
		       (json_int_t)r->idx, "replica", (json_int_t)r->replica, "from",
		       (json_int_t)r->memnode, "to", (json_int_t)ton.id, "src", ref(r), "dst",
		       ref(&nx));
	mig_set_op(o, &s, op);
	json_decref(op);
	snprintf(r->state, sizeof(r->state), "repairing");
	replicas_record(o, r, "replica_repair_started", ton.id,
			"slot %s section %" PRId64 " replica %" PRId64 ": repairing onto memory "
			"node %s from the live replica on %s", s.name, r->idx, r->replica,
			ton.name, liven.name);

	e = move_one(o, &s, &c, &outn, r, &liven, live, &ton, &nx, why, sizeof(why));
	repair_end(o, &s, r, &nx, e == 1, e == 1 ? NULL : why);
	return e == 1 ? 0 : -EIO;
}

void replicas_take_out_lost(struct orch *o)
{
	struct store *st = o->store;
	_cleanup_free_ struct replica_rec *reps = NULL;
	_cleanup_free_ struct slot_rec *slots = NULL;
	size_t n = 0, ns = 0;
	struct silent none = { .n = 0 };   /* down and drained nodes only: nothing probed */

	if (st->rep && st->rep->replica_list(st, 0, 0, &reps, &n) == 0 &&
	    st->ops->slot_list(st, 0, 0, &slots, &ns) == 0)
		take_out_lost(o, reps, n, slots, ns, &none);
}

/* Did the repair of r fail a moment ago? (Others go first meanwhile.) */
static bool failed_lately(const struct replica_rec *r, int64_t now)
{
	for (size_t i = 0; i < rp.nfailed; i++)
		if (rp.failed[i].slot_id == r->slot_id && rp.failed[i].idx == r->idx &&
		    rp.failed[i].replica == r->replica && rp.failed[i].until > now)
			return true;
	return false;
}

static void repair_failed(const struct replica_rec *r, int64_t now)
{
	size_t k = rp.nfailed;

	for (size_t i = 0; i < rp.nfailed; i++)   /* the same one again, or one expired */
		if ((rp.failed[i].slot_id == r->slot_id && rp.failed[i].idx == r->idx &&
		     rp.failed[i].replica == r->replica) || rp.failed[i].until <= now) {
			k = i;
			break;
		}
	if (k == REPAIR_FAILED_MAX)
		k = 0;   /* full of recent ones: the first goes */
	else if (k == rp.nfailed)
		rp.nfailed++;
	rp.failed[k] = (struct failed_repair){ r->slot_id, r->idx, r->replica,
					      now + REPAIR_RETRY_S };
}

static void tick(struct orch *o)
{
	struct store *st = o->store;
	_cleanup_free_ struct replica_rec *reps = NULL;
	_cleanup_free_ struct slot_rec *slots = NULL;
	size_t n = 0, ns = 0;
	struct silent sil;

	if (st->rep->replica_list(st, 0, 0, &reps, &n) < 0 ||
	    st->ops->slot_list(st, 0, 0, &slots, &ns) < 0)
		return;
	probe_suspects(o, reps, n, &sil);
	take_out_lost(o, reps, n, slots, ns, &sil);
	for (size_t i = 0; i < n && !atomic_load(&rp.stop); i++) {
		const struct slot_rec *s = slot_by_id(slots, ns, reps[i].slot_id);
		const struct replica_rec *live = NULL;

		if (strcmp(reps[i].state, "out") || !s || strcmp(s->state, "running") ||
		    failed_lately(&reps[i], (int64_t)time(NULL)))
			continue;
		for (size_t k = 0; k < n && !live; k++)
			if (reps[k].slot_id == reps[i].slot_id && reps[k].idx == reps[i].idx &&
			    strcmp(reps[k].state, "in") == 0)
				live = &reps[k];
		if (!live)
			continue;   /* nothing to copy from: the VM waits for a node */
		if (repair_one(o, s->name, reps, n, &reps[i], live, &sil) < 0)
			repair_failed(&reps[i], (int64_t)time(NULL));
		return;   /* one repair per tick */
	}
}

static void *repair_main(void *arg)
{
	struct orch *o = arg;

	thread_name("orch-repair");
	pthread_mutex_lock(&rp.mu);
	while (!atomic_load(&rp.stop)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += REPAIR_TICK_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&rp.cv, &rp.mu, &ts);
		if (atomic_load(&rp.stop))
			break;
		pthread_mutex_unlock(&rp.mu);
		tick(o);
		pthread_mutex_lock(&rp.mu);
	}
	pthread_mutex_unlock(&rp.mu);
	return NULL;
}

int replicas_repair_start(struct orch *o)
{
	int r;

	if (!o->store->rep)
		return 0;
	atomic_store(&rp.stop, false);
	r = pthread_create(&rp.thread, NULL, repair_main, o);
	if (r)
		return -r;
	rp.started = true;
	return 0;
}

void replicas_repair_stop(struct orch *o)
{
	(void)o;
	if (!rp.started)
		return;
	pthread_mutex_lock(&rp.mu);
	atomic_store(&rp.stop, true);
	pthread_cond_signal(&rp.cv);
	pthread_mutex_unlock(&rp.mu);
	pthread_join(rp.thread, NULL);
	rp.started = false;
}

/* A {"memnode", "section", "generation"} of an op into r. */
static void from_ref(json_t *j, struct replica_rec *r)
{
	r->memnode = (uint64_t)mig_jint(j, "memnode", 0);
	r->section = (uint32_t)mig_jint(j, "section", 0);
	r->generation = (uint32_t)mig_jint(j, "generation", 0);
}

static int repair_recover(struct orch *o, struct slot_rec *s)
{
	struct store *st = o->store;
	_cleanup_free_ struct replica_rec *reps = NULL;
	_cleanup_(json_decrefp) json_t *op = json_loads(s->op, 0, NULL);
	const char *kind = json_string_value(json_object_get(op, "kind"));
	struct replica_rec *r = NULL, nx = { 0 };
	struct node_rec c, outn, ton;
	size_t n = 0;
	int uses = -ENOENT;

	if (!kind || strcmp(kind, "repair") != 0)
		return -ENOENT;
	if (st->rep && st->rep->replica_list(st, s->id, 0, &reps, &n) == 0)
		for (size_t i = 0; i < n && !r; i++)
			if (reps[i].idx == mig_jint(op, "index", -1) &&
			    reps[i].replica == mig_jint(op, "replica", -1))
				r = &reps[i];
	if (r) {
		nx = *r;
		from_ref(json_object_get(op, "dst"), &nx);
	}
	if (!r || (r->memnode == nx.memnode && r->section == nx.section &&
		   r->generation == nx.generation)) {
		/* Gone with its slot's section, or recorded already: only the op is left. */
		mig_finish(o, s, "running");
		return 0;
	}
	nx.epoch = r->epoch + 1;
	if (st->ops->node_get(st, s->compute, &c) == 0 &&
	    st->ops->node_get(st, r->memnode, &outn) == 0 &&
	    st->ops->node_get(st, nx.memnode, &ton) == 0) {
		/* An abort first: no request in flight can commit after it answered. */
		phase(o, s, &c, "abort", &outn, r, &ton, &nx, NULL);
		uses = agent_uses(&c, s->name, &nx);
	}
	repair_end(o, s, r, &nx, uses == 1,
		   uses == 1 ? "settled after an orchestrator restart"
			     : "interrupted by an orchestrator restart");
	return 0;
}

/* ---- memory migration of replicas ----------------------------------------------- */

static int memmig_check(struct orch *o, const struct slot_rec *s, uint64_t fid, uint64_t tid,
			int64_t only, size_t *ret_n, struct http_resp *resp)
{
	struct store *st = o->store;
	_cleanup_free_ struct replica_rec *reps = NULL;
	struct node_rec to, q;
	char tz[STORE_NAME_MAX + 8], qz[STORE_NAME_MAX + 8];
	size_t n = 0, moving = 0;

	*ret_n = 0;
	if (!st->rep || st->rep->replica_list(st, s->id, 0, &reps, &n) < 0 ||
	    st->ops->node_get(st, tid, &to) < 0)
		return 0;
	replicas_zone(&to, tz, sizeof(tz));
	for (size_t i = 0; i < n; i++) {
		const struct replica_rec *r = &reps[i];

		if (r->memnode != fid || (only >= 0 && r->idx != only))
			continue;
		if (strcmp(r->state, "in") != 0) {
			http_resp_error(resp, 409, "conflict",
					"slot %s section %" PRId64 ": its replica on memory node %"
					PRIu64 " is %s: it is repaired, not migrated",
					s->name, r->idx, fid, r->state);
			return -EBUSY;
		}
		for (size_t k = 0; k < n; k++) {
			if (reps[k].idx != r->idx || reps[k].replica == r->replica ||
			    st->ops->node_get(st, reps[k].memnode, &q) < 0)
				continue;
			replicas_zone(&q, qz, sizeof(qz));
			if (q.id == tid || strcmp(qz, tz) == 0) {
				http_resp_error(resp, 409, "conflict",
						"slot %s section %" PRId64 ": memory node %s %s "
						"replica %" PRId64 " of it; the replicas of a section "
						"stay on distinct nodes and zones", s->name, r->idx,
						to.name, q.id == tid ? "holds" : "is in the zone of",
						reps[k].replica);
				return -EBUSY;
			}
		}
		moving += r->replica >= 1;
	}
	*ret_n = moving;
	return 0;
}

static int memmig(struct orch *o, struct slot_rec *s, const struct node_rec *c,
		  const struct node_rec *from, const struct node_rec *to, int64_t only,
		  json_t *out, struct http_resp *resp)
{
	struct store *st = o->store;
	_cleanup_free_ struct replica_rec *reps = NULL;
	size_t n = 0;
	int moved = 0, e;

	if (!st->rep || st->rep->replica_list(st, s->id, from->id, &reps, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct replica_rec *r = &reps[i], nx = *r;
		char why[512];
		json_t *op;

		if (r->replica < 1 || (only >= 0 && r->idx != only) || strcmp(r->state, "in"))
			continue;
		e = mnpool_alloc(o->mnpool, to, (uint64_t)s->id, &nx.section, &nx.generation);
		if (e < 0) {
			if (e == -ENOSPC)
				st->ops->node_set_free(st, to->id, 0);
			http_resp_error(resp, e == -ENOSPC ? 409 : 503,
					e == -ENOSPC ? "capacity" : "node_unreachable",
					"memory node %s could not allocate for slot %s: %s", to->name,
					s->name, strerror(-e));
			return e;
		}
		st->ops->node_adjust_free(st, to->id, -1);
		nx.memnode = to->id;
		nx.epoch = r->epoch + 1;
		op = json_pack("{s:s, s:I, s:I, s:I, s:I, s:o, s:o}", "kind", "repair", "index",
			       (json_int_t)r->idx, "replica", (json_int_t)r->replica, "from",
			       (json_int_t)from->id, "to", (json_int_t)to->id, "src", ref(r),
			       "dst", ref(&nx));
		mig_set_op(o, s, op);
		json_decref(op);
		if (move_one(o, s, c, from, r, from, r, to, &nx, why, sizeof(why)) != 1) {
			replicas_free(o, &nx);
			slots_event(o, "section_migration_failed", from->id, s->name,
				    "slot %s section %" PRId64 " replica %" PRId64 ": migration from "
				    "%s to %s abandoned: %s", s->name, r->idx, r->replica,
				    from->name, to->name, why);
			http_resp_error(resp, 503, "migration_failed",
					"slot %s section %" PRId64 " replica %" PRId64 ": %s; it "
					"stays on %s", s->name, r->idx, r->replica, why, from->name);
			return -EIO;
		}
		replicas_record(o, &nx, "section_migrated", to->id,
				"slot %s section %" PRId64 " replica %" PRId64 " moved from memory "
				"node %s (section %" PRIu32 ") to %s (section %" PRIu32 ")", s->name,
				r->idx, r->replica, from->name, r->section, to->name, nx.section);
		replicas_free(o, r);
		json_array_append_new(out, json_pack("{s:I, s:I, s:o, s:o}", "index",
						     (json_int_t)r->idx, "replica",
						     (json_int_t)r->replica, "from", ref(r), "to",
						     ref(&nx)));
		moved++;
	}
	return moved;
}

void replicas_repair_hooks(struct orch_replicas *ops)
{
	ops->recover = repair_recover;
	ops->memmig_check = memmig_check;
	ops->memmig = memmig;
}
