/* SPDX-License-Identifier: MIT */
/*
 * A VM's hot pages: read on a migration source, prefetched on its
 * destination (vm_prefetch.c).
 */
#ifndef DISAGG_VM_PREFETCH_H
#define DISAGG_VM_PREFETCH_H

#include "vm_types.h"

struct http_req;
struct http_resp;

/* The pager's hot pages as JSON runs; *ret_pages: how many pages. */
json_t *vm_hot_json(struct vm *vm, uint64_t *ret_pages);
/* POST /v1/vms/NAME/prefetch: fetch a migration source's hot pages ahead of faults. */
void vm_prefetch_http(struct vm *vm, const struct http_req *req, struct http_resp *resp);

#endif /* DISAGG_VM_PREFETCH_H */
