/* SPDX-License-Identifier: MIT */
/*
 * The replicas of a VM's sections over HTTP (vm_replica.c,
 * docs/replication.md).
 */
#ifndef DISAGG_VM_REPLICA_H
#define DISAGG_VM_REPLICA_H

#include <jansson.h>

#include "vm_types.h"

struct http_req;
struct http_resp;

/* POST /v1/vms/NAME/sections/replica {"action": "drop", "replica": {"memnode", "section", "generation"}}. */
void vm_replica_http(struct vm *vm, const struct http_req *req, struct http_resp *resp);
/* Add "replicas_out" to the VM's brief b (heartbeats) when replicas are out. */
void vm_replicas_brief(struct vm *vm, json_t *b);

#endif /* DISAGG_VM_REPLICA_H */
