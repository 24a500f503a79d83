/* SPDX-License-Identifier: MIT */
/*
 * Evacuation: a local section of a running VM moves to a remote one
 * (vm_evacuate.c).
 */
#ifndef DISAGG_VM_EVACUATE_H
#define DISAGG_VM_EVACUATE_H

#include <stddef.h>

#include "vm_types.h"

struct http_req;
struct http_resp;

/*
 * Move a local section (boot index, or hot index if hot) to the remote
 * section `to`, keeping its content. ret_pages: pages still to write
 * back. -ENOENT, -EALREADY (remote), -ESRCH (not running), the grant
 * check's error (-EINVAL: refused), or the pager's.
 */
int vm_evacuate_section(struct vm *vm, bool hot, unsigned idx, const struct vm_section *to,
			uint64_t *ret_pages, char *err, size_t errlen);
void vm_evacuate_http(struct vm *vm, const struct http_req *req, struct http_resp *resp);

#endif /* DISAGG_VM_EVACUATE_H */
