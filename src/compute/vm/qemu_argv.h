/* SPDX-License-Identifier: MIT */
/*
 * The QEMU command line and environment of a VM. Pure: the caller gathers the pieces
 * (launch.c), this puts them in order. A command line that does not fit
 * fails loudly (-E2BIG, logged), never silently shortened: a missing
 * -device of an incoming migration's DIMM would otherwise only show as a
 * migration QEMU refuses (tests/vm_layers/test_qemu_argv.c). The
 * environment is the agent's with the shim's variables in front: every
 * variable is kept (none dropped for want of room), and a UNIX socket path
 * that does not fit a socket address fails (-ENAMETOOLONG) instead of
 * being cut.
 */
#ifndef DISAGG_VM_QEMU_ARGV_H
#define DISAGG_VM_QEMU_ARGV_H

#include <stddef.h>

#include "macro.h"

#define QEMU_SUN_PATH_MAX 107         /* bytes of a UNIX socket path (sun_path less its NUL) */

#define QEMU_ARGV_MAX 1200            /* up to 256 DIMMs on an incoming VM's command line */

struct qemu_argv {
	char *v[QEMU_ARGV_MAX + 1];   /* NULL-terminated once built */
	int n;
	int err;                      /* the first failure (-E2BIG, -ENOMEM), sticky */
};

/* What goes on a VM's command line. The vectors are NULL-terminated; NULL: none. */
struct qemu_argv_config {
	const char *qemu, *name, *accel, *kernel, *initrd, *append;   /* kernel NULL: firmware boot */
	unsigned vcpus;
	const char *console_path;     /* the serial console's file */
	const char *console_sock;     /* its socket for input (NULL: the file only) */
	const char *qmp_path;         /* QMP's socket */
	char **memory;                /* -m, the RAM backends and devices (hotplug.c) */
	char **guest_chan;            /* the guest channel's virtio-serial port (guestchan.c) */
	char **net;                   /* the network card (vmnet.c) */
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

/* What the shim in QEMU needs: LD_PRELOAD and its DISAGG_SHIM_* variables. */
struct qemu_env_config {
	const char *shim;             /* libdisagg-shim.so */
	const char *dir;              /* the VM's directory (the RAM files) */
	const char *sock;             /* the shim socket */
	unsigned long long uffd_features;
};

/*
 * QEMU's environment into *ret (NULL-terminated, free with
 * qemu_envp_free): the shim's variables, then every variable of `env`
 * except LD_PRELOAD, DISAGG_SHIM_* and the sanitizers' options. 0, -ENOMEM,
 * or -ENAMETOOLONG when sock does not fit a UNIX socket address.
 */
int qemu_envp_build(const struct qemu_env_config *c, char *const *env, char ***ret);
void qemu_envp_free(char **envp);   /* accepts NULL */
/* "DIR/LEAF" into ret (QEMU_SUN_PATH_MAX + 1 bytes): 0, or -ENAMETOOLONG. */
int qemu_sock_path(const char *dir, const char *leaf, char *ret);

#endif /* DISAGG_VM_QEMU_ARGV_H */
