// SPDX-License-Identifier: MIT
/*
 * The supervisor thread of a VM: QEMU's exit, as the pidfd reports it.
 * A QEMU of ours is reaped here for its exit status; an adopted one
 * (adopt.c) is not our child and its status is unknown. A stop asked for
 * (vm_stop) ends in state stopped, a migrated-away QEMU's exit changes
 * nothing, anything else fails the VM with QEMU's reason.
 *
 * It also drains the guest channel of a running VM every
 * SUP_DRAIN_MS: the guest's unsolicited lines (heartbeats) otherwise
 * reach the agent only when someone asks, and a guest whose channel is
 * full blocks in its write (a heartbeat loop then shows a gap of seconds
 * that no vCPU stall caused).
 */
#include "supervise.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "pager_use.h"
#include "launch.h"
#include "guest.h"
#include "guestchan.h"
#include "state.h"
#include "thread.h"

#define SUP_DRAIN_MS 200

static void *supervise_main(void *arg)
{
	struct vm *vm = arg;
	struct pollfd pfd[2] = {
		{ .fd = vm->pidfd, .events = POLLIN },
		{ .fd = vm->stop_efd, .events = POLLIN },
	};
	bool retired = false;
	int status = 0;

	thread_name("vm-supervise");
	for (;;) {
		int n = poll(pfd, 2, SUP_DRAIN_MS);

		if (n > 0)
			break;
		if (n < 0 && errno != EINTR)
			break;
		/* vm->guest is set before the VM runs and closed after this thread. */
		if (vm_get_state(vm) == VM_RUNNING && vm->guest)
			(void)guestchan_poll(vm->guest, 0);
		pthread_mutex_lock(&vm->lock);
		if (vm->state == VM_MIGRATED && !retired && now_ns() > vm->retire_ns) {
			/* Migrated away and never deleted: its paused QEMU goes. */
			log_info("vm %s: migrated away and not deleted within %llu ms: stopping its QEMU",
				 vm->spec.name, (unsigned long long)(vm->env.retire_ms ? vm->env.retire_ms
										: VM_RETIRE_MS));
			vm_lower_priority(0);
			kill(vm->pid, SIGTERM);
			retired = true;
		}
		pthread_mutex_unlock(&vm->lock);
	}
	if (!(pfd[0].revents & POLLIN))
		return NULL; /* vm_free: it reaps QEMU itself */
	/* An adopted QEMU is not our child: its parent (init) reaps it. */
	if (!vm->adopted)
		(void)waitpid(vm->pid, &status, 0);
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_MIGRATED)
		vm_lower_priority(0);   /* freeing its RAM files: after the guest's start */
	vm->exited = true;
	if (vm->state == VM_STOPPING) {
		vm->state = VM_STOPPED;
	} else if (vm->state != VM_MIGRATED) { /* migrated: it quit as asked */
		char tail[400];

		vm_qemu_log_tail(vm, tail, sizeof(tail));
		if (vm->adopted)
			vm_set_failed(vm, "QEMU exited (started by an earlier agent: exit status unknown): %s",
				      tail);
		else if (WIFSIGNALED(status))
			vm_set_failed(vm, "QEMU killed by signal %d (%s)", WTERMSIG(status),
				      strsignal(WTERMSIG(status)));
		else
			vm_set_failed(vm, "QEMU exited with status %d: %s", WEXITSTATUS(status),
				      tail);
		log_error("vm %s failed: %s", vm->spec.name, vm->reason);
	}
	vm_release(vm);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vm_supervise(struct vm *vm)
{
	int r = 0;

	if (vm->stop_efd < 0)
		vm->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (vm->stop_efd < 0)
		r = -errno;
	if (r == 0)
		r = -pthread_create(&vm->sup_thread, NULL, supervise_main, vm);
	if (r == 0)
		vm->sup_thread_on = true;
	return r;
}

void vm_supervise_stop(struct vm *vm)
{
	uint64_t one = 1;

	if (vm->stop_efd >= 0)
		(void)!write(vm->stop_efd, &one, sizeof(one));
	if (vm->sup_thread_on)
		pthread_join(vm->sup_thread, NULL);
	vm->sup_thread_on = false;
}
