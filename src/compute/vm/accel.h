/* SPDX-License-Identifier: MIT */
/*
 * Which accelerator this node's VMs use.
 */
#ifndef DISAGG_VM_ACCEL_H
#define DISAGG_VM_ACCEL_H

#include "vm_types.h"

/* Pick the accelerator: "kvm" when a probe guest boots under KVM, else "tcg". */
const char *vm_probe_accel(const struct vm_env *env);

#endif /* DISAGG_VM_ACCEL_H */
