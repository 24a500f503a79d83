/* SPDX-License-Identifier: MIT */
/*
 * CPU placement of the VMs' threads (vm_cpus.c), as libvirt's vcpupin and
 * emulatorpin place them: every vCPU thread of every VM on the agent's
 * --vcpu-cpus, and QEMU's other threads (its main loop, I/O and worker
 * threads) on --housekeeping-cpus, where the agent's own threads run too.
 */
#ifndef DISAGG_VM_CPUS_H
#define DISAGG_VM_CPUS_H

#include "cpulist.h"
#include "ext.h"

/* Registered at startup (main.c): pins a VM's threads once its QMP answers. */
extern const struct vm_ext_ops vm_cpus_ext;

/*
 * The sets (NULL: that kind of thread is left where it runs), before any
 * VM starts. The housekeeping set applies to the calling thread at once:
 * call it before the agent starts its threads, which inherit it, as QEMU
 * does.
 */
int vm_cpus_configure(const cpu_set_t *vcpu, const cpu_set_t *housekeeping);

#endif /* DISAGG_VM_CPUS_H */
