// SPDX-License-Identifier: MIT
/*
 * Unit test of the QEMU command-line builder (src/compute/vm/qemu_argv.c):
 * the order and spelling of a VM's arguments, an incoming VM with 256
 * DIMMs (the largest command line the agent makes) fitting, and the
 * overflow path: one argument past QEMU_ARGV_MAX fails the whole build
 * with -E2BIG instead of starting a QEMU without it. And the environment
 * builder: every variable of a large environment is passed on (none
 * dropped), the shim's own are set and the preload and sanitizer options
 * of the agent are not; a socket path too long for a UNIX socket address
 * is refused (-ENAMETOOLONG), never cut.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_argv.h"
#include "tap.h"

static char *memory[] = { "-m", "256M,slots=4,maxmem=1G", "-object",
			  "memory-backend-file,id=ram-base,mem-path=/run/x/ram-base,size=256M,share=on",
			  "-machine", "memory-backend=ram-base", NULL };
static char *chan[] = { "-device", "virtio-serial", "-chardev", "socket,id=gch,path=/g",
			"-device", "virtserialport,chardev=gch,name=org.disagg.guest", NULL };

static char *net[] = { "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0", NULL };

static struct qemu_argv_config config(char **const *extra, unsigned nextra, const char *accel)
{
	return (struct qemu_argv_config){
		.qemu = "/usr/bin/qemu-system-x86_64", .name = "web", .accel = accel,
		.kernel = "/k", .initrd = "/i", .append = "quiet", .vcpus = 2,
		.console_path = "/run/x/console.log", .qmp_path = "/run/x/qmp.sock",
		.memory = memory, .guest_chan = chan, .extra = extra, .nextra = nextra,
	};
}

static int find(const struct qemu_argv *a, const char *s)
{
	for (int i = 0; i < a->n; i++)
		if (!strcmp(a->v[i], s))
			return i;
	return -1;
}

/* A vector of n copies of "-x" (freed by the caller with free_strv). */
static char **strv_of(unsigned n)
{
	char **v = calloc(n + 1, sizeof(*v));

	for (unsigned i = 0; v && i < n; i++)
		v[i] = (char *)"-x";
	return v;
}

static void test_order(void)
{
	static char *incoming[] = { "-incoming", "defer", NULL };
	char **const extra[] = { incoming };
	struct qemu_argv_config c = config(extra, 1, "tcg");
	struct qemu_argv *a = calloc(1, sizeof(*a));
	int i;

	is(qemu_argv_build(&c, a), 0, "a VM's command line builds");
	is_str(a->v[0], "/usr/bin/qemu-system-x86_64", "QEMU first");
	ok(a->v[a->n] == NULL, "NULL-terminated");
	i = find(a, "-machine");
	ok(i > 0 && !strcmp(a->v[i + 1], "pc,accel=tcg"), "-machine pc,accel=tcg");
	i = find(a, "-cpu");
	ok(i > 0 && !strcmp(a->v[i + 1], "max"), "TCG: -cpu max");
	i = find(a, "-name");
	ok(i > 0 && !strcmp(a->v[i + 1], "guest=web,debug-threads=on"), "-name guest=web");
	i = find(a, "-smp");
	ok(i > 0 && !strcmp(a->v[i + 1], "2,maxcpus=2"), "-smp 2,maxcpus=2");
	ok(find(a, "-m") > find(a, "-smp") && find(a, "-kernel") > find(a, "-m"),
	   "the memory arguments between -smp and -kernel");
	i = find(a, "-append");
	ok(i > 0 && !strcmp(a->v[i + 1],
			    "console=ttyS0 memhp_default_state=online_movable panic=1 quiet"),
	   "the kernel command line ends with the VM's own");
	ok(find(a, "file,id=con,path=/run/x/console.log") > 0, "the serial console on its file");
	ok(find(a, "virtserialport,chardev=gch,name=org.disagg.guest") > 0, "the guest channel");
	i = find(a, "-qmp");
	ok(i > 0 && !strcmp(a->v[i + 1], "unix:/run/x/qmp.sock,server=on,wait=off"), "QMP");
	ok(find(a, "-no-reboot") > 0, "-no-reboot");
	ok(a->n >= 2 && !strcmp(a->v[a->n - 2], "-incoming") && !strcmp(a->v[a->n - 1], "defer"),
	   "the features' arguments last");
	qemu_argv_free(a);
	memset(a, 0, sizeof(*a));
	c = config(NULL, 0, "tcg");
	c.console_sock = "/run/x/con.sock";
	c.net = net;
	is(qemu_argv_build(&c, a), 0, "with a console socket and a network card");
	ok(find(a, "socket,id=con,path=/run/x/con.sock,server=on,wait=off,"
		   "logfile=/run/x/console.log") > 0, "the serial console on its socket, logged");
	ok(find(a, "virtio-net-pci,netdev=net0") > find(a, "virtserialport,chardev=gch,name=org.disagg.guest"),
	   "the card after the guest channel");
	qemu_argv_free(a);
	memset(a, 0, sizeof(*a));
	c = config(NULL, 0, "kvm");
	is(qemu_argv_build(&c, a), 0, "KVM builds");
	i = find(a, "-cpu");
	ok(i > 0 && !strcmp(a->v[i + 1], "host"), "KVM: -cpu host");
	qemu_argv_free(a);
	free(a);
}

static void test_overflow(void)
{
	struct qemu_argv *a = calloc(1, sizeof(*a));
	struct qemu_argv_config c = config(NULL, 0, "tcg");
	char **fill, **dimms;
	int base;

	qemu_argv_build(&c, a);
	base = a->n;
	qemu_argv_free(a);
	diag("a VM without features: %d arguments", base);

	/* An incoming VM with 256 DIMMs: -object/-device pairs, 4 strings each. */
	dimms = strv_of(2 + 4 * 256);
	{
		char **const extra[] = { dimms };

		memset(a, 0, sizeof(*a));
		c = config(extra, 1, "tcg");
		is(qemu_argv_build(&c, a), 0, "256 DIMMs on an incoming VM's command line fit");
		qemu_argv_free(a);
	}
	free(dimms);

	fill = strv_of((unsigned)(QEMU_ARGV_MAX - base));
	{
		char **const extra[] = { fill };

		memset(a, 0, sizeof(*a));
		c = config(extra, 1, "tcg");
		is(qemu_argv_build(&c, a), 0, "exactly QEMU_ARGV_MAX arguments fit");
		is(a->n, QEMU_ARGV_MAX, "all of them are there");
		ok(a->v[a->n] == NULL, "and NULL-terminated");
		qemu_argv_free(a);
	}
	free(fill);

	fill = strv_of((unsigned)(QEMU_ARGV_MAX - base + 1));
	{
		char **const extra[] = { fill };

		memset(a, 0, sizeof(*a));
		c = config(extra, 1, "tcg");
		is(qemu_argv_build(&c, a), -E2BIG, "one argument more: -E2BIG, not a shorter command line");
		is(a->err, -E2BIG, "the error is recorded");
		ok(a->n <= QEMU_ARGV_MAX && a->v[a->n] == NULL, "never written past the array");
		is(qemu_argv_add(a, "-late"), -E2BIG, "the error is sticky: nothing is added after it");
		qemu_argv_free(a);
	}
	free(fill);

	fill = strv_of(5000);
	{
		char **const extra[] = { fill, fill };

		memset(a, 0, sizeof(*a));
		c = config(extra, 2, "tcg");
		is(qemu_argv_build(&c, a), -E2BIG, "far too many arguments: -E2BIG");
		qemu_argv_free(a);
	}
	free(fill);
	free(a);
}

/* How many entries of envp start with prefix. */
static int count_prefix(char **envp, const char *prefix)
{
	int n = 0;

	for (char **e = envp; *e; e++)
		n += strncmp(*e, prefix, strlen(prefix)) == 0;
	return n;
}

static void test_envp(void)
{
	enum { NVARS = 3000 };
	struct qemu_env_config c = { .shim = "/usr/lib/disagg/libdisagg-shim.so",
				     .dir = "/run/disagg-compute/web", .sock =
				     "/run/disagg-compute/web/shim.sock", .uffd_features = 77 };
	char **env = calloc(NVARS + 4, sizeof(*env)), **envp = NULL, sock[QEMU_SUN_PATH_MAX + 1];
	char longdir[200];
	int n = 0, i;

	for (i = 0; i < NVARS; i++)
		if (asprintf(&env[n++], "VAR%d=%d", i, i) < 0)
			abort();
	env[n++] = strdup("LD_PRELOAD=/evil.so");
	env[n++] = strdup("ASAN_OPTIONS=x");
	env[n++] = strdup("DISAGG_SHIM_DIR=/elsewhere");
	is(qemu_envp_build(&c, env, &envp), 0, "an environment of 3000 variables builds");
	is(count_prefix(envp, "VAR"), NVARS, "every one of them is passed on");
	ok(!strcmp(envp[0], "LD_PRELOAD=/usr/lib/disagg/libdisagg-shim.so"), "the shim preloaded");
	is(count_prefix(envp, "LD_PRELOAD="), 1, "the agent's own LD_PRELOAD is not");
	is(count_prefix(envp, "ASAN_"), 0, "nor its sanitizer options");
	is(count_prefix(envp, "DISAGG_SHIM_DIR=/run/disagg-compute/web"), 1, "the shim's directory");
	is(count_prefix(envp, "DISAGG_SHIM_DIR="), 1, "and no other");
	is(count_prefix(envp, "DISAGG_SHIM_UFFD_FEATURES=77"), 1, "the uffd features");
	qemu_envp_free(envp);

	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	c.sock = longdir;
	envp = NULL;
	is(qemu_envp_build(&c, env, &envp), -ENAMETOOLONG,
	   "a shim socket path over 107 bytes: -ENAMETOOLONG");
	ok(envp == NULL, "and no environment");

	longdir[107 - strlen("/qmp.sock")] = '\0';
	is(qemu_sock_path(longdir, "qmp.sock", sock), 0, "a socket path of 107 bytes fits");
	is((int)strlen(sock), 107, "whole");
	longdir[107 - strlen("/qmp.sock")] = 'd';
	longdir[108 - strlen("/qmp.sock")] = '\0';
	is(qemu_sock_path(longdir, "qmp.sock", sock), -ENAMETOOLONG,
	   "one byte more: -ENAMETOOLONG, not a shorter path");
	for (i = 0; i < n; i++)
		free(env[i]);
	free(env);
}

int main(void)
{
	test_order();
	test_overflow();
	test_envp();
	done_testing();
	return tap_exit();
}
