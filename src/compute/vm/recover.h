/* SPDX-License-Identifier: MIT */
/*
 * At agent start: what an earlier instance of this agent left in
 * env->run_root (the caller owns the directory: rundir.h). A VM that was
 * running and whose QEMU still runs is adopted (adopt.c): QEMU keeps
 * running, the shim hands its uffds back, QMP and the guest channel are
 * reconnected; `fn` gets it (one reference, state running; fn < 0: it is
 * detached again). A VM whose QEMU is gone is removed (its directory;
 * sections stay allocated: the control plane has them). A QEMU of this
 * run directory that cannot be adopted (the VM was starting, stopping,
 * migrating in or away, or adoption failed) is stopped first. Nothing
 * outside VM directories is touched.
 */
#ifndef DISAGG_VM_RECOVER_H
#define DISAGG_VM_RECOVER_H

#include "vm_types.h"

struct vm_recover_stats {
	unsigned adopted, stopped, removed;
};
typedef int (*vm_adopt_fn)(void *opaque, struct vm *vm);
int vm_recover(const struct vm_env *env, vm_adopt_fn fn, void *opaque,
	       struct vm_recover_stats *ret);
/* Is rootfd/name a VM directory (vm.json, or shim.sock and qemu.log)? */
bool vm_dir_is_vm(int rootfd, const char *name);

#endif /* DISAGG_VM_RECOVER_H */
