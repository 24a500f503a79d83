/* SPDX-License-Identifier: MIT */
/*
 * Renewed grants for a VM's remote sections (vm_grants.c).
 */
#ifndef DISAGG_VM_GRANTS_H
#define DISAGG_VM_GRANTS_H

#include "vm_types.h"

struct http_req;
struct http_resp;

/* POST /v1/vms/NAME/grants {"grants": ["HEX", ...]}: take renewed grants. */
void vm_grants_http(struct vm *vm, const struct http_req *req, struct http_resp *resp);

#endif /* DISAGG_VM_GRANTS_H */
