// SPDX-License-Identifier: MIT
/*
 * Spawn a VM's QEMU: its command line (qemu_argv.c), the shim's
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

extern char **environ;

/* The command line of this VM into a: 0 or -errno. */
static int build_argv(struct vm *vm, struct qemu_argv *a)
{
	char **hp = NULL, **gc = NULL, **ext[VM_EXT_MAX], chan[PATH_MAX], qmp[PATH_MAX];
	struct hotplug_config hc;
	unsigned next = 0;
	int r;

	vm_layout_config(vm, &hc);
	r = hotplug_qemu_args(&hc, &hp);
	if (r < 0)
		return r;
	snprintf(chan, sizeof(chan), "%s/guest.sock", vm->dir);
	snprintf(qmp, sizeof(qmp), "%s/qmp.sock", vm->dir);
	r = guestchan_qemu_args("gch", chan, &gc);
	if (r >= 0)
		r = vm_ext_qemu_args(vm, ext, &next);
	if (r >= 0) {
		struct qemu_argv_config c = {
			.qemu = vm->env.qemu, .name = vm->spec.name, .accel = vm->env.accel,
			.kernel = vm->env.kernel, .initrd = vm->env.initrd,
			.append = vm->spec.append, .vcpus = vm->spec.vcpus,
			.console_path = vm->console_path, .qmp_path = qmp,
			.memory = hp, .guest_chan = gc, .extra = ext, .nextra = next,
		};

		r = qemu_argv_build(&c, a);
		vm_ext_strv_free(ext, next);
	}
	hotplug_strv_free(hp);
	guestchan_strv_free(gc);
	return r;
}

int vm_spawn_qemu(struct vm *vm)
{
	struct qemu_argv *a = calloc(1, sizeof(*a));
	char *envp[512];
	char e_pre[PATH_MAX + 16], e_dir[PATH_MAX + 20], e_sock[PATH_MAX + 20], e_feat[64];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	sigset_t none, dfl;
	char logpath[PATH_MAX];
	int n = 0, r;
	pid_t pid;

	if (!a)
		return -ENOMEM;
	r = build_argv(vm, a);
	if (r < 0) {
		qemu_argv_free(a);
		free(a);
		return r;
	}
	snprintf(e_pre, sizeof(e_pre), "LD_PRELOAD=%s", vm->env.shim);
	snprintf(e_dir, sizeof(e_dir), "DISAGG_SHIM_DIR=%s", vm->dir);
	snprintf(e_sock, sizeof(e_sock), "DISAGG_SHIM_SOCK=%s", vm->shim_path);
	snprintf(e_feat, sizeof(e_feat), "DISAGG_SHIM_UFFD_FEATURES=%llu",
		 (unsigned long long)VM_UFFD_FEATURES);
	envp[n++] = e_pre;
	envp[n++] = e_dir;
	envp[n++] = e_sock;
	envp[n++] = e_feat;
	for (char **e = environ; *e && n < (int)ARRAY_SIZE(envp) - 1; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "DISAGG_SHIM_", 12) &&
		    strncmp(*e, "ASAN_", 5) && strncmp(*e, "UBSAN_", 6) && strncmp(*e, "LSAN_", 5))
			envp[n++] = *e;
	envp[n] = NULL;

	snprintf(logpath, sizeof(logpath), "%s/qemu.log", vm->dir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	/*
	 * QEMU outlives the agent (a crash, a restart: adopt.c): its own
	 * session, so that no signal to the agent's process group or terminal
	 * reaches it; default signal handling and mask (the agent ignores
	 * SIGPIPE); no pipe to the agent; no parent-death signal.
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
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	r = posix_spawn(&pid, vm->env.qemu, &fa, &sa, a->v, envp);
	posix_spawnattr_destroy(&sa);
	posix_spawn_file_actions_destroy(&fa);
	qemu_argv_free(a);
	free(a);
	if (r)
		return -r;
	vm->pid = pid;
	vm->qemu_starttime = proc_starttime(pid);
	vm->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (vm->pidfd < 0) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		vm->pid = 0;
		return r;
	}
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
