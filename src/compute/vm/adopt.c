// SPDX-License-Identifier: MIT
/*
 * Adoption: a restarted agent takes over a VM that an earlier instance of
 * it started and left running (SIGKILL, a crash, an upgrade). The guest
 * sees a pause no longer than the restart and loses nothing.
 *
 * While no agent runs, QEMU runs on (its own process group, no pipe to the
 * agent: launch.c) and the shim inside it keeps a copy of every uffd, so a
 * fault simply waits. The new agent rebuilds `struct vm` from the record
 * (persist.c) and checks that its QEMU is the one recorded (pid, start
 * time, and a command line naming this VM's QMP socket), then:
 *   1. supervises QEMU through a pidfd (it is not our child: its exit
 *      status is unknown, the exit itself is not);
 *   2. starts a pager and listens on the VM's shim socket; the shim
 *      connects and hands every mapping back (READOPT, then READOPT_DONE):
 *      each becomes a pager region whose resident remote pages are dirty
 *      and whose faults are woken (pager_adopt_region), since faults the
 *      dead agent read and never served are lost;
 *   3. lets the features take their part of the record back (the remote
 *      disks listen again: QEMU's vhost-user chardevs reconnect, and the
 *      back ends serve again what was in flight: vm_disk.c);
 *   4. reconnects QMP (after 2: QEMU's main loop may be blocked in a
 *      fault) and, if the earlier agent died in the middle of a compute
 *      migration, cancels it and resumes the guest here;
 *   5. reconnects the guest channel (the guest may owe answers to
 *      commands of the earlier connection: resync).
 * Any failure stops that QEMU: without its uffds the guest would hang.
 * Its sections are not freed (the control plane decides).
 */
#include "adopt.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "ext.h"
#include "guestchan.h"
#include "layout.h"
#include "log.h"
#include "mappings.h"
#include "net.h"
#include "pager_use.h"
#include "persist.h"
#include "proc.h"
#include "qmp.h"
#include "sections.h"
#include "supervise.h"
#include "vm.h"

#define ADOPT_SHIM_MS 15000     /* the shim retries every 0.5 s at most */
#define ADOPT_QMP_MS 15000
#define ADOPT_CMD_MS 10000

/* Wait for the shim's READOPT_DONE: 0, or -ETIMEDOUT. */
static int wait_shim(struct vm *vm, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	int r = 0;

	pthread_mutex_lock(&vm->lock);
	while (vm->readopt_n < 0 && !vm->exited) {
		struct timespec ts;

		if (now_ns() >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	}
	if (vm->exited)
		r = -ECHILD;
	pthread_mutex_unlock(&vm->lock);
	return r;
}

/* Is every RAM file the record names served again? Lock held. */
static bool regions_complete(struct vm *vm, char *err, size_t errlen)
{
	if (vm->base_region < 0) {
		snprintf(err, errlen, "the shim did not hand the boot RAM back");
		return false;
	}
	if (vm->vmem_path[0] && vm->vmem_region < 0) {
		snprintf(err, errlen, "the shim did not hand the virtio-mem RAM back");
		return false;
	}
	for (unsigned i = 0; i < vm->nhot; i++)
		if (vm->hot[i].in_use && vm->hot[i].plugged && !vm->hot[i].addr) {
			snprintf(err, errlen, "the shim did not hand DIMM %s back", vm->hot[i].id);
			return false;
		}
	return true;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

/*
 * QEMU's run state. A migration the earlier agent left in progress is
 * cancelled and the guest resumed here (it paused at pre-switchover, and
 * only the dead agent could have let it continue). A QEMU that migrated
 * away, or waits for an incoming migration, is not adopted.
 */
static int settle_migration(struct vm *vm, char *err, size_t errlen)
{
	_cleanup_(json_decrefp) json_t *st = NULL, *mig = NULL;
	const char *s;
	int r;

	r = qmp_execute(vm->qmp, "query-status", NULL, ADOPT_CMD_MS, &st);
	if (r < 0) {
		snprintf(err, errlen, "QMP query-status: %s", strerror(-r));
		return r;
	}
	s = jstr(st, "status");
	if (!strcmp(s, "postmigrate") || !strcmp(s, "inmigrate")) {
		snprintf(err, errlen, "QEMU is in state %s: the VM migrated away or was arriving", s);
		return -ESTALE;
	}
	if (qmp_execute(vm->qmp, "query-migrate", NULL, ADOPT_CMD_MS, &mig) < 0)
		return 0;
	s = jstr(mig, "status");
	if (!*s || !strcmp(s, "none") || !strcmp(s, "completed") || !strcmp(s, "cancelled") ||
	    !strcmp(s, "failed")) {
		/*
		 * Paused by the earlier agent because a memory node did not answer
		 * (health.c): resume it. If the node is still down, the new
		 * pager finds out at the next fault and pauses it again.
		 */
		if (!strcmp(jstr(st, "status"), "paused")) {
			log_info("vm %s: QEMU was paused (a memory node was down): resuming it",
				 vm->spec.name);
			(void)qmp_execute(vm->qmp, "cont", NULL, ADOPT_CMD_MS, NULL);
		}
		return 0;
	}
	log_warn("vm %s: the earlier agent left a migration %s: cancelling it", vm->spec.name, s);
	(void)qmp_execute(vm->qmp, "migrate_cancel", NULL, ADOPT_CMD_MS, NULL);
	for (uint64_t end = now_ns() + ADOPT_CMD_MS * 1000000ull; now_ns() < end;) {
		json_decref(mig);
		mig = NULL;
		s = "";
		if (qmp_execute(vm->qmp, "query-migrate", NULL, ADOPT_CMD_MS, &mig) < 0)
			break;
		s = jstr(mig, "status");
		if (!strcmp(s, "cancelled") || !strcmp(s, "failed") || !strcmp(s, "completed"))
			break;
		usleep(10000);
	}
	if (!strcmp(s, "completed")) {
		snprintf(err, errlen, "the migration completed meanwhile: the VM runs elsewhere");
		return -ESTALE;
	}
	json_decref(st);
	st = NULL;
	if (qmp_execute(vm->qmp, "query-status", NULL, ADOPT_CMD_MS, &st) >= 0 &&
	    !json_is_true(json_object_get(st, "running")) &&
	    qmp_execute(vm->qmp, "cont", NULL, ADOPT_CMD_MS, NULL) < 0)
		log_warn("vm %s: cannot resume it after the cancelled migration: %s", vm->spec.name,
			 qmp_last_error(vm->qmp));
	return 0;
}

static int adopt_start(struct vm *vm, char *err, size_t errlen)
{
	char path[PATH_MAX], line[256];
	uint64_t kb = 0;
	int r;

	vm->pidfd = (int)syscall(SYS_pidfd_open, vm->pid, 0);
	if (vm->pidfd < 0) {
		r = -errno;
		snprintf(err, errlen, "pidfd of QEMU %d: %s", (int)vm->pid, strerror(-r));
		return r;
	}
	/* The pid named the right process before the pidfd was opened: still? */
	if (!proc_alive(vm->pid, vm->qemu_starttime)) {
		snprintf(err, errlen, "QEMU %d exited", (int)vm->pid);
		return -ESRCH;
	}
	r = vm_supervise(vm);
	if (r < 0) {
		snprintf(err, errlen, "thread: %s", strerror(-r));
		return r;
	}
	r = vm_pager_open(vm, err, errlen);
	if (r < 0)
		return r;
	r = vm_shim_listen(vm);
	if (r < 0) {
		snprintf(err, errlen, "shim socket: %s", strerror(-r));
		return r;
	}
	r = wait_shim(vm, ADOPT_SHIM_MS);
	if (r < 0) {
		snprintf(err, errlen, "the shim in QEMU did not hand its userfaultfds back: %s",
			 r == -ECHILD ? "QEMU exited" : strerror(-r));
		return r;
	}
	pthread_mutex_lock(&vm->lock);
	r = regions_complete(vm, err, errlen) ? 0 : -ENOENT;
	pthread_mutex_unlock(&vm->lock);
	if (r < 0)
		return r;
	/*
	 * The features' state (its remote disks: QEMU reconnects to their
	 * sockets, and the mappings of guest RAM their back ends make become
	 * aliases of the regions just handed back).
	 */
	r = vm_ext_adopt(vm, vm->record, err, errlen);
	if (r < 0)
		return r;
	r = qmp_connect(vm_qmp_path(vm), ADOPT_QMP_MS, &vm->qmp);
	if (r < 0) {
		snprintf(err, errlen, "QMP: %s", strerror(-r));
		return r;
	}
	r = vm_ext_qmp_ready(vm, err, errlen);
	if (r < 0)
		return r;
	r = settle_migration(vm, err, errlen);
	if (r >= 0)
		r = vm_layout_attach(vm);
	if (r < 0) {
		if (!err[0])
			snprintf(err, errlen, "hotplug: %s", strerror(-r));
		return r;
	}
	snprintf(path, sizeof(path), "%s/guest.sock", vm->dir);
	r = vm->spec.no_guest ? 0 : guestchan_connect(path, ADOPT_QMP_MS, &vm->guest);
	if (r == 0 && vm->spec.no_guest) {
		vm_ext_guest_attached(vm);
	} else if (r < 0) {
		snprintf(err, errlen, "guest channel: %s", strerror(-r));
		return r;
	}
	if (vm->guest) {
		guestchan_resync(vm->guest);   /* answers owed to the earlier agent are dropped */
		vm_ext_guest_attached(vm);
		/* Best effort: a busy guest answers later, the VM runs regardless. */
		if (guestchan_cmd(vm->guest, ADOPT_CMD_MS, line, sizeof(line), "MEMINFO") >= 0 &&
		    guestchan_field_u64(line, "memtotal_kb", &kb) >= 0) {
			pthread_mutex_lock(&vm->lock);
			vm->guest_memtotal_kb = kb;
			pthread_mutex_unlock(&vm->lock);
		}
	}
	pthread_mutex_lock(&vm->lock);
	r = vm->exited ? -ECHILD : 0;
	if (r == 0) {
		vm->state = VM_RUNNING;
		(void)vm_persist_locked(vm);
	} else {
		snprintf(err, errlen, "QEMU exited: %s", vm->reason);
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_adopt(struct vm *vm, char *err, size_t errlen)
{
	uint64_t t0 = now_ns();
	int r;

	vm->adopted = true;
	vm->readopt_n = -1;
	vm->state = VM_STARTING;
	err[0] = '\0';
	r = adopt_start(vm, err, errlen);
	json_decref(vm->record);
	vm->record = NULL;
	if (r < 0) {
		/* Ours, but it cannot be served: stop it (vm_free), keep the sections. */
		vm_keep_sections(vm);
		if (!vm->sup_thread_on) {
			/* No supervisor to see it go (it is gone already, or we could not watch it). */
			if (proc_alive(vm->pid, vm->qemu_starttime))
				kill(vm->pid, SIGKILL);
			vm->exited = true;
		}
		return r;
	}
	log_info("vm %s: adopted QEMU %d in %llu ms (%d RAM mappings handed back)", vm->spec.name,
		 (int)vm->pid, (unsigned long long)((now_ns() - t0) / 1000000), vm->readopt_n);
	return 0;
}
