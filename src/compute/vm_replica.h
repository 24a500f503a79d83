/* SPDX-License-Identifier: MIT */
/*
 * The replicas of a VM's sections over HTTP (vm_replica.c,
 * docs/replication.md).
 */
#ifndef DISAGG_VM_REPLICA_H
#define DISAGG_VM_REPLICA_H

#include <jansson.h>

#include "vm_types.h"
#include "types.h"

struct http_req;
struct http_resp;

/* POST /v1/vms/NAME/sections/replica {"action": "drop", "replica": {"memnode", "section", "generation"}}. */
void vm_replica_http(struct vm *vm, const struct http_req *req, struct http_resp *resp);
/*
 * vm_env.on_replica: the pager took a replica out; the VM's records
 * follow (struct pager_section.out), vm.json is written and the
 * orchestrator hears of it with the next heartbeat. From the VM's health
 * thread, no lock held.
 */
void vm_replicas_sync(struct vm *vm);
/*
 * The control plane takes replica `match` (memory node, section and
 * generation of its grant) out: 0 (also when it was out already),
 * -ENOENT, -EDEADLK (it is the section's only replica in). err set.
 */
int vm_replica_drop(struct vm *vm, const struct pager_section *match, char *err,
		    size_t errlen);
/* Add "replicas_out" to the VM's brief b (heartbeats) when replicas are out. */
void vm_replicas_brief(struct vm *vm, json_t *b);

#endif /* DISAGG_VM_REPLICA_H */
