/* SPDX-License-Identifier: MIT */
/*
 * The QEMU process of a VM: spawned with the shim preloaded, in its own
 * session (it outlives the agent), watched through a pidfd.
 */
#ifndef DISAGG_VM_LAUNCH_H
#define DISAGG_VM_LAUNCH_H

#include <stddef.h>

#include "uffd_compat.h"
#include "vm_internal.h"

/* What the shim must ask of UFFDIO_API for the pager's sync-WP mode. */
#define VM_UFFD_FEATURES                                                                   \
	(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |                    \
	 UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_THREAD_ID)

/*
 * Build the command line (qemu_argv.c: memory layout, guest channel,
 * features' arguments) and the environment, and spawn QEMU: vm->pid,
 * vm->pidfd and vm->qemu_starttime set. -E2BIG: the command line does not
 * fit; -ENAMETOOLONG: a socket path does not; err says which.
 */
int vm_spawn_qemu(struct vm *vm, char *err, size_t errlen);
/* The tail of DIR/qemu.log on one line. */
void vm_qemu_log_tail(struct vm *vm, char *buf, size_t len);
void vm_lower_priority(pid_t pid);   /* nice 19 for all its threads; 0: the calling thread */

#endif /* DISAGG_VM_LAUNCH_H */
