// SPDX-License-Identifier: MIT
/*
 * Node inventory: registration, heartbeats, drain, the liveness monitor
 * and reconciliation with compute nodes.
 *
 * A daemon started with --orchestrator registers (POST
 * /v1/nodes/register) and then heartbeats (POST /v1/nodes/ID/heartbeat)
 * with its current capacity. The monitor thread wakes every half second:
 * an up node whose last heartbeat is older than --node-timeout is marked
 * down, with an event naming the slots it affects; the running slots of a
 * compute node that went down become `lost`. A node that heartbeats or
 * registers again is up again; the monitor then reconciles the `lost`
 * slots of up compute nodes by asking them which VMs they run. Nodes are
 * not declared down during the first --node-timeout seconds after a start
 * of the orchestrator, so a restart does not count its own absence
 * against them.
 */
#include "orch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "net.h"
#include "thread.h"

#define MONITOR_TICK_MS 500
#define REQUEST_TTL_S (24 * 3600)

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static const char *node_state(const struct node_rec *n)
{
	if (strcmp(n->state, "up") != 0)
		return n->state;
	return n->drained ? "drained" : "up";
}

json_t *nodes_json(const struct node_rec *n)
{
	char hb[32];
	json_t *j, *labels;

	orch_fmt_time(n->last_heartbeat, hb, sizeof(hb));
	labels = json_loads(n->labels, 0, NULL);
	j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:s}", "node_id",
		      (json_int_t)n->id, "kind", n->kind, "name", n->name, "state", node_state(n),
		      "addr", n->addr, "http", n->http, "labels", labels ? labels : json_object(),
		      "slots", (json_int_t)n->nslots, "last_heartbeat", hb);
	if (!j)
		return NULL;
	if (strcmp(n->kind, "memnode") == 0) {
		json_object_set_new(j, "section_size", json_integer((json_int_t)n->section_size));
		json_object_set_new(j, "sections_total", json_integer(n->sections_total));
		json_object_set_new(j, "sections_free", json_integer(n->sections_free));
	} else if (strcmp(n->kind, "compute") == 0) {
		json_object_set_new(j, "vcpus", json_integer(n->vcpus));
		json_object_set_new(j, "vcpus_used", json_integer(n->vcpus_used));
	}
	return j;
}

/* nodes_json, with what the volume catalog adds for a device node. */
static json_t *node_json(struct orch *o, const struct node_rec *n)
{
	json_t *j = nodes_json(n);

	if (j && strcmp(n->kind, "devnode") == 0 && o->volumes)
		o->volumes->node_json(o, n, j);
	return j;
}

/* An optional non-negative integer member; -1 when absent. */
static int opt_count(json_t *body, const char *key, int64_t *ret)
{
	json_t *v = json_object_get(body, key);

	*ret = -1;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EINVAL;
	*ret = json_integer_value(v);
	return 0;
}

static int opt_string(json_t *body, const char *key, char *dst, size_t len)
{
	json_t *v = json_object_get(body, key);

	if (!v)
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) >= len)
		return -EINVAL;
	snprintf(dst, len, "%s", json_string_value(v));
	return 0;
}

void nodes_register(struct orch *o, const struct http_req *req, struct http_resp *resp,
		    uint64_t as_node)
{
	static const char *const keys[] = { "node_id", "kind", "name", "addr", "http", "labels",
					    "section_size", "sections_total", "sections_free",
					    "vcpus", "vms", "vm_states",
					    "dir_drops",   /* a memory node's: heartbeats read them */
					    "volumes", "volume_bytes_allocated",   /* a device node's */
					    NULL };
	struct store *st = o->store;
	struct node_rec n = { 0 }, old;
	const char *k;
	json_t *body, *v, *labels;
	int64_t ss, total, freec, vcpus, nvol = -1, vbytes = -1;
	bool existed, was_down;
	char *lj;
	int r;

	body = http_json_args(req, resp, keys);
	if (!body)
		return;
	v = json_object_get(body, "node_id");
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		http_resp_error(resp, 400, "bad_request", "\"node_id\" must be a positive integer");
		goto out;
	}
	n.id = (uint64_t)json_integer_value(v);
	if (as_node && as_node != n.id) {
		apiauth_refuse(resp, APIAUTH_WRONG_NODE,
			       "the credential of node %" PRIu64 " cannot register node %" PRIu64,
			       as_node, n.id);
		goto out;
	}
	k = json_string_value(json_object_get(body, "kind"));
	if (!k || (strcmp(k, "memnode") && strcmp(k, "compute") && strcmp(k, "devnode"))) {
		http_resp_error(resp, 400, "bad_request",
				"\"kind\" must be \"memnode\", \"compute\" or \"devnode\"");
		goto out;
	}
	snprintf(n.kind, sizeof(n.kind), "%s", k);
	snprintf(n.name, sizeof(n.name), "%s-%" PRIu64, k, n.id);
	if (opt_string(body, "name", n.name, sizeof(n.name)) < 0 ||
	    opt_string(body, "addr", n.addr, sizeof(n.addr)) < 0 ||
	    opt_string(body, "http", n.http, sizeof(n.http)) < 0) {
		http_resp_error(resp, 400, "bad_request",
				"\"name\", \"addr\" and \"http\" must be short strings");
		goto out;
	}
	labels = json_object_get(body, "labels");
	if (labels) {
		const char *lk;
		json_t *lv;

		if (!json_is_object(labels)) {
			http_resp_error(resp, 400, "bad_request", "\"labels\" must be an object");
			goto out;
		}
		json_object_foreach(labels, lk, lv) {
			if (!json_is_string(lv)) {
				http_resp_error(resp, 400, "bad_request",
						"label \"%s\" must be a string", lk);
				goto out;
			}
		}
		lj = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
		if (!lj || strlen(lj) >= sizeof(n.labels)) {
			free(lj);
			http_resp_error(resp, 400, "bad_request", "\"labels\" too long");
			goto out;
		}
		snprintf(n.labels, sizeof(n.labels), "%s", lj);
		free(lj);
	} else {
		snprintf(n.labels, sizeof(n.labels), "{}");
	}
	if (opt_count(body, "section_size", &ss) < 0 ||
	    opt_count(body, "sections_total", &total) < 0 ||
	    opt_count(body, "sections_free", &freec) < 0 || opt_count(body, "vcpus", &vcpus) < 0 ||
	    opt_count(body, "volumes", &nvol) < 0 ||
	    opt_count(body, "volume_bytes_allocated", &vbytes) < 0) {
		http_resp_error(resp, 400, "bad_request",
				"capacity fields must be non-negative integers");
		goto out;
	}
	if (strcmp(k, "memnode") == 0) {
		if (!n.addr[0] || ss <= 0 || total < 0) {
			http_resp_error(resp, 400, "bad_request",
					"a memory node needs \"addr\", \"section_size\" and "
					"\"sections_total\"");
			goto out;
		}
		n.section_size = (uint64_t)ss;
		n.sections_total = total;
		n.sections_free = freec < 0 ? total : MIN(freec, total);
	} else if (strcmp(k, "compute") == 0) {
		if (!n.http[0] || vcpus <= 0) {
			http_resp_error(resp, 400, "bad_request",
					"a compute node needs \"http\" and \"vcpus\"");
			goto out;
		}
		n.vcpus = vcpus;
	}
	if (n.id == o->node_id) {
		http_resp_error(resp, 409, "conflict",
				"node id %" PRIu64 " is the orchestrator's own --node-id", n.id);
		goto out;
	}
	n.last_heartbeat = now_s();

	r = st->ops->begin(st);
	if (r < 0)
		goto fail;
	r = st->ops->node_get(st, n.id, &old);
	existed = r == 0;
	if (existed && strcmp(old.kind, n.kind) != 0) {
		st->ops->rollback(st);
		http_resp_error(resp, 409, "conflict", "node %" PRIu64 " is registered as a %s",
				n.id, old.kind);
		goto out;
	}
	was_down = existed && strcmp(old.state, "down") == 0;
	r = st->ops->node_put(st, &n);
	if (r == 0) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s %s %s%s", n.kind, n.name,
			 existed ? "registered again" : "registered",
			 was_down ? " (was down)" : "");
		r = st->ops->event_add(st, existed ? "node_reregistered" : "node_registered", n.id,
				       NULL, msg);
	}
	if (r == 0 && strcmp(k, "memnode") == 0 && n.section_size != o->section_size) {
		char msg[256];

		snprintf(msg, sizeof(msg),
			 "%s has %" PRIu64 "-byte sections, the cluster uses %" PRIu64
			 ": no sections will be placed on it",
			 n.name, n.section_size, o->section_size);
		log_warn("%s", msg);
		r = st->ops->event_add(st, "section_size_mismatch", n.id, NULL, msg);
	}
	if (r < 0) {
		st->ops->rollback(st);
		goto fail;
	}
	r = st->ops->commit(st);
	if (r < 0)
		goto fail;
	if (existed)
		mnpool_forget(o->mnpool, n.id);
	log_info("%s %s (node %" PRIu64 ") %s", n.kind, n.name, n.id,
		 existed ? "registered again" : "registered");
	/*
	 * A compute node registers when it starts (or when we lost it): the VMs
	 * it lists are all it runs, so its other settled slots are lost. An
	 * agent restarted without its VMs must not leave them `running` here.
	 */
	if (existed && strcmp(k, "compute") == 0 && json_is_array(json_object_get(body, "vm_states")) &&
	    nodes_apply_vms(o, &n, json_object_get(body, "vm_states"), true) < 0)
		log_warn("node %" PRIu64 ": cannot apply its VM states", n.id);
	/* A memory node's directory: where its numbering of lost holders starts. */
	if (strcmp(k, "memnode") == 0 && o->regions && o->regions->dir_drops)
		o->regions->dir_drops(o, &n, json_object_get(body, "dir_drops"));
	if (strcmp(k, "devnode") == 0 && o->volumes)
		o->volumes->usage(o, &n, nvol, vbytes);
	http_resp_json(resp, 200, json_pack("{s:I, s:i}", "node_id", (json_int_t)n.id,
					     "heartbeat_interval_s", o->heartbeat_s));
	goto out;
fail:
	http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
out:
	json_decref(body);
}

void nodes_heartbeat(struct orch *o, uint64_t id, const struct http_req *req,
		     struct http_resp *resp)
{
	static const char *const keys[] = { "sections_free", "sections_total", "vcpus", "vms",
					    "vm_states", "dir_drops", "volumes",
					    "volume_bytes_allocated", NULL };
	struct store *st = o->store;
	int64_t freec = -1, total = -1, vcpus = -1, nvol = -1, vbytes = -1;
	struct node_rec n;
	json_t *body = NULL;
	int r;

	if (req->body_len > 0) {
		body = http_json_args(req, resp, keys);
		if (!body)
			return;
		if (json_object_get(body, "vm_states") &&
		    !json_is_array(json_object_get(body, "vm_states"))) {
			http_resp_error(resp, 400, "bad_request", "vm_states must be an array");
			goto out;
		}
		if (opt_count(body, "sections_free", &freec) < 0 ||
		    opt_count(body, "sections_total", &total) < 0 ||
		    opt_count(body, "vcpus", &vcpus) < 0 || opt_count(body, "volumes", &nvol) < 0 ||
		    opt_count(body, "volume_bytes_allocated", &vbytes) < 0) {
			http_resp_error(resp, 400, "bad_request",
					"capacity fields must be non-negative integers");
			goto out;
		}
	}
	r = st->ops->begin(st);
	if (r < 0)
		goto fail;
	r = st->ops->node_get(st, id, &n);
	if (r == -ENOENT) {
		st->ops->rollback(st);
		http_resp_error(resp, 404, "not_found", "unknown node %" PRIu64 ": register again",
				id);
		goto out;
	}
	if (r == 0)
		r = st->ops->node_heartbeat(st, id, now_s(), freec, total, vcpus);
	if (r == 0 && strcmp(n.state, "down") == 0) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s heartbeats again", n.name);
		r = st->ops->node_set_state(st, id, "up");
		if (r == 0)
			r = st->ops->event_add(st, "node_up", id, NULL, msg);
		if (r == 0)
			log_info("node %" PRIu64 " (%s) is up again", id, n.name);
	}
	if (r < 0) {
		st->ops->rollback(st);
		goto fail;
	}
	r = st->ops->commit(st);
	if (r < 0)
		goto fail;
	/* A memory node's directory: holders of strict regions it lost. */
	if (strcmp(n.kind, "memnode") == 0 && o->regions && o->regions->dir_drops)
		o->regions->dir_drops(o, &n, body ? json_object_get(body, "dir_drops") : NULL);
	/* A device node's volumes and their bytes on disk (placement reads them). */
	if (strcmp(n.kind, "devnode") == 0 && o->volumes)
		o->volumes->usage(o, &n, nvol, vbytes);
	/* A compute node's VMs that changed by themselves (degraded, running again). */
	if (body && json_object_get(body, "vm_states") && strcmp(n.kind, "compute") == 0 &&
	    nodes_apply_vms(o, &n, json_object_get(body, "vm_states"), false) < 0)
		log_warn("node %" PRIu64 ": cannot apply its VM states", id);
	http_resp_json(resp, 200, json_pack("{s:I, s:i}", "node_id", (json_int_t)id,
					     "heartbeat_interval_s", o->heartbeat_s));
	goto out;
fail:
	http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
out:
	json_decref(body);
}

void nodes_list(struct orch *o, struct http_resp *resp)
{
	_cleanup_free_ struct node_rec *nodes = NULL;
	size_t n = 0;
	json_t *arr;
	int r;

	r = o->store->ops->node_list(o->store, NULL, &nodes, &n);
	if (r < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, node_json(o, &nodes[i]));
	http_resp_json(resp, 200, json_pack("{s:o}", "nodes", arr));
}

void nodes_get(struct orch *o, uint64_t id, struct http_resp *resp)
{
	struct store *st = o->store;
	struct node_rec n;
	json_t *j, *arr;
	int r;

	r = st->ops->node_get(st, id, &n);
	if (r < 0) {
		if (r == -ENOENT)
			http_resp_error(resp, 404, "not_found", "unknown node %" PRIu64, id);
		else
			http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		return;
	}
	j = node_json(o, &n);
	arr = json_array();
	if (strcmp(n.kind, "memnode") == 0) {
		_cleanup_free_ struct section_rec *secs = NULL;
		size_t ns = 0;

		_cleanup_free_ struct replica_rec *reps = NULL;
		size_t nr = 0;

		if (st->ops->section_list(st, 0, id, &secs, &ns) == 0)
			for (size_t i = 0; i < ns; i++)
				json_array_append_new(
					arr, json_pack("{s:I, s:I, s:s, s:I}", "section",
						       (json_int_t)secs[i].section, "generation",
						       (json_int_t)secs[i].generation, "slot",
						       secs[i].slot, "index", (json_int_t)secs[i].idx));
		if (st->rep && st->rep->replica_list(st, 0, id, &reps, &nr) == 0)
			for (size_t i = 0; i < nr; i++)   /* replicas: positions 1.. */
				if (reps[i].replica)
					json_array_append_new(arr, json_pack(
						"{s:I, s:I, s:s, s:I, s:I}", "section",
						(json_int_t)reps[i].section, "generation",
						(json_int_t)reps[i].generation, "slot", reps[i].slot,
						"index", (json_int_t)reps[i].idx, "replica",
						(json_int_t)reps[i].replica));
		if (o->regions)
			(void)o->regions->sections(o, NULL, id, arr);   /* theirs: "region" */
		json_object_set_new(j, "sections", arr);
	} else if (strcmp(n.kind, "devnode") == 0) {
		json_decref(arr);    /* its volumes: GET /v1/volumes?devnode=ID */
	} else {
		_cleanup_free_ struct slot_rec *slots = NULL;
		size_t ns = 0;

		if (st->ops->slot_list(st, id, 0, &slots, &ns) == 0)
			for (size_t i = 0; i < ns; i++)
				json_array_append_new(arr, json_string(slots[i].name));
		json_object_set_new(j, "slots", arr);
	}
	http_resp_json(resp, 200, j);
}

void nodes_drain(struct orch *o, uint64_t id, bool drain, struct http_resp *resp)
{
	struct store *st = o->store;
	struct node_rec n;
	char msg[256];
	int r;

	r = st->ops->begin(st);
	if (r < 0)
		goto fail;
	r = st->ops->node_set_drained(st, id, drain);
	if (r == 0)
		r = st->ops->node_get(st, id, &n);
	if (r == 0) {
		snprintf(msg, sizeof(msg), "%s %s", n.name, drain ? "drained" : "undrained");
		r = st->ops->event_add(st, drain ? "node_drained" : "node_undrained", id, NULL, msg);
	}
	if (r < 0) {
		st->ops->rollback(st);
		if (r == -ENOENT) {
			http_resp_error(resp, 404, "not_found", "unknown node %" PRIu64, id);
			return;
		}
		goto fail;
	}
	r = st->ops->commit(st);
	if (r < 0)
		goto fail;
	http_resp_json(resp, 200, node_json(o, &n));
	return;
fail:
	http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
}

/* ---- liveness monitor -------------------------------------------------- */

/* Mark one node down, in one transaction with its slots and the event. */
static int mark_down(struct orch *o, uint64_t id)
{
	struct store *st = o->store;
	_cleanup_free_ struct slot_rec *slots = NULL;
	struct strbuf sb;
	struct node_rec n;
	size_t ns = 0;
	bool compute;
	int r;

	r = st->ops->begin(st);
	if (r < 0)
		return r;
	r = st->ops->node_get(st, id, &n);
	if (r < 0 || strcmp(n.state, "up") != 0)
		goto out_rollback;
	compute = strcmp(n.kind, "compute") == 0;
	r = st->ops->slot_list(st, compute ? id : 0, compute ? 0 : id, &slots, &ns);
	if (r < 0)
		goto out_rollback;
	r = st->ops->node_set_state(st, id, "down");
	strbuf_init(&sb);
	strbuf_printf(&sb, "%s missed heartbeats for %d s; slots affected: ", n.name,
		      o->node_timeout_s);
	for (size_t i = 0; i < ns && r == 0; i++) {
		strbuf_printf(&sb, "%s%s", i ? ", " : "", slots[i].name);
		if (compute && (strcmp(slots[i].state, "running") == 0 ||
				strcmp(slots[i].state, "degraded") == 0)) {
			snprintf(slots[i].state, sizeof(slots[i].state), "lost");
			snprintf(slots[i].reason, sizeof(slots[i].reason),
				 "compute node %s is down", n.name);
			r = st->ops->slot_update(st, &slots[i]);
		}
	}
	if (ns == 0)
		strbuf_printf(&sb, "none");
	if (r == 0)
		r = st->ops->event_add(st, "node_down", id, NULL, sb.buf ? sb.buf : "node down");
	if (r == 0) {
		log_warn("%s", sb.buf ? sb.buf : "node down");
		strbuf_free(&sb);
		return st->ops->commit(st);
	}
	strbuf_free(&sb);
out_rollback:
	st->ops->rollback(st);
	return r;
}

/*
 * The compute node's own view of its VMs ({"name", "state"[, "reason"]}
 * each) applied to its settled slots (running, degraded, lost: an
 * operation in progress owns the others). `complete`: vms is the node's
 * whole list (GET /v1/vms), so a slot it lacks is lost; a heartbeat's list
 * may predate a slot that has just been created, so it never loses one.
 */
int nodes_apply_vms(struct orch *o, const struct node_rec *n, json_t *vms, bool complete)
{
	struct store *st = o->store;
	_cleanup_free_ struct slot_rec *slots = NULL;
	size_t ns = 0;
	int r;

	if (!json_is_array(vms))
		return -EPROTO;
	if (o->replicas)   /* replicas its pagers took out ("replicas_out") */
		o->replicas->vms_out(o, n, vms);
	r = st->ops->slot_list(st, n->id, 0, &slots, &ns);
	for (size_t i = 0; i < ns && r == 0; i++) {
		struct slot_rec *s = &slots[i];
		const char *vstate = NULL, *vreason = NULL, *kind = "slot_reconciled";
		bool back = false;
		size_t k;
		json_t *vm;
		char msg[512];

		if (strcmp(s->state, "running") && strcmp(s->state, "lost") &&
		    strcmp(s->state, "degraded"))
			continue;
		json_array_foreach(vms, k, vm) {
			const char *name = json_string_value(json_object_get(vm, "name"));

			if (name && strcmp(name, s->name) == 0) {
				vstate = json_string_value(json_object_get(vm, "state"));
				vreason = json_string_value(json_object_get(vm, "reason"));
				break;
			}
		}
		if (!vstate) {
			if (!complete || strcmp(s->state, "lost") == 0)
				continue;
			snprintf(s->state, sizeof(s->state), "lost");
			snprintf(s->reason, sizeof(s->reason), "compute node %s does not run it",
				 n->name);
		} else if (strcmp(vstate, "failed") == 0 || strcmp(vstate, "stopped") == 0) {
			snprintf(s->state, sizeof(s->state), "failed");
			snprintf(s->reason, sizeof(s->reason), "VM %s: %s", vstate,
				 vreason ? vreason : "");
		} else if (strcmp(vstate, "degraded") == 0) {
			if (strcmp(s->state, "degraded") == 0)
				continue;
			kind = "slot_degraded";
			snprintf(s->state, sizeof(s->state), "degraded");
			snprintf(s->reason, sizeof(s->reason), "%s", vreason ? vreason : "");
		} else if (strcmp(vstate, "running") == 0 && strcmp(s->state, "running") != 0) {
			if (strcmp(s->state, "degraded") == 0)
				kind = "slot_resumed";
			else
				back = true;   /* was lost: its VM may map stray regions */
			snprintf(s->state, sizeof(s->state), "running");
			s->reason[0] = '\0';
		} else {
			continue;
		}
		snprintf(msg, sizeof(msg), "slot %s is %s%s%s", s->name, s->state,
			 s->reason[0] ? ": " : "", s->reason);
		r = st->ops->begin(st);
		if (r < 0)
			break;
		r = st->ops->slot_update(st, s);
		if (r == 0)
			r = st->ops->event_add(st, kind, n->id, s->name, msg);
		if (r == 0)
			r = st->ops->commit(st);
		else
			st->ops->rollback(st);
		if (r == 0)
			log_info("%s", msg);
		if (r == 0 && back && o->regions && o->regions->slot_back)
			o->regions->slot_back(o, s);
	}
	return r;
}

int nodes_reconcile(struct orch *o, const struct node_rec *n)
{
	_cleanup_free_ char *body = NULL;
	json_t *root, *vms;
	int r;

	r = cclient_call(n->id, n->http, "GET", "/v1/vms", NULL, 10000, &body);
	if (r < 0)
		return r;
	if (r != 200)
		return -EPROTO;
	root = json_loads(body ? body : "", 0, NULL);
	vms = json_is_object(root) ? json_object_get(root, "vms") : root;
	r = nodes_apply_vms(o, n, vms, true);
	json_decref(root);
	return r;
}

void nodes_reconcile_all(struct orch *o)
{
	_cleanup_free_ struct node_rec *nodes = NULL;
	size_t n = 0;

	if (o->store->ops->node_list(o->store, "compute", &nodes, &n) < 0)
		return;
	for (size_t i = 0; i < n && !atomic_load(&o->stopping); i++) {
		int r;

		if (strcmp(nodes[i].state, "up") != 0 || nodes[i].nslots == 0)
			continue;
		r = nodes_reconcile(o, &nodes[i]);
		if (r < 0)
			log_warn("cannot reconcile with compute node %s (%s): %s", nodes[i].name,
				 nodes[i].http, strerror(-r));
	}
}

/* Up compute nodes with lost slots: ask them again. */
static void reconcile_lost(struct orch *o)
{
	_cleanup_free_ struct slot_rec *slots = NULL;
	size_t ns = 0;
	uint64_t last = 0;

	if (o->store->ops->slot_list(o->store, 0, 0, &slots, &ns) < 0)
		return;
	for (size_t i = 0; i < ns; i++) {
		struct node_rec n;

		if (strcmp(slots[i].state, "lost") != 0 || slots[i].compute == last)
			continue;
		last = slots[i].compute;
		if (o->store->ops->node_get(o->store, last, &n) == 0 &&
		    strcmp(n.state, "up") == 0)
			nodes_reconcile(o, &n);
	}
}

static void *monitor_main(void *arg)
{
	struct orch *o = arg;
	int64_t started = now_s(), last_prune = 0;
	unsigned tick = 0;
	int64_t last_sweep = now_s(), last_renew = now_s();

	thread_name("orch-monitor");
	/* First, what do the compute nodes run? (Never stops anything.) */
	nodes_reconcile_all(o);
	pthread_mutex_lock(&o->mon_mu);
	while (!atomic_load(&o->stopping)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += MONITOR_TICK_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&o->mon_cv, &o->mon_mu, &ts);
		if (atomic_load(&o->stopping))
			break;
		pthread_mutex_unlock(&o->mon_mu);

		int64_t now = now_s();

		if (now - started >= o->node_timeout_s) {
			_cleanup_free_ uint64_t *stale = NULL;
			size_t n = 0;

			if (o->store->ops->node_stale(o->store, now - o->node_timeout_s, &stale,
						      &n) == 0)
				for (size_t i = 0; i < n; i++) {
					mark_down(o, stale[i]);
					mnpool_forget(o->mnpool, stale[i]);
				}
		}
		if (++tick % 4 == 0) {
			reconcile_lost(o);
			migrate_resolve_pending(o);
			if (o->regions)
				o->regions->upkeep(o);
		}
		if (o->sweep_s > 0 && now - last_sweep >= o->sweep_s) {
			sweep_all(o);
			last_sweep = now;
		}
		if (now - last_renew >= MAX(o->grant_ttl_s / 3, 1)) {
			grants_renew_all(o);
			last_renew = now;
		}
		if (now - last_prune > 60) {
			o->store->ops->request_prune(o->store, now - REQUEST_TTL_S);
			last_prune = now;
		}
		pthread_mutex_lock(&o->mon_mu);
	}
	pthread_mutex_unlock(&o->mon_mu);
	return NULL;
}

int nodes_monitor_start(struct orch *o)
{
	int r = pthread_create(&o->monitor, NULL, monitor_main, o);

	if (r)
		return -r;
	o->monitor_started = true;
	return 0;
}

void nodes_monitor_stop(struct orch *o)
{
	if (!o->monitor_started)
		return;
	pthread_mutex_lock(&o->mon_mu);
	atomic_store(&o->stopping, true);
	pthread_cond_signal(&o->mon_cv);
	pthread_mutex_unlock(&o->mon_mu);
	pthread_join(o->monitor, NULL);
	o->monitor_started = false;
}
