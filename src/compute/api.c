// SPDX-License-Identifier: MIT
/*
 * The compute agent's HTTP control API (documented in docs/compute.md).
 *
 *   GET    /healthz                      {"status":"ok", ...}
 *   GET    /metrics                      Prometheus text (pager counters per VM)
 *   GET    /v1/vms                       list
 *   POST   /v1/vms                       create and start a VM with its section map
 *   GET    /v1/vms/NAME                  status
 *   DELETE /v1/vms/NAME                  stop and destroy
 *   POST   /v1/vms/NAME/stop             stop (keeps the record until DELETE)
 *   POST   /v1/vms/NAME/sections         hot-add one section
 *   DELETE /v1/vms/NAME/sections/INDEX   hot-remove one section
 *   POST   /v1/vms/NAME/sections/migrate {"phase", "from", "to"}: move a section (vm_memmig.c)
 *   POST   /v1/vms/NAME/sections/replica {"action": "drop"|"hand-over"}: replicas out (vm_replica.c)
 *   PUT    /v1/vms/NAME/budget           {"bytes": N}: local cache budget
 *   POST   /v1/vms/NAME/flush            write back every dirty page
 *   GET    /v1/vms/NAME/console          the serial console log (text)
 *   GET    /v1/vms/NAME/console/output   its bytes from an offset; POST .../input: type (vm_console.c)
 *   POST   /v1/vms/NAME/guest            {"command": "..."}: disagg-guest line protocol
 *   POST   /v1/vms/NAME/migrate          compute migration to {"uri": "tcp:HOST:PORT"}
 *   GET    /v1/vms/NAME/regions          its shared regions with their BARs (vm_shared_mig.c)
 *   POST|DELETE /v1/vms/NAME/regions[/ID[/op]]  attach, detach, lock moves (vm_shared.c)
 *   GET    /v1/vms/NAME/heartbeats       the guest's HB lines seen on this node
 *   POST   /v1/vms/NAME/grants           {"grants": [HEX...]}: renewed grants (vm_grants.c)
 *   GET|POST /v1/vms/NAME/page-meta      a sealed VM's page metadata (compute migration, vm_pagemeta.c)
 *   POST /v1/vms/NAME/page-meta/precopy  its pre-copy while the guest runs
 *
 * With --node-credential, the orchestrator alone may call any path but
 * /healthz (apiauth_node_authorize(), docs/api.md#authentication).
 * Bodies are JSON; unknown fields are rejected (400). Errors are
 * {"error":{"code":..., "message":...}} with 400, 404, 409, 500 or 503.
 */
#include "agent.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "grant.h"
#include "guest.h"
#include "jsonhttp.h"
#include "log.h"
#include "metrics.h"
#include "miguri.h"
#include "net.h"
#include "launch.h"
#include "sections.h"
#include "state.h"
#include "vm_console.h"
#include "vm_boot.h"
#include "vm_boot_mig.h"
#include "vm_disk.h"
#include "vm_disk_mig.h"
#include "vm_evacuate.h"
#include "vm_grants.h"
#include "vm_shared.h"
#include "vm_shared_memmig.h"
#include "vm_shared_mig.h"
#include "vm_hot.h"
#include "vm_incoming.h"
#include "vm_memmig.h"
#include "vm_migrate.h"
#include "vm_outgoing.h"
#include "vm_pagemeta.h"
#include "vm_prefetch.h"
#include "vm_replica.h"
#include "vmnet.h"

#define OP_TIMEOUT_MS 60000

/* ---- helpers ------------------------------------------------------------- */


/* Find a VM by the name that follows `prefix` in the path; *rest gets the tail. */
static struct vm *find_vm(struct agent *a, const char *path, const char **ret_rest)
{
	const char *name = path + strlen("/v1/vms/");
	size_t n = strcspn(name, "/");

	*ret_rest = name + n;
	for (unsigned i = 0; i < AGENT_MAX_VMS; i++)
		if (a->vms[i] && strlen(vm_name(a->vms[i])) == n &&
		    strncmp(vm_name(a->vms[i]), name, n) == 0)
			return a->vms[i];
	return NULL;
}

static int errno_http(int r)
{
	switch (-r) {
	case EINVAL:
	case ERANGE:
	case E2BIG:
		return 400;
	case ENOENT:
	case ESRCH:
		return 404;
	case EEXIST:
	case EBUSY:
	case ENOSPC:
	case ECANCELED:
		return 409;
	case ETIMEDOUT:
	case EPIPE:
	case ECONNREFUSED:
	case EHOSTUNREACH:
		return 503;
	default:
		return 500;
	}
}

/* ---- handlers ------------------------------------------------------------ */

static void h_health(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct agent *a = opaque;
	unsigned n = agent_vm_count(a);

	http_resp_json(resp, 200,
		   json_pack("{s:s, s:I, s:s, s:i, s:I}", "status", "ok", "node_id",
			     (json_int_t)a->env.node_id, "accel", a->env.accel, "vms", n,
			     "uptime_s", (json_int_t)((now_ns() - a->started_ns) / 1000000000ull)));
}

static void h_metrics(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct agent *a = opaque;
	struct strbuf sb;
	unsigned n = 0;

	if (!apiauth_node_authorize(&a->auth, req, resp))
		return;
	strbuf_init(&sb);
	pthread_mutex_lock(&a->lock);
	for (unsigned i = 0; i < AGENT_MAX_VMS; i++)
		if (a->vms[i]) {
			n++;
			vm_render_metrics(a->vms[i], &sb);
		}
	pthread_mutex_unlock(&a->lock);
	metrics_gauge(&sb, "disagg_compute_vms", "VMs on this compute node", "", n);
	apiauth_metrics(&sb, "compute");
	http_resp_text(resp, 200, "text/plain; version=0.0.4", strbuf_steal(&sb));
}

static void h_list(struct agent *a, struct http_resp *resp)
{
	json_t *arr = json_array();

	pthread_mutex_lock(&a->lock);
	for (unsigned i = 0; i < AGENT_MAX_VMS; i++)
		if (a->vms[i])
			json_array_append_new(arr, vm_status(a->vms[i]));
	pthread_mutex_unlock(&a->lock);
	http_resp_json(resp, 200, json_pack("{s:o}", "vms", arr));
}

/* "incoming": {"listen": "HOST:PORT", "replicas_pending"} and "hot_sections": [{"index": N, section...}]. */
static int parse_incoming(json_t *j, const char **ret_listen, struct vm_hot_in **ret_hot,
			  unsigned *ret_n, char *err, size_t errlen)
{
	static const char *const keys[] = { "listen", "replicas_pending", NULL };
	json_t *in = json_object_get(j, "incoming"), *hs = json_object_get(j, "hot_sections"), *v;
	json_t *rp = json_object_get(in, "replicas_pending");
	const char *bad = NULL;
	size_t i;

	if (!json_is_object(in) || json_check_keys(in, keys, &bad) < 0 ||
	    !json_is_string(json_object_get(in, "listen")) || (rp && !json_is_boolean(rp))) {
		snprintf(err, errlen, "\"incoming\" must be {\"listen\": \"HOST:PORT\"} (and "
			 "\"replicas_pending\": true|false)");
		return -EINVAL;
	}
	*ret_listen = json_string_value(json_object_get(in, "listen"));
	if (!hs)
		return 0;
	if (!json_is_array(hs) || json_array_size(hs) > VM_MAX_SECTIONS) {
		snprintf(err, errlen, "\"hot_sections\" must be an array");
		return -EINVAL;
	}
	*ret_hot = calloc(json_array_size(hs) + 1, sizeof(**ret_hot));
	if (!*ret_hot)
		return -ENOMEM;
	json_array_foreach(hs, i, v) {
		json_t *idx = json_object_get(v, "index"), *copy;
		char why[400];
		int r;

		if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
		    json_integer_value(idx) >= VM_MAX_SECTIONS) {
			snprintf(err, errlen, "hot section %zu: \"index\" must be 0..%d", i,
				 VM_MAX_SECTIONS - 1);
			return -EINVAL;
		}
		(*ret_hot)[i].slot = -1;
		if (json_object_get(v, "gpa") || json_object_get(v, "slot")) {
			json_t *g = json_object_get(v, "gpa"), *sl = json_object_get(v, "slot");

			if (!json_is_integer(g) || json_integer_value(g) <= 0 ||
			    !json_is_integer(sl) || json_integer_value(sl) < 0 ||
			    json_integer_value(sl) >= 256) {
				snprintf(err, errlen, "hot section %zu: \"gpa\" (an address) and "
					 "\"slot\" (0..255) go together", i);
				return -EINVAL;
			}
			(*ret_hot)[i].gpa = (uint64_t)json_integer_value(g);
			(*ret_hot)[i].slot = (int)json_integer_value(sl);
		}
		copy = json_copy(v);
		json_object_del(copy, "index");
		json_object_del(copy, "gpa");
		json_object_del(copy, "slot");
		json_object_del(copy, "plugged"); /* as GET on the source shows it */
		r = vm_parse_section(copy, &(*ret_hot)[i].sec, why, sizeof(why));
		json_decref(copy);
		if (r < 0) {
			snprintf(err, errlen, "hot section %zu: %s", i, why);
			return r;
		}
		(*ret_hot)[i].index = (unsigned)json_integer_value(idx);
	}
	*ret_n = (unsigned)json_array_size(hs);
	return 0;
}

static void h_create(struct agent *a, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "name", "vcpus", "sections", "cache_bytes",
					    "hotplug", "max_sections", "append", "incoming",
					    "hot_sections", "regions", "disks", "encryption_key", "net",
					    "boot", "cloud_init", "seed", NULL };
	_cleanup_free_ struct vm_hot_in *hot = NULL;
	unsigned nhot = 0;
	const char *listen = NULL;
	_cleanup_free_ struct vm_section *secs = NULL;
	struct vm_spec spec = { .vcpus = 1, .budget = UINT64_MAX, .max_hot = 8 };
	const char *name, *hp, *append;
	char err[512] = "";
	json_t *j, *jsecs, *v;
	struct vm *vm = NULL;
	int slot = -1, r;
	bool owned;
	size_t i;

	j = http_json_args(req, resp, keys);
	if (!j)
		return;
	name = json_string_value(json_object_get(j, "name"));
	if (!name || strlen(name) >= sizeof(spec.name)) {
		http_resp_error(resp, 400, "bad_request", "\"name\" is required (a short string)");
		goto out;
	}
	strcpy(spec.name, name);
	if ((v = json_object_get(j, "vcpus"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 64) {
			http_resp_error(resp, 400, "bad_request", "\"vcpus\" must be 1..64");
			goto out;
		}
		spec.vcpus = (unsigned)json_integer_value(v);
	}
	if ((v = json_object_get(j, "cache_bytes"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			http_resp_error(resp, 400, "bad_request", "\"cache_bytes\" must be >= 0");
			goto out;
		}
		spec.budget = (uint64_t)json_integer_value(v);
	}
	if ((v = json_object_get(j, "max_sections"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > VM_MAX_SECTIONS) {
			http_resp_error(resp, 400, "bad_request", "\"max_sections\" must be 0..%d",
					VM_MAX_SECTIONS);
			goto out;
		}
		spec.max_hot = (unsigned)json_integer_value(v);
	}
	hp = json_string_value(json_object_get(j, "hotplug"));
	if (hp && strcmp(hp, "dimm") == 0)
		spec.hotplug = VM_HOTPLUG_DIMM;
	else if (hp && strcmp(hp, "virtio-mem") == 0)
		spec.hotplug = VM_HOTPLUG_VIRTIO_MEM;
	else if (hp || json_object_get(j, "hotplug")) {
		http_resp_error(resp, 400, "bad_request", "\"hotplug\" must be \"dimm\" or \"virtio-mem\"");
		goto out;
	}
	if ((v = json_object_get(j, "encryption_key")) && vm_pagemeta_key(v, &spec, resp) < 0)
		goto out;
	r = vmnet_parse(json_object_get(j, "net"), spec.name, &spec.net, err, sizeof(err));
	if (r < 0) {
		http_resp_error(resp, 400, r == -ENODEV ? "no_bridge" : "bad_request", "%s", err);
		goto out;
	}
	append = json_string_value(json_object_get(j, "append"));
	if (append && strlen(append) >= sizeof(spec.append)) {
		http_resp_error(resp, 400, "bad_request", "\"append\" is too long");
		goto out;
	}
	if (append)
		strcpy(spec.append, append);
	jsecs = json_object_get(j, "sections");
	if (!json_is_array(jsecs) || json_array_size(jsecs) == 0 ||
	    json_array_size(jsecs) > VM_MAX_SECTIONS) {
		http_resp_error(resp, 400, "bad_request",
				"\"sections\" must be a non-empty array (the boot RAM, one entry per %llu MiB section)",
				(unsigned long long)(a->env.section_size >> 20));
		goto out;
	}
	secs = calloc(json_array_size(jsecs), sizeof(*secs));
	if (!secs) {
		http_resp_error(resp, 500, "internal", "out of memory");
		goto out;
	}
	json_array_foreach(jsecs, i, v) {
		if (vm_parse_section(v, &secs[i], err, sizeof(err)) < 0) {
			http_resp_error(resp, 400, "bad_section", "section %zu: %s", i, err);
			goto out;
		}
	}
	spec.nbase = (unsigned)json_array_size(jsecs);
	spec.base = secs;
	if (json_object_get(j, "incoming") &&
	    parse_incoming(j, &listen, &hot, &nhot, err, sizeof(err)) < 0) {
		http_resp_error(resp, 400, "bad_request", "%s", err);
		goto out;
	}
	if (!listen && (json_object_get(j, "hot_sections") || json_object_get(j, "regions"))) {
		http_resp_error(resp, 400, "bad_request", "\"hot_sections\" and \"regions\" are "
				"for an incoming VM (with \"incoming\")");
		goto out;
	}
	spec.incoming = listen != NULL;
	spec.replicas_pending = listen && json_is_true(json_object_get(json_object_get(j, "incoming"),
								       "replicas_pending"));
	if (vm_boot_cloud_init_check(json_object_get(j, "cloud_init"), err, sizeof(err)) < 0) {
		http_resp_error(resp, 400, "bad_request", "%s", err);
		goto out;
	}
	{
		struct vm_boot_fetch bf = { .run_root = a->env.run_root, .cafile = a->orch_ca,
					    .bearer = a->auth.on ? a->auth.bearer : NULL };

		r = vm_boot_parse(&bf, json_object_get(j, "boot"), &spec, err, sizeof(err));
		if (r < 0) {
			http_resp_error(resp, r == -EINVAL ? 400 : 502,
					r == -EINVAL ? "bad_request" : "boot_unavailable", "%s", err);
			goto out;
		}
	}

	pthread_mutex_lock(&a->lock);
	for (unsigned k = 0; k < AGENT_MAX_VMS; k++) {
		if (a->vms[k] && strcmp(vm_name(a->vms[k]), spec.name) == 0) {
			pthread_mutex_unlock(&a->lock);
			http_resp_error(resp, 409, "exists", "VM \"%s\" already exists", spec.name);
			goto out;
		}
		if (!a->vms[k] && slot < 0)
			slot = (int)k;
	}
	if (slot < 0) {
		pthread_mutex_unlock(&a->lock);
		http_resp_error(resp, 409, "capacity", "this node runs %d VMs already", AGENT_MAX_VMS);
		goto out;
	}
	r = vm_new(&a->env, &spec, &vm);
	if (r == -ENAMETOOLONG) {
		pthread_mutex_unlock(&a->lock);
		http_resp_error(resp, 400, "bad_request",
				"cannot create VM \"%s\": the paths of its sockets under the run directory %s would be longer than a UNIX socket address allows; this agent takes VM names of up to %zu characters",
				spec.name, a->env.run_root, vm_name_room(a->env.run_root));
		goto out;
	}
	if (r < 0) {
		pthread_mutex_unlock(&a->lock);
		http_resp_error(resp, errno_http(r), "create_failed", "cannot create VM \"%s\": %s",
				spec.name, strerror(-r));
		goto out;
	}
	a->vms[slot] = vm;
	vm_ref(vm);   /* ours, for this request: a DELETE may drop the table's meanwhile */
	pthread_mutex_unlock(&a->lock);

	if (spec.incoming) {
		/* Its seed at the source's slot, before its disks (vm_boot_mig.c). */
		r = vm_boot_mig_prepare(vm, j, err, sizeof(err));
		if (r == 0)
			r = vm_incoming_start(vm, listen, hot, nhot, json_object_get(j, "regions"),
					      json_object_get(j, "disks"), err, sizeof(err));
	} else {
		r = vm_disk_prepare(vm, json_object_get(j, "disks"), false, err, sizeof(err));
		if (r == 0)
			r = vm_boot_mig_prepare(vm, j, err, sizeof(err));
		if (r == 0)
			r = vm_start(vm, err, sizeof(err));
	}
	if (r < 0) {
		log_warn("vm %s: start failed: %s", spec.name, err);
		http_resp_error(resp, errno_http(r) == 500 ? 500 : errno_http(r), "start_failed",
				"VM \"%s\" failed to start: %s", spec.name, err);
		pthread_mutex_lock(&a->lock);
		owned = a->vms[slot] == vm;   /* not if a DELETE took it out already */
		if (owned)
			a->vms[slot] = NULL;
		pthread_mutex_unlock(&a->lock);
		if (owned)
			vm_unref(vm);
		goto out;
	}
	http_resp_json(resp, 201, vm_status(vm));
out:
	vm_unref(vm);
	explicit_bzero(spec.key, sizeof(spec.key));
	json_decref(j);
}

struct free_later {
	struct agent *a;
	struct vm *vm;
};

static void *free_later_main(void *arg)
{
	struct free_later *fl = arg;
	struct agent *a = fl->a;

	vm_lower_priority(0);   /* a migrated-away record: the guest runs elsewhere */
	vm_unref(fl->vm);
	free(fl);
	/*
	 * Freeing the VM closed its fabric connections (a disk's TLS session):
	 * this thread's OpenSSL state goes now, before agent_shutdown hears
	 * that it is done, or a process that exits meanwhile leaves it behind.
	 */
	OPENSSL_thread_stop();
	pthread_mutex_lock(&a->lock);
	a->bg_frees--;
	pthread_cond_broadcast(&a->bg_cond);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* Hand the table's reference of vm to a background thread. */
static int agent_free_later(struct agent *a, struct vm *vm)
{
	struct free_later *fl = malloc(sizeof(*fl));
	pthread_attr_t attr;
	pthread_t t;
	int r;

	if (!fl)
		return -ENOMEM;
	*fl = (struct free_later){ .a = a, .vm = vm };
	pthread_mutex_lock(&a->lock);
	a->bg_frees++;
	pthread_mutex_unlock(&a->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&t, &attr, free_later_main, fl);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		free(fl);
		pthread_mutex_lock(&a->lock);
		a->bg_frees--;
		pthread_mutex_unlock(&a->lock);
	}
	return r;
}

static void h_destroy(struct agent *a, struct vm *vm, struct http_resp *resp)
{
	bool found = false;

	pthread_mutex_lock(&a->lock);
	for (unsigned i = 0; i < AGENT_MAX_VMS; i++)
		if (a->vms[i] == vm) {
			a->vms[i] = NULL;
			found = true;
		}
	pthread_mutex_unlock(&a->lock);
	if (!found) {
		http_resp_error(resp, 404, "not_found", "no such VM");
		return;
	}
	resp->status = 204;
	/*
	 * Its kept memory-node connections go now, on this thread: not on the
	 * short-lived thread that may free the VM below.
	 */
	vm_close_checks(vm);
	/*
	 * A VM that migrated away is only a record here: its QEMU is already
	 * quitting and its sections belong to the destination. Freeing it
	 * (waiting for QEMU, dropping a guest's worth of tmpfs pages) takes
	 * hundreds of ms, so it happens in the background instead of on the
	 * migration's critical path. Every other VM is stopped before the
	 * answer, because the caller frees its sections next.
	 */
	if (vm_get_state(vm) == VM_MIGRATED && agent_free_later(a, vm) == 0)
		return;
	vm_stop(vm, 10000);
	vm_unref(vm); /* the table's reference; ours goes at the end of the request */
}

static void h_add_section(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "section", NULL };
	struct vm_section s;
	char err[512] = "";
	unsigned idx;
	json_t *j;
	int r;

	j = http_json_args(req, resp, keys);
	if (!j)
		return;
	if (vm_parse_section(json_object_get(j, "section"), &s, err, sizeof(err)) < 0) {
		http_resp_error(resp, 400, "bad_section", "%s", err);
	} else {
		uint64_t t0 = now_ns();

		r = vm_add_section(vm, &s, OP_TIMEOUT_MS, &idx, err, sizeof(err));
		if (r < 0)
			http_resp_error(resp, errno_http(r), "hotplug_failed", "%s", err);
		else
			http_resp_json(resp, 200,
				   json_pack("{s:i, s:I, s:o}", "index", idx, "ms",
					     (json_int_t)((now_ns() - t0) / 1000000), "vm",
					     vm_status(vm)));
	}
	json_decref(j);
}

static void h_remove_section(struct vm *vm, const char *idxs, struct http_resp *resp)
{
	char err[512] = "", *end;
	unsigned long idx = strtoul(idxs, &end, 10);
	uint64_t t0 = now_ns();
	int r;

	if (!*idxs || *end || idx >= VM_MAX_SECTIONS) {
		http_resp_error(resp, 400, "bad_request", "bad section index \"%s\"", idxs);
		return;
	}
	r = vm_remove_section(vm, (unsigned)idx, OP_TIMEOUT_MS, err, sizeof(err));
	if (r < 0)
		http_resp_error(resp, errno_http(r), "hotplug_failed", "%s", err);
	else
		http_resp_json(resp, 200, json_pack("{s:I, s:o}", "ms",
						(json_int_t)((now_ns() - t0) / 1000000), "vm",
						vm_status(vm)));
}

static void h_budget(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "bytes", NULL };
	json_t *j = http_json_args(req, resp, keys), *v;
	int r;

	if (!j)
		return;
	v = json_object_get(j, "bytes");
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		http_resp_error(resp, 400, "bad_request", "\"bytes\" must be an integer >= 0");
	else if ((r = vm_set_budget(vm, (uint64_t)json_integer_value(v))) < 0)
		http_resp_error(resp, errno_http(r), "budget_failed", "%s", strerror(-r));
	else
		http_resp_json(resp, 200, vm_status(vm));
	json_decref(j);
}

static void h_guest(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "command", "timeout_ms", NULL };
	const char *cmd;
	char line[4096];
	json_t *j = http_json_args(req, resp, keys), *v;
	int timeout = 60000, r;

	if (!j)
		return;
	cmd = json_string_value(json_object_get(j, "command"));
	v = json_object_get(j, "timeout_ms");
	if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < 3600000)
		timeout = (int)json_integer_value(v);
	if (!cmd || !*cmd || strchr(cmd, '\n') || strlen(cmd) > 1000) {
		http_resp_error(resp, 400, "bad_request", "\"command\" must be one line");
	} else {
		r = vm_guest_cmd(vm, cmd, timeout, line, sizeof(line));
		if (r < 0 && r != -EIO)
			http_resp_error(resp, r == -ENOTSUP ? 409 : errno_http(r), "guest_failed",
					"guest channel: %s", r == -ENOTSUP ? line : strerror(-r));
		else
			http_resp_json(resp, 200, json_pack("{s:b, s:s}", "ok", r == 0, "reply", line));
	}
	json_decref(j);
}

static void h_migrate(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "uri", "max_flush_rounds", "dirty_threshold_pages",
					    "hold_at_switchover_ms", "timeout_ms", NULL };
	struct vm_migrate_opts o = { 0 };
	int64_t rounds = 10, dirty = 256, hold = 0, timeout = 120000;
	const char *uri;
	json_t *j = http_json_args(req, resp, keys), *res = NULL;
	char err[1024] = "";
	int r;

	if (!j)
		return;
	uri = json_string_value(json_object_get(j, "uri"));
	if (!uri || strlen(uri) >= sizeof(o.uri) || !miguri_valid(uri)) {
		http_resp_error(resp, 400, "bad_request", "\"uri\" (tcp:HOST:PORT: a name, IPv4 or "
				"[IPv6] address and a port) is required");
		goto out;
	}
	strcpy(o.uri, uri);
	if (!http_json_int(j, "max_flush_rounds", 0, 1000, &rounds, resp) ||
	    !http_json_int(j, "dirty_threshold_pages", 0, INT64_MAX, &dirty, resp) ||
	    !http_json_int(j, "hold_at_switchover_ms", 0, 60000, &hold, resp) ||
	    !http_json_int(j, "timeout_ms", 1000, 3600000, &timeout, resp))
		goto out;
	o.max_flush_rounds = (unsigned)rounds;
	o.dirty_threshold_pages = (uint64_t)dirty;
	o.hold_ms = (unsigned)hold;
	o.timeout_ms = (int)timeout;
	r = vm_migrate(vm, &o, &res, err, sizeof(err));
	if (r == -EINVAL)
		http_resp_error(resp, 400, "bad_request", "%s", err);
	else if (r == -EBUSY)
		http_resp_error(resp, 409, "migration_refused", "%s", err);
	else if (r == -EINPROGRESS)   /* QEMU has not decided: the VM is in switchover */
		http_resp_error(resp, 503, "migration_indeterminate", "%s", err);
	else if (r < 0)
		http_resp_error(resp, 503, "migration_failed", "%s", err);
	else
		http_resp_json(resp, 200, res);
out:
	json_decref(j);
}

/*
 * GET /v1/vms/NAME[?wait=STATE[&timeout_ms=N]]: with wait, answer once the
 * VM is in STATE (or stopped, failed or migrated, or after N ms, default
 * 10000, at most 60000), so that a caller waiting for a migration to
 * arrive does not poll.
 */
static void h_get(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	const char *want = http_req_query(req, "wait"), *tmo = http_req_query(req, "timeout_ms");
	enum vm_state st;
	uint64_t ms = 10000;

	if (want && vm_state_parse(want, &st) < 0) {
		http_resp_error(resp, 400, "bad_request", "unknown state \"%s\" in wait", want);
		return;
	}
	if (tmo && (u64_parse(tmo, &ms) < 0 || ms > 60000)) {
		http_resp_error(resp, 400, "bad_request",
				"timeout_ms must be a number of ms up to 60000, not \"%s\"", tmo);
		return;
	}
	if (want)
		(void)vm_wait_state(vm, st, (int)ms);
	http_resp_json(resp, 200, vm_status(vm));
}

/* Everything under /v1/vms. */
static void h_vms(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct agent *a = opaque;
	const char *rest, *m = req->method;
	struct vm *vm;

	if (!apiauth_node_authorize(&a->auth, req, resp))
		return;
	if (strcmp(req->path, "/v1/vms") == 0 || strcmp(req->path, "/v1/vms/") == 0) {
		if (strcmp(m, "GET") == 0)
			h_list(a, resp);
		else if (strcmp(m, "POST") == 0)
			h_create(a, req, resp);
		else
			http_resp_error(resp, 405, "method_not_allowed", "use GET or POST");
		return;
	}
	pthread_mutex_lock(&a->lock);
	vm = find_vm(a, req->path, &rest);
	if (vm)
		vm_ref(vm);
	pthread_mutex_unlock(&a->lock);
	if (!vm) {
		http_resp_error(resp, 404, "not_found", "no such VM");
		return;
	}
	if (!*rest && strcmp(m, "GET") == 0)
		h_get(vm, req, resp);
	else if (!*rest && strcmp(m, "DELETE") == 0)
		h_destroy(a, vm, resp);
	else if (!strcmp(rest, "/stop") && !strcmp(m, "POST")) {
		vm_stop(vm, 10000);
		http_resp_json(resp, 200, vm_status(vm));
	} else if (!strcmp(rest, "/sections") && !strcmp(m, "POST"))
		h_add_section(vm, req, resp);
	else if (!strcmp(rest, "/sections/migrate") && !strcmp(m, "POST"))
		vm_memmig_http(vm, req, resp);
	else if (!strcmp(rest, "/sections/replica") && !strcmp(m, "POST"))
		vm_replica_http(vm, req, resp);
	else if (!strcmp(rest, "/sections/evacuate") && !strcmp(m, "POST"))
		vm_evacuate_http(vm, req, resp);
	else if (!strcmp(rest, "/prefetch") && !strcmp(m, "POST"))
		vm_prefetch_http(vm, req, resp);
	else if (!strcmp(rest, "/grants") && !strcmp(m, "POST"))
		vm_grants_http(vm, req, resp);
	else if (!strcmp(rest, "/regions") && !strcmp(m, "GET"))
		vm_shared_list_http(vm, resp);
	else if (!strncmp(rest, "/regions/", 9) && strlen(rest) > 14 &&
		 !strcmp(rest + strlen(rest) - 5, "/move") && !strcmp(m, "POST"))
		vm_shared_move_http(vm, rest + 9, req, resp);
	else if (!strncmp(rest, "/regions", 8) && (!rest[8] || rest[8] == '/'))
		vm_shared_http(vm, rest + 8, req, resp);
	else if (!strncmp(rest, "/disks", 6) && (!rest[6] || rest[6] == '/'))
		vm_disk_http(vm, rest + 6, req, resp);
	else if (!strcmp(rest, "/boot"))
		vm_boot_mig_http(vm, req, resp);
	else if (!strncmp(rest, "/page-meta", 10) && (!rest[10] || rest[10] == '/'))
		vm_pagemeta_http(vm, rest + 10, req, resp);
	else if (!strncmp(rest, "/sections/", 10) && !strcmp(m, "DELETE"))
		h_remove_section(vm, rest + 10, resp);
	else if (!strcmp(rest, "/budget") && !strcmp(m, "PUT"))
		h_budget(vm, req, resp);
	else if (!strcmp(rest, "/flush") && !strcmp(m, "POST")) {
		int r = vm_flush(vm);

		if (r < 0)
			http_resp_error(resp, errno_http(r), "flush_failed", "%s", strerror(-r));
		else
			http_resp_json(resp, 200, vm_status(vm));
	} else if (!strncmp(rest, "/console", 8) && (!rest[8] || rest[8] == '/'))
		vm_console_http(vm, rest + 8, req, resp);
	else if (!strcmp(rest, "/guest") && !strcmp(m, "POST"))
		h_guest(vm, req, resp);
	else if (!strcmp(rest, "/migrate") && !strcmp(m, "POST"))
		h_migrate(vm, req, resp);
	else if (!strcmp(rest, "/heartbeats") && !strcmp(m, "GET"))
		http_resp_json(resp, 200, vm_heartbeats(vm));
	else
		http_resp_error(resp, 404, "not_found", "no such resource %s %s", m, req->path);
	vm_unref(vm);
}

static const struct http_route routes[] = {
	{ "GET", "/healthz", false, h_health },
	{ "GET", "/metrics", false, h_metrics },
	{ NULL, "/v1/vms", true, h_vms },
};

unsigned agent_vm_count(struct agent *a)
{
	unsigned n = 0;

	pthread_mutex_lock(&a->lock);
	for (unsigned i = 0; i < AGENT_MAX_VMS; i++)
		n += a->vms[i] != NULL;
	pthread_mutex_unlock(&a->lock);
	return n;
}

const struct http_route *agent_http_routes(size_t *ret_n)
{
	*ret_n = ARRAY_SIZE(routes);
	return routes;
}

int agent_http_start(struct agent *a, const char *addr, const char *cert, const char *key)
{
	return http_server_start_tls(addr, routes, ARRAY_SIZE(routes), a, cert, key, &a->http);
}

void agent_shutdown(struct agent *a)
{
	http_server_stop(a->http);
	a->http = NULL;
	pthread_mutex_lock(&a->lock);
	while (a->bg_frees)
		pthread_cond_wait(&a->bg_cond, &a->lock);
	pthread_mutex_unlock(&a->lock);
	for (unsigned i = 0; i < AGENT_MAX_VMS; i++) {
		vm_unref(a->vms[i]);
		a->vms[i] = NULL;
	}
}
