// SPDX-License-Identifier: MIT
/*
 * Spawn a VM's QEMU: its command line (qemu_argv.c; the network card,
 * vmnet.c, gets its port or tap first), the shim's
 * environment (LD_PRELOAD, the RAM directory, the shim socket, the uffd
 * features), stdout and stderr on DIR/qemu.log, and a pidfd for the
 * supervisor (supervise.c).
 */
#include "launch.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "console.h"
#include "ext.h"
#include "guestchan.h"
#include "hotplug.h"
#include "layout.h"
#include "log.h"
#include "proc.h"
#include "qemu_argv.h"
#include "vmnet.h"

extern char **environ;

/* A socket of the VM's directory: 0, or -ENAMETOOLONG with err saying so. */
static int vm_sock_path(struct vm *vm, const char *leaf, char *ret, char *err, size_t errlen)
{
	int r = qemu_sock_path(vm->dir, leaf, ret);

	if (r < 0)
		snprintf(err, errlen,
			 "the socket path %s/%s is longer than a UNIX socket address holds (%d bytes): use a shorter VM name or --run-dir",
			 vm->dir, leaf, QEMU_SUN_PATH_MAX);
	return r;
}

/* The command line of this VM into a: 0 or -errno (err says why). */
static int build_argv(struct vm *vm, struct qemu_argv *a, char *err, size_t errlen)
{
	char **hp = NULL, **gc = NULL, **net = NULL, **ext[VM_EXT_MAX];
	char chan[QEMU_SUN_PATH_MAX + 1], qmp[QEMU_SUN_PATH_MAX + 1], con[QEMU_SUN_PATH_MAX + 1];
	struct hotplug_config hc;
	unsigned next = 0;
	int r;

	r = vm_sock_path(vm, "guest.sock", chan, err, errlen);
	if (r >= 0)
		r = vm_sock_path(vm, "qmp.sock", qmp, err, errlen);
	if (r >= 0)
		r = vm_sock_path(vm, VM_CONSOLE_SOCK, con, err, errlen);
	if (r < 0)
		return r;
	vm_layout_config(vm, &hc);
	r = hotplug_qemu_args(&hc, &hp);
	if (r < 0) {
		snprintf(err, errlen, "memory arguments: %s", strerror(-r));
		return r;
	}
	r = guestchan_qemu_args("gch", chan, &gc);
	if (r >= 0)
		r = vmnet_qemu_args(&vm->spec.net, &net);
	if (r >= 0)
		r = vm_ext_qemu_args(vm, ext, &next);
	if (r >= 0) {
		struct qemu_argv_config c = {
			.qemu = vm->env.qemu, .name = vm->spec.name, .accel = vm->env.accel,
			.kernel = vm->spec.firmware ? NULL
				  : vm->spec.kernel[0] ? vm->spec.kernel : vm->env.kernel,
			.initrd = !vm->spec.kernel[0] ? vm->env.initrd
				  : vm->spec.initrd[0] ? vm->spec.initrd : NULL,
			.append = vm->spec.append, .vcpus = vm->spec.vcpus,
			.console_path = vm->console_path, .console_sock = con, .qmp_path = qmp,
			.memory = hp, .guest_chan = gc, .net = net, .extra = ext, .nextra = next,
		};

		r = qemu_argv_build(&c, a);
		vm_ext_strv_free(ext, next);
	}
	if (r == -E2BIG)
		snprintf(err, errlen, "the QEMU command line needs more than %d arguments",
			 QEMU_ARGV_MAX);
	else if (r < 0)
		snprintf(err, errlen, "the QEMU command line: %s", strerror(-r));
	hotplug_strv_free(hp);
	guestchan_strv_free(gc);
	hotplug_strv_free(net);
	return r;
}

int vm_spawn_qemu(struct vm *vm, char *err, size_t errlen)
{
	struct qemu_argv *a = calloc(1, sizeof(*a));
	struct qemu_env_config ec = {
		.shim = vm->env.shim, .dir = vm->dir, .sock = vm->shim_path,
		.uffd_features = (unsigned long long)VM_UFFD_FEATURES,
	};
	char **envp = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	sigset_t none, dfl;
	char logpath[PATH_MAX];
	_cleanup_close_ int tapfd = -1;
	int r;
	pid_t pid;

	if (!a)
		return -ENOMEM;
	/* The ssh forward's port or the tap (vmnet.c), in the record once QEMU runs. */
	r = vmnet_prepare(&vm->spec.net, vm->env.ssh_forward_addr, &tapfd, err, errlen);
	if (r >= 0)
		r = build_argv(vm, a, err, errlen);
	if (r >= 0) {
		r = qemu_envp_build(&ec, environ, &envp);
		if (r < 0)
			snprintf(err, errlen, "QEMU's environment: %s", strerror(-r));
	}
	if (r >= 0 && snprintf(logpath, sizeof(logpath), "%s/qemu.log", vm->dir) >=
			      (int)sizeof(logpath)) {
		snprintf(err, errlen, "%s/qemu.log: path too long", vm->dir);
		r = -ENAMETOOLONG;
	}
	if (r < 0) {
		qemu_argv_free(a);
		free(a);
		qemu_envp_free(envp);
		return r;
	}

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (tapfd >= 0)   /* -netdev tap,fd=3 */
		posix_spawn_file_actions_adddup2(&fa, tapfd, VMNET_QEMU_TAP_FD);
	/*
	 * QEMU outlives the agent (a crash, a restart: adopt.c): its own
	 * process group, so that no signal to the agent's process group or
	 * from its terminal (^C, ^\) reaches it; default signal handling and
	 * mask (the agent ignores SIGPIPE); no pipe to the agent; no
	 * parent-death signal. Not its own session: with the kernel's
	 * autogroups (no cgroup CPU controller in use), a new session is a
	 * new scheduling group, and the agent's fault and recall threads
	 * would then compete with each VM as a group rather than thread by
	 * thread (docs/operations.md, "Threads and scheduling"). The price:
	 * a QEMU stopped by job control (SIGSTOP) when its agent exits gets
	 * SIGHUP, as every process group orphaned with a stopped member
	 * does, and quits; disagg never stops QEMU's process (a pause is
	 * QMP's stop).
	 */
	posix_spawnattr_init(&sa);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGHUP);
	posix_spawnattr_setsigmask(&sa, &none);
	posix_spawnattr_setsigdefault(&sa, &dfl);
	posix_spawnattr_setpgroup(&sa, 0);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	r = posix_spawn(&pid, vm->env.qemu, &fa, &sa, a->v, envp);
	posix_spawnattr_destroy(&sa);
	posix_spawn_file_actions_destroy(&fa);
	qemu_argv_free(a);
	free(a);
	qemu_envp_free(envp);
	if (r) {
		snprintf(err, errlen, "cannot start %s: %s", vm->env.qemu, strerror(r));
		return -r;
	}
	vm->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (vm->pidfd < 0) {
		r = -errno;
		snprintf(err, errlen, "pidfd of QEMU %d: %s", (int)pid, strerror(-r));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return r;
	}
	vm->qemu_starttime = proc_starttime(pid);
	/*
	 * Published under the lock, against vm_stop(): a DELETE that came
	 * while the VM started saw no QEMU, marked it stopped and answered;
	 * this QEMU must not run for it.
	 */
	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_STARTING) {
		pthread_mutex_unlock(&vm->lock);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(vm->pidfd);
		vm->pidfd = -1;
		snprintf(err, errlen, "the VM was stopped while it started");
		return -ECANCELED;
	}
	vm->pid = pid;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

void vm_qemu_log_tail(struct vm *vm, char *buf, size_t len)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/qemu.log", vm->dir);
	console_log_tail(path, buf, len);
}

/*
 * Lower every thread of process pid (0: the calling thread) to nice 19.
 * A VM that migrated away is torn down while its guest starts on the
 * destination, often on the same host: its QEMU's exit (unmapping the
 * RAM) and the freeing of its RAM files cost hundreds of ms of CPU that
 * must not compete with the guest. Nice is per thread on Linux, hence the
 * walk over /proc/PID/task. Best effort: a thread that is gone is fine.
 */
void vm_lower_priority(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;

	if (pid <= 0) {
		(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			(void)setpriority(PRIO_PROCESS, (id_t)atoi(de->d_name), 19);
	closedir(d);
}
