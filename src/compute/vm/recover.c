// SPDX-License-Identifier: MIT
/*
 * What an earlier instance of the agent left in its run directory, at
 * start: VMs to adopt and VMs to clean up (recover.h, vm_recover).
 *
 * The run directory is this agent's (rundir.c: same cluster, same node,
 * nobody else running on it), so every VM directory in it was made by
 * this agent or an earlier instance of it, and every QEMU whose QMP socket
 * is in one of them was started by one of them. For each VM directory
 * (one with a record, vm.json, or with shim.sock and qemu.log):
 *   - a record in state "running" whose QEMU still runs (the recorded pid,
 *     with the recorded start time, and a command line naming this
 *     directory's QMP socket) is adopted (adopt.c); if that fails, its
 *     QEMU is stopped;
 *   - a record in another state (starting, stopping, incoming, migrated,
 *     failed) with its QEMU running: that QEMU is stopped;
 *   - a record whose QEMU is gone: nothing runs;
 *   - no record (an older agent, or one that died before QEMU started) or
 *     an unreadable one: any QEMU of that directory is stopped;
 * and then the directory is removed. Sections are never freed here: the
 * control plane still has them and decides. Nothing outside VM
 * directories is touched.
 */
#include "recover.h"
#include "vm_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "adopt.h"
#include "log.h"
#include "net.h"
#include "persist.h"
#include "proc.h"
#include "sections.h"
#include "state.h"
#include "vm.h"

/*
 * Does process pid look like the QEMU of VM directory dir? It has
 * "-qmp unix:DIR/qmp.sock,..." on its command line.
 */
static bool qemu_of(pid_t pid, const char *dir)
{
	char path[64], buf[8192], want[PATH_MAX + 32];
	const char *base;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	base = strrchr(buf, '/');
	if (strncmp(base ? base + 1 : buf, "qemu", 4) != 0)
		return false;
	snprintf(want, sizeof(want), "unix:%s/qmp.sock,", dir);
	for (const char *a = buf; a < buf + n; a += strlen(a) + 1)
		if (strncmp(a, want, strlen(want)) == 0)
			return true;
	return false;
}

/* SIGKILL pid and wait (up to 10 s) until it is gone (not our child: no waitpid). */
static void kill_wait(pid_t pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	uint64_t end = now_ns() + 10000000000ull;

	if (kill(pid, SIGKILL) < 0) {
		if (pidfd >= 0)
			close(pidfd);
		return;
	}
	if (pidfd >= 0) {
		(void)poll(&(struct pollfd){ .fd = pidfd, .events = POLLIN }, 1, 10000);
		close(pidfd);
		return;
	}
	while (proc_alive(pid, 0) && now_ns() < end)
		usleep(10000);
}

/* Stop every QEMU of VM directory dir. */
static unsigned kill_qemus_of(const char *dir)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);

		if (pid > 1 && pid != getpid() && qemu_of(pid, dir)) {
			log_warn("stopping QEMU %d of %s, which no agent can serve", (int)pid, dir);
			kill_wait(pid);
			n++;
		}
	}
	closedir(d);
	return n;
}

bool vm_dir_is_vm(int rootfd, const char *name)
{
	char p1[NAME_MAX + 16], p2[NAME_MAX + 16], p3[NAME_MAX + 16];
	struct stat st;

	if (fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
		return false;
	snprintf(p1, sizeof(p1), "%s/shim.sock", name);
	snprintf(p2, sizeof(p2), "%s/qemu.log", name);
	snprintf(p3, sizeof(p3), "%s/vm.json", name);
	return faccessat(rootfd, p3, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
	       (faccessat(rootfd, p1, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
		faccessat(rootfd, p2, F_OK, AT_SYMLINK_NOFOLLOW) == 0);
}

/* Let go of a VM that is not adopted: nothing runs; its directory goes, its sections stay. */
static void discard(struct vm *vm)
{
	vm_keep_sections(vm);
	vm->pid = 0;
	vm->exited = true;
	vm_unref(vm);   /* removes the directory */
}

static void recover_one(const struct vm_env *env, const char *name, vm_adopt_fn fn,
			void *opaque, struct vm_recover_stats *stats)
{
	struct vm *vm = vm_alloc(env);
	char err[512];
	bool alive;
	int r;

	if (!vm)
		return;
	if (snprintf(vm->dir, sizeof(vm->dir), "%s/%s", env->run_root, name) >=
	    (int)sizeof(vm->dir)) {
		log_warn("%s/%s: path too long: left alone", env->run_root, name);
		vm_unref(vm);
		return;
	}
	snprintf(vm->console_path, sizeof(vm->console_path), "%s/console.log", vm->dir);
	r = vm_persist_load(vm, err, sizeof(err));
	if (r < 0) {
		log_warn("%s: %s: it is removed, with any QEMU of it", vm->dir,
			 r == -ENOENT ? "no VM record (an older agent's, or the VM never started)"
				      : r == -EBADMSG ? err : strerror(-r));
		stats->stopped += kill_qemus_of(vm->dir);
		stats->removed++;
		discard(vm);
		return;
	}
	alive = vm->pid > 0 && proc_alive(vm->pid, vm->qemu_starttime) && qemu_of(vm->pid, vm->dir);
	if (alive && (vm->state == VM_RUNNING || vm->state == VM_DEGRADED)) {
		vm->state = VM_RUNNING;   /* degraded: the new pager finds out again */
		r = vm_adopt(vm, err, sizeof(err));
		if (r >= 0 && fn(opaque, vm) >= 0) {
			stats->adopted++;
			return;
		}
		log_error("vm %s: cannot adopt QEMU %d: %s: stopping it", vm->spec.name, (int)vm->pid,
			  r < 0 ? err : "no room in the agent's table");
		vm_keep_sections(vm);
		stats->stopped++;
		stats->removed++;
		vm_unref(vm);   /* stops QEMU, removes the directory */
		return;
	}
	if (alive) {
		log_warn("vm %s was %s when the earlier agent stopped: stopping its QEMU %d",
			 vm->spec.name, vm_state_name(vm->state), (int)vm->pid);
		kill_wait(vm->pid);
		stats->stopped++;
	} else {
		log_warn("vm %s: its QEMU (pid %d) is gone: removing %s", vm->spec.name,
			 (int)vm->pid, vm->dir);
	}
	stats->removed++;
	discard(vm);
}

int vm_recover(const struct vm_env *env, vm_adopt_fn fn, void *opaque,
	       struct vm_recover_stats *ret)
{
	struct vm_recover_stats stats = { 0 };
	struct dirent *de;
	DIR *d = opendir(env->run_root);

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && vm_dir_is_vm(dirfd(d), de->d_name))
			recover_one(env, de->d_name, fn, opaque, &stats);
	closedir(d);
	if (stats.adopted || stats.removed)
		log_info("run directory %s: %u VM%s adopted, %u QEMU%s stopped, %u VM director%s removed",
			 env->run_root, stats.adopted, stats.adopted == 1 ? "" : "s", stats.stopped,
			 stats.stopped == 1 ? "" : "s", stats.removed, stats.removed == 1 ? "y" : "ies");
	if (ret)
		*ret = stats;
	return 0;
}
