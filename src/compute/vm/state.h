/* SPDX-License-Identifier: MIT */
/*
 * A VM's state as everyone reads it: names, waiting for a state, the
 * failure reason. The lowest layer of the supervisor (no calls to any
 * other); every layer and feature records a failure with vm_set_failed.
 */
#ifndef DISAGG_VM_STATE_H
#define DISAGG_VM_STATE_H

#include "macro.h"
#include "vm_internal.h"

const char *vm_name(const struct vm *vm);
enum vm_state vm_get_state(struct vm *vm);
const char *vm_state_name(enum vm_state s);
int vm_state_parse(const char *name, enum vm_state *ret);   /* -EINVAL: unknown */
/*
 * Wait until the VM is in state `want`, or in one it cannot leave by
 * itself (stopped, failed, migrated), or timeout_ms passed: the state then.
 */
enum vm_state vm_wait_state(struct vm *vm, enum vm_state want, int timeout_ms);
/* {"name", "state"[, "reason"]}: the VM in brief (new reference). */
json_t *vm_brief(struct vm *vm);
/* The serial console log path. */
const char *vm_console_path(const struct vm *vm);
/* State failed with the reason; tells env.on_state. Lock held. */
void vm_set_failed(struct vm *vm, const char *fmt, ...) _printf_(2, 3);

#endif /* DISAGG_VM_STATE_H */
