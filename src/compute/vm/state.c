// SPDX-License-Identifier: MIT
/*
 * A VM's state: its names, waiting for one, the failure reason.
 */
#include "state.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "net.h"

static const char *const state_names[] = {
	[VM_CREATED] = "created",   [VM_STARTING] = "starting", [VM_RUNNING] = "running",
	[VM_STOPPING] = "stopping", [VM_STOPPED] = "stopped",   [VM_FAILED] = "failed",
	[VM_INCOMING] = "incoming", [VM_MIGRATED] = "migrated", [VM_DEGRADED] = "degraded",
	[VM_SWITCHOVER] = "switchover",
};

const char *vm_state_name(enum vm_state s)
{
	return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

const char *vm_name(const struct vm *vm)
{
	return vm->spec.name;
}

enum vm_state vm_get_state(struct vm *vm)
{
	enum vm_state s;

	pthread_mutex_lock(&vm->lock);
	s = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

int vm_state_parse(const char *name, enum vm_state *ret)
{
	for (unsigned i = 0; i < ARRAY_SIZE(state_names); i++)
		if (state_names[i] && !strcmp(name, state_names[i])) {
			*ret = (enum vm_state)i;
			return 0;
		}
	return -EINVAL;
}

enum vm_state vm_wait_state(struct vm *vm, enum vm_state want, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)MAX(timeout_ms, 0) * 1000000ull;
	enum vm_state s;

	pthread_mutex_lock(&vm->lock);
	for (;;) {
		struct timespec ts;
		uint64_t left;

		s = vm->state;
		if (s == want || s == VM_STOPPED || s == VM_FAILED || s == VM_MIGRATED ||
		    now_ns() >= deadline)
			break;
		/* Not every transition broadcasts: wake up now and then regardless. */
		left = MIN(deadline - now_ns(), 5000000ull);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)left;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	}
	pthread_mutex_unlock(&vm->lock);
	return s;
}

json_t *vm_brief(struct vm *vm)
{
	json_t *j;

	pthread_mutex_lock(&vm->lock);
	j = json_pack("{s:s, s:s}", "name", vm->spec.name, "state", vm_state_name(vm->state));
	if (j && (vm->state == VM_FAILED || vm->state == VM_DEGRADED))
		json_object_set_new(j, "reason", json_string(vm->reason));
	pthread_mutex_unlock(&vm->lock);
	return j;
}

const char *vm_console_path(const struct vm *vm)
{
	return vm->console_path;
}

void vm_set_failed(struct vm *vm, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vm->reason, sizeof(vm->reason), fmt, ap);
	va_end(ap);
	vm->state = VM_FAILED;
	/* The orchestrator hears of it at once (a heartbeat), not at the next one. */
	if (vm->env.on_state)
		vm->env.on_state(vm->env.opaque);
}
