/* SPDX-License-Identifier: MIT */
/*
 * Memory-node outages: the pager's on_node callback turned into VM states
 * (degraded, running again, failed) by the policy of vm_env.memnode_policy.
 */
#ifndef DISAGG_VM_HEALTH_H
#define DISAGG_VM_HEALTH_H

#include "vm_internal.h"

const char *vm_memnode_policy_name(enum vm_memnode_policy p);
int vm_memnode_policy_parse(const char *s, enum vm_memnode_policy *ret);   /* -EINVAL */

/* The policy's thread (before the pager starts: vm_pager_open). */
int vm_health_start(struct vm *vm);
void vm_health_stop(struct vm *vm);   /* joins its thread; before the pager and QMP go */
void vm_health_free(struct vm *vm);   /* after the pager is freed */
/* pager_config.on_node (opaque: the VM): a pager thread, no pager lock held. */
void vm_health_node(void *opaque, uint64_t memnode_id, const char *addr, bool down, int err);
/* pager_config.on_replica: the pager took a replica out (docs/replication.md; the records follow through vm_env.on_replica). */
void vm_health_replica(void *opaque, int region, unsigned index, unsigned replica,
		       const struct pager_section *view, int err);
/* pager_config.on_fail: a fault parked on a grant the memory node refuses makes the VM degraded. */
void vm_health_fault(void *opaque, int err, uint64_t addr, uint32_t tid);
/* Renewed grants arrived (POST /v1/vms/NAME/grants): back to running if nothing else is down. */
void vm_health_grants_renewed(struct vm *vm);

#endif /* DISAGG_VM_HEALTH_H */
