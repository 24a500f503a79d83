// SPDX-License-Identifier: MIT
/*
 * The VM record: what a new agent needs to rebuild `struct vm` around a
 * QEMU that an earlier agent started (adopt.c).
 *
 * RUN_DIR/NAME/vm.json is written whenever the VM's description changes:
 * QEMU spawned (state "starting", pid and start time), started, a section
 * hot-plugged (before QEMU is asked, as not plugged, and after) or
 * removed, a virtio-mem resize, the cache budget, a section moved to
 * another memory node or evacuated, the state (stopping, migrated).
 * Each write goes to vm.json.tmp and is renamed over vm.json, so a reader
 * sees the old record or the new one, never a torn one.
 *
 *   {"version": 1, "name", "state", "pid", "starttime", "vcpus", "accel",
 *    "section_size", "hotplug": "dimm"|"virtio-mem", "max_hot", "append",
 *    "budget": bytes or null, "base": [SEC...],
 *    "hot": [{"index", "plugged", "gpa", "slot", "section": SEC}...],
 *    "vmem_plugged", "vmem": [SEC...], "encrypted": BOOL,
 *    "shared": [{"index", "region", "mode", "size", "writable", "sections": [SEC...],
 *                "dir_tag" (strict: its holder tag at the directory)}],
 *    "net": {"mode", "mac", "ssh": "HOST:PORT", "bridge", "tap"} (vmnet.c),
 *    "boot": {"kernel", "initrd"} (absent: the node's), "seed": PATH (absent: none),
 *    "guest_agent": false (absent: true; the guest runs no disagg-guest),
 *    and the features' members (ext.h): "disks" (vm_disk.c)}
 *   SEC = {"kind": "local"}
 *       | {"kind": "remote", "remote": {"addr", "grant"}, "free_on_release"
 *          [, "replicas": [{"addr", "grant"}...], "out": [POSITION...]]}
 *         (replicated sections, replica_json.h: positions 1.. and those taken out)
 *
 * Loading checks every field (a record is input like any other) and says
 * what is wrong; the VM is then not adopted.
 */
#include "persist.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "grant.h"
#include "jsonhttp.h"
#include "log.h"
#include "macro.h"
#include "dirtag.h"
#include "ext.h"
#include "replica_json.h"
#include "sections.h"
#include "state.h"
#include "vmnet.h"

#define RECORD_VERSION 1

/* ---- writing ------------------------------------------------------------- */

static json_t *sec_json(const struct vm_section *s)
{
	char hex[GRANT_HEX_LEN + 1];
	json_t *j, *reps, *out;

	if (s->sec.kind != PAGER_SEC_REMOTE)
		return json_pack("{s:s}", "kind", "local");
	grant_to_hex(&s->sec.grant, hex);
	j = json_pack("{s:s, s:{s:s, s:s}, s:b}", "kind", "remote", "remote", "addr",
		      s->sec.addr, "grant", hex, "free_on_release", s->free_on_release);
	reps = vm_replicas_json(&s->sec, true);
	out = vm_replicas_out_positions(&s->sec);
	if (j && reps)
		json_object_set_new(j, "replicas", reps);
	else
		json_decref(reps);
	if (j && out)
		json_object_set_new(j, "out", out);
	else
		json_decref(out);
	return j;
}

/* Shared regions (vm_shared.c): [{"index", "region", "mode", "size", "writable", "sections"}]. */
static json_t *shared_json(struct vm *vm)
{
	json_t *arr = json_array();

	for (unsigned i = 0; i < VM_MAX_SHARED && arr; i++) {
		const struct vm_shared *s = &vm->shared[i];
		json_t *secs;

		if (!s->in_use)
			continue;
		secs = json_array();
		for (unsigned k = 0; k < s->nsec; k++)
			json_array_append_new(secs, sec_json(&s->secs[k]));
		json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:I, s:b, s:o, s:i}", "index",
						     (int)i, "region", s->id, "mode", s->mode, "size",
						     (json_int_t)s->size, "writable", s->writable,
						     "sections", secs, "dir_tag",
						     s->nsec ? s->secs[0].sec.dir_tag : 0));
	}
	return arr;
}

static json_t *record_json(struct vm *vm)
{
	json_t *base = json_array(), *hot = json_array(), *vmem = json_array(), *j;

	for (unsigned i = 0; i < vm->spec.nbase; i++)
		json_array_append_new(base, sec_json(&vm->spec.base[i]));
	for (unsigned i = 0; i < vm->nhot; i++)
		if (vm->hot[i].in_use)
			json_array_append_new(
				hot, json_pack("{s:i, s:b, s:I, s:i, s:o}", "index", (int)i, "plugged",
					       vm->hot[i].plugged, "gpa", (json_int_t)vm->hot[i].gpa,
					       "slot", vm->hot[i].slot, "section",
					       sec_json(&vm->hot[i].sec)));
	for (unsigned i = 0; vm->vmem_secs && i < vm->vmem_plugged; i++)
		json_array_append_new(vmem, sec_json(&vm->vmem_secs[i]));
	j = json_pack("{s:i, s:s, s:s, s:i, s:I, s:i, s:s, s:I, s:s, s:i, s:s, s:o, s:o, s:i, s:o}",
		      "version", RECORD_VERSION, "name", vm->spec.name, "state",
		      vm_state_name(vm->state), "pid", (int)vm->pid, "starttime",
		      (json_int_t)vm->qemu_starttime, "vcpus", (int)vm->spec.vcpus, "accel",
		      vm->env.accel, "section_size", (json_int_t)vm->env.section_size, "hotplug",
		      vm->spec.hotplug == VM_HOTPLUG_DIMM ? "dimm" : "virtio-mem", "max_hot",
		      (int)vm->spec.max_hot, "append", vm->spec.append, "base", base, "hot", hot,
		      "vmem_plugged", (int)vm->vmem_plugged, "vmem", vmem);
	if (j)
		json_object_set_new(j, "encrypted", json_boolean(vm->spec.encrypt));
	if (j)
		json_object_set_new(j, "shared", shared_json(vm));
	if (j)
		json_object_set_new(j, "net", vmnet_json(&vm->spec.net));
	if (j && vm->spec.kernel[0])
		json_object_set_new(j, "boot", json_pack("{s:s, s:s}", "kernel", vm->spec.kernel,
							 "initrd", vm->spec.initrd));
	if (j && vm->spec.seed[0])
		json_object_set_new(j, "seed", json_string(vm->spec.seed));
	if (j && vm->spec.no_guest)
		json_object_set_new(j, "guest_agent", json_false());
	if (j)
		json_object_set_new(j, "budget", vm->spec.budget == UINT64_MAX
							 ? json_null()
							 : json_integer((json_int_t)vm->spec.budget));
	if (j)
		vm_ext_record_put(vm, j);   /* "disks" (vm_disk.c) */
	return j;
}

int vm_persist_locked(struct vm *vm)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	json_t *j;
	int r = 0;

	if (vm->released)
		return 0;   /* QEMU is gone and so are the files: nothing to adopt */
	snprintf(path, sizeof(path), "%s/vm.json", vm->dir);
	snprintf(tmp, sizeof(tmp), "%s/vm.json.tmp", vm->dir);
	j = record_json(vm);
	if (!j)
		r = -ENOMEM;
	else if (json_dump_file(j, tmp, JSON_COMPACT) < 0 || rename(tmp, path) < 0)
		r = errno ? -errno : -EIO;
	json_decref(j);
	if (r < 0)
		log_warn("vm %s: cannot write %s: %s (a restarted agent could not adopt it)",
			 vm->spec.name, path, strerror(-r));
	return r;
}

int vm_persist(struct vm *vm)
{
	int r;

	pthread_mutex_lock(&vm->lock);
	r = vm_persist_locked(vm);
	pthread_mutex_unlock(&vm->lock);
	return r;
}

/* ---- reading ------------------------------------------------------------- */

_printf_(3, 4) static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* An integer member in [min, max]. */
static int get_int(json_t *o, const char *key, int64_t min, int64_t max, int64_t *ret,
		   char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return bad(err, errlen, "\"%s\" must be an integer in %lld..%lld", key,
			   (long long)min, (long long)max);
	*ret = json_integer_value(v);
	return 0;
}

static int get_sec(json_t *j, const char *what, struct vm_section *ret, char *err,
		   size_t errlen)
{
	const char *kind = json_string_value(json_object_get(j, "kind"));
	struct vm_section s = { .sec.kind = PAGER_SEC_LOCAL };
	char why[256];

	if (!json_is_object(j) || !kind)
		return bad(err, errlen, "%s: not a section", what);
	if (strcmp(kind, "remote") == 0) {
		if (vm_parse_remote(json_object_get(j, "remote"), "remote", &s.sec, why,
				    sizeof(why)) < 0 ||
		    vm_replicas_parse(j, &s.sec, why, sizeof(why)) < 0 ||
		    vm_replicas_out_parse(json_object_get(j, "out"), &s.sec, why, sizeof(why)) < 0)
			return bad(err, errlen, "%s: %s", what, why);
		s.free_on_release = json_is_true(json_object_get(j, "free_on_release"));
	} else if (strcmp(kind, "local") != 0) {
		return bad(err, errlen, "%s: kind \"%s\"", what, kind);
	}
	*ret = s;
	return 0;
}

static int get_secs(json_t *arr, const char *what, unsigned min, unsigned max,
		    struct vm_section *ret, unsigned *ret_n, char *err, size_t errlen)
{
	char name[64];
	json_t *v;
	size_t i;

	if (!json_is_array(arr) || json_array_size(arr) < min || json_array_size(arr) > max)
		return bad(err, errlen, "\"%s\" must hold %u..%u sections", what, min, max);
	json_array_foreach(arr, i, v) {
		int r;

		snprintf(name, sizeof(name), "%s[%zu]", what, i);
		r = get_sec(v, name, &ret[i], err, errlen);
		if (r < 0)
			return r;
	}
	*ret_n = (unsigned)json_array_size(arr);
	return 0;
}

static int load_hot(struct vm *vm, json_t *arr, char *err, size_t errlen)
{
	json_t *h;
	size_t i;

	if (!json_is_array(arr) || json_array_size(arr) > vm->spec.max_hot)
		return bad(err, errlen, "\"hot\" must hold at most max_hot entries");
	json_array_foreach(arr, i, h) {
		int64_t idx, gpa, slot;
		struct vm_hot *hs;
		int r;

		if ((r = get_int(h, "index", 0, (int64_t)vm->spec.max_hot - 1, &idx, err, errlen)) ||
		    (r = get_int(h, "gpa", 0, INT64_MAX, &gpa, err, errlen)) ||
		    (r = get_int(h, "slot", -1, VM_MAX_SECTIONS, &slot, err, errlen)))
			return r;
		hs = &vm->hot[idx];
		if (hs->in_use)
			return bad(err, errlen, "hot section %lld twice", (long long)idx);
		r = get_sec(json_object_get(h, "section"), "hot section", &hs->sec, err, errlen);
		if (r < 0)
			return r;
		hs->in_use = true;
		hs->plugged = json_is_true(json_object_get(h, "plugged"));
		hs->gpa = (uint64_t)gpa;
		hs->slot = (int)slot;
		snprintf(hs->id, sizeof(hs->id), "hot%u", (unsigned)idx);
		snprintf(hs->path, sizeof(hs->path), "%s/dimm-%u", vm->dir, (unsigned)idx);
		vm->nhot = MAX(vm->nhot, (unsigned)idx + 1);
	}
	return 0;
}

/* "shared" (absent in records of agents before shared regions: none). */
static int load_shared(struct vm *vm, json_t *arr, char *err, size_t errlen)
{
	json_t *h;
	size_t i;

	if (!arr)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > VM_MAX_SHARED)
		return bad(err, errlen, "\"shared\" must hold at most %d regions", VM_MAX_SHARED);
	json_array_foreach(arr, i, h) {
		const char *id = json_string_value(json_object_get(h, "region"));
		const char *mode = json_string_value(json_object_get(h, "mode"));
		int64_t idx, size;
		struct vm_shared *s;
		json_int_t tag;
		int r;

		if ((r = get_int(h, "index", 0, VM_MAX_SHARED - 1, &idx, err, errlen)) ||
		    (r = get_int(h, "size", 1, INT64_MAX, &size, err, errlen)))
			return r;
		s = &vm->shared[idx];
		if (s->in_use || !id || !*id || strlen(id) >= sizeof(s->id) || strchr(id, '/') ||
		    !mode || strlen(mode) >= sizeof(s->mode))
			return bad(err, errlen, "shared region %lld: bad or twice", (long long)idx);
		r = get_secs(json_object_get(h, "sections"), "shared sections", 1,
			     VM_SHARED_MAX_SECTIONS, s->secs, &s->nsec, err, errlen);
		if (r < 0)
			return r;
		if ((uint64_t)size != (uint64_t)s->nsec * vm->env.section_size)
			return bad(err, errlen, "shared region %s: size and sections disagree", id);
		s->in_use = true;
		s->writable = json_is_true(json_object_get(h, "writable"));
		snprintf(s->id, sizeof(s->id), "%s", id);
		snprintf(s->mode, sizeof(s->mode), "%s", mode);
		s->size = (uint64_t)size;
		s->region = -1;
		snprintf(s->path, sizeof(s->path), "%s/region-%s", vm->dir, id);
		/* Its tag of before: the directory may keep its pages for it (docs/memnode.md). */
		tag = json_integer_value(json_object_get(h, "dir_tag"));
		if (vm_dirtag_take_again(s, tag > 0 && tag <= UINT16_MAX ? (uint16_t)tag : 0) < 0)
			return bad(err, errlen, "shared region %s: no directory holder tag left", id);
	}
	return 0;
}

static int load(struct vm *vm, json_t *j, char *err, size_t errlen)
{
	const char *name, *state, *hp, *append, *accel;
	int64_t version, pid, st, vcpus, ss, max_hot, plugged;
	json_t *budget;
	unsigned n;
	int r;

	if ((r = get_int(j, "version", RECORD_VERSION, RECORD_VERSION, &version, err, errlen)) ||
	    (r = get_int(j, "pid", 0, INT32_MAX, &pid, err, errlen)) ||
	    (r = get_int(j, "starttime", 0, INT64_MAX, &st, err, errlen)) ||
	    (r = get_int(j, "vcpus", 1, 64, &vcpus, err, errlen)) ||
	    (r = get_int(j, "section_size", 1, INT64_MAX, &ss, err, errlen)) ||
	    (r = get_int(j, "max_hot", 0, VM_MAX_SECTIONS, &max_hot, err, errlen)) ||
	    (r = get_int(j, "vmem_plugged", 0, max_hot, &plugged, err, errlen)))
		return r;
	name = json_string_value(json_object_get(j, "name"));
	state = json_string_value(json_object_get(j, "state"));
	hp = json_string_value(json_object_get(j, "hotplug"));
	append = json_string_value(json_object_get(j, "append"));
	accel = json_string_value(json_object_get(j, "accel"));
	budget = json_object_get(j, "budget");
	if (!name || !*name || strlen(name) >= sizeof(vm->spec.name) || strchr(name, '/'))
		return bad(err, errlen, "bad \"name\"");
	if (!state || vm_state_parse(state, &vm->state) < 0)
		return bad(err, errlen, "bad \"state\"");
	if (!hp || (strcmp(hp, "dimm") && strcmp(hp, "virtio-mem")))
		return bad(err, errlen, "bad \"hotplug\"");
	if (!append || strlen(append) >= sizeof(vm->spec.append))
		return bad(err, errlen, "bad \"append\"");
	if (!accel || (strcmp(accel, "kvm") && strcmp(accel, "tcg")))
		return bad(err, errlen, "bad \"accel\"");
	if (!json_is_null(budget) && (!json_is_integer(budget) || json_integer_value(budget) < 0))
		return bad(err, errlen, "bad \"budget\"");
	if ((uint64_t)ss != vm->env.section_size)
		return bad(err, errlen, "its sections are %lld bytes, this agent's %llu (--section-size)",
			   (long long)ss, (unsigned long long)vm->env.section_size);
	snprintf(vm->spec.name, sizeof(vm->spec.name), "%s", name);
	snprintf(vm->spec.append, sizeof(vm->spec.append), "%s", append);
	if (json_object_get(j, "boot") || json_object_get(j, "seed")) {
		json_t *b = json_object_get(j, "boot"), *sd = json_object_get(j, "seed");
		const char *k = json_string_value(json_object_get(b, "kernel"));
		const char *i = json_string_value(json_object_get(b, "initrd"));

		if ((b && (!k || !i || strlen(k) >= sizeof(vm->spec.kernel) ||
			   strlen(i) >= sizeof(vm->spec.initrd))) ||
		    (sd && (!json_is_string(sd) ||
			    json_string_length(sd) >= sizeof(vm->spec.seed))))
			return bad(err, errlen, "bad \"boot\" or \"seed\"");
		snprintf(vm->spec.kernel, sizeof(vm->spec.kernel), "%s", k ? k : "");
		snprintf(vm->spec.initrd, sizeof(vm->spec.initrd), "%s", i ? i : "");
		snprintf(vm->spec.seed, sizeof(vm->spec.seed), "%s", sd ? json_string_value(sd) : "");
	}
	vm->spec.no_guest = json_is_false(json_object_get(j, "guest_agent"));
	vm->env.accel = strcmp(accel, "kvm") == 0 ? "kvm" : "tcg";
	vm->spec.vcpus = (unsigned)vcpus;
	vm->spec.max_hot = (unsigned)max_hot;
	vm->spec.hotplug = strcmp(hp, "dimm") == 0 ? VM_HOTPLUG_DIMM : VM_HOTPLUG_VIRTIO_MEM;
	vm->spec.budget = json_is_null(budget) ? UINT64_MAX : (uint64_t)json_integer_value(budget);
	/* Sealed pages: the key and table come from the run directory (vm/pagemeta.c). */
	vm->spec.encrypt = json_is_true(json_object_get(j, "encrypted"));
	vm->pid = (pid_t)pid;
	vm->qemu_starttime = st;

	vm->spec.base = calloc(MIN(MAX(json_array_size(json_object_get(j, "base")), 1),
				   VM_MAX_SECTIONS), sizeof(*vm->spec.base));
	if (!vm->spec.base)
		return -ENOMEM;
	r = get_secs(json_object_get(j, "base"), "base", 1, VM_MAX_SECTIONS, vm->spec.base,
		     &vm->spec.nbase, err, errlen);
	if (r < 0)
		return r;
	snprintf(vm->base_path, sizeof(vm->base_path), "%s/ram-base", vm->dir);
	r = load_shared(vm, json_object_get(j, "shared"), err, errlen);
	if (r < 0)
		return r;
	/* The card (absent in records of agents before cards: none). */
	r = vmnet_load(json_object_get(j, "net"), &vm->spec.net, err, errlen);
	if (r < 0)
		return r;
	if (vm->spec.hotplug == VM_HOTPLUG_DIMM)
		return load_hot(vm, json_object_get(j, "hot"), err, errlen);
	if (vm->spec.max_hot == 0)
		return 0;
	vm->vmem_secs = calloc(vm->spec.max_hot, sizeof(*vm->vmem_secs));
	if (!vm->vmem_secs)
		return -ENOMEM;
	r = get_secs(json_object_get(j, "vmem"), "vmem", (unsigned)plugged, (unsigned)plugged,
		     vm->vmem_secs, &n, err, errlen);
	vm->vmem_plugged = (unsigned)plugged;
	snprintf(vm->vmem_path, sizeof(vm->vmem_path), "%s/vmem", vm->dir);
	return r;
}

int vm_persist_load(struct vm *vm, char *err, size_t errlen)
{
	_cleanup_(json_decrefp) json_t *j = NULL;
	char path[PATH_MAX];
	json_error_t je;
	int r;

	snprintf(path, sizeof(path), "%s/vm.json", vm->dir);
	j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		if (access(path, F_OK) < 0)
			return -errno;
		return bad(err, errlen, "%s: %s", path, je.text);
	}
	r = load(vm, j, err, errlen);
	if (r == 0) {
		/* The features read their members at adoption (ext.h). */
		json_decref(vm->record);
		vm->record = json_incref(j);
	}
	return r;
}
