// SPDX-License-Identifier: MIT
/*
 * Holder tags of strict regions (dirtag.c). The coherence directory on a
 * region's home memory node knows its holders as (compute node, tag)
 * (docs/protocol.md, "Coherence directory"): every strict region attached
 * to a VM of this agent gets a tag of its own, so that two VMs of one
 * compute node are two holders and a recall meant for one never reaches
 * the other. Tags are unique in the agent process while they are held.
 */
#ifndef DISAGG_VM_DIRTAG_H
#define DISAGG_VM_DIRTAG_H

#include "vm_internal.h"

/* Give strict region s a tag (on every section): 0, or -EUSERS (none free). */
int vm_dirtag_take(struct vm_shared *s);
/*
 * The same, tag `want` if it is free (the one s had before the agent
 * restarted: the directory knows its holder by it), else another.
 */
int vm_dirtag_take_again(struct vm_shared *s, uint16_t want);
/* Let s's tag go (no-op without one). */
void vm_dirtag_give(struct vm_shared *s);

#endif /* DISAGG_VM_DIRTAG_H */
