/* SPDX-License-Identifier: MIT */
/*
 * The agent's own mappings of a VM's guest RAM (vm_guestmem.c): the
 * vhost-user back ends of its disks map the RAM files QEMU hands them, and
 * each such mapping is served by the VM's pager as an alias of QEMU's
 * (pager alias.h). So a disk write of a page that is still on a memory
 * node sends its data, never zeros, and a disk read into guest memory is a
 * write the pager sees (dirty, written back, never dropped by eviction).
 *
 * A region the pager does not serve (not RAM of this VM) is kept but never
 * touched: a request whose buffers point there fails with an I/O error.
 */
#ifndef DISAGG_VM_GUESTMEM_H
#define DISAGG_VM_GUESTMEM_H

#include "vu_mem.h"

/* vu_mem_ops for a disk of vm (opaque: the struct vm). */
extern const struct vu_mem_ops vm_guestmem_ops;

#endif /* DISAGG_VM_GUESTMEM_H */
