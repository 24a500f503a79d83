/* SPDX-License-Identifier: MIT */
/*
 * Features above the VM lifecycle that must hear of its steps. The
 * supervisor (this directory) never calls a feature (src/compute/vm_*.c)
 * by name: a feature that needs a hook registers an ops table once at
 * startup (main.c, before any VM exists), and the lifecycle calls every
 * registered table at that step. Today that is compute migration: the
 * incoming side adds QEMU arguments (vm_incoming.c), the migration record
 * hears the guest channel, adds status fields and is freed with the VM
 * (vm_migrate.c). Disks (vm_disk.c) keep their part of the VM record
 * with vm_ext_record_set and take it back at adoption. CPU placement
 * (vm_cpus.c) pins QEMU's threads once QMP answers.
 */
#ifndef DISAGG_VM_EXT_H
#define DISAGG_VM_EXT_H

#include "vm_internal.h"

#define VM_EXT_MAX 8

/* Every hook may be NULL. */
struct vm_ext_ops {
	const char *name;
	/*
	 * More QEMU arguments (*ret_argv: a NULL-terminated vector of
	 * malloc'ed strings, or NULL for none), before QEMU is spawned.
	 */
	int (*qemu_args)(struct vm *vm, char ***ret_argv);
	/*
	 * QMP is connected, before the guest channel (vm_start, adoption):
	 * QEMU's threads exist. < 0, with err, fails the start or adoption.
	 */
	int (*qmp_ready)(struct vm *vm, char *err, size_t errlen);
	/* The guest channel is connected (vm_start, adoption). */
	void (*guest_attached)(struct vm *vm);
	/* Add fields to vm_status's answer (lock not held). */
	void (*status)(struct vm *vm, json_t *j);
	/* First thing in vm_free and vm_detach: stop its threads, free its state. */
	void (*free)(struct vm *vm);
	/*
	 * Adoption (adopt.c): rebuild the feature's state from the record
	 * `rec` (vm.json as loaded), once the pager serves the VM's RAM again
	 * and before QMP is reconnected. < 0, with err, stops the adoption.
	 */
	int (*adopt)(struct vm *vm, json_t *rec, char *err, size_t errlen);
};

/* At startup, before any VM: 0, -ENOSPC (more than VM_EXT_MAX), -EEXIST (twice). */
int vm_ext_register(const struct vm_ext_ops *ops);
/* Every registered table's qemu_args, in order of registration (ret: nret vectors). */
int vm_ext_qemu_args(struct vm *vm, char **ret[VM_EXT_MAX], unsigned *ret_n);
void vm_ext_strv_free(char **ret[VM_EXT_MAX], unsigned n);
/* Every registered table's qmp_ready, in order: the first error stops it. */
int vm_ext_qmp_ready(struct vm *vm, char *err, size_t errlen);
void vm_ext_guest_attached(struct vm *vm);
void vm_ext_status(struct vm *vm, json_t *j);
void vm_ext_free(struct vm *vm);
int vm_ext_adopt(struct vm *vm, json_t *rec, char *err, size_t errlen);

/*
 * A feature's part of the VM record: member `key` of vm.json becomes v
 * (taken; NULL removes it). Written to disk with the next vm_persist.
 * Lock held.
 */
void vm_ext_record_set(struct vm *vm, const char *key, json_t *v);
/* Every member set above into rec (persist.c; lock held). */
void vm_ext_record_put(struct vm *vm, json_t *rec);

#endif /* DISAGG_VM_EXT_H */
