/* SPDX-License-Identifier: MIT */
/*
 * Shared regions of a running VM (vm_shared.c): the HTTP resource
 * /v1/vms/NAME/regions (docs/compute.md, "Shared regions").
 */
#ifndef DISAGG_VM_SHARED_H
#define DISAGG_VM_SHARED_H

#include "http.h"
#include "vm.h"

/* `rest` is what follows /v1/vms/NAME/regions in the path ("" or "/ID[/op]"). */
void vm_shared_http(struct vm *vm, const char *rest, const struct http_req *req,
		    struct http_resp *resp);

#endif /* DISAGG_VM_SHARED_H */
