/* SPDX-License-Identifier: MIT */
/*
 * Section health: is a remote section usable before the guest touches it?
 */
#ifndef DISAGG_VM_SECTION_CHECK_H
#define DISAGG_VM_SECTION_CHECK_H

#include <stddef.h>

#include "vm_internal.h"

/*
 * The grant names this node, its memory node answers and is the one the
 * grant names, and a one-page READ with the grant succeeds. 0 (also for a
 * local section); -EINVAL for a rejected grant (bad input); an
 * unreachable node keeps its errno. err says why.
 *
 * The connection to each memory node is kept for the VM's next check
 * (VM_CHECK_CONNS of them), so that a slot of many sections, an incoming
 * migration or a hot-add does not open one TLS session a section; a kept
 * connection that broke meanwhile is opened again once.
 */
int vm_check_section(struct vm *vm, const struct vm_section *s, char *err, size_t errlen);
/*
 * Close the kept connections (the VM goes away; again when it is freed).
 * Without wait, nothing happens while a check runs (a DELETE during the
 * VM's start must not wait for its memory nodes): the last reference
 * closes them.
 */
void vm_check_close(struct vm *vm, bool wait);

#endif /* DISAGG_VM_SECTION_CHECK_H */
