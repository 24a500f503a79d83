// SPDX-License-Identifier: MIT
/*
 * The QEMU command-line builder: machine and CPU, the RAM (hotplug.c's
 * arguments), the guest image, the serial console (a socket for input and
 * a log file), the guest channel, the network card, QMP, and whatever the features add (an incoming migration's
 * -incoming and DIMMs). The first argument that does not fit fails the
 * whole build. And its environment: the shim's variables and the agent's
 * own, all of them.
 */
#include "qemu_argv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hotplug.h"
#include "log.h"

int qemu_argv_add(struct qemu_argv *a, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (a->err)
		return a->err;
	if (a->n >= QEMU_ARGV_MAX) {
		a->err = -E2BIG;
		return a->err;
	}
	va_start(ap, fmt);
	r = vasprintf(&a->v[a->n], fmt, ap);
	va_end(ap);
	if (r < 0) {
		a->v[a->n] = NULL;
		a->err = -ENOMEM;
		return a->err;
	}
	a->n++;
	return 0;
}

int qemu_argv_add_strv(struct qemu_argv *a, char **v)
{
	for (; v && *v; v++)
		if (qemu_argv_add(a, "%s", *v) < 0)
			return a->err;
	return a->err;
}

int qemu_argv_build(const struct qemu_argv_config *c, struct qemu_argv *a)
{
	qemu_argv_add(a, "%s", c->qemu);
	qemu_argv_add(a, "-name");
	qemu_argv_add(a, "guest=%s,debug-threads=on", c->name);
	qemu_argv_add(a, "-machine");
	qemu_argv_add(a, "pc,accel=%s", c->accel);
	qemu_argv_add(a, "-cpu");
	qemu_argv_add(a, "%s", strcmp(c->accel, "kvm") == 0 ? "host" : "max");
	/*
	 * maxcpus >= 2: under TCG a guest that may have one CPU only does not
	 * make LOCK-prefixed instructions atomic against other processes, and
	 * a shared region's users need exactly that (FACTS, docs/sharing.md).
	 */
	qemu_argv_add(a, "-smp");
	qemu_argv_add(a, "%u,maxcpus=%u", c->vcpus, MAX(c->vcpus, 2u));
	qemu_argv_add_strv(a, c->memory);      /* -m, boot RAM on its file, the virtio-mem device */
	if (c->kernel) {          /* NULL: the firmware boots the first disk */
		qemu_argv_add(a, "-kernel");
		qemu_argv_add(a, "%s", c->kernel);
		if (c->initrd) {
			qemu_argv_add(a, "-initrd");
			qemu_argv_add(a, "%s", c->initrd);
		}
		qemu_argv_add(a, "-append");
		qemu_argv_add(a, "console=ttyS0 memhp_default_state=online_movable panic=1 %s",
			      c->append);
	}
	qemu_argv_add(a, "-nodefaults");
	qemu_argv_add(a, "-display");
	qemu_argv_add(a, "none");
	qemu_argv_add(a, "-chardev");
	/*
	 * With a socket, the log file still gets every byte the guest writes,
	 * with or without a client (docs/compute.md, "The serial console").
	 */
	if (c->console_sock)
		qemu_argv_add(a, "socket,id=con,path=%s,server=on,wait=off,logfile=%s",
			      c->console_sock, c->console_path);
	else
		qemu_argv_add(a, "file,id=con,path=%s", c->console_path);
	qemu_argv_add(a, "-serial");
	qemu_argv_add(a, "chardev:con");
	qemu_argv_add_strv(a, c->guest_chan);  /* virtio-serial port org.disagg.guest on guest.sock */
	qemu_argv_add_strv(a, c->net);         /* the network card (vmnet.c), or nothing */
	qemu_argv_add(a, "-qmp");
	qemu_argv_add(a, "unix:%s,server=on,wait=off", c->qmp_path);
	qemu_argv_add(a, "-no-reboot");
	for (unsigned i = 0; i < c->nextra; i++)
		qemu_argv_add_strv(a, c->extra[i]);   /* incoming VM: -incoming defer, the source's DIMMs */
	a->v[a->n] = NULL;
	if (a->err == -E2BIG)
		log_error("vm %s: the QEMU command line needs more than %d arguments: "
			  "not starting a QEMU without some of them", c->name, QEMU_ARGV_MAX);
	return a->err;
}

void qemu_argv_free(struct qemu_argv *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

int qemu_sock_path(const char *dir, const char *leaf, char *ret)
{
	int n = snprintf(ret, QEMU_SUN_PATH_MAX + 1, "%s/%s", dir, leaf);

	return n < 0 || n > QEMU_SUN_PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Not passed on to QEMU: the shim's own variables come from the config. */
static bool env_dropped(const char *e)
{
	static const char *const prefixes[] = { "LD_PRELOAD=", "DISAGG_SHIM_", "ASAN_",
						"UBSAN_", "LSAN_" };

	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (strncmp(e, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

/* A NULL-terminated vector of malloc'd strings, as the hotplug arguments are. */
void qemu_envp_free(char **envp)
{
	hotplug_strv_free(envp);
}

int qemu_envp_build(const struct qemu_env_config *c, char *const *env, char ***ret)
{
	size_t n = 0, k = 0;
	char **v;
	int r = 0;

	if (strlen(c->sock) > QEMU_SUN_PATH_MAX)
		return -ENAMETOOLONG;
	for (char *const *e = env; e && *e; e++)
		n++;
	v = calloc(n + 5, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (asprintf(&v[k++], "LD_PRELOAD=%s", c->shim) < 0 ||
	    asprintf(&v[k++], "DISAGG_SHIM_DIR=%s", c->dir) < 0 ||
	    asprintf(&v[k++], "DISAGG_SHIM_SOCK=%s", c->sock) < 0 ||
	    asprintf(&v[k++], "DISAGG_SHIM_UFFD_FEATURES=%llu", c->uffd_features) < 0) {
		v[k - 1] = NULL;
		r = -ENOMEM;
	}
	for (char *const *e = env; r == 0 && e && *e; e++) {
		if (env_dropped(*e))
			continue;
		v[k] = strdup(*e);
		if (!v[k++])
			r = -ENOMEM;
	}
	if (r < 0) {
		qemu_envp_free(v);
		return r;
	}
	*ret = v;
	return 0;
}
