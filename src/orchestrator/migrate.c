// SPDX-License-Identifier: MIT
/*
 * Migration of a slot, both ways (docs/api.md, "Migration"): the VM moves
 * to another compute node while its memory stays (compute migration), or
 * its sections move to another memory node while the VM runs (memory
 * migration). Both drive the compute agents (docs/compute.md) from the
 * request thread and keep the slot in state `migrating` meanwhile, so a
 * second operation on it gets 409 busy. migrate.h says which file does what.
 *
 * This file: what every migration step needs: calls to a compute agent and
 * their error texts, the slot's recorded operation, the VM's state on a
 * compute node, the store's record of a section replaced in one
 * transaction, and what goes along with a compute migration (the VM's
 * boot files and seed, asked here; regions and volumes, through their
 * tables).
 */
#include "migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

#define POLL_MS 5

uint64_t mig_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t mig_jint(json_t *o, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* A member of an agent's answer, or null. */
json_t *mig_member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return v ? v : json_null();
}

json_t *mig_entry(json_t *arr, const char *key, const char *value)
{
	size_t i;
	json_t *e;

	json_array_foreach(arr, i, e)
		if (json_is_string(json_object_get(e, key)) &&
		    !strcmp(json_string_value(json_object_get(e, key)), value))
			return e;
	return NULL;
}

/* The members of the source's answer ans that go to the destination, or NULL. */
static json_t *dest_members(json_t *ans)
{
	static const char *const keys[] = { "boot", "cloud_init", "seed", NULL };
	json_t *out = json_object();

	for (size_t i = 0; out && keys[i]; i++)
		if (json_is_object(json_object_get(ans, keys[i])) &&
		    json_object_set(out, keys[i], json_object_get(ans, keys[i])) < 0)
			json_decref(TAKE_PTR(out));
	return out;
}

/*
 * What a slot's VM boots, in a compute migration (docs/api.md, "Disks in
 * a compute migration"). QEMU migrates the state of the devices, not the
 * devices: the destination's VM needs the same boot files (the image's
 * kernel and initramfs, or the firmware boot) and the same cloud-init
 * seed drive at the same PCI slot. Ask, don't guess: the source agent says
 * what its VM was created with (GET /v1/vms/NAME/boot: "boot" and
 * "cloud_init" as asked, the orchestrator's image URLs among them, and
 * "seed", where the seed drive is and its size), and the three go as they
 * are in the destination's request, which fetches the same files with its
 * own token and makes the same seed at the same slot. Nothing is changed
 * here, so nothing needs undoing (*ret_boot: a new object). An agent that
 * cannot say (an older one answers 404) is refused with 409 image_slot
 * for a slot made from an image, whose destination could not start; any
 * other slot goes on as before whatever the answer (the steps after this
 * one find an agent that does not answer).
 */
static int boot_along(struct orch *o, const struct slot_rec *s, json_t **ret_boot,
		      struct http_resp *resp)
{
	char root[STORE_NAME_MAX] = "", image[STORE_NAME_MAX] = "", path[160], why[512];
	_cleanup_(json_decrefp) json_t *ans = NULL;
	struct node_rec c;
	json_t *out;
	int status, e;

	e = o->store->ops->node_get(o->store, s->compute, &c);
	if (e < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-e));
		return e;
	}
	if (o->boot)
		o->boot->root(o, s, root, image);
	snprintf(path, sizeof(path), "/v1/vms/%s/boot", s->name);
	status = mig_call(&c, "GET", path, NULL, MIG_SHORT_TIMEOUT_MS, &ans);
	mig_why(status, ans, why, sizeof(why));
	if (status == 200 && root[0] && !json_is_object(json_object_get(ans, "boot"))) {
		status = 404;   /* it cannot say after all */
		snprintf(why, sizeof(why), "no \"boot\" in its answer");
	}
	if (status != 200 && !root[0]) {
		/* An older agent, or none: a slot with no image goes on as before. */
		*ret_boot = json_object();
		return *ret_boot ? 0 : -ENOMEM;
	}
	if (status == 404) {
		http_resp_error(resp, 409, "image_slot", "slot %s was created from image %s, and "
				"compute node %s does not say what its VM boots (%s: an agent older "
				"than this orchestrator): its destination could not start the same "
				"VM; the slot stays, upgrade the agent to move it", s->name, image,
				c.name, why);
		return -EPROTO;
	}
	if (status != 200) {
		http_resp_error(resp, status < 0 ? 503 : 502, status < 0 ? "node_unreachable"
									 : "agent_refused",
				"cannot ask compute node %s what slot %s's VM boots (%s): the slot "
				"stays there", c.name, s->name, why);
		return status < 0 ? status : -EIO;
	}
	if (json_is_object(json_object_get(ans, "cloud_init")) &&
	    !json_is_object(json_object_get(ans, "seed"))) {
		http_resp_error(resp, 409, "image_slot", "compute node %s does not say where slot "
				"%s's cloud-init seed drive is: the slot stays there", c.name, s->name);
		return -EPROTO;
	}
	out = dest_members(ans);
	if (!out) {
		http_resp_error(resp, 500, "internal", "out of memory");
		return -ENOMEM;
	}
	if (json_object_size(out))
		log_info("slot %s: its boot files%s go along to the destination", s->name,
			 json_object_get(out, "seed") ? " and its cloud-init seed" : "");
	*ret_boot = out;
	return 0;
}

int mig_along_begin(struct orch *o, const struct slot_rec *s, const struct node_rec *dst,
		    struct mig_along *ret, struct http_resp *resp)
{
	/* A replica out missed writes: it is repaired before the slot moves (replicas.c). */
	int e = o->replicas ? o->replicas->compute_check(o, s, resp) : 0;

	if (e == 0)
		e = boot_along(o, s, &ret->boot, resp);
	if (e == 0 && o->regions)
		e = o->regions->migrate_begin(o, s, dst, &ret->regions, resp);
	if (e == 0 && o->volumes) {
		e = o->volumes->migrate_begin(o, s, dst, &ret->disks, resp);
		if (e < 0 && o->regions)
			o->regions->migrate_end(o, s, false, s->compute, dst->id);
	}
	if (e < 0) {
		json_decref(ret->boot);
		json_decref(ret->regions);
		*ret = (struct mig_along){ 0 };
	}
	return e;
}

void mig_along_body(json_t *vmb, const struct mig_along *a)
{
	if (vmb && json_array_size(a->regions))
		json_object_set(vmb, "regions", a->regions);
	if (vmb && json_array_size(a->disks))
		json_object_set(vmb, "disks", a->disks);
	if (vmb && a->boot)
		json_object_update(vmb, a->boot);
}

void mig_along_end(struct orch *o, const struct slot_rec *s, bool moved, uint64_t from,
		   uint64_t to, struct mig_along *a)
{
	if (o->regions)
		o->regions->migrate_end(o, s, moved, from, to);
	if (o->volumes)
		o->volumes->migrate_end(o, s, moved, from, to);
	json_decref(a->regions);
	json_decref(a->disks);
	json_decref(a->boot);
	*a = (struct mig_along){ 0 };
}

/* POST/GET/DELETE with a JSON body (may be NULL); returns the status or -errno. */
int mig_call(const struct node_rec *c, const char *method, const char *path,
	     json_t *body, int timeout_ms, json_t **ret)
{
	_cleanup_free_ char *text = NULL, *answer = NULL;
	int status;

	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return -ENOMEM;
	}
	status = cclient_call(c->id, c->http, method, path, text, timeout_ms, &answer);
	if (ret)
		*ret = status > 0 && answer ? json_loads(answer, 0, NULL) : NULL;
	return status;
}

/* The agent's error message (or the errno) for humans. */
void mig_why(int status, json_t *ans, char *buf, size_t len)
{
	json_t *e = json_object_get(ans, "error");
	const char *m = json_string_value(json_object_get(e, "message"));

	if (status < 0)
		snprintf(buf, len, "no answer: %s", strerror(-status));
	else
		snprintf(buf, len, "HTTP %d: %s", status, m ? m : "(no message)");
}

const char *mig_code(json_t *ans)
{
	const char *c = json_string_value(json_object_get(json_object_get(ans, "error"), "code"));

	return c ? c : "";
}

void mig_set_op(struct orch *o, struct slot_rec *s, json_t *op)
{
	char *t = op ? json_dumps(op, JSON_COMPACT) : NULL;

	snprintf(s->op, sizeof(s->op), "%s", t ? t : "");
	free(t);
	o->store->ops->slot_update(o->store, s);
}

/* The slot leaves `migrating`: state `state`, no operation recorded. */
void mig_finish(struct orch *o, struct slot_rec *s, const char *state)
{
	s->op[0] = '\0';
	slots_end_op(o, s, state);
}

void mig_finish_on_source(struct orch *o, struct slot_rec *s, const char *what,
			  const char *on, const struct mig_seen *x)
{
	bool seen = x->status == 200 && x->state[0];
	const char *end = !seen ? "lost" : !strcmp(x->state, "running") ? "running"
				  : !strcmp(x->state, "failed") ? "failed" : "lost";

	if (strcmp(end, "running") == 0) {
		snprintf(s->reason, sizeof(s->reason), "%s; the VM keeps running on compute node %s",
			 what, on);
	} else {
		if (seen)   /* the reason fits, the agent's own cut short if need be */
			snprintf(s->reason, sizeof(s->reason), "%s; compute node %s says the VM is %s%s%.*s",
				 what, on, x->state, x->reason[0] ? ": " : "",
				 (int)MIN(strlen(x->reason), (size_t)120), x->reason);
		else
			snprintf(s->reason, sizeof(s->reason),
				 "%s; compute node %s cannot say where the VM is", what, on);
	}
	mig_finish(o, s, end);
}

int mig_parse_node_id(json_t *body, const char *key, bool required, uint64_t *ret,
		      struct http_resp *resp)
{
	json_t *v = json_object_get(body, key);

	if (!v && !required)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		http_resp_error(resp, 400, "bad_request", "\"%s\" must be a node id", key);
		return -EINVAL;
	}
	*ret = (uint64_t)json_integer_value(v);
	return 1;
}

/* Node `id` of kind `kind`: 404 if unknown, 400 if of another kind. */
int mig_get_node(struct orch *o, uint64_t id, const char *kind, struct node_rec *n,
		 struct http_resp *resp)
{
	int r = o->store->ops->node_get(o->store, id, n);

	if (r == -ENOENT) {
		http_resp_error(resp, 404, "not_found", "unknown node %" PRIu64, id);
		return r;
	}
	if (r < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		return r;
	}
	if (strcmp(n->kind, kind) != 0) {
		http_resp_error(resp, 400, "bad_request", "node %" PRIu64 " is a %s, not a %s", id,
				n->kind, kind);
		return -EINVAL;
	}
	return 0;
}

json_t *mig_sec_ref(uint64_t memnode, uint32_t sec, uint32_t gen)
{
	return json_pack("{s:I, s:I, s:I}", "memnode", (json_int_t)memnode, "section",
			 (json_int_t)sec, "generation", (json_int_t)gen);
}

/* In one transaction: the store's section nx->idx becomes nx, and an event. */
int mig_section_replace(struct orch *o, const struct section_rec *nx, const char *kind,
			uint64_t node, const char *slot, const char *msg)
{
	struct store *st = o->store;
	int r = st->ops->begin(st);

	if (r < 0)
		return r;
	r = st->ops->section_remove(st, nx->slot_id, nx->idx);
	if (r == 0)
		r = st->ops->section_add(st, nx);
	if (r == 0)
		r = slots_event(o, kind, node, slot, "%s", msg);
	if (r == 0)
		return st->ops->commit(st);
	st->ops->rollback(st);
	return r;
}

/*
 * The VM's state on a compute node ("" when it has none or does not
 * answer). want: the agent answers once the VM is in that state (or can
 * no longer get there), at most wait_ms later.
 */
int mig_vm_state_wait(const struct node_rec *c, const char *name, const char *want,
		      int wait_ms, char *buf, size_t len, bool *ret_migrating)
{
	char path[160];
	json_t *ans = NULL;
	int status;

	if (want && wait_ms > 0)
		snprintf(path, sizeof(path), "/v1/vms/%s?wait=%s&timeout_ms=%d", name, want,
			 wait_ms);
	else
		snprintf(path, sizeof(path), "/v1/vms/%s", name);
	status = mig_call(c, "GET", path, NULL, MIG_SHORT_TIMEOUT_MS + MAX(wait_ms, 0), &ans);
	snprintf(buf, len, "%s",
		 status == 200 && json_string_value(json_object_get(ans, "state"))
			 ? json_string_value(json_object_get(ans, "state"))
			 : "");
	if (ret_migrating)
		*ret_migrating = json_is_true(json_object_get(ans, "migrating"));
	json_decref(ans);
	return status;
}

void mig_vm_delete(const struct node_rec *c, const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/vms/%s", name);
	mig_call(c, "DELETE", path, NULL, MIG_SHORT_TIMEOUT_MS, NULL);
}

/*
 * Wait until the destination runs the VM (or fails): 0, or -errno. The
 * agent holds each request until the state changes (up to 5 s), so the
 * arrival is seen at once without polling; the pause between requests only
 * matters for an agent that answers at once.
 */
int mig_wait_running(const struct node_rec *dst, const char *name)
{
	uint64_t end = mig_now_ms() + MIG_ARRIVE_TIMEOUT_MS;
	char st[STORE_STATE_MAX];

	for (;;) {
		uint64_t t = mig_now_ms();

		mig_vm_state_wait(dst, name, "running", 5000, st, sizeof(st), NULL);
		if (strcmp(st, "running") == 0)
			return 0;
		if (strcmp(st, "failed") == 0 || strcmp(st, "stopped") == 0)
			return -EIO;
		if (mig_now_ms() > end)
			return -ETIMEDOUT;
		if (mig_now_ms() - t < POLL_MS)
			usleep(POLL_MS * 1000);
	}
}
