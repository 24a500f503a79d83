/* SPDX-License-Identifier: MIT */
/*
 * The QEMU command line of a VM. Pure: the caller gathers the pieces
 * (launch.c), this puts them in order. A command line that does not fit
 * fails loudly (-E2BIG, logged), never silently shortened: a missing
 * -device of an incoming migration's DIMM would otherwise only show as a
 * migration QEMU refuses (tests/vm_layers/test_qemu_argv.c).
 */
#ifndef DISAGG_VM_QEMU_ARGV_H
#define DISAGG_VM_QEMU_ARGV_H

#include "macro.h"

#define QEMU_ARGV_MAX 1200            /* up to 256 DIMMs on an incoming VM's command line */

struct qemu_argv {
	char *v[QEMU_ARGV_MAX + 1];   /* NULL-terminated once built */
	int n;
	int err;                      /* the first failure (-E2BIG, -ENOMEM), sticky */
};

/* What goes on a VM's command line. The vectors are NULL-terminated; NULL: none. */
struct qemu_argv_config {
	const char *qemu, *name, *accel, *kernel, *initrd, *append;
	unsigned vcpus;
	const char *console_path;     /* the serial console's file */
	const char *qmp_path;         /* QMP's socket */
	char **memory;                /* -m, the RAM backends and devices (hotplug.c) */
	char **guest_chan;            /* the guest channel's virtio-serial port (guestchan.c) */
	char **const *extra;          /* nextra more vectors (features: ext.h) */
	unsigned nextra;
};

/* Append one argument (printf). Sets a->err and returns it when full (-E2BIG) or out of memory. */
int qemu_argv_add(struct qemu_argv *a, const char *fmt, ...) _printf_(2, 3);
/* Append every string of a NULL-terminated vector (NULL: none). */
int qemu_argv_add_strv(struct qemu_argv *a, char **v);
/*
 * The whole command line into a (zeroed by the caller), NULL-terminated:
 * 0, or a->err (-E2BIG: more than QEMU_ARGV_MAX arguments, logged).
 * a is freed with qemu_argv_free either way.
 */
int qemu_argv_build(const struct qemu_argv_config *c, struct qemu_argv *a);
void qemu_argv_free(struct qemu_argv *a);

#endif /* DISAGG_VM_QEMU_ARGV_H */
