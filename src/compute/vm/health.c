// SPDX-License-Identifier: MIT
/*
 * What a VM does when one of its memory nodes stops answering.
 *
 * The pager parks the faults of a memory node that does not answer and
 * tells us (pager_config.on_node) when the node goes down and when it
 * answers again. A worker thread of the VM applies the policy
 * (vm_env.memnode_policy):
 *   pause   (default) the VM becomes `degraded` with a reason naming the
 *           node, and QEMU is paused (QMP stop) so that the guest's clock
 *           and its other vCPUs wait too; when every node answers again
 *           QEMU continues (QMP cont) and the VM is `running` again.
 *   sigbus  the same states; the pager also sends SIGBUS to each faulting
 *           thread (QEMU then decides; usually it dies and the VM fails).
 *   kill    the VM fails at once with the reason and its QEMU is killed.
 * A VM never shows `running` while a fault of it waits for a node.
 *
 * A memory node that answers but refuses this node's grant (expired: the
 * orchestrator did not renew it in time; or not valid) parks the fault
 * the same way (the pager's on_fail tells us): the VM is `degraded` with
 * that reason under the same policy, until renewed grants arrive
 * (vm_health_grants_renewed, from POST /v1/vms/NAME/grants). The renewal
 * wakes the parked faults (pager_region_set_section).
 *
 * Under TCG, QMP stop waits for every vCPU to stop, and a vCPU whose fault
 * is parked stops only once the fault is served: the stop then completes
 * when the node answers, just before our cont. The state is `degraded`
 * either way. With KVM the vCPU is kicked out of the fault and stops.
 *
 * A replica that the pager took out (replicated sections, docs/replication.md) is
 * no outage: the VM stays `running`; this thread only brings the VM's
 * records up to date (vm_env.on_replica, vm_replica.c) and tells the
 * orchestrator.
 *
 * The pager's callback only records the transition: it runs on a pager
 * thread, which must not wait for QEMU.
 */
#include "health.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "qmp.h"
#include "state.h"
#include "thread.h"

#define HEALTH_STOP_MS 5000
#define HEALTH_CONT_MS 30000

struct vm_health {
	struct vm *vm;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	unsigned down;               /* memory nodes down (pager transitions) */
	bool grant_refused;          /* a fault parked on a refused grant, no renewal since */
	bool integrity;              /* a fetched page failed authentication: for good */
	bool changed, stopping;
	bool replicas;               /* the pager took a replica out: sync the records */
	char why[256];               /* the latest node that went down, and why */
	bool paused;                 /* we sent QMP stop and no cont since */
};

static const char *const policy_names[] = {
	[VM_MEMNODE_PAUSE] = "pause", [VM_MEMNODE_KILL] = "kill", [VM_MEMNODE_SIGBUS] = "sigbus",
};

const char *vm_memnode_policy_name(enum vm_memnode_policy p)
{
	return (unsigned)p < ARRAY_SIZE(policy_names) ? policy_names[p] : "unknown";
}

int vm_memnode_policy_parse(const char *s, enum vm_memnode_policy *ret)
{
	for (unsigned i = 0; i < ARRAY_SIZE(policy_names); i++)
		if (!strcmp(s, policy_names[i])) {
			*ret = (enum vm_memnode_policy)i;
			return 0;
		}
	return -EINVAL;
}

/* pager_config.on_node: a pager thread, no pager lock held. */
void vm_health_node(void *opaque, uint64_t memnode_id, const char *addr, bool down, int err)
{
	struct vm *vm = opaque;
	struct vm_health *h = vm->health;

	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	if (down) {
		h->down++;
		if (!h->integrity)   /* that reason stays: it is for good */
			snprintf(h->why, sizeof(h->why), "memory node %llu (%s) does not answer: %s",
			 (unsigned long long)memnode_id, addr, strerror(-err));
	} else if (h->down) {
		h->down--;
	}
	h->changed = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* pager_config.on_replica: a pager thread, no pager lock held. */
void vm_health_replica(void *opaque, int region, unsigned index, unsigned replica,
		       const struct pager_section *view, int err)
{
	struct vm *vm = opaque;
	struct vm_health *h = vm->health;

	(void)region, (void)index, (void)replica, (void)view, (void)err;
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->replicas = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* pager_config.on_fail: a fault failed and is parked (a pager thread). */
void vm_health_fault(void *opaque, int err, uint64_t addr, uint32_t tid)
{
	struct vm *vm = opaque;
	struct vm_health *h = vm->health;

	if (!h || (err != -EKEYREJECTED && err != -EKEYEXPIRED && err != -EBADMSG))
		return;                   /* transport failures come through on_node */
	pthread_mutex_lock(&h->mu);
	if (err == -EBADMSG) {
		/* Nothing brings that page back: degraded until the VM is deleted. */
		if (!h->integrity) {
			h->integrity = true;
			snprintf(h->why, sizeof(h->why), "a memory node returned a page that fails "
				 "authentication (changed, moved or replayed): it is never mapped");
			h->changed = true;
			pthread_cond_signal(&h->cv);
		}
		pthread_mutex_unlock(&h->mu);
		return;
	}
	if (!h->grant_refused) {
		h->grant_refused = true;
		if (!h->integrity)
			snprintf(h->why, sizeof(h->why), "a memory node refuses this node's grant "
			 "(expired, or not valid): waiting for renewed grants");
		h->changed = true;
		pthread_cond_signal(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
}

void vm_health_grants_renewed(struct vm *vm)
{
	struct vm_health *h = vm->health;

	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	if (h->grant_refused) {
		h->grant_refused = false;
		h->changed = true;
		pthread_cond_signal(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
}

static void state_changed(struct vm *vm)
{
	pthread_cond_broadcast(&vm->cond);
	if (vm->env.on_state)
		vm->env.on_state(vm->env.opaque);
}

/* A node is down: apply the policy. */
static void went_down(struct vm_health *h, const char *why)
{
	struct vm *vm = h->vm;
	pid_t pid = 0;
	bool pause = false;

	pthread_mutex_lock(&vm->lock);
	if (vm->env.memnode_policy == VM_MEMNODE_KILL) {
		if (vm->state == VM_RUNNING || vm->state == VM_DEGRADED) {
			vm_set_failed(vm, "%s (policy kill)", why);
			pid = vm->exited ? 0 : vm->pid;
		}
	} else if (vm->state == VM_RUNNING || vm->state == VM_DEGRADED) {
		vm->state = VM_DEGRADED;
		snprintf(vm->reason, sizeof(vm->reason), "%s", why);
		pause = vm->env.memnode_policy == VM_MEMNODE_PAUSE && !h->paused && vm->qmp;
	}
	state_changed(vm);
	pthread_mutex_unlock(&vm->lock);
	log_warn("vm %s: %s: %s", vm->spec.name, why,
		 pid ? "killing QEMU" : pause ? "pausing" : "degraded");
	if (pid > 0)
		kill(pid, SIGKILL);
	if (pause) {
		int r = qmp_execute(vm->qmp, "stop", NULL, HEALTH_STOP_MS, NULL);

		/* A timeout still stops it later (TCG: once the parked vCPU is served). */
		h->paused = true;
		if (r < 0 && r != -ETIMEDOUT)
			log_warn("vm %s: QMP stop: %s", vm->spec.name, strerror(-r));
	}
}

/* Every node answers again. */
static void came_back(struct vm_health *h)
{
	struct vm *vm = h->vm;
	bool was = false;

	if (h->paused) {
		int r = qmp_execute(vm->qmp, "cont", NULL, HEALTH_CONT_MS, NULL);

		if (r < 0)
			log_warn("vm %s: QMP cont: %s", vm->spec.name, strerror(-r));
		h->paused = false;
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_DEGRADED) {
		vm->state = VM_RUNNING;
		vm->reason[0] = '\0';
		was = true;
		state_changed(vm);
	}
	pthread_mutex_unlock(&vm->lock);
	if (was)
		log_info("vm %s: every memory node answers and takes our grants again: running",
			 vm->spec.name);
}

static void *health_main(void *arg)
{
	struct vm_health *h = arg;

	thread_name("vm-health");
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		char why[sizeof(h->why)];
		unsigned down;

		if (h->replicas) {
			h->replicas = false;
			pthread_mutex_unlock(&h->mu);
			if (h->vm->env.on_replica)
				h->vm->env.on_replica(h->vm);
			pthread_mutex_lock(&h->mu);
			continue;
		}
		if (!h->changed) {
			pthread_cond_wait(&h->cv, &h->mu);
			continue;
		}
		h->changed = false;
		down = h->down + h->grant_refused + h->integrity;
		memcpy(why, h->why, sizeof(why));
		pthread_mutex_unlock(&h->mu);
		if (down)
			went_down(h, why);
		else
			came_back(h);
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int vm_health_start(struct vm *vm)
{
	struct vm_health *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	h->vm = vm;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	r = -pthread_create(&h->thread, NULL, health_main, h);
	if (r < 0) {
		pthread_mutex_destroy(&h->mu);
		pthread_cond_destroy(&h->cv);
		free(h);
		return r;
	}
	vm->health = h;
	return 0;
}

/* Before the pager and QMP go: no callback may arrive after the pager is freed. */
void vm_health_stop(struct vm *vm)
{
	struct vm_health *h = vm->health;

	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
}

void vm_health_free(struct vm *vm)
{
	struct vm_health *h = vm->health;

	if (!h)
		return;
	vm->health = NULL;
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h);
}
