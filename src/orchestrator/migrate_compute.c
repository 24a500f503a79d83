// SPDX-License-Identifier: MIT
/*
 * Compute migration, memory stays (docs/api.md, "Migration"): mint grants
 * for the destination, create the VM there with "incoming", ask the source
 * to migrate to the destination's URI, wait for the destination to run,
 * then move the slot in one transaction and forget the source's record.
 * When the source's answer is not a success, the source's own state
 * decides (mig_ask_owner): `migrated` goes on to the destination; running
 * and no longer migrating deletes the destination's leftovers and keeps
 * the slot on the source; still migrating (its answer was lost) is asked
 * again; if it cannot tell, the slot is `unresolved` with both VMs kept.
 * Local sections move to memory nodes first (evacuation): only remote
 * memory follows the VM. Shared regions go along (regions_migrate.c),
 * held still (state `migrating`) until the move ended, and so do disks
 * (volumes_migrate.c: grants of a new epoch), and its boot files and seed.
 */
#include "migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "miguri.h"
#include "slotnet.h"

/* ==== compute migration =================================================== */

/* Copy a DIMM's "gpa" and "slot" from the source's hot_sections entry of the same index. */
static void copy_dimm_place(json_t *x, json_t *src_hot, int64_t index)
{
	size_t i;
	json_t *e;

	json_array_foreach(src_hot, i, e)
		if (mig_jint(e, "index", -1) == index && json_object_get(e, "gpa") &&
		    json_object_get(e, "slot")) {
			json_object_set(x, "gpa", json_object_get(e, "gpa"));
			json_object_set(x, "slot", json_object_get(e, "slot"));
			return;
		}
}

/*
 * The destination's VM body: same sections and hot sections, grants for
 * `dst`; each DIMM where the source has it (src_hot: the source agent's
 * hot_sections, may be NULL).
 */
static json_t *incoming_body(struct orch *o, const struct slot_rec *s,
			     const struct section_rec *secs, size_t n, const struct node_rec *dst,
			     json_t *src_hot)
{
	json_t *boot = json_array(), *hot = json_array(), *b;
	char listen[STORE_ADDR_MAX + 8];

	for (size_t i = 0; i < n; i++) {
		struct node_rec mn;
		json_t *x = NULL;

		if (!secs[i].remote) {
			x = json_pack("{s:s}", "kind", "local");
		} else if (o->store->ops->node_get(o->store, secs[i].memnode, &mn) == 0) {
			x = slots_remote_json(o, &mn, dst->id, secs[i].section,
					      secs[i].generation, secs[i].epoch);
			if (x && o->replicas)   /* and its replicas, with grants for dst */
				o->replicas->agent_json(o, s, dst->id, &secs[i], x);
		}
		if (!x) {
			json_decref(boot);
			json_decref(hot);
			return NULL;
		}
		if (secs[i].hot_index < 0) {
			json_array_append_new(boot, x);
		} else {
			json_object_set_new(x, "index", json_integer(secs[i].hot_index));
			copy_dimm_place(x, src_hot, secs[i].hot_index);
			json_array_append_new(hot, x);
		}
	}
	miguri_listen(dst->http, listen, sizeof(listen));
	b = json_pack("{s:s, s:I, s:o, s:s, s:i, s:{s:s}, s:o}", "name", s->name, "vcpus",
		      (json_int_t)s->vcpus, "sections", boot, "hotplug", s->hotplug,
		      "max_sections", ORCH_HOT_MAX_SECTIONS, "incoming", "listen", listen,
		      "hot_sections", hot);
	if (b && s->cache >= 0)
		json_object_set_new(b, "cache_bytes", json_integer(s->cache));
	if (b && s->page_key[0])
		json_object_set_new(b, "encryption_key", json_string(s->page_key));
	if (b && s->replicas > 1 && o->replicas)   /* its faults wait for the hand-over */
		json_object_set_new(json_object_get(b, "incoming"), "replicas_pending", json_true());
	if (b)   /* the same card (QEMU migrates only between the same devices) */
		json_object_set_new(b, "net", slotnet_request(s));
	return b;
}

/*
 * A sealed slot's page metadata (versions and tags of its pages, not the
 * key) goes from the source agent to the destination agent in two steps
 * (docs/security.md, "Guest memory at rest"): the pre-copy while the
 * guest still runs at the source, then, after the source's final flush,
 * only the records that changed since. The destination's faults on remote
 * pages wait for the last part. Records travel as application/octet-stream
 * (28 bytes each, vm/pagemeta.h on the agent), at most META_PART a part;
 * each call carries that agent's own node credential, as every other.
 */
#define META_PART   131072   /* records a part: 3.5 MiB (the agent's VM_META_PART_MAX) */
#define META_RECORD 28
#define OCTETS      "application/octet-stream"

/* A binary call to an agent: the HTTP status or -errno; *ret: its answer's bytes. */
static int meta_call(const struct node_rec *c, const char *method, const char *path,
		     const void *body, size_t len, char **ret, size_t *ret_len)
{
	return cclient_call_raw(c->id, c->http, method, path, body ? OCTETS : NULL, body, len,
				MIG_SHORT_TIMEOUT_MS, ret, ret_len);
}

/* The agent's error message of a failed call, for humans. */
static void meta_why(int status, const char *ans, size_t len, char *why, size_t wlen)
{
	json_t *j = ans ? json_loadb(ans, len, 0, NULL) : NULL;

	mig_why(status, j, why, wlen);
	json_decref(j);
}

struct meta_moved {
	size_t records;
	unsigned parts;
	uint64_t get_ms;   /* reading the source */
};

/*
 * Snapshot `of` (precopy, delta against base, final) of the source to the
 * destination, the last part with done if done. 0, or -errno with why set:
 * -ENOENT/-ESTALE when the source has no such snapshot (nothing was sent).
 */
static int move_meta(const struct node_rec *src, const struct node_rec *dst, const char *name,
		     const char *of, uint64_t base, bool done, struct meta_moved *mv, char *why,
		     size_t wlen)
{
	char gpath[256], ppath[200];
	size_t from = 0;

	for (;;) {
		_cleanup_free_ char *rec = NULL, *ans = NULL;
		size_t len = 0, alen = 0, n;
		uint64_t t = mig_now_ms();
		bool last;
		int status;

		snprintf(gpath, sizeof(gpath), "/v1/vms/%s/page-meta?of=%s&from=%zu&max=%d", name,
			 of, from, META_PART);
		if (!strcmp(of, "delta"))
			snprintf(gpath + strlen(gpath), sizeof(gpath) - strlen(gpath),
				 "&base=%" PRIu64, base);
		status = meta_call(src, "GET", gpath, NULL, 0, &rec, &len);
		mv->get_ms += mig_now_ms() - t;
		if (status != 200) {
			meta_why(status, rec, len, why, wlen);
			if (from == 0 && (status == 404 || status == 409))
				return status == 404 ? -ENOENT : -ESTALE;
			return -EIO;
		}
		if (len % META_RECORD || len / META_RECORD > META_PART) {
			snprintf(why, wlen, "the source answered %zu bytes, not up to %d records", len,
				 META_PART);
			return -EPROTO;
		}
		n = len / META_RECORD;
		last = n < META_PART;
		if (n || (last && done)) {
			snprintf(ppath, sizeof(ppath), "/v1/vms/%s/page-meta%s", name,
				 last && done ? "?done=1" : "");
			status = meta_call(dst, "POST", ppath, rec ? rec : "", len, &ans, &alen);
			if (status != 200) {
				meta_why(status, ans, alen, why, wlen);
				return -EIO;
			}
			mv->parts++;
		}
		from += n;
		mv->records += n;
		if (last)
			return 0;
	}
}

/*
 * The pre-copy's snapshot, the guest running at the source: *ret_gen
 * names it, the delta will be against it. 0, or -errno with why set.
 */
static int precopy_snapshot(const struct node_rec *src, const char *name, uint64_t *ret_gen,
			    char *why, size_t len)
{
	char path[160];
	json_t *ans = NULL;
	int status;

	snprintf(path, sizeof(path), "/v1/vms/%s/page-meta/precopy", name);
	status = mig_call(src, "POST", path, NULL, MIG_SHORT_TIMEOUT_MS, &ans);
	if (status != 200 || !json_is_integer(json_object_get(ans, "snapshot")) ||
	    json_integer_value(json_object_get(ans, "snapshot")) <= 0) {
		mig_why(status, ans, why, len);
		json_decref(ans);
		return -EIO;
	}
	*ret_gen = (uint64_t)json_integer_value(json_object_get(ans, "snapshot"));
	json_decref(ans);
	return 0;
}

/* The snapshot in a thread of its own, while the destination prepares. */
struct snap_job {
	const struct node_rec *src;
	const char *name;
	pthread_t thread;
	bool started;
	int r;
	uint64_t gen;
	char why[200];
};

static void *snap_run(void *opaque)
{
	struct snap_job *j = opaque;

	j->r = precopy_snapshot(j->src, j->name, &j->gen, j->why, sizeof(j->why));
	return NULL;
}

static int snap_join(struct snap_job *j)
{
	if (j->started)
		pthread_join(j->thread, NULL);
	j->started = false;
	return j->r;
}

/*
 * The pre-copy's records to the destination, in a thread of its own while
 * the source migrates (its flush rounds and QEMU's migration): joined
 * before the delta. Failing, the hand-over after the switchover sends
 * every record instead of the delta.
 */
struct precopy_job {
	const struct node_rec *src, *dst;
	const char *name;
	pthread_t thread;
	bool started;
	int r;
	uint64_t ms;
	struct meta_moved mv;
	char why[200];
};

static void *precopy_run(void *opaque)
{
	struct precopy_job *j = opaque;
	uint64_t t0 = mig_now_ms();

	j->r = move_meta(j->src, j->dst, j->name, "precopy", 0, false, &j->mv, j->why,
			 sizeof(j->why));
	j->ms = mig_now_ms() - t0;
	return NULL;
}

/* Join the pre-copy: 0 if all of it reached the destination. */
static int precopy_join(struct precopy_job *j)
{
	if (!j->started)
		return -ESRCH;
	pthread_join(j->thread, NULL);
	j->started = false;
	if (j->r < 0) {
		log_warn("slot %s: the page-metadata pre-copy to %s failed (%s): every record "
			 "goes after the switchover", j->name, j->dst->name, j->why);
		return j->r;
	}
	log_info("slot %s: page metadata pre-copy of %zu pages to %s in %u part(s): %" PRIu64
		 " ms (%" PRIu64 " ms reading the source), while the source migrated", j->name,
		 j->mv.records, j->dst->name, j->mv.parts, j->ms, j->mv.get_ms);
	return 0;
}

/* migrate.h */
int mig_meta_hand_over(const struct node_rec *src, const struct node_rec *dst, const char *name,
		       uint64_t gen, char *why, size_t len)
{
	struct meta_moved mv = { 0 };
	uint64_t t0 = mig_now_ms();
	const char *of = gen ? "delta" : "final";
	int r;

	r = gen ? move_meta(src, dst, name, "delta", gen, true, &mv, why, len) : -ENOENT;
	if (r == -ENOENT || r == -ESTALE) {
		if (gen)
			log_warn("slot %s: the source has no page-metadata delta against its "
				 "pre-copy (%s): every record goes", name, why);
		of = "final";
		r = move_meta(src, dst, name, "final", 0, true, &mv, why, len);
	}
	if (r < 0)
		return r;
	log_info("slot %s: page metadata (%s) of %zu pages to %s in %u part(s): %" PRIu64
		 " ms (%" PRIu64 " ms reading the source)", name, of, mv.records, dst->name,
		 mv.parts, mig_now_ms() - t0, mv.get_ms);
	return 0;
}

/* Checks before the slot becomes `migrating`: 0, or the answer is set. */
static int compute_checks(struct orch *o, const struct slot_rec *s, const struct node_rec *dst,
			  struct http_resp *resp)
{
	struct node_rec cur;

	if (s->compute == dst->id) {
		http_resp_error(resp, 409, "conflict", "slot %s already runs on compute node %s",
				s->name, dst->name);
		return -EINVAL;
	}
	if (strcmp(dst->state, "up") != 0 || dst->drained) {
		http_resp_error(resp, 409, "conflict", "compute node %s is %s", dst->name,
				dst->drained ? "drained" : dst->state);
		return -EINVAL;
	}
	/* vcpus_used comes with node_get, like for placement. */
	if (o->store->ops->node_get(o->store, dst->id, &cur) == 0 &&
	    cur.vcpus_used + s->vcpus > cur.vcpus) {
		http_resp_error(resp, 409, "capacity",
				"compute node %s has %" PRId64 " of %" PRId64
				" vCPUs free, slot %s needs %" PRId64,
				dst->name, MAX(cur.vcpus - cur.vcpus_used, (int64_t)0), cur.vcpus,
				s->name, s->vcpus);
		return -ENOSPC;
	}
	return 0;
}

/*
 * Every local section of the slot moves to a memory node before a compute
 * migration: only remote memory follows the VM (QEMU does not send shared
 * RAM). The source agent keeps the content and writes it to the new
 * section (compute.md, "evacuate"); its pre-copy flush completes that.
 * secs is updated. A section evacuated stays remote if a later one or
 * the migration fails. 0, or the answer is set.
 */
static int evacuate_local(struct orch *o, struct slot_rec *s, const struct node_rec *src,
			  struct section_rec *secs, size_t n, struct http_resp *resp)
{
	char path[160], why[512];
	int64_t boot = -1;
	size_t moved = 0;

	snprintf(path, sizeof(path), "/v1/vms/%s/sections/evacuate", s->name);
	for (size_t i = 0; i < n; i++) {
		struct section_rec nx = secs[i];
		struct node_rec mn;
		json_t *to, *body, *ans = NULL, *op;
		int r, status;

		boot += secs[i].hot_index < 0;
		if (secs[i].remote)
			continue;
		r = slots_alloc_section(o, s, &mn, &nx.section, &nx.generation, why, sizeof(why));
		if (r < 0) {
			http_resp_error(resp, r == -ENOSPC ? 409 : 503,
					r == -ENOSPC ? "capacity" : "node_unreachable",
					"slot %s: section %" PRId64 " is local and must move to a memory "
					"node first, but none can take it: %s", s->name, secs[i].idx, why);
			return r;
		}
		nx.remote = true;
		nx.memnode = mn.id;
		/* A restart from here on finds what to undo or record (recover_evacuate). */
		op = json_pack("{s:s, s:I, s:I, s:o}", "kind", "evacuate", "from",
			       (json_int_t)src->id, "index", (json_int_t)nx.idx, "dst",
			       mig_sec_ref(mn.id, nx.section, nx.generation));
		mig_set_op(o, s, op);
		json_decref(op);
		to = slots_remote_json(o, &mn, src->id, nx.section, nx.generation, nx.epoch);
		body = to ? json_pack("{s:I, s:o}", secs[i].hot_index < 0 ? "boot_index" : "hot_index",
				      (json_int_t)(secs[i].hot_index < 0 ? boot : secs[i].hot_index),
				      "to", to)
			  : NULL;
		status = body ? mig_call(src, "POST", path, body, o->compute_timeout_ms, &ans) : -ENOMEM;
		json_decref(body);
		if (status != 200) {
			mig_why(status, ans, why, sizeof(why));
			json_decref(ans);
			slots_free_remote(o, &nx);
			http_resp_error(resp, status == 409 ? 409 : 503,
					status == 409 ? "conflict" : "migration_failed",
					"slot %s: section %" PRId64 " is local and compute node %s could "
					"not move it to memory node %s (%s); the VM keeps running there",
					s->name, secs[i].idx, src->name, mn.name, why);
			return -EIO;
		}
		json_decref(ans);
		snprintf(why, sizeof(why),
			 "slot %s section %" PRId64 " moved from compute node %s's local memory "
			 "to memory node %s (section %" PRIu32 ")",
			 s->name, nx.idx, src->name, mn.name, nx.section);
		r = mig_section_replace(o, &nx, "section_evacuated", mn.id, s->name, why);
		if (r < 0) {
			http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
			return r;
		}
		secs[i] = nx;
		moved++;
	}
	if (moved) {
		s->remote_percent = 100;
		log_info("slot %s: %zu local section%s moved to memory nodes", s->name, moved,
			 moved == 1 ? "" : "s");
	}
	return 0;
}

/*
 * Hand the source's hot pages to the destination, which fetches them
 * between faults. Best effort: without it the guest fetches on demand.
 */
static void prefetch_hot(const struct node_rec *dst, const char *name, json_t *mig)
{
	json_t *hot = json_object_get(mig, "hot"), *body;
	char path[160];
	int status;

	if (json_array_size(hot)) {
		snprintf(path, sizeof(path), "/v1/vms/%s/prefetch", name);
		body = json_pack("{s:O}", "hot", hot);
		status = body ? mig_call(dst, "POST", path, body, MIG_SHORT_TIMEOUT_MS, NULL) : -ENOMEM;
		json_decref(body);
		if (status != 202)
			log_info("slot %s: compute node %s did not take the hot pages (%d)", name,
				 dst->name, status);
	}
}

/*
 * The source did not answer the migration with success: where is the VM?
 * Asked of both nodes until the source no longer migrates (it may still be
 * migrating when its answer was lost), at most MIG_ARRIVE_TIMEOUT_MS.
 */
static enum mig_owner source_outcome(const struct node_rec *src, const struct node_rec *dst,
				     const char *name, struct mig_seen *ret_src)
{
	uint64_t end = mig_now_ms() + MIG_ARRIVE_TIMEOUT_MS;
	struct mig_seen ds;
	char st[STORE_STATE_MAX];

	for (;;) {
		enum mig_owner ow = mig_ask_owner(src, dst, name, MIG_SHORT_TIMEOUT_MS, ret_src,
						  &ds);
		uint64_t t = mig_now_ms();

		if (ow != MIG_OWNER_UNKNOWN || t > end)
			return ow;
		/* The agent holds this until the VM migrated (or 2 s). */
		mig_vm_state_wait(src, name, "migrated", 2000, st, sizeof(st), NULL);
		if (mig_now_ms() - t < 200)
			usleep(200 * 1000);
	}
}

void migrate_compute(struct orch *o, const char *name, const struct http_req *req,
		     struct http_resp *resp)
{
	static const char *const keys[] = { "to", "prefetch", NULL };
	static const char *const states[] = { "running", NULL };
	struct store *st = o->store;
	_cleanup_free_ struct section_rec *secs = NULL;
	struct node_rec src, dst;
	bool prefetch = true, hot = false;
	struct slot_rec s;
	const char *uri;
	json_t *body, *vmb = NULL, *ans = NULL, *mig = NULL, *op;
	struct mig_along al = { 0 };
	bool along = false, moved = false;
	uint64_t from = 0;
	char why[512], path[160], target[STORE_ADDR_MAX + 16], dst_net[sizeof(s.net)] = "";
	uint64_t tid = 0, t0 = mig_now_ms(), t_ready = 0, t_pre = 0, t_src = 0, t_meta = 0,
		 t_moved = 0, t_running = 0, t_pf = 0, meta_gen = 0, t_join = 0, t_reps = 0;
	struct precopy_job pre = { 0 };
	struct snap_job snap = { 0 };
	size_t n = 0;
	int r, status;

	body = http_json_args(req, resp, keys);
	if (!body)
		return;
	if (mig_parse_node_id(body, "to", true, &tid, resp) < 0)
		goto out;
	if (json_object_get(body, "prefetch")) {
		if (!json_is_boolean(json_object_get(body, "prefetch"))) {
			http_resp_error(resp, 400, "bad_request", "\"prefetch\" must be true or false");
			goto out;
		}
		prefetch = json_is_true(json_object_get(body, "prefetch"));
	}
	if (mig_get_node(o, tid, "compute", &dst, resp) < 0 || slots_get_slot(o, name, &s, resp) < 0)
		goto out;
	if (strcmp(s.state, "running") == 0 && compute_checks(o, &s, &dst, resp) < 0)
		goto out;
	if (slots_begin_op(o, name, states, "migrating", &s, resp) < 0)
		goto out;
	/* Its boot files and seed, regions and disks go along: after begin_op, no attach races. */
	from = s.compute;
	if (mig_along_begin(o, &s, &dst, &al, resp) < 0) {
		mig_finish(o, &s, "running");
		goto out;
	}
	along = true;
	r = st->ops->node_get(st, s.compute, &src);
	if (r == 0)
		r = st->ops->section_list(st, s.id, 0, &secs, &n);
	if (r < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		mig_finish(o, &s, "running");
		goto out;
	}
	op = json_pack("{s:s, s:I, s:I}", "kind", "compute", "from", (json_int_t)src.id, "to",
		       (json_int_t)dst.id);
	mig_set_op(o, &s, op);
	json_decref(op);
	slots_event(o, "migration_started", src.id, s.name,
		    "slot %s: moving from compute node %s to %s", s.name, src.name, dst.name);

	/* 0. Local memory goes to memory nodes first. */
	if (evacuate_local(o, &s, &src, secs, n, resp) < 0) {
		mig_finish(o, &s, "running");
		goto out;
	}
	op = json_pack("{s:s, s:I, s:I}", "kind", "compute", "from", (json_int_t)src.id, "to",
		       (json_int_t)dst.id);
	mig_set_op(o, &s, op);
	json_decref(op);

	/* 1. The destination waits for the VM. */
	/*
	 * Where the source's DIMMs are (best effort: without it, plugged in
	 * order). Only hot-plugged sections need it: no request otherwise.
	 */
	for (size_t i = 0; i < n; i++)
		hot |= secs[i].hot_index >= 0;
	snprintf(path, sizeof(path), "/v1/vms/%s", s.name);
	if (hot && mig_call(&src, "GET", path, NULL, MIG_SHORT_TIMEOUT_MS, &ans) != 200) {
		json_decref(ans);
		ans = NULL;
	}
	/* The destination's grants are of the next epoch (fence.c). */
	if (fence_advance(o, secs, n) == 0)
		vmb = incoming_body(o, &s, secs, n, &dst, json_object_get(ans, "hot_sections"));
	json_decref(ans);
	ans = NULL;
	mig_along_body(vmb, &al);
	if (!vmb) {
		http_resp_error(resp, 500, "internal", "cannot build the destination's request");
		mig_finish(o, &s, "running");
		goto out;
	}
	/*
	 * 1b. A sealed slot's page-metadata snapshot, taken at the source
	 * (the guest runs there) while the destination starts its QEMU.
	 */
	snap = (struct snap_job){ .src = &src, .name = s.name, .r = -ENODATA };
	if (s.page_key[0] && pthread_create(&snap.thread, NULL, snap_run, &snap) == 0)
		snap.started = true;
	else if (s.page_key[0])
		snap_run(&snap);
	status = mig_call(&dst, "POST", "/v1/vms", vmb, o->compute_timeout_ms, &ans);
	(void)snap_join(&snap);
	memcpy(dst_net, s.net, sizeof(dst_net));
	slotnet_record(&s, json_object_get(ans, "net"), &dst, dst_net, sizeof(dst_net));
	uri = json_string_value(json_object_get(ans, "migration_uri"));
	if ((status == 200 || status == 201) && uri &&
	    miguri_target(uri, dst.http, target, sizeof(target)) < 0) {
		/* Never let a destination name where the source sends the VM. */
		snprintf(why, sizeof(why), "it answered the migration URI \"%.100s\", not "
			 "tcp:PORT on its registered host", uri);
		mig_vm_delete(&dst, s.name);
		mig_finish(o, &s, "running");
		http_resp_error(resp, 502, "migration_failed",
				"slot %s: compute node %s: %s; the VM keeps running on %s", s.name,
				dst.name, why, src.name);
		goto out;
	}
	uri = uri ? target : NULL;
	if ((status != 200 && status != 201) || !uri) {
		mig_why(status, ans, why, sizeof(why));
		mig_vm_delete(&dst, s.name);
		mig_finish(o, &s, "running");
		slots_event(o, "migration_failed", dst.id, s.name,
			    "slot %s: compute node %s could not receive it (%s); it runs on %s",
			    s.name, dst.name, why, src.name);
		http_resp_error(resp, status == 409 ? 409 : 503,
				status == 409 ? "conflict" : "migration_failed",
				"slot %s: compute node %s could not prepare to receive the VM (%s); "
				"the VM keeps running on %s",
				s.name, dst.name, why, src.name);
		goto out;
	}
	t_ready = mig_now_ms();
	slots_event(o, "migration_destination_ready", dst.id, s.name,
		    "slot %s: compute node %s listens on %s", s.name, dst.name, uri);

	/*
	 * A sealed slot's page metadata, most of it while the guest still runs
	 * here: the snapshot (taken above; failing, the migration has not
	 * begun: it ends here), its records while the source migrates.
	 */
	if (s.page_key[0] && snap.r < 0) {
		mig_vm_delete(&dst, s.name);
		mig_finish(o, &s, "running");
		slots_event(o, "migration_failed", dst.id, s.name,
			    "slot %s: its page metadata did not reach compute node %s (%s); it "
			    "runs on %s", s.name, dst.name, snap.why, src.name);
		http_resp_error(resp, 503, "migration_failed",
				"slot %s: its page metadata did not reach compute node %s (%s); "
				"the VM keeps running on %s", s.name, dst.name, snap.why, src.name);
		goto out;
	}
	meta_gen = s.page_key[0] ? snap.gen : 0;
	pre = (struct precopy_job){ .src = &src, .dst = &dst, .name = s.name };
	if (meta_gen && pthread_create(&pre.thread, NULL, precopy_run, &pre) == 0)
		pre.started = true;
	else
		meta_gen = 0;   /* no thread: every record after the switchover */
	t_pre = mig_now_ms();

	/* 2. The source migrates (pre-copy flush, x-ignore-shared, switchover). */
	snprintf(path, sizeof(path), "/v1/vms/%s/migrate", s.name);
	json_decref(vmb);
	vmb = json_pack("{s:s, s:i}", "uri", uri, "timeout_ms", o->compute_timeout_ms);
	status = mig_call(&src, "POST", path, vmb, o->compute_timeout_ms + 30000, &mig);
	t_src = mig_now_ms();
	if (pre.started && precopy_join(&pre) < 0)
		meta_gen = 0;
	t_join = mig_now_ms();
	if (status != 200) {
		struct mig_seen ss;

		/* Where is the VM? The source says, once it no longer migrates. */
		switch (source_outcome(&src, &dst, s.name, &ss)) {
		case MIG_OWNER_DEST:
			log_warn("slot %s: the source answered %d but says the VM migrated",
				 s.name, status);
			break;
		case MIG_OWNER_SOURCE: {
			char what[700];

			mig_why(status, mig, why, sizeof(why));
			mig_vm_delete(&dst, s.name);
			snprintf(what, sizeof(what), "migration to %s failed (%s)", dst.name, why);
			mig_finish_on_source(o, &s, what, src.name, &ss);
			slots_event(o, "migration_failed", src.id, s.name,
				    "slot %s: migration to %s failed (%s); it is %s on %s", s.name,
				    dst.name, why, ss.state[0] ? ss.state : "unknown", src.name);
			http_resp_error(resp, status == 409 ? 409 : 503,
					status == 409 ? strcmp(mig_code(mig),
							       "migration_refused") == 0
								? "migration_refused"
								: "conflict"
						      : "migration_failed",
					"slot %s: migration to compute node %s failed (%s); %s %s",
					s.name, dst.name, why,
					strcmp(ss.state, "running") == 0
						? "the VM keeps running on"
						: "the VM does not run on either; it stays on",
					src.name);
			goto out;
		}
		default:
			mig_why(status, mig, why, sizeof(why));
			mig_unresolved(o, &s,
				       "the migration to %s got %s and compute node %s cannot tell "
				       "yet where the VM runs: both VMs are kept",
				       dst.name, why, src.name);
			http_resp_error(resp, 503, "migration_unresolved", "slot %s: %s", s.name,
					s.reason);
			goto out;
		}
	}

	moved = true;   /* the source handed it over: its regions' holders go with it */

	/* 3a. The replicas the source took out while it moved (replicas_handover.c). */
	t_reps = t_join;
	if (s.replicas > 1 && o->replicas) {
		if (o->replicas->after_move(o, &s, &src, &dst, json_object_get(mig, "replicas_out"),
					    resp) < 0)
			goto out;
		t_reps = mig_now_ms();
	}

	/* 3b. A sealed slot's page metadata; 3c. the source is done for good: fence it (fence.c). */
	if (s.page_key[0] && mig_meta_hand_over(&src, &dst, s.name, meta_gen, why, 120) < 0) {
		snprintf(s.reason, sizeof(s.reason),
			 "moved, but its page metadata did not reach %.40s (%.120s)", dst.name, why);
		fence_slot(o, &s);
		s.compute = dst.id;
		mig_finish(o, &s, "failed");
		slots_event(o, "migration_failed", dst.id, s.name, "slot %s: %s", s.name, s.reason);
		http_resp_error(resp, 503, "migration_failed", "slot %s: %s", s.name, s.reason);
		goto out;
	}
	t_meta = mig_now_ms();
	fence_slot(o, &s);
	t_moved = mig_now_ms();
	r = mig_wait_running(&dst, s.name);
	if (r < 0) {
		snprintf(s.reason, sizeof(s.reason),
			 "migrated from %s to %s but the destination did not start it: %s",
			 src.name, dst.name, strerror(-r));
		s.compute = dst.id;
		mig_finish(o, &s, "failed");
		slots_event(o, "migration_failed", dst.id, s.name, "slot %s: %s", s.name,
			    s.reason);
		http_resp_error(resp, 503, "migration_failed", "slot %s: %s", s.name, s.reason);
		goto out;
	}

	/* 4. The slot moves, then the source forgets its record. */
	t_running = mig_now_ms();
	if (prefetch)
		prefetch_hot(&dst, s.name, mig);
	t_pf = mig_now_ms();
	json_object_del(mig, "hot");
	s.compute = dst.id;
	memcpy(s.net, dst_net, sizeof(s.net));   /* the destination's ssh forward */
	s.op[0] = '\0';
	snprintf(s.state, sizeof(s.state), "running");
	r = st->ops->begin(st);
	if (r == 0) {
		r = st->ops->slot_update(st, &s);
		if (r == 0)
			r = slots_event(o, "migration_completed", dst.id, s.name,
					"slot %s moved from compute node %s to %s in %" PRIu64
					" ms (downtime %" PRId64 " ms)",
					s.name, src.name, dst.name, mig_now_ms() - t0,
					mig_jint(mig, "downtime_ms", -1));
		if (r == 0)
			r = st->ops->commit(st);
		else
			st->ops->rollback(st);
	}
	if (r < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
		goto out;
	}
	mig_vm_delete(&src, s.name);
	log_info("slot %s moved from %s to %s", s.name, src.name, dst.name);
	http_resp_json(resp, 200,
		       json_pack("{s:o, s:I, s:I, s:I, s:O, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
				 "slot",
				 slots_json(o, &s, true), "from", (json_int_t)src.id, "to",
				 (json_int_t)dst.id, "total_ms", (json_int_t)(mig_now_ms() - t0),
				 "migration", mig ? mig : json_null(), "phases_ms",
				 "prepare_destination", (json_int_t)(t_ready - t0),
				 "page_meta_precopy", (json_int_t)(t_pre - t_ready + t_join - t_src),
				 "migrate", (json_int_t)(t_src - t_pre), "replicas",
				 (json_int_t)(t_reps - t_join), "page_meta",
				 (json_int_t)(t_meta - t_reps),
				 "fence", (json_int_t)(t_moved - t_meta),
				 "wait_running",
				 (json_int_t)(t_running - t_moved), "prefetch",
				 (json_int_t)(t_pf - t_running), "finish",
				 (json_int_t)(mig_now_ms() - t_pf)));
out:
	if (along)
		mig_along_end(o, &s, moved, from, dst.id, &al);
	json_decref(mig);
	json_decref(ans);
	json_decref(vmb);
	json_decref(body);
}
