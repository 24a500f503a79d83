/* SPDX-License-Identifier: MIT */
/*
 * A sealed VM's page-metadata table over HTTP, for a compute migration
 * (vm/pagemeta.h): the source serves a pre-copy while the guest runs and
 * the delta after its final flush, the destination takes them in parts.
 */
#ifndef DISAGG_VM_PAGEMETA_HTTP_H
#define DISAGG_VM_PAGEMETA_HTTP_H

#include <jansson.h>

#include "vm_types.h"

struct http_req;
struct http_resp;

/*
 * /v1/vms/NAME/page-meta + sub ("" or "/precopy"); records travel as
 * application/octet-stream (vm_pagemeta.c).
 */
void vm_pagemeta_http(struct vm *vm, const char *sub, const struct http_req *req,
		      struct http_resp *resp);
/* The create request's "encryption_key" (hex) into spec: 0, or -EINVAL with resp set (400). */
int vm_pagemeta_key(json_t *v, struct vm_spec *spec, struct http_resp *resp);

#endif /* DISAGG_VM_PAGEMETA_HTTP_H */
