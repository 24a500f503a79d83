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
 */
int vm_check_section(struct vm *vm, const struct vm_section *s, char *err, size_t errlen);

#endif /* DISAGG_VM_SECTION_CHECK_H */
