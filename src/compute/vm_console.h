/* SPDX-License-Identifier: MIT */
/*
 * A VM's serial console over the agent's API (vm_console.c; docs/compute.md,
 * "The serial console"):
 *
 *   GET  /v1/vms/NAME/console          the log's last MiB, as text
 *   GET  /v1/vms/NAME/console/output?from=N&wait_ms=M
 *        {"from", "next", "hex"}: the log's bytes from offset N (none: from
 *        its end), waiting up to M ms (at most 5000) for some to come
 *   POST /v1/vms/NAME/console/input {"hex": "..."}
 *        {"bytes": N}: the bytes typed into the guest's serial port
 */
#ifndef DISAGG_VM_CONSOLE_HTTP_H
#define DISAGG_VM_CONSOLE_HTTP_H

#include "vm_types.h"

struct http_req;
struct http_resp;

/* rest: "", "/output" or "/input" (after /v1/vms/NAME/console). */
void vm_console_http(struct vm *vm, const char *rest, const struct http_req *req,
		     struct http_resp *resp);

#endif /* DISAGG_VM_CONSOLE_HTTP_H */
