/* SPDX-License-Identifier: MIT */
/*
 * The guest channel of a VM (vm->guest).
 */
#ifndef DISAGG_VM_GUEST_H
#define DISAGG_VM_GUEST_H

#include <stddef.h>

#include "vm_internal.h"

/*
 * Connect DIR/guest.sock and wait for the guest's READY (its MemTotal):
 * 0, the pager's failure if it failed meanwhile, or -errno.
 */
int vm_guest_connect(struct vm *vm);
void vm_guest_close(struct vm *vm);
/* Send one command line to disagg-guest and get its "OK ..." answer (-ESRCH: not running). */
int vm_guest_cmd(struct vm *vm, const char *cmd, int timeout_ms, char *ret, size_t len);

#endif /* DISAGG_VM_GUEST_H */
