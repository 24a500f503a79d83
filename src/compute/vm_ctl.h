/* SPDX-License-Identifier: MIT */
/*
 * Locking a shared region from inside the guest (vm_ctl.c): the agent's
 * worker that asks the orchestrator when a guest writes a control page.
 */
#ifndef DISAGG_VM_CTL_H
#define DISAGG_VM_CTL_H

#include <stdbool.h>
#include <stdint.h>

#include "registrar.h"
#include "vm.h"

/* vm_env.on_region_control: queue the request (from a fault thread; never blocks). */
void vm_ctl_request(struct vm *vm, int region, int op);
/* Start the worker; *reg is the agent's registrar (NULL without --orchestrator). */
int vm_ctl_start(struct registrar *_Atomic *reg, uint64_t node_id);
/* Stop it (requests left are dropped: their writes stay parked). */
void vm_ctl_stop(void);

#endif
