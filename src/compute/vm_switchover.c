// SPDX-License-Identifier: MIT
/*
 * How a compute migration ends on the source: decided by QEMU's own
 * migration state (query-migrate), never by a deadline or a missing
 * answer (docs/compute.md, "Compute migration").
 *
 * Before migrate-continue the guest cannot run anywhere else (the source
 * waits at pre-switchover and the destination has no device state): on a
 * failure the source cancels QEMU's migration and resumes the guest once
 * QEMU says the migration was cancelled or failed.
 *
 * Once migrate-continue has been sent (or the command got no answer) the
 * destination may already run the guest. The source then never cancels
 * and never resumes on a guess:
 *   completed           -> the VM is `migrated` here (never `cont`);
 *   failed, cancelled   -> the guest runs here again (QEMU restarts it;
 *                          `cont` if it stayed paused);
 *   still in progress   -> wait for QEMU. If QEMU has not decided when the
 *                          answer is due, the answer says "indeterminate"
 *                          with QEMU's state, the VM becomes `switchover`
 *                          (paused here; hotplug, migration and guest
 *                          commands refuse it) and a thread goes on
 *                          watching QEMU and applies the same rule when it
 *                          decides;
 *   QEMU exited         -> nothing to resume: the supervisor records it.
 */
#include "vm_switchover.h"

#include <stdio.h>
#include <string.h>

#include "guestchan.h"
#include "log.h"
#include "net.h"
#include "persist.h"
#include "sections.h"
#include "launch.h"
#include "vm_shared_mig.h"
#include "thread.h"

#define SETTLE_SLICE_NS 1000000000ull   /* the settle thread checks m->stop this often */

/* What QEMU says about its migration now; *state gets the status text. */
static enum vm_mig_outcome look(struct vm *vm, char *state, size_t len)
{
	json_t *info = NULL;
	const char *s;
	enum vm_mig_outcome out;
	int r = vm_mig_query(vm->qmp, &info);

	if (r < 0) {
		snprintf(state, len, "unknown (query-migrate: %s)",
			 r == -EIO ? qmp_last_error(vm->qmp) : strerror(-r));
		return r == -EPIPE ? VM_MIG_GONE : VM_MIG_PENDING;
	}
	s = jstr(info, "status");
	snprintf(state, len, "%s", *s ? s : "none");
	if (!strcmp(s, "completed"))
		out = VM_MIG_COMPLETED;
	else if (!strcmp(s, "failed") || !strcmp(s, "cancelled") || !*s)
		out = VM_MIG_RESUMED;
	else
		out = VM_MIG_PENDING;
	if (out == VM_MIG_RESUMED && *jstr(info, "error-desc"))
		snprintf(state + strlen(state), len - strlen(state), ": %s",
			 jstr(info, "error-desc"));
	json_decref(info);
	return out;
}

/* QEMU ended the migration without completing it: the guest runs here. */
static void resume(struct vm *vm, char *note, size_t len)
{
	json_t *st = NULL;

	if (qmp_execute(vm->qmp, "query-status", NULL, QMP_CMD_MS, &st) >= 0 &&
	    !json_is_true(json_object_get(st, "running"))) {
		int r = qmp_execute(vm->qmp, "cont", NULL, QMP_CMD_MS, NULL);

		snprintf(note, len, "the VM was resumed here (cont: %s)",
			 r < 0 ? qmp_last_error(vm->qmp) : "ok");
	} else {
		snprintf(note, len, "the VM keeps running here");
	}
	json_decref(st);
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_SWITCHOVER)
		vm->state = VM_RUNNING;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	/* Strict regions that left their directories at pre-switchover attach again. */
	vm_shared_mig_resume(vm);
}

enum vm_mig_outcome vm_mig_settle(struct vm *vm, bool continued, uint64_t until_ns,
				  char *state, size_t len, char *note, size_t notelen)
{
	enum vm_mig_outcome out;
	int r;

	note[0] = '\0';
	if (!continued)   /* nothing of the guest has left: cancelling is safe */
		(void)qmp_execute(vm->qmp, "migrate_cancel", NULL, QMP_CMD_MS, NULL);
	for (;;) {
		out = look(vm, state, len);
		if (out != VM_MIG_PENDING || now_ns() >= until_ns)
			break;
		/* Any MIGRATION event (or a short wait) and ask again. */
		r = qmp_wait_event(vm->qmp, "MIGRATION", NULL, NULL, MIG_EVENT_MS, NULL);
		if (r < 0 && r != -ETIMEDOUT && r != -EPIPE)
			usleep(MIG_EVENT_MS * 1000);
	}
	switch (out) {
	case VM_MIG_RESUMED:
		resume(vm, note, notelen);
		break;
	case VM_MIG_COMPLETED:
		snprintf(note, notelen, "QEMU completed the migration: the guest runs on the destination");
		break;
	case VM_MIG_GONE:
		snprintf(note, notelen, "QEMU has exited");
		break;
	case VM_MIG_PENDING:
		snprintf(note, notelen,
			 "the outcome is indeterminate: QEMU's migration is still %s; the VM stays "
			 "paused here and is not resumed (state switchover until QEMU decides)",
			 state);
		break;
	}
	return out;
}

/*
 * The VM lives on the destination now: it is only a record here, and its
 * sections are not freed with it. Its QEMU stays paused (post-migrate)
 * until the record is deleted, which the orchestrator does once the
 * destination runs the guest: QEMU's exit and the freeing of its RAM files
 * cost hundreds of ms of CPU (a guest's worth of tmpfs pages), which would
 * otherwise compete with the guest's arrival on the destination, often on
 * this very host. A record nobody deletes is retired by the supervisor
 * after --retire-migrated-ms (VM_RETIRE_MS). All of it runs at the lowest priority.
 */
void vm_mig_hand_over(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm_keep_sections_locked(vm);
	if (vm->state == VM_RUNNING || vm->state == VM_SWITCHOVER)
		vm->state = VM_MIGRATED;
	vm->retire_ns = now_ns() + (vm->env.retire_ms ? vm->env.retire_ms : VM_RETIRE_MS) * 1000000ull;
	(void)vm_persist_locked(vm);   /* never adopted: its sections are the destination's */
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	vm_lower_priority(vm->pid);
	/* Heartbeats the source QEMU delivered before the switchover. */
	if (vm->guest)
		(void)guestchan_poll(vm->guest, 0);
}

/* ---- after an indeterminate answer ---------------------------------------- */

static void *settle_main(void *arg)
{
	struct vm *vm = arg;
	struct vm_mig *m = vm->mig;
	enum vm_mig_outcome out = VM_MIG_PENDING;
	uint64_t t0 = now_ns();
	char state[256], note[400];

	thread_name("vm-settle");
	while (out == VM_MIG_PENDING && !atomic_load(&m->stop))
		out = vm_mig_settle(vm, true, now_ns() + SETTLE_SLICE_NS, state, sizeof(state),
				    note, sizeof(note));
	if (out == VM_MIG_PENDING)
		return NULL;    /* vm_free */
	if (out == VM_MIG_COMPLETED)
		vm_mig_hand_over(vm);
	log_warn("vm %s: the migration's outcome is known %llu ms after the answer: %s (%s)",
		 vm->spec.name, (unsigned long long)((now_ns() - t0) / 1000000), note, state);
	pthread_mutex_lock(&vm->lock);
	m->migrating = false;
	m->phase = NULL;
	if (m->last) {
		json_object_set_new(m->last, "outcome", json_string(
			out == VM_MIG_COMPLETED ? "completed" : out == VM_MIG_RESUMED ? "resumed"
										  : "qemu_exited"));
		json_object_set_new(m->last, "outcome_detail", json_string(note));
	}
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vm_mig_settle_later(struct vm *vm)
{
	struct vm_mig *m = vm->mig;
	int r;

	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_RUNNING)
		vm->state = VM_SWITCHOVER;
	m->phase = "indeterminate";
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	r = -pthread_create(&m->settler, NULL, settle_main, vm);
	if (r < 0)
		return r;
	m->settler_on = true;
	return 0;
}
