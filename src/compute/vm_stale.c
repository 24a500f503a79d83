// SPDX-License-Identifier: MIT
/*
 * Leftovers of an earlier agent. At start the agent has no VMs, so whatever
 * its run directory holds comes from an instance that died without
 * cleaning up (SIGKILL, a crash, a power cut of the agent alone). A QEMU of
 * such a VM may still run, orphaned: nobody serves its page faults any
 * more, so its guest hangs, and its RAM files hold host memory. The agent
 * kills those QEMUs (their QMP socket is in a VM directory of this run
 * directory) and removes the VM directories (those with the files
 * vm_start creates; nothing else in the run directory is touched).
 */
#include "vm_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

/*
 * Does process pid look like a QEMU of a VM directory of root? Such a
 * QEMU has "-qmp unix:ROOT/NAME/qmp.sock,..." on its command line, NAME
 * one path component: a QEMU of another agent whose run directory is
 * below root does not match.
 */
static bool qemu_of(pid_t pid, const char *root)
{
	char path[64], buf[8192];
	size_t rl = strlen(root);
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
	for (const char *a = buf; a < buf + n; a += strlen(a) + 1) {
		const char *name, *slash;

		if (strncmp(a, "unix:", 5) || strncmp(a + 5, root, rl) || a[5 + rl] != '/')
			continue;
		name = a + 5 + rl + 1;
		slash = strchr(name, '/');
		if (slash && slash > name && !strncmp(slash, "/qmp.sock,", 10))
			return true;
	}
	return false;
}

/* Is root/name a VM directory of ours (what vm_start creates)? */
static bool vm_dir(int rootfd, const char *name)
{
	char p1[NAME_MAX + 16], p2[NAME_MAX + 16];

	snprintf(p1, sizeof(p1), "%s/shim.sock", name);
	snprintf(p2, sizeof(p2), "%s/qemu.log", name);
	return faccessat(rootfd, p1, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
	       faccessat(rootfd, p2, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static unsigned kill_orphans(const char *root)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t pids[64];
	unsigned n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) && n < ARRAY_SIZE(pids)) {
		pid_t pid = (pid_t)atoi(de->d_name);

		if (pid > 1 && pid != getpid() && qemu_of(pid, root) && kill(pid, SIGKILL) == 0) {
			log_warn("killed QEMU %d left running by an earlier agent in %s", (int)pid,
				 root);
			pids[n++] = pid;
		}
	}
	closedir(d);
	/* Not our children: wait until they are gone (their RAM files with them). */
	for (unsigned i = 0; i < n; i++) {
		uint64_t end = now_ns() + 5000000000ull;

		while (kill(pids[i], 0) == 0 && now_ns() < end)
			usleep(10000);
	}
	return n;
}

int vm_remove_tree(int rootfd, const char *name)
{
	int fd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			(void)unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	return unlinkat(rootfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

int vm_clean_stale(const char *run_root, unsigned *ret_killed, unsigned *ret_dirs)
{
	unsigned killed = kill_orphans(run_root), dirs = 0;
	struct dirent *de;
	DIR *d = opendir(run_root);

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		int r;

		if (de->d_name[0] == '.' || de->d_type != DT_DIR || !vm_dir(dirfd(d), de->d_name))
			continue;   /* not a VM directory: not ours to remove */
		r = vm_remove_tree(dirfd(d), de->d_name);
		if (r < 0)
			log_warn("cannot remove %s/%s, left by an earlier agent: %s", run_root,
				 de->d_name, strerror(-r));
		else
			dirs++;
	}
	closedir(d);
	if (dirs)
		log_warn("removed %u VM director%s left in %s by an earlier agent", dirs,
			 dirs == 1 ? "y" : "ies", run_root);
	if (ret_killed)
		*ret_killed = killed;
	if (ret_dirs)
		*ret_dirs = dirs;
	return 0;
}
