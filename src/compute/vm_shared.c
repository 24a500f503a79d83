// SPDX-License-Identifier: MIT
/*
 * Shared regions of a running VM (a feature above the supervisor, like
 * vm_hot.c): POST /v1/vms/NAME/regions attaches one, DELETE
 * /v1/vms/NAME/regions/ID detaches it, and .../acquire, .../release and
 * .../invalidate move it between writable and read-only in mode
 * exclusive (docs/sharing.md; the orchestrator decides who holds it).
 *
 * Attach: the region's file is made and recorded first, so that when QEMU
 * maps it (object-add) the shim's MAP finds it and the pager serves it as
 * a shared region, read-only unless the VM holds it; then the ivshmem
 * device goes in at PCI slot 0x10 + i. Detach: a holder writes its pages
 * back first; then the device goes out (the guest ejects it), QEMU unmaps
 * the file, the pager forgets the region and the file is removed.
 * Acquire takes write grants, drops the cached pages and lets waiting
 * writes go on; release writes every page back, then takes read grants.
 * All of these run under hot_lock, one at a time per VM.
 */
#include "vm_shared.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dirtag.h"
#include "grant.h"
#include "jsonhttp.h"
#include "log.h"
#include "net.h"
#include "pager_use.h"
#include "pcishm.h"
#include "persist.h"
#include "ramfile.h"
#include "section_check.h"
#include "sections.h"
#include "state.h"
#include "vm_release.h"
#include "vm_strict.h"
#include "vm_internal.h"

#define SHARED_TIMEOUT_MS 30000

/* The index of region `id` in vm->shared, or -1 (lock held). */
int vm_shared_find(struct vm *vm, const char *id, size_t len)
{
	for (int i = 0; i < VM_MAX_SHARED; i++)
		if (vm->shared[i].in_use && strlen(vm->shared[i].id) == len &&
		    strncmp(vm->shared[i].id, id, len) == 0)
			return i;
	return -1;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof(((struct vm_shared *)0)->id))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return false;
	return true;
}

int vm_shared_begin(struct vm *vm, struct pager **ret, struct http_resp *resp)
{
	pthread_mutex_lock(&vm->hot_lock);
	*ret = vm_pager_get(vm);
	if (*ret && vm_get_state(vm) == VM_RUNNING && vm->qmp)
		return 0;
	http_resp_error(resp, 409, "not_running", "VM is %s", vm_state_name(vm_get_state(vm)));
	vm_pager_put(vm, *ret);
	pthread_mutex_unlock(&vm->hot_lock);
	return -EBUSY;
}

void vm_shared_end(struct vm *vm, struct pager *p)
{
	vm_pager_put(vm, p);
	pthread_mutex_unlock(&vm->hot_lock);
}

static json_int_t ms_since(uint64_t t0)
{
	return (json_int_t)((now_ns() - t0) / 1000000);
}

/* ---- attach -------------------------------------------------------------- */

int vm_shared_parse(struct vm *vm, json_t *j, struct vm_shared_req *a, char *err, size_t errlen)
{
	json_t *secs = json_object_get(j, "sections"), *v;
	json_t *size = json_object_get(j, "size");
	size_t i;

	a->id = json_string_value(json_object_get(j, "region"));
	a->mode = json_string_value(json_object_get(j, "mode"));
	a->writable = json_is_true(json_object_get(j, "writable"));
	if (!a->id || !valid_name(a->id)) {
		snprintf(err, errlen, "\"region\" must be a name of 1 to 63 letters, digits, '-', "
			 "'_' or '.'");
		return -EINVAL;
	}
	if (!a->mode || (strcmp(a->mode, "exclusive") && strcmp(a->mode, "strict") &&
			 strcmp(a->mode, "release"))) {
		snprintf(err, errlen, "\"mode\" must be \"exclusive\", \"strict\" or \"release\"");
		return -EINVAL;
	}
	/*
	 * strict: every user may write; the directory decides page by page.
	 * release: every user writes and publishes diffs (vm_release.c).
	 */
	if (strcmp(a->mode, "exclusive"))
		a->writable = true;
	if (!json_is_integer(size) || json_integer_value(size) <= 0) {
		snprintf(err, errlen, "\"size\" must be a positive number of bytes");
		return -EINVAL;
	}
	a->size = (uint64_t)json_integer_value(size);
	if (!pcishm_size_ok(a->size) || a->size % vm->env.section_size ||
	    a->size / vm->env.section_size > VM_SHARED_MAX_SECTIONS) {
		snprintf(err, errlen, "\"size\" must be a power of two, a multiple of the section "
			 "size (%llu) and at most %u sections",
			 (unsigned long long)vm->env.section_size, VM_SHARED_MAX_SECTIONS);
		return -EINVAL;
	}
	a->nsec = (unsigned)(a->size / vm->env.section_size);
	if (!json_is_array(secs) || json_array_size(secs) != a->nsec) {
		snprintf(err, errlen, "\"sections\" must list the region's %u sections", a->nsec);
		return -EINVAL;
	}
	json_array_foreach(secs, i, v) {
		int r = vm_parse_section(v, &a->secs[i], err, errlen);

		if (r < 0)
			return r;
		if (a->secs[i].sec.kind != PAGER_SEC_REMOTE || a->secs[i].free_on_release) {
			snprintf(err, errlen, "a region's sections are remote, and the orchestrator "
				 "frees them (no free_on_release)");
			return -EINVAL;
		}
		if (a->writable && !(a->secs[i].sec.grant.rights & PROTO_R_WRITE)) {
			snprintf(err, errlen, "section %zu: a writable region needs grants with the "
				 "write right", i);
			return -EINVAL;
		}
	}
	return 0;
}

int vm_shared_record(struct vm *vm, const struct vm_shared_req *a, int want, char *err,
		     size_t errlen)
{
	struct vm_shared *s;
	char leaf[80];
	int i, r;

	pthread_mutex_lock(&vm->lock);
	if (vm_shared_find(vm, a->id, strlen(a->id)) >= 0) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "region %s is attached already", a->id);
		return -EEXIST;
	}
	if (want >= VM_MAX_SHARED || (want >= 0 && vm->shared[want].in_use)) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "region slot %d (PCI slot 0x%x) is not free", want,
			 VM_SHARED_PCI_SLOT + (unsigned)want);
		return -ENOSPC;
	}
	for (i = want >= 0 ? want : 0; want < 0 && i < VM_MAX_SHARED && vm->shared[i].in_use; i++)
		;
	if (i == VM_MAX_SHARED) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "all %d region slots of the VM are in use", VM_MAX_SHARED);
		return -ENOSPC;
	}
	s = &vm->shared[i];
	snprintf(leaf, sizeof(leaf), "region-%s", a->id);
	r = vm_make_file(vm, leaf, a->size, s->path, sizeof(s->path));
	if (r < 0) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "cannot create %s: %s", leaf, strerror(-r));
		return r;
	}
	s->in_use = true;
	s->writable = a->writable;
	snprintf(s->id, sizeof(s->id), "%s", a->id);
	snprintf(s->mode, sizeof(s->mode), "%s", a->mode);
	s->size = a->size;
	s->nsec = a->nsec;
	memcpy(s->secs, a->secs, a->nsec * sizeof(a->secs[0]));
	s->addr = 0;
	s->region = -1;
	r = vm_dirtag_take(s);   /* strict: this VM's own place at the directory */
	if (r < 0) {
		unlink(s->path);
		memset(s, 0, sizeof(*s));
		s->region = -1;
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "no directory holder tag left on this agent");
		return -ENOSPC;
	}
	pthread_mutex_unlock(&vm->lock);
	return i;
}

static void forget(struct vm *vm, int i)
{
	pthread_mutex_lock(&vm->lock);
	unlink(vm->shared[i].path);
	vm_region_sides_remove(vm->shared[i].path);
	vm_dirtag_give(&vm->shared[i]);
	free(vm->shared[i].kept);
	memset(&vm->shared[i], 0, sizeof(vm->shared[i]));
	vm->shared[i].region = -1;
	(void)vm_persist_locked(vm);
	pthread_mutex_unlock(&vm->lock);
}

static void h_attach(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "region", "mode", "size", "sections", "writable", NULL };
	struct vm_shared_req a = { 0 };
	char err[512] = "", dev[16], pci[24];
	uint64_t t0 = now_ns();
	struct pager *p;
	json_t *j;
	int i, r;

	j = http_json_args(req, resp, keys);
	if (!j)
		return;
	r = vm_shared_parse(vm, j, &a, err, sizeof(err));
	for (unsigned k = 0; r == 0 && k < a.nsec; k++)
		r = vm_check_section(vm, &a.secs[k], err, sizeof(err));
	if (r < 0) {
		http_resp_error(resp, r == -EINVAL ? 400 : 503, r == -EINVAL ? "bad_request" :
				"memnode_unreachable", "%s", err);
		json_decref(j);
		return;
	}
	if (vm_shared_begin(vm, &p, resp) < 0) {
		json_decref(j);
		return;
	}
	i = vm_shared_record(vm, &a, -1, err, sizeof(err));
	json_decref(j);          /* a.id and a.mode point into it: not used below */
	if (i < 0) {
		http_resp_error(resp, i == -EEXIST ? 409 : i == -ENOSPC ? 409 : 500,
				i == -EEXIST ? "region_attached" : i == -ENOSPC ? "no_slot" :
				"attach_failed", "%s", err);
		vm_shared_end(vm, p);
		return;
	}
	snprintf(dev, sizeof(dev), "shm%d", i);
	r = pcishm_add(vm->qmp, dev, vm->shared[i].path, vm->shared[i].size,
		       VM_SHARED_PCI_SLOT + (unsigned)i, SHARED_TIMEOUT_MS, err, sizeof(err));
	if (r == 0 && vm->shared[i].region < 0) {
		/* QEMU maps the backend at object-add: the shim told us, or nobody serves it. */
		snprintf(err, sizeof(err), "QEMU mapped the region but the pager does not serve it");
		(void)pcishm_remove(vm->qmp, dev, SHARED_TIMEOUT_MS, err + strlen(err),
				    sizeof(err) - strlen(err));
		r = -EIO;
	}
	if (r == 0 && !strcmp(vm->shared[i].mode, "strict")) {
		r = vm_strict_start(vm, i);
		if (r < 0) {
			snprintf(err, sizeof(err), "cannot start the recall channel: %s", strerror(-r));
			(void)pcishm_remove(vm->qmp, dev, SHARED_TIMEOUT_MS, err + strlen(err),
					    sizeof(err) - strlen(err));
		}
	}
	if (r < 0) {
		forget(vm, i);
		http_resp_error(resp, r == -EINVAL ? 400 : 500, "attach_failed", "%s", err);
		vm_shared_end(vm, p);
		return;
	}
	pthread_mutex_lock(&vm->lock);
	(void)vm_persist_locked(vm);
	pthread_mutex_unlock(&vm->lock);
	snprintf(pci, sizeof(pci), "0000:00:%02x.0", VM_SHARED_PCI_SLOT + (unsigned)i);
	/* a.id lived in the request's JSON: the record has its own copy. */
	log_info("vm %s: region %s attached at %s (%s, %llu MiB)", vm->spec.name,
		 vm->shared[i].id, pci, a.writable ? "writable" : "read-only",
		 (unsigned long long)(a.size >> 20));
	http_resp_json(resp, 201, json_pack("{s:s, s:s, s:I}", "region", vm->shared[i].id, "pci",
					    pci, "ms", ms_since(t0)));
	vm_shared_end(vm, p);
}

/* ---- detach -------------------------------------------------------------- */

static void h_detach(struct vm *vm, int i, struct http_resp *resp)
{
	char err[512] = "", dev[16], id[64];
	uint64_t flushed = 0;
	struct pager *p;
	bool fenced = false;
	int region, r = 0;

	if (vm_shared_begin(vm, &p, resp) < 0)
		return;
	pthread_mutex_lock(&vm->lock);
	region = vm->shared[i].region;
	snprintf(id, sizeof(id), "%s", vm->shared[i].id);
	pthread_mutex_unlock(&vm->lock);
	/* A holder's writes reach the memory node before the region goes. */
	if (region >= 0 && pager_shared_writable(p, region))
		r = pager_shared_release(p, region, &flushed);
	/*
	 * Fenced out (a newer epoch, the section freed: the orchestrator
	 * detached this slot while its VM was gone): those writes can never
	 * land, and keeping the region would only wedge the guest's next
	 * release. They are lost, as for a lost lock holder.
	 */
	if (r == -EKEYREVOKED || r == -ESTALE) {
		log_warn("vm %s: region %s was taken from this VM (%s): what it wrote since its "
			 "last release is lost", vm->spec.name, id, strerror(-r));
		fenced = true;
		r = 0;
	}
	if (r < 0) {
		http_resp_error(resp, 503, "release_failed", "writing the region back failed (%s): "
				"it stays attached", strerror(-r));
		vm_shared_end(vm, p);
		return;
	}
	vm_strict_stop(vm, i);   /* strict: leave the directory (no-op otherwise) */
	snprintf(dev, sizeof(dev), "shm%d", i);
	r = pcishm_remove(vm->qmp, dev, SHARED_TIMEOUT_MS, err, sizeof(err));
	if (r < 0) {
		http_resp_error(resp, 500, "detach_failed", "%s", err);
		vm_shared_end(vm, p);
		return;
	}
	forget(vm, i);
	log_info("vm %s: region %s detached (%llu pages written back)", vm->spec.name, id,
		 (unsigned long long)flushed);
	http_resp_json(resp, 200, json_pack("{s:I, s:b}", "flushed_pages", (json_int_t)flushed,
					    "fenced", fenced));
	vm_shared_end(vm, p);
}

/* ---- acquire, release, invalidate ----------------------------------------- */

/*
 * The grants of a request for region i: one per section, in order, for
 * the same sections, held by this node, with `rights`, never of a lower
 * epoch. 0, or an HTTP status with err and *code set.
 */
static int parse_grants(struct vm *vm, int i, json_t *arr, uint32_t rights,
			struct proto_grant *out, char *err, size_t errlen, const char **code)
{
	const struct vm_shared *s = &vm->shared[i];
	size_t k;
	json_t *e;

	*code = "bad_request";
	if (!json_is_array(arr) || json_array_size(arr) != s->nsec) {
		snprintf(err, errlen, "\"grants\" must hold one grant per section (%u)", s->nsec);
		return 400;
	}
	json_array_foreach(arr, k, e) {
		const struct proto_grant *old = &s->secs[k].sec.grant;
		struct proto_grant *g = &out[k];

		if (!json_is_string(e) || grant_from_hex(json_string_value(e), g) < 0) {
			snprintf(err, errlen, "\"grants\"[%zu] is not a grant", k);
			return 400;
		}
		if (g->memnode_id != old->memnode_id || g->section != old->section ||
		    g->generation != old->generation || g->holder_id != vm->env.node_id) {
			snprintf(err, errlen, "\"grants\"[%zu] is not for section %zu of the region "
				 "held by this node", k, k);
			return 400;
		}
		if ((g->rights & rights) != rights) {
			snprintf(err, errlen, "\"grants\"[%zu] lacks the %s right", k,
				 rights & PROTO_R_WRITE ? "write" : "read");
			return 400;
		}
		if (g->epoch < old->epoch) {
			snprintf(err, errlen, "\"grants\"[%zu] is of epoch %u, older than the one in "
				 "force (%u)", k, g->epoch, old->epoch);
			*code = "stale_epoch";
			return 409;
		}
	}
	return 0;
}

/* Give region i's pager sections the grants gs (same sections: no page dropped). */
static int take_grants(struct vm *vm, struct pager *p, int i, int region,
		       const struct proto_grant *gs)
{
	int r = 0;

	for (unsigned k = 0; r == 0 && k < vm->shared[i].nsec; k++) {
		struct pager_section sec;

		pthread_mutex_lock(&vm->lock);
		sec = vm->shared[i].secs[k].sec;
		pthread_mutex_unlock(&vm->lock);
		sec.grant = gs[k];
		r = pager_region_set_section(p, region, k, &sec, false);
		if (r == 0) {
			pthread_mutex_lock(&vm->lock);
			vm->shared[i].secs[k].sec.grant = gs[k];
			pthread_mutex_unlock(&vm->lock);
		}
	}
	return r;
}

enum shared_op { OP_ACQUIRE, OP_RELEASE, OP_INVALIDATE };

static void h_op(struct vm *vm, int i, enum shared_op op, const struct http_req *req,
		 struct http_resp *resp)
{
	static const char *const keys[] = { "grants", NULL };
	struct proto_grant gs[VM_SHARED_MAX_SECTIONS];
	const char *code = "bad_request";
	char err[256] = "";
	uint64_t t0 = now_ns(), pages = 0;
	struct pager *p;
	int region, st = 0, r;
	json_t *j;

	j = http_json_args(req, resp, keys);
	if (!j)
		return;
	if (vm_shared_begin(vm, &p, resp) < 0) {
		json_decref(j);
		return;
	}
	pthread_mutex_lock(&vm->lock);
	region = vm->shared[i].in_use ? vm->shared[i].region : -1;
	if (op != OP_INVALIDATE)
		st = parse_grants(vm, i, json_object_get(j, "grants"),
				  op == OP_ACQUIRE ? PROTO_R_READ | PROTO_R_WRITE : PROTO_R_READ,
				  gs, err, sizeof(err), &code);
	pthread_mutex_unlock(&vm->lock);
	json_decref(j);
	if (st) {
		http_resp_error(resp, st, code, "%s", err);
		goto out;
	}
	if (!strcmp(vm->shared[i].mode, "strict")) {
		http_resp_error(resp, 409, "mode_strict", "a strict region is coherent page by page: "
				"it has no lock to acquire or release");
		goto out;
	}
	if (region < 0) {
		http_resp_error(resp, 409, "not_mapped", "QEMU does not map the region");
		goto out;
	}
	switch (op) {
	case OP_ACQUIRE:
		r = take_grants(vm, p, i, region, gs);
		if (r == 0)
			r = pager_shared_acquire(p, region, &pages);
		break;
	case OP_RELEASE:
		/* Written back under the write grants, then read ones. */
		r = pager_shared_release(p, region, &pages);
		if (r < 0) {
			http_resp_error(resp, 503, "release_failed", "writing the region back "
					"failed (%s): the VM still holds it", strerror(-r));
			goto out;
		}
		r = take_grants(vm, p, i, region, gs);
		break;
	default:
		r = pager_shared_invalidate(p, region, &pages);
		if (r == -EBUSY) {
			http_resp_error(resp, 409, "region_held", "the VM holds the region: release "
					"it first");
			goto out;
		}
	}
	if (r < 0) {
		http_resp_error(resp, 500, "region_failed", "%s", strerror(-r));
		goto out;
	}
	pthread_mutex_lock(&vm->lock);
	if (op != OP_INVALIDATE)
		vm->shared[i].writable = op == OP_ACQUIRE;
	(void)vm_persist_locked(vm);
	pthread_mutex_unlock(&vm->lock);
	http_resp_json(resp, 200, json_pack("{s:I, s:I}",
					    op == OP_RELEASE ? "flushed_pages" : "dropped_pages",
					    (json_int_t)pages, "ms", ms_since(t0)));
out:
	vm_shared_end(vm, p);
}

void vm_shared_http(struct vm *vm, const char *rest, const struct http_req *req,
		    struct http_resp *resp)
{
	const char *m = req->method, *id, *tail;
	size_t len;
	int i;

	if (!*rest || !strcmp(rest, "/")) {
		if (!strcmp(m, "POST"))
			h_attach(vm, req, resp);
		else
			http_resp_error(resp, 405, "method_not_allowed", "use POST");
		return;
	}
	id = rest + 1;
	len = strcspn(id, "/");
	tail = id + len;
	pthread_mutex_lock(&vm->lock);
	i = vm_shared_find(vm, id, len);
	pthread_mutex_unlock(&vm->lock);
	if (i < 0) {
		http_resp_error(resp, 404, "no_region", "no region %.*s is attached to the VM",
				(int)MIN(len, 64), id);
		return;
	}
	if (!*tail && !strcmp(m, "DELETE"))
		h_detach(vm, i, resp);
	else if (vm_release_mode(vm, i) && *tail)
		vm_release_http(vm, i, tail, req, resp);
	else if (!strcmp(tail, "/acquire") && !strcmp(m, "POST"))
		h_op(vm, i, OP_ACQUIRE, req, resp);
	else if (!strcmp(tail, "/release") && !strcmp(m, "POST"))
		h_op(vm, i, OP_RELEASE, req, resp);
	else if (!strcmp(tail, "/invalidate") && !strcmp(m, "POST"))
		h_op(vm, i, OP_INVALIDATE, req, resp);
	else
		http_resp_error(resp, 404, "not_found", "no such resource %s %s", m, req->path);
}
