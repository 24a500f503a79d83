// SPDX-License-Identifier: MIT
/*
 * The guest channel of a VM (guestchan.c: a virtio-serial port to
 * disagg-guest inside the guest): connected once the guest said READY,
 * which is also how vm_start knows that the guest booted.
 */
#include "guest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "guestchan.h"
#include "net.h"
#include "state.h"

#define GUEST_READY_MS 120000

int vm_guest_connect(struct vm *vm)
{
	char path[PATH_MAX];
	uint64_t kb = 0;
	int r;

	snprintf(path, sizeof(path), "%s/guest.sock", vm->dir);
	r = guestchan_connect(path, 15000, &vm->guest);
	if (r < 0)
		return r;
	/*
	 * Wait for READY in slices: a pager that failed meanwhile (a fetch the
	 * memory node refused, or a node that went away) leaves the guest
	 * blocked in a page fault, so give up at once instead of at the timeout.
	 */
	for (uint64_t end = now_ns() + GUEST_READY_MS * 1000000ull;;) {
		int failed = 0;

		r = guestchan_wait_ready(vm->guest, 500, &kb);
		if (r != -ETIMEDOUT)
			break;
		pthread_mutex_lock(&vm->lock);
		if (vm->pager) {
			struct pager_stats st;

			pager_stats(vm->pager, &st);
			failed = st.failed;
		}
		pthread_mutex_unlock(&vm->lock);
		if (failed < 0)
			return failed;
		if (now_ns() >= end)
			break;
	}
	if (r < 0)
		return r;
	pthread_mutex_lock(&vm->lock);
	vm->guest_memtotal_kb = kb;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

void vm_guest_close(struct vm *vm)
{
	guestchan_close(vm->guest);
	vm->guest = NULL;
}

int vm_guest_cmd(struct vm *vm, const char *cmd, int timeout_ms, char *ret, size_t len)
{
	int r;

	if (vm->spec.no_guest) {
		snprintf(ret, len, "the guest runs no disagg-guest (it booted its own kernel)");
		return -ENOTSUP;
	}
	if (!vm->guest || vm_get_state(vm) != VM_RUNNING) {
		snprintf(ret, len, "VM is not running");
		return -ESRCH;
	}
	r = guestchan_cmd(vm->guest, timeout_ms, ret, len, "%s", cmd);
	if (r < 0)
		snprintf(ret, len, "%s", guestchan_last_error(vm->guest));
	return r;
}
