// SPDX-License-Identifier: MIT
/*
 * The accelerator probe: at agent start (--accel auto), boot the guest
 * image once under KVM without RAM tricks and see whether its init comes
 * up in time. "kvm" if it does, "tcg" otherwise (no /dev/kvm, a nested
 * KVM that hangs, a QEMU that refuses -accel kvm).
 */
#include "accel.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"

extern char **environ;

const char *vm_probe_accel(const struct vm_env *env)
{
	char *argv[] = {
		(char *)env->qemu, (char *)"-accel", (char *)"kvm", (char *)"-m", (char *)"256M",
		(char *)"-display", (char *)"none", (char *)"-nodefaults", (char *)"-serial",
		(char *)"stdio", (char *)"-no-reboot", (char *)"-kernel", (char *)env->kernel,
		(char *)"-initrd", (char *)env->initrd, (char *)"-append",
		(char *)"console=ttyS0 disagg.poweroff", NULL,
	};
	posix_spawn_file_actions_t fa;
	char buf[65536];
	size_t have = 0;
	int pipefd[2];
	uint64_t deadline;
	bool ok = false;
	pid_t pid;

	if (access("/dev/kvm", R_OK | W_OK) != 0 || pipe2(pipefd, O_CLOEXEC) < 0)
		return "tcg";
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawn(&pid, env->qemu, &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(pipefd[0]);
		close(pipefd[1]);
		return "tcg";
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	/* A working KVM boots this guest to init in well under a second. */
	deadline = now_ns() + 8000000000ull;
	while (!ok && now_ns() < deadline && have < sizeof(buf) - 1) {
		struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = read(pipefd[0], buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		ok = strstr(buf, "disagg-guest-init: up") != NULL;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(pipefd[0]);
	return ok ? "kvm" : "tcg";
}
