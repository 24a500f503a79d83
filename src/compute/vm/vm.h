/* SPDX-License-Identifier: MIT */
/*
 * One virtual machine supervised by the compute agent: its lifecycle.
 *
 * A VM is a stock QEMU process with libdisagg-shim.so preloaded. Its RAM is
 * a set of tmpfs files in the VM's run directory: the boot RAM ("base", a
 * whole number of sections) and one file per hot-plugged section (pc-dimm
 * mode) or one file for the virtio-mem device. The shim hands every mapping
 * of those files to the agent, which serves its faults with the VM's pager
 * according to the section map: each section is local, or remote on a
 * memory node with a grant.
 *
 * Lifecycle: vm_new (validate, create the run directory) -> vm_start
 * (pager, shim socket, QEMU, QMP, guest channel) -> running -> vm_stop or an
 * unexpected exit (state "failed", reason recorded) -> vm_free. A
 * supervisor thread watches QEMU through a pidfd; when QEMU dies, the pager,
 * files and sections are released. QEMU outlives the agent: every change
 * is recorded in the run directory (persist.c), vm_detach lets go of a
 * running VM at exit, and the next agent adopts it (recover.h).
 *
 * The layers below (this directory) and the features above
 * (src/compute/vm_*.c) declare their own functions in their own headers;
 * docs/compute.md shows which file owns which step.
 *
 * All entry points are thread-safe (one mutex per VM).
 */
#ifndef DISAGG_VM_H
#define DISAGG_VM_H

#include <stddef.h>

#include "vm_types.h"

struct strbuf;

/*
 * Validate the spec and make the VM's directory (RUN_DIR/NAME, or NAME.N):
 * -EINVAL, -ENOTSUP (the run directory is not on tmpfs), -ENAMETOOLONG
 * (its path, or the path of a socket in it, would be too long), -errno.
 */
int vm_new(const struct vm_env *env, const struct vm_spec *spec, struct vm **ret);
/*
 * The longest VM name that run_root surely leaves room for: the sockets of
 * RUN_ROOT/NAME.NN must fit a UNIX socket address. 0: none at all.
 */
size_t vm_name_room(const char *run_root);
int vm_start(struct vm *vm, char *err, size_t errlen);
/* Graceful stop (ACPI powerdown, then quit, then SIGKILL). */
int vm_stop(struct vm *vm, int timeout_ms);
/* Close the memory-node connections its section checks keep, unless a check runs. */
void vm_close_checks(struct vm *vm);
/* Stop if needed and free everything. Accepts NULL. */
void vm_free(struct vm *vm);
/*
 * References: vm_new returns one. Whoever uses a VM found in a shared
 * table takes one (vm_ref) and drops it (vm_unref); the last vm_unref
 * calls vm_free.
 */
struct vm *vm_ref(struct vm *vm);
void vm_unref(struct vm *vm);
/* A VM with nothing yet: one reference, fds -1, no region (vm_new, recovery). */
struct vm *vm_alloc(const struct vm_env *env);
/*
 * At agent exit, instead of vm_free for a running VM that must keep
 * running: record it, stop serving it (its faults wait for the next
 * agent), close everything, free the struct. QEMU and the VM's files stay.
 */
void vm_detach(struct vm *vm);

int vm_set_budget(struct vm *vm, uint64_t bytes);
int vm_flush(struct vm *vm);

/* Status as JSON (new reference). */
json_t *vm_status(struct vm *vm);
/* Prometheus text of the VM's pager. */
void vm_render_metrics(struct vm *vm, struct strbuf *sb);
/* DIR/qmp.sock (kept in the VM). */
const char *vm_qmp_path(struct vm *vm);

#endif /* DISAGG_VM_H */
