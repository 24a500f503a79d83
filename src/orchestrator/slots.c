// SPDX-License-Identifier: MIT
/*
 * Slots: create, resize, delete and the console, driven synchronously in
 * the request thread.
 *
 * Create: validate, place the compute node and reserve memory nodes
 * (under place_mu, together with the insertion of the slot record in state
 * `creating`, so concurrent creates see each other's vCPUs), allocate each
 * remote section on its memory node (owner = the slot id; a node that
 * answers NOSPC or cannot be reached is marked full or avoided and the
 * section placed again), record each section as soon as it exists, mint
 * grants for the compute node and POST /v1/vms. Any failure undoes
 * everything: the VM is deleted on the compute node (best effort), every
 * section is freed on its memory node and the slot record removed, so
 * nothing half-allocated stays behind.
 *
 * Restart (slots_recover) is in migrate_recover.c.
 *
 * Resize: grow adds sections one at a time (allocate, grant, POST
 * /v1/vms/NAME/sections), keeping the slot's remote share; shrink removes
 * the last hot-added sections (DELETE .../sections/INDEX, then free). A
 * step that fails stops the resize where it is: the slot keeps the
 * sections it has, its memory says how much, and the answer says why.
 *
 * Delete: its regions detached, DELETE /v1/vms/NAME, then free every section. A slot whose
 * compute node is down (`lost`) or that `failed` is deleted even when the
 * compute node cannot be reached; a running one is not (503), since its
 * VM may still be using the memory.
 */
#include "orch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "pagekey.h"
#include "jsonhttp.h"
#include "secjson.h"
#include "slotnet.h"

#define PLACE_RETRIES 8
#define SHORT_TIMEOUT_MS 10000

/* ---- JSON of a slot ------------------------------------------------------ */

json_t *slots_json(struct orch *o, const struct slot_rec *s, bool with_sections)
{
	char created[32];
	json_t *j, *cons;

	orch_fmt_time(s->created, created, sizeof(created));
	cons = json_loads(s->constraints, 0, NULL);
	j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:I, s:s, s:s, s:o, s:s, s:b}", "name",
		      s->name, "state", s->state, "vcpus", (json_int_t)s->vcpus, "memory",
		      (json_int_t)s->memory, "remote_percent", (json_int_t)s->remote_percent,
		      "cache", s->cache < 0 ? json_null() : json_integer(s->cache), "compute",
		      (json_int_t)s->compute, "policy", s->policy, "hotplug", s->hotplug,
		      "constraints", cons ? cons : json_object(), "created", created, "encrypted",
		      s->page_key[0] != '\0');
	if (!j)
		return NULL;
	json_object_set_new(j, "net", slotnet_json(s));
	if (s->reason[0])
		json_object_set_new(j, "reason", json_string(s->reason));
	if (s->op[0]) {
		json_t *op = json_loads(s->op, 0, NULL);

		if (op)
			json_object_set_new(j, "migration", op);
	}
	if (with_sections) {
		_cleanup_free_ struct section_rec *secs = NULL;
		size_t n = 0;
		json_t *arr = json_array();

		if (o->store->ops->section_list(o->store, s->id, 0, &secs, &n) == 0)
			for (size_t i = 0; i < n; i++)
				json_array_append_new(arr, slots_section_json(&secs[i]));
		json_object_set_new(j, "sections", arr);
		if (o->volumes)
			o->volumes->slot_json(o, s, j);
	}
	if (o->replicas)   /* "replicas", "redundancy", each section's replicas */
		o->replicas->slot_json(o, s, j);
	return j;
}

/* ---- helpers ------------------------------------------------------------- */

static void store_error(struct http_resp *resp, int r)
{
	http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
}

/* An error answer from a compute agent: its code and message, if it sent them. */
static void compute_msg(const char *body, char *code, size_t codelen, char *buf, size_t len)
{
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	json_t *e = json_object_get(j, "error");
	const char *m = json_string_value(json_object_get(e, "message"));
	const char *c = json_string_value(json_object_get(e, "code"));

	snprintf(code, codelen, "%s", c ? c : "");
	snprintf(buf, len, "%s", m ? m : (body ? body : ""));
	json_decref(j);
}

/* Answer for a failed compute call (status > 0: HTTP answer; < 0: no answer). */
void slots_compute_error(struct http_resp *resp, const struct node_rec *c, const char *what,
			  int status, const char *body)
{
	char msg[512], code[64];

	if (status < 0) {
		http_resp_error(resp, 503, "node_unreachable",
				"compute node %s (%s) did not answer %s: %s", c->name, c->http, what,
				strerror(-status));
		return;
	}
	compute_msg(body, code, sizeof(code), msg, sizeof(msg));
	if (status == 409)
		http_resp_error(resp, 409, strcmp(code, "capacity") == 0 ? "capacity" : "conflict",
				"compute node %s refused %s: %s", c->name, what, msg);
	else
		http_resp_error(resp, 503, "node_unreachable",
				"compute node %s failed %s (HTTP %d): %s", c->name, what, status,
				msg);
}

static int sections_for(struct orch *o, uint64_t bytes, size_t *ret)
{
	if (bytes == 0 || bytes % o->section_size != 0 ||
	    bytes / o->section_size > ORCH_MAX_SECTIONS)
		return -EINVAL;
	*ret = (size_t)(bytes / o->section_size);
	return 0;
}

/* Local sections for a slot of n sections: (100 - remote_percent)%, rounded. */
static size_t locals_for(size_t n, int64_t remote_percent)
{
	return (n * (size_t)(100 - remote_percent) + 50) / 100;
}

int slots_event(struct orch *o, const char *kind, uint64_t node, const char *slot,
		 const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return o->store->ops->event_add(o->store, kind, node, slot, msg);
}

/*
 * Allocate one remote section for slot `s` on a placed memory node,
 * placing it again elsewhere when the node is full or unreachable. `mn` is
 * the reserved node (from place_memnodes) and is updated to where it went.
 */
static int alloc_remote(struct orch *o, const struct slot_rec *s, const struct placement_req *pr,
			struct node_rec *mn, uint32_t *ret_sec, uint32_t *ret_gen, char *why,
			size_t whylen)
{
	uint64_t avoid[PLACE_RETRIES];
	size_t navoid = 0;
	int r;

	for (;;) {
		r = mnpool_alloc(o->mnpool, mn, (uint64_t)s->id, ret_sec, ret_gen);
		if (r == 0)
			return 0;
		log_info("slot %s: memory node %s (%s) could not allocate: %s", s->name, mn->name,
			 mn->addr, strerror(-r));
		/* The node is the truth: it is full (or gone) until it reports otherwise. */
		o->store->ops->node_set_free(o->store, mn->id, 0);
		if (navoid == ARRAY_SIZE(avoid)) {
			snprintf(why, whylen, "memory nodes keep failing to allocate: %s",
				 strerror(-r));
			return r == -ENOSPC ? -ENOSPC : -EHOSTUNREACH;
		}
		avoid[navoid++] = mn->id;
		pthread_mutex_lock(&o->place_mu);
		r = place_memnodes(o, pr, 1, avoid, navoid, mn, why, whylen);
		pthread_mutex_unlock(&o->place_mu);
		if (r < 0)
			return r;
	}
}

int slots_alloc_section(struct orch *o, const struct slot_rec *s, struct node_rec *ret_mn,
			uint32_t *ret_sec, uint32_t *ret_gen, char *why, size_t whylen)
{
	json_t *cons = json_loads(s->constraints, 0, NULL);
	struct placement_req pr = { 0 };
	int r;

	placement_from_slot(s, cons, &pr);
	pthread_mutex_lock(&o->place_mu);
	r = place_memnodes(o, &pr, 1, NULL, 0, ret_mn, why, whylen);
	pthread_mutex_unlock(&o->place_mu);
	if (r == 0)
		r = alloc_remote(o, s, &pr, ret_mn, ret_sec, ret_gen, why, whylen);
	json_decref(cons);
	return r;
}

void slots_free_remote(struct orch *o, const struct section_rec *x)
{
	struct node_rec mn;
	int r;

	r = o->store->ops->node_get(o->store, x->memnode, &mn);
	if (r == 0 && fence_section_on(o, &mn, x, x->epoch + 1) < 0)
		log_debug("section %" PRIu32 " not fenced before its free", x->section);
	if (r == 0)
		r = mnpool_free_section(o->mnpool, &mn, x->section, x->generation, x->epoch + 1);
	if (r < 0 && r != -ENOENT && r != -ESTALE) {
		log_warn("cannot free section %" PRIu32 " (generation %" PRIu32
			 ") on memory node %" PRIu64 ": %s",
			 x->section, x->generation, x->memnode, strerror(-r));
		slots_event(o, "section_leaked", x->memnode, x->slot,
		      "section %" PRIu32 " generation %" PRIu32 " could not be freed: %s",
		      x->section, x->generation, strerror(-r));
		return;
	}
	o->store->ops->node_adjust_free(o->store, x->memnode, +1);
}

json_t *slots_remote_json(struct orch *o, const struct node_rec *mn, uint64_t holder,
				   uint32_t sec, uint32_t gen, uint32_t epoch)
{
	struct proto_grant g;
	char hex[GRANT_HEX_LEN + 1];

	if (grant_mint(o->grant_key, mn->id, holder, sec, gen, epoch,
		       PROTO_R_READ | PROTO_R_WRITE, orch_grant_expiry(o), &g) < 0)
		return NULL;
	grant_to_hex(&g, hex);
	return json_pack("{s:s, s:s, s:s}", "kind", "remote", "addr", mn->addr, "grant", hex);
}

/* ---- parsing ------------------------------------------------------------- */

struct create_args {
	struct slot_rec s;
	size_t nsec;
	json_t *cons;   /* borrowed from the body */
	struct slotboot_req boot;   /* an image, volumes, cloud-init (slotboot.h) */
};

static int parse_create(struct orch *o, json_t *body, struct create_args *a,
			struct http_resp *resp)
{
	static const char *const keys[] = { "name", "vcpus", "memory", "remote_percent", "cache",
					    "policy", "hotplug", "constraints", "encrypt", "net", "image",
					    "disk", "volumes", "ssh_keys", "user_data", "append", "replicas",
					    NULL };
	const char *name, *pol, *hp;
	uint64_t mem, cache;
	json_t *v;

	memset(a, 0, sizeof(*a));
	if (http_check_keys(body, keys, resp) < 0)
		return -EINVAL;
	name = json_string_value(json_object_get(body, "name"));
	if (!name || !orch_valid_name(name)) {
		http_resp_error(resp, 400, "bad_request",
				"\"name\" must be 1 to 63 characters of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	snprintf(a->s.name, sizeof(a->s.name), "%s", name);
	a->s.vcpus = 1;
	if ((v = json_object_get(body, "vcpus"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 1024) {
			http_resp_error(resp, 400, "bad_request", "\"vcpus\" must be 1 to 1024");
			return -EINVAL;
		}
		a->s.vcpus = json_integer_value(v);
	}
	v = json_object_get(body, "memory");
	if (!v) {
		http_resp_error(resp, 400, "bad_request", "\"memory\" is required");
		return -EINVAL;
	}
	if (json_size(v, &mem) < 0 || sections_for(o, mem, &a->nsec) < 0) {
		http_resp_error(resp, 400, "bad_size",
				"\"memory\" must be a whole number (1 to %d) of %" PRIu64
				"-byte sections",
				ORCH_MAX_SECTIONS, o->section_size);
		return -EINVAL;
	}
	a->s.memory = mem;
	if (orch_page_key(body, a->s.page_key, resp) < 0)   /* guest memory at rest */
		return -EINVAL;
	if (slotnet_parse(body, &a->s, resp) < 0)           /* its network card */
		return -EINVAL;
	if (slotboot_parse(body, o->boot != NULL, &a->boot, resp) < 0) /* what it boots */
		return -EINVAL;
	a->s.remote_percent = 100;
	if ((v = json_object_get(body, "remote_percent"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 100) {
			http_resp_error(resp, 400, "bad_request",
					"\"remote_percent\" must be 0 to 100");
			return -EINVAL;
		}
		a->s.remote_percent = json_integer_value(v);
	}
	a->s.cache = -1;
	if ((v = json_object_get(body, "cache")) && !json_is_null(v)) {
		if (json_size(v, &cache) < 0 || cache > INT64_MAX) {
			http_resp_error(resp, 400, "bad_size", "\"cache\" must be a size");
			return -EINVAL;
		}
		a->s.cache = (int64_t)cache;
	}
	pol = "spread";
	if ((v = json_object_get(body, "policy"))) {
		pol = json_string_value(v);
		if (!pol || (strcmp(pol, "spread") && strcmp(pol, "pack"))) {
			http_resp_error(resp, 400, "bad_request",
					"\"policy\" must be \"spread\" or \"pack\"");
			return -EINVAL;
		}
	}
	snprintf(a->s.policy, sizeof(a->s.policy), "%s", pol);
	hp = "dimm";
	if ((v = json_object_get(body, "hotplug"))) {
		hp = json_string_value(v);
		if (!hp || (strcmp(hp, "dimm") && strcmp(hp, "virtio-mem"))) {
			http_resp_error(resp, 400, "bad_request",
					"\"hotplug\" must be \"dimm\" or \"virtio-mem\"");
			return -EINVAL;
		}
	}
	snprintf(a->s.hotplug, sizeof(a->s.hotplug), "%s", hp);
	if (placement_parse_constraints(body, a->s.constraints, sizeof(a->s.constraints),
					&a->cons, resp) < 0)
		return -EINVAL;
	return o->replicas ? o->replicas->parse(o, body, &a->s, a->cons, resp) : 0;
}

/* ---- create -------------------------------------------------------------- */

/* Undo a create: VM (best effort), sections, record. */
static void create_rollback(struct orch *o, const struct slot_rec *s, const struct node_rec *c,
			    bool vm_asked, const char *why)
{
	_cleanup_free_ struct section_rec *secs = NULL;
	struct store *st = o->store;
	size_t n = 0;
	char path[128];

	if (vm_asked) {
		snprintf(path, sizeof(path), "/v1/vms/%s", s->name);
		cclient_call(c->id, c->http, "DELETE", path, NULL, SHORT_TIMEOUT_MS, NULL);
	}
	if (st->ops->section_list(st, s->id, 0, &secs, &n) == 0)
		for (size_t i = 0; i < n; i++)
			if (secs[i].remote)
				slots_free_remote(o, &secs[i]);
	if (o->replicas)
		o->replicas->drop(o, s, -1);
	if (st->ops->begin(st) == 0) {
		int r = st->ops->slot_delete(st, s->id);

		if (r == 0)
			r = slots_event(o, "slot_create_failed", s->compute, s->name, "slot %s: %s",
				  s->name, why);
		if (r == 0)
			st->ops->commit(st);
		else
			st->ops->rollback(st);
	}
	log_info("slot %s not created: %s", s->name, why);
}

/* The root volume and disks of a create: recorded (ok) or undone, once. */
static void boot_end(struct orch *o, struct orch_boot **b, bool ok)
{
	if (*b)
		o->boot->done(o, *b, ok);
	*b = NULL;
}

void slots_create(struct orch *o, const struct http_req *req, struct http_resp *resp)
{
	struct store *st = o->store;
	_cleanup_free_ struct node_rec *mns = NULL;
	struct placement_req pr;
	struct create_args a;
	struct node_rec c;
	struct slot_rec old;
	size_t nlocal, nremote;
	json_t *body, *secs = NULL, *vmreq = NULL, *ci;
	_cleanup_free_ char *vmbody = NULL, *answer = NULL;
	struct orch_boot *boot = NULL;
	char why[512] = "";
	int r, status;

	body = http_json_body(req, resp);
	if (!body)
		return;
	if (parse_create(o, body, &a, resp) < 0)
		goto out;
	nlocal = locals_for(a.nsec, a.s.remote_percent);
	nremote = a.nsec - nlocal;
	placement_from_slot(&a.s, a.cons, &pr);
	mns = calloc(nremote ? nremote : 1, sizeof(*mns));
	if (!mns) {
		http_resp_error(resp, 500, "internal", "out of memory");
		goto out;
	}

	/* Place and record, atomically with respect to other placements. */
	pthread_mutex_lock(&o->place_mu);
	r = st->ops->slot_get(st, a.s.name, &old);
	if (r == 0) {
		pthread_mutex_unlock(&o->place_mu);
		http_resp_error(resp, 409, "exists", "slot %s exists", a.s.name);
		goto out;
	}
	r = place_compute(o, &pr, &c, why, sizeof(why));
	if (r == 0)
		r = place_memnodes(o, &pr, nremote, NULL, 0, mns, why, sizeof(why));
	if (r == 0) {
		a.s.compute = c.id;
		a.s.created = (int64_t)time(NULL);
		snprintf(a.s.state, sizeof(a.s.state), "creating");
		r = st->ops->slot_insert(st, &a.s);
		if (r < 0) {
			for (size_t i = 0; i < nremote; i++)
				st->ops->node_adjust_free(st, mns[i].id, +1);
			snprintf(why, sizeof(why), "%s", strerror(-r));
		}
	}
	pthread_mutex_unlock(&o->place_mu);
	if (r == -ENOSPC) {
		http_resp_error(resp, 409, "capacity", "slot %s: %s", a.s.name, why);
		goto out;
	}
	if (r == -EEXIST) {
		http_resp_error(resp, 409, "exists", "slot %s exists", a.s.name);
		goto out;
	}
	if (r < 0) {
		store_error(resp, r);
		goto out;
	}

	/* Sections: local ones first, then remote, in the VM's memory order. */
	secs = json_array();
	for (size_t i = 0; i < a.nsec; i++) {
		struct section_rec x = { .slot_id = a.s.id, .idx = (int64_t)i, .hot_index = -1 };

		if (i < nlocal) {
			json_array_append_new(secs, json_pack("{s:s}", "kind", "local"));
		} else {
			struct node_rec *mn = &mns[i - nlocal];

			r = alloc_remote(o, &a.s, &pr, mn, &x.section, &x.generation, why,
					 sizeof(why));
			if (r < 0) {
				/* Reservations not used yet go back. */
				for (size_t k = i - nlocal + 1; k < nremote; k++)
					st->ops->node_adjust_free(st, mns[k].id, +1);
				create_rollback(o, &a.s, &c, false, why);
				if (r == -ENOSPC)
					http_resp_error(resp, 409, "capacity", "slot %s: %s",
							a.s.name, why);
				else
					http_resp_error(resp, 503, "node_unreachable", "slot %s: %s",
							a.s.name, why);
				goto out;
			}
			x.remote = true;
			x.memnode = mn->id;
			json_array_append_new(secs, slots_remote_json(o, mn, c.id, x.section,
									x.generation, x.epoch));
		}
		r = st->ops->section_add(st, &x);
		if (r < 0) {
			if (x.remote) {
				snprintf(x.slot, sizeof(x.slot), "%s", a.s.name);
				slots_free_remote(o, &x);
			}
			for (size_t k = i >= nlocal ? i - nlocal + 1 : 0; k < nremote; k++)
				st->ops->node_adjust_free(st, mns[k].id, +1);
			create_rollback(o, &a.s, &c, false, "store failure");
			store_error(resp, r);
			goto out;
		}
		if (x.remote && o->replicas && (r = o->replicas->add(o, &a.s, c.id, &x,
				json_array_get(secs, i), why, sizeof(why))) < 0) {
			for (size_t k = i - nlocal + 1; k < nremote; k++)
				st->ops->node_adjust_free(st, mns[k].id, +1);
			create_rollback(o, &a.s, &c, false, why);
			http_resp_error(resp, r == -ENOSPC ? 409 : 503, r == -ENOSPC ? "no_capacity"
					: "node_unreachable", "slot %s: %s", a.s.name, why);
			goto out;
		}
	}

	vmreq = json_pack("{s:s, s:I, s:O, s:s, s:i, s:s*}", "name", a.s.name, "vcpus",
			  (json_int_t)a.s.vcpus, "sections", secs, "hotplug", a.s.hotplug,
			  "max_sections", ORCH_HOT_MAX_SECTIONS, "encryption_key",
			  a.s.page_key[0] ? a.s.page_key : NULL);
	if (vmreq && a.s.cache >= 0)
		json_object_set_new(vmreq, "cache_bytes", json_integer(a.s.cache));
	if (vmreq)
		json_object_set_new(vmreq, "net", slotnet_request(&a.s));
	if (vmreq && (ci = slotboot_cloud_init(&a.boot, a.s.name)))
		json_object_set_new(vmreq, "cloud_init", ci);
	/* Its root volume and disks (volumes_boot.c). */
	if (vmreq && a.boot.any && o->boot->prepare(o, &a.s, &c, &a.boot, vmreq, &boot, resp) < 0) {
		create_rollback(o, &a.s, &c, false, "its disks could not be made ready");
		goto out;
	}
	vmbody = vmreq ? json_dumps(vmreq, JSON_COMPACT) : NULL;
	if (!vmbody) {
		create_rollback(o, &a.s, &c, false, "out of memory");
		boot_end(o, &boot, false);
		http_resp_error(resp, 500, "internal", "out of memory");
		goto out;
	}
	status = cclient_call(c.id, c.http, "POST", "/v1/vms", vmbody, o->compute_timeout_ms, &answer);
	if (status != 200 && status != 201) {
		char msg[256];

		slots_compute_error(resp, &c, "to start the VM", status, answer);
		if (status < 0)
			snprintf(msg, sizeof(msg), "compute node %s: %s", c.name, strerror(-status));
		else
			snprintf(msg, sizeof(msg), "compute node %s answered HTTP %d", c.name,
				 status);
		create_rollback(o, &a.s, &c, true, msg);
		boot_end(o, &boot, false);
		goto out;
	}

	snprintf(a.s.state, sizeof(a.s.state), "running");
	{
		_cleanup_(json_decrefp) json_t *vm = json_loads(answer, 0, NULL);

		slotnet_record(&a.s, json_object_get(vm, "net"), &c, a.s.net, sizeof(a.s.net));
	}
	r = st->ops->begin(st);
	if (r == 0) {
		r = st->ops->slot_update(st, &a.s);
		if (r == 0)
			r = slots_event(o, "slot_created", c.id, a.s.name,
				  "slot %s: %zu sections (%zu remote) on compute node %s", a.s.name,
				  a.nsec, nremote, c.name);
		if (r == 0)
			r = st->ops->commit(st);
		else
			st->ops->rollback(st);
	}
	if (r < 0) {
		create_rollback(o, &a.s, &c, true, "store failure");
		boot_end(o, &boot, false);
		store_error(resp, r);
		goto out;
	}
	boot_end(o, &boot, true);
	log_info("slot %s running on %s: %zu sections, %zu remote", a.s.name, c.name, a.nsec,
		 nremote);
	http_resp_json(resp, 201, slots_json(o, &a.s, true));
out:
	json_decref(secs);
	json_decref(vmreq);
	json_decref(body);
}

/* ---- get, list ----------------------------------------------------------- */

void slots_list(struct orch *o, struct http_resp *resp)
{
	_cleanup_free_ struct slot_rec *slots = NULL;
	size_t n = 0;
	json_t *arr;
	int r;

	r = o->store->ops->slot_list(o->store, 0, 0, &slots, &n);
	if (r < 0) {
		store_error(resp, r);
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, slots_json(o, &slots[i], false));
	http_resp_json(resp, 200, json_pack("{s:o}", "slots", arr));
}

int slots_get_slot(struct orch *o, const char *name, struct slot_rec *s, struct http_resp *resp)
{
	int r = o->store->ops->slot_get(o->store, name, s);

	if (r == -ENOENT)
		http_resp_error(resp, 404, "not_found", "unknown slot %s", name);
	else if (r < 0)
		store_error(resp, r);
	return r;
}

void slots_get(struct orch *o, const char *name, struct http_resp *resp)
{
	struct slot_rec s;

	if (slots_get_slot(o, name, &s, resp) == 0)
		http_resp_json(resp, 200, slots_json(o, &s, true));
}

bool slots_transitional(const char *state)
{
	return !strcmp(state, "creating") || !strcmp(state, "resizing") ||
	       !strcmp(state, "deleting") || !strcmp(state, "migrating") ||
	       !strcmp(state, "unresolved");
}

/*
 * Move a slot into `to` if no operation runs on it and its state is one
 * of `from` (NULL-terminated; NULL = any settled state).
 */
int slots_begin_op(struct orch *o, const char *name, const char *const *from, const char *to,
		    struct slot_rec *s, struct http_resp *resp)
{
	struct store *st = o->store;
	bool ok = !from;
	int r;

	r = st->ops->begin(st);
	if (r < 0) {
		store_error(resp, r);
		return r;
	}
	r = slots_get_slot(o, name, s, resp);
	if (r < 0) {
		st->ops->rollback(st);
		return r;
	}
	if (slots_transitional(s->state)) {
		st->ops->rollback(st);
		http_resp_error(resp, 409, "busy", "slot %s is %s", name, s->state);
		return -EBUSY;
	}
	for (const char *const *f = from; f && *f; f++)
		ok = ok || strcmp(*f, s->state) == 0;
	if (!ok) {
		st->ops->rollback(st);
		http_resp_error(resp, 409, "conflict", "slot %s is %s", name, s->state);
		return -EBUSY;
	}
	snprintf(s->state, sizeof(s->state), "%s", to);
	r = st->ops->slot_update(st, s);
	if (r == 0)
		r = st->ops->commit(st);
	else
		st->ops->rollback(st);
	if (r < 0)
		store_error(resp, r);
	return r;
}

void slots_end_op(struct orch *o, struct slot_rec *s, const char *state)
{
	snprintf(s->state, sizeof(s->state), "%s", state);
	o->store->ops->slot_update(o->store, s);
}

/* ---- resize -------------------------------------------------------------- */

static int grow_one(struct orch *o, struct slot_rec *s, const struct node_rec *c,
		    const struct placement_req *pr, int64_t idx, bool local, struct http_resp *resp)
{
	struct store *st = o->store;
	struct section_rec x = { .slot_id = s->id, .idx = idx, .remote = !local };
	_cleanup_free_ char *body = NULL, *answer = NULL;
	struct node_rec mn;
	char why[512] = "", path[128];
	json_t *sec, *ans;
	int r, status;

	snprintf(x.slot, sizeof(x.slot), "%s", s->name);
	if (local) {
		sec = json_pack("{s:s}", "kind", "local");
	} else {
		pthread_mutex_lock(&o->place_mu);
		r = place_memnodes(o, pr, 1, NULL, 0, &mn, why, sizeof(why));
		pthread_mutex_unlock(&o->place_mu);
		if (r == 0)
			r = alloc_remote(o, s, pr, &mn, &x.section, &x.generation, why, sizeof(why));
		x.memnode = mn.id;
		sec = r ? NULL : slots_remote_json(o, &mn, c->id, x.section, x.generation, x.epoch);
		if (sec && o->replicas && (r = o->replicas->add(o, s, c->id, &x, sec, why,
								   sizeof(why))) < 0)
			slots_free_remote(o, &x);   /* its replicas could not be placed */
		if (r < 0) {
			json_decref(sec);
			http_resp_error(resp, r == -ENOSPC ? 409 : 503,
					r == -ENOSPC ? "capacity" : "node_unreachable", "slot %s: %s",
					s->name, why);
			return r;
		}
	}
	ans = json_pack("{s:o}", "section", sec);
	body = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
	json_decref(ans);
	snprintf(path, sizeof(path), "/v1/vms/%s/sections", s->name);
	status = body ? cclient_call(c->id, c->http, "POST", path, body, o->compute_timeout_ms, &answer)
		      : -ENOMEM;
	if (status != 200 && status != 201) {
		slots_compute_error(resp, c, "to hot-add a section", status, answer);
		if (x.remote && o->replicas)
			o->replicas->drop(o, s, x.idx);
		if (x.remote)
			slots_free_remote(o, &x);
		return status < 0 ? status : -EIO;
	}
	ans = json_loads(answer ? answer : "", 0, NULL);
	x.hot_index = json_is_integer(json_object_get(ans, "index"))
			      ? json_integer_value(json_object_get(ans, "index"))
			      : idx;
	json_decref(ans);
	r = st->ops->section_add(st, &x);
	if (r < 0) {
		store_error(resp, r);
		return r;
	}
	return 0;
}

static int shrink_one(struct orch *o, struct slot_rec *s, const struct node_rec *c,
		      const struct section_rec *x, struct http_resp *resp)
{
	_cleanup_free_ char *answer = NULL;
	char path[160];
	int status, r;

	snprintf(path, sizeof(path), "/v1/vms/%s/sections/%" PRId64, s->name, x->hot_index);
	status = cclient_call(c->id, c->http, "DELETE", path, NULL, o->compute_timeout_ms, &answer);
	if (status != 200 && status != 204 && status != 404) {
		slots_compute_error(resp, c, "to hot-remove a section", status, answer);
		return status < 0 ? status : -EIO;
	}
	if (x->remote && o->replicas)
		o->replicas->drop(o, s, x->idx);
	if (x->remote)
		slots_free_remote(o, x);
	r = o->store->ops->section_remove(o->store, s->id, x->idx);
	if (r < 0)
		store_error(resp, r);
	return r;
}

void slots_resize(struct orch *o, const char *name, const struct http_req *req,
		  struct http_resp *resp)
{
	static const char *const keys[] = { "memory", NULL };
	static const char *const from[] = { "running", NULL };
	_cleanup_free_ struct section_rec *secs = NULL;
	struct placement_req pr;
	struct slot_rec s;
	struct node_rec c;
	json_t *body, *cons = NULL;
	size_t want, have = 0, nlocal = 0, boot = 0;
	uint64_t mem;
	int r = 0;

	body = http_json_args(req, resp, keys);
	if (!body)
		return;
	if (!json_object_get(body, "memory") ||
	    json_size(json_object_get(body, "memory"), &mem) < 0 ||
	    sections_for(o, mem, &want) < 0) {
		http_resp_error(resp, 400, "bad_size",
				"\"memory\" must be a whole number (1 to %d) of %" PRIu64
				"-byte sections",
				ORCH_MAX_SECTIONS, o->section_size);
		goto out;
	}
	if (slots_begin_op(o, name, from, "resizing", &s, resp) < 0)
		goto out;
	r = o->store->ops->node_get(o->store, s.compute, &c);
	if (r == 0)
		r = o->store->ops->section_list(o->store, s.id, 0, &secs, &have);
	if (r < 0) {
		store_error(resp, r);
		slots_end_op(o, &s, "running");
		goto out;
	}
	for (size_t i = 0; i < have; i++) {
		nlocal += !secs[i].remote;
		boot += secs[i].hot_index < 0;
	}
	cons = json_loads(s.constraints, 0, NULL);
	placement_from_slot(&s, cons, &pr);

	if (want < boot) {
		http_resp_error(resp, 409, "conflict",
				"slot %s cannot shrink below its boot memory (%zu sections)", name,
				boot);
		slots_end_op(o, &s, "running");
		goto out;
	}
	int64_t next_idx = have ? secs[have - 1].idx + 1 : 0;

	while (have < want) {
		bool local = nlocal < locals_for(have + 1, s.remote_percent);

		r = grow_one(o, &s, &c, &pr, next_idx, local, resp);
		if (r < 0)
			break;
		have++;
		next_idx++;
		nlocal += local;
	}
	while (r == 0 && have > want) {
		r = shrink_one(o, &s, &c, &secs[have - 1], resp);
		if (r < 0)
			break;
		have--;
	}
	s.memory = (uint64_t)have * o->section_size;
	slots_end_op(o, &s, "running");
	slots_event(o, r == 0 ? "slot_resized" : "slot_resize_failed", s.compute, s.name,
	      "slot %s now has %zu sections (%zu asked)", s.name, have, want);
	if (r == 0)
		http_resp_json(resp, 200, slots_json(o, &s, true));
out:
	json_decref(cons);
	json_decref(body);
}

/* ---- delete -------------------------------------------------------------- */

void slots_delete(struct orch *o, const char *name, bool keep_disk, struct http_resp *resp)
{
	char root[STORE_NAME_MAX] = "", image[STORE_NAME_MAX];
	struct store *st = o->store;
	_cleanup_free_ struct section_rec *secs = NULL;
	_cleanup_free_ char *answer = NULL;
	struct slot_rec s;
	struct node_rec c;
	char prev[STORE_STATE_MAX], path[128];
	size_t n = 0;
	int r, status;

	r = st->ops->slot_get(st, name, &s);
	if (r == 0)
		snprintf(prev, sizeof(prev), "%s", s.state);
	if (slots_begin_op(o, name, NULL, "deleting", &s, resp) < 0)
		return;
	if ((o->volumes && o->volumes->slot_deleting(o, &s, resp) < 0) ||
	    (o->regions && o->regions->slot_deleting(o, &s, prev, resp) < 0)) {
		slots_end_op(o, &s, prev);
		return;
	}
	if (o->boot)
		o->boot->root(o, &s, root, image);
	if (st->ops->node_get(st, s.compute, &c) < 0)
		memset(&c, 0, sizeof(c));
	snprintf(path, sizeof(path), "/v1/vms/%s", s.name);
	status = cclient_call(c.id, c.http, "DELETE", path, NULL, o->compute_timeout_ms, &answer);
	if (status != 200 && status != 204 && status != 404 && strcmp(prev, "lost") &&
	    strcmp(prev, "failed")) {
		slots_compute_error(resp, &c, "to stop the VM", status, answer);
		slots_end_op(o, &s, prev);
		return;
	}
	if (st->ops->section_list(st, s.id, 0, &secs, &n) == 0)
		for (size_t i = 0; i < n; i++)
			if (secs[i].remote)
				slots_free_remote(o, &secs[i]);
	if (o->replicas)
		o->replicas->drop(o, &s, -1);
	r = st->ops->begin(st);
	if (r == 0) {
		r = st->ops->slot_delete(st, s.id);
		if (r == 0)
			r = slots_event(o, "slot_deleted", s.compute, s.name, "slot %s deleted", s.name);
		if (r == 0)
			r = st->ops->commit(st);
		else
			st->ops->rollback(st);
	}
	if (r < 0) {
		store_error(resp, r);
		return;
	}
	log_info("slot %s deleted", s.name);
	if (root[0])   /* its root volume goes with it, unless asked to keep it */
		o->boot->deleted(o, root, keep_disk);
	http_resp_text(resp, 204, "application/json", NULL);
}

/* ---- console and guest commands ------------------------------------------ */

/* Forward a request about the slot's VM to its compute node. */
static void proxy(struct orch *o, const char *name, const char *method, const char *sub,
		  const char *body, int timeout_ms, const char *what, const char *ctype,
		  struct http_resp *resp)
{
	_cleanup_free_ char *answer = NULL;
	struct slot_rec s;
	struct node_rec c;
	char path[192];
	int status;

	if (slots_get_slot(o, name, &s, resp) < 0)
		return;
	if (o->store->ops->node_get(o->store, s.compute, &c) < 0) {
		http_resp_error(resp, 404, "not_found", "slot %s has no compute node", name);
		return;
	}
	snprintf(path, sizeof(path), "/v1/vms/%s/%s", s.name, sub);
	status = cclient_call(c.id, c.http, method, path, body, timeout_ms, &answer);
	if (status != 200) {
		slots_compute_error(resp, &c, what, status, answer);
		return;
	}
	http_resp_text(resp, 200, ctype, TAKE_PTR(answer));
	if (!resp->body)
		resp->body = strdup("");
}

/*
 * The console: "" its log (text), "/output" its bytes from an offset (a
 * long poll of up to 5 s), "/input" typed bytes (docs/api.md).
 */
void slots_console(struct orch *o, const char *name, const char *sub,
		   const struct http_req *req, struct http_resp *resp)
{
	const char *from = http_req_query(req, "from"), *wait = http_req_query(req, "wait_ms");
	uint64_t f = 0, w = 0;
	char path[96];

	if (!*sub) {
		proxy(o, name, "GET", "console", NULL, SHORT_TIMEOUT_MS, "the console",
		      "text/plain; charset=utf-8", resp);
	} else if (!strcmp(sub, "/input")) {
		proxy(o, name, "POST", "console/input", req->body, SHORT_TIMEOUT_MS,
		      "the console input", "application/json", resp);
	} else if ((from && u64_parse(from, &f) < 0) ||
		   (wait && (u64_parse(wait, &w) < 0 || w > 5000))) {
		http_resp_error(resp, 400, "bad_request",
				"from must be a byte offset and wait_ms a number of ms up to 5000");
	} else {
		int n = snprintf(path, sizeof(path), "console/output?wait_ms=%" PRIu64, w);

		if (from)
			snprintf(path + n, sizeof(path) - (size_t)n, "&from=%" PRIu64, f);
		proxy(o, name, "GET", path, NULL, SHORT_TIMEOUT_MS, "the console output",
		      "application/json", resp);
	}
}

void slots_guest(struct orch *o, const char *name, const struct http_req *req,
		 struct http_resp *resp)
{
	proxy(o, name, "POST", "guest", req->body, o->compute_timeout_ms, "the guest command",
	      "application/json", resp);
}
