// SPDX-License-Identifier: MIT
/*
 * A VM's section records. The boot sections are spec.base; a hot section
 * is a DIMM's (hot[]) or a virtio-mem slot's (vmem_secs[]). A section is
 * freed on its memory node when the VM releases it only if the control
 * plane asked for it (free_on_release) and nothing has suspended that
 * (an incoming migration, adoption failures, a VM that migrated away).
 */
#include "sections.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grant.h"
#include "jsonhttp.h"
#include "log.h"
#include "macro.h"
#include "mnadmin.h"
#include "mnclient.h"
#include "replica_json.h"

void vm_free_section(struct vm *vm, const struct vm_section *s)
{
	struct mnc_opts o = {
		.addr = s->sec.addr, .key = vm->env.key, .node_id = vm->env.node_id,
		.timeout_ms = 3000,
	};
	_cleanup_mnc_ struct mnc *c = NULL;
	int r;

	if (!s->free_on_release || s->sec.kind != PAGER_SEC_REMOTE)
		return;
	r = mnc_connect(&o, &c);
	if (r >= 0)
		r = mnc_free_grant(c, &s->sec.grant);   /* the grant must carry PROTO_R_FREE */
	if (r < 0)
		log_warn("vm %s: cannot free section %u on %s: %s", vm->spec.name,
			 s->sec.grant.section, s->sec.addr, strerror(-r));
}

void vm_keep_sections_locked(struct vm *vm)
{
	for (unsigned i = 0; i < vm->spec.nbase; i++)
		vm->spec.base[i].free_on_release = false;
	for (unsigned i = 0; i < vm->nhot; i++)
		vm->hot[i].sec.free_on_release = false;
	for (unsigned i = 0; vm->vmem_secs && i < vm->spec.max_hot; i++)
		vm->vmem_secs[i].free_on_release = false;
}

void vm_keep_sections(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm_keep_sections_locked(vm);
	pthread_mutex_unlock(&vm->lock);
}

unsigned vm_hot_count(struct vm *vm)
{
	unsigned n = 0;

	if (vm->spec.hotplug == VM_HOTPLUG_VIRTIO_MEM)
		return vm->vmem_plugged;
	for (unsigned i = 0; i < vm->nhot; i++)
		n += vm->hot[i].in_use && vm->hot[i].plugged;
	return n;
}

void vm_hot_release(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nhot; i++) {
		if (!vm->hot[i].in_use)
			continue;
		vm_free_section(vm, &vm->hot[i].sec);
		if (vm->hot[i].path[0])
			unlink(vm->hot[i].path);
		vm->hot[i].in_use = false;
	}
	vm->nhot = 0;
	if (vm->vmem_secs) {
		for (unsigned i = 0; i < vm->vmem_plugged; i++)
			vm_free_section(vm, &vm->vmem_secs[i]);
		free(vm->vmem_secs);
		vm->vmem_secs = NULL;
		vm->vmem_plugged = 0;
	}
	if (vm->vmem_path[0])
		unlink(vm->vmem_path);
}

json_t *vm_section_json(const struct vm_section *s)
{
	json_t *j, *reps;

	if (s->sec.kind == PAGER_SEC_LOCAL)
		return json_pack("{s:s}", "kind", "local");
	/* Where it lives, never the grant; section and generation are unsigned 32-bit. */
	j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:b}", "kind", "remote", "addr", s->sec.addr,
		      "memnode", (json_int_t)s->sec.grant.memnode_id, "section",
		      (json_int_t)s->sec.grant.section, "generation",
		      (json_int_t)s->sec.grant.generation, "free_on_release", s->free_on_release);
	reps = vm_replicas_json(&s->sec, false);
	if (j && reps) {
		json_object_set_new(j, "in", json_boolean(!(s->sec.out & 1u)));
		json_object_set_new(j, "replicas", reps);
	} else {
		json_decref(reps);
	}
	return j;
}

int vm_parse_section(json_t *j, struct vm_section *ret, char *err, size_t errlen)
{
	static const char *const keys[] = { "kind", "addr", "grant", "free_on_release",
					    "replicas", "out", NULL };
	const char *kind, *bad = NULL, *addr, *grant;
	struct vm_section s = { 0 };

	if (!json_is_object(j)) {
		snprintf(err, errlen, "a section must be an object");
		return -EINVAL;
	}
	if (json_check_keys(j, keys, &bad) < 0) {
		snprintf(err, errlen, "unknown section field \"%s\"", bad);
		return -EINVAL;
	}
	kind = json_string_value(json_object_get(j, "kind"));
	if (!kind || (strcmp(kind, "local") && strcmp(kind, "remote"))) {
		snprintf(err, errlen, "section kind must be \"local\" or \"remote\"");
		return -EINVAL;
	}
	s.free_on_release = json_is_true(json_object_get(j, "free_on_release"));
	if (strcmp(kind, "local") == 0) {
		s.sec.kind = PAGER_SEC_LOCAL;
		*ret = s;
		return 0;
	}
	s.sec.kind = PAGER_SEC_REMOTE;
	addr = json_string_value(json_object_get(j, "addr"));
	grant = json_string_value(json_object_get(j, "grant"));
	if (!addr || strlen(addr) >= sizeof(s.sec.addr) || !grant) {
		snprintf(err, errlen, "a remote section needs \"addr\" (host:port) and \"grant\"");
		return -EINVAL;
	}
	strcpy(s.sec.addr, addr);
	if (grant_from_hex(grant, &s.sec.grant) < 0) {
		snprintf(err, errlen, "\"grant\" must be %zu hex digits", (size_t)GRANT_HEX_LEN);
		return -EINVAL;
	}
	if (vm_replicas_parse(j, &s.sec, err, errlen) < 0 ||
	    vm_replicas_out_parse(json_object_get(j, "out"), &s.sec, err, errlen) < 0)
		return -EINVAL;
	*ret = s;
	return 0;
}

json_t *vm_shared_json(struct vm *vm)
{
	json_t *arr = json_array();

	for (unsigned i = 0; i < VM_MAX_SHARED && arr; i++) {
		const struct vm_shared *s = &vm->shared[i];
		json_t *secs;
		char pci[16];

		if (!s->in_use)
			continue;
		secs = json_array();
		for (unsigned k = 0; k < s->nsec; k++)
			json_array_append_new(secs, vm_section_json(&s->secs[k]));
		snprintf(pci, sizeof(pci), "0000:00:%02x.0", VM_SHARED_PCI_SLOT + i);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:s, s:b, s:o}", "region",
						     s->id, "mode", s->mode, "size",
						     (json_int_t)s->size, "pci", pci, "writable",
						     s->writable, "sections", secs));
	}
	return arr;
}

static bool same_remote(const struct pager_section *a, const struct pager_section *b)
{
	return a->kind == PAGER_SEC_REMOTE && b->kind == PAGER_SEC_REMOTE &&
	       a->grant.memnode_id == b->grant.memnode_id && a->grant.section == b->grant.section &&
	       a->grant.generation == b->grant.generation;
}

/* The replica position of s that match names, or -1. */
static int replica_pos(const struct pager_section *s, const struct pager_section *m)
{
	struct pager_section v;

	if (same_remote(s, m))
		return 0;
	for (unsigned pos = 1; s->kind == PAGER_SEC_REMOTE && pos < s->nrep; pos++) {
		vm_replica_view(s, pos, &v);
		if (same_remote(&v, m))
			return (int)pos;
	}
	return -1;
}

struct pager_section *vm_replica_record(struct vm *vm, const struct pager_section *match,
					unsigned *ret_pos)
{
	struct pager_section *rec;
	int pos;

	for (unsigned i = 0; i < vm->spec.nbase; i++)
		if ((pos = replica_pos(&vm->spec.base[i].sec, match)) >= 0) {
			*ret_pos = (unsigned)pos;
			return &vm->spec.base[i].sec;
		}
	for (unsigned i = 0; i < vm->nhot; i++)
		if (vm->hot[i].in_use && (pos = replica_pos(&vm->hot[i].sec.sec, match)) >= 0) {
			*ret_pos = (unsigned)pos;
			return &vm->hot[i].sec.sec;
		}
	for (unsigned i = 0; vm->vmem_secs && i < vm->spec.max_hot; i++)
		if ((pos = replica_pos(&vm->vmem_secs[i].sec, match)) >= 0) {
			*ret_pos = (unsigned)pos;
			return &vm->vmem_secs[i].sec;
		}
	rec = vm_section_record(vm, match);     /* a shared region's: never replicated */
	if (rec)
		*ret_pos = 0;
	return rec;
}

struct pager_section *vm_section_record(struct vm *vm, const struct pager_section *match)
{
	for (unsigned i = 0; i < vm->spec.nbase; i++)
		if (same_remote(&vm->spec.base[i].sec, match))
			return &vm->spec.base[i].sec;
	for (unsigned i = 0; i < vm->nhot; i++)
		if (vm->hot[i].in_use && same_remote(&vm->hot[i].sec.sec, match))
			return &vm->hot[i].sec.sec;
	for (unsigned i = 0; vm->vmem_secs && i < vm->spec.max_hot; i++)
		if (same_remote(&vm->vmem_secs[i].sec, match))
			return &vm->vmem_secs[i].sec;
	for (unsigned i = 0; i < VM_MAX_SHARED; i++)
		for (unsigned k = 0; vm->shared[i].in_use && k < vm->shared[i].nsec; k++)
			if (same_remote(&vm->shared[i].secs[k].sec, match))
				return &vm->shared[i].secs[k].sec;
	return NULL;
}
