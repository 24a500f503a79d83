/* SPDX-License-Identifier: MIT */
/*
 * Shared regions of a running VM (vm_shared.c): the HTTP resource
 * /v1/vms/NAME/regions (docs/compute.md, "Shared regions").
 */
#ifndef DISAGG_VM_SHARED_H
#define DISAGG_VM_SHARED_H

#include "http.h"
#include "vm.h"
#include "vm_internal.h"

/* An attach request (and a region an incoming VM brings along: vm_shared_mig.c). */
struct vm_shared_req {
	const char *id, *mode;        /* point into the request's JSON */
	uint64_t size;
	bool writable;
	unsigned nsec;
	struct vm_section secs[VM_SHARED_MAX_SECTIONS];
};

/* "region", "mode", "size", "sections", "writable" of j: 0, or -EINVAL with err. */
int vm_shared_parse(struct vm *vm, json_t *j, struct vm_shared_req *a, char *err, size_t errlen);
/*
 * Record region `a` in vm->shared with its file: in slot `want` (-1: the
 * first free one). The index, or -errno with err (-EEXIST: attached
 * already, -ENOSPC: no such free slot).
 */
int vm_shared_record(struct vm *vm, const struct vm_shared_req *a, int want, char *err,
		     size_t errlen);

/* The index of region `id` (len bytes) in vm->shared, or -1. vm->lock held. */
int vm_shared_find(struct vm *vm, const char *id, size_t len);
/*
 * hot_lock taken and the VM running with its pager (*ret): 0; else 409
 * not_running answered and nothing held. vm_shared_end lets both go.
 */
int vm_shared_begin(struct vm *vm, struct pager **ret, struct http_resp *resp);
void vm_shared_end(struct vm *vm, struct pager *p);

/* `rest` is what follows /v1/vms/NAME/regions in the path ("" or "/ID[/op]"). */
void vm_shared_http(struct vm *vm, const char *rest, const struct http_req *req,
		    struct http_resp *resp);

#endif /* DISAGG_VM_SHARED_H */
