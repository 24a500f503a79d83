/* SPDX-License-Identifier: MIT */
/*
 * Shared regions in mode release on a running VM (vm_release.c): the sync
 * points, from the API (POST /v1/vms/NAME/regions/ID/release|acquire) and
 * from the guest's control pages (vm_ctl.c).
 */
#ifndef DISAGG_VM_RELEASE_H
#define DISAGG_VM_RELEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "vm.h"

struct vm_release_result {
	uint64_t pages;               /* release: pages whose diffs went out; acquire: dropped */
	uint64_t bytes;               /* release: changed bytes published */
};

/* Is vm->shared[i] a region in mode release? */
bool vm_release_mode(struct vm *vm, int i);

/*
 * Release (publish this VM's diffs) or acquire (drop its clean cached
 * pages) region vm->shared[i], under the VM's hot_lock. -EBUSY: the VM is
 * not running; -ENOENT: not mapped (yet); else the pager's error.
 */
int vm_release_sync(struct vm *vm, int i, bool acquire, struct vm_release_result *ret);

/* `tail` "/release", "/acquire" (POST) or another verb of a release region. */
void vm_release_http(struct vm *vm, int i, const char *tail, const struct http_req *req,
		     struct http_resp *resp);

#endif
