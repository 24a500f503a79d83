// SPDX-License-Identifier: MIT
/*
 * Locking a shared region from inside the guest (docs/sharing.md, mode
 * exclusive): the last two pages of an exclusive region are its LOCK and
 * UNLOCK pages. A guest's write to LOCK while its VM does not hold the
 * region, or to UNLOCK while it does, waits in the pager, which calls
 * vm_ctl_request (from a fault thread). One thread of the agent then asks
 * the orchestrator, with this node's credential, to lock or unlock the
 * region for the VM's slot (POST /v1/nodes/ID/regions/NAME/lock|unlock);
 * the orchestrator does it as for `disagg region lock`, calling this
 * agent's acquire or release, and the pager lets the write land once the
 * holding changed. A lock held by another slot is asked for again every
 * CTL_RETRY_MS: the write waits until the VM holds the region.
 *
 * Mode release: the RELEASE and ACQUIRE pages ask for this agent's own
 * work (vm_release.c), with no orchestrator; the same thread does it, and
 * a release that fails (a memory node down) is tried again every
 * CTL_RETRY_MS while the store waits.
 */
#include "vm_ctl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "state.h"
#include "pager.h"
#include "vm_internal.h"
#include "vm_release.h"

#define CTL_RETRY_MS 200
#define CTL_MAX 64
#define CTL_TIMEOUT_MS 60000

struct ctl_req {
	struct vm *vm;                /* a reference */
	int idx;                      /* vm->shared[idx] */
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ctl_req q[CTL_MAX];
	unsigned n;
	bool started, stop;
	pthread_t thread;
	struct registrar *_Atomic *reg;
	uint64_t node_id;
} ctl = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* Mode release: the sync points asked for, release first. Returns as ask() does. */
static int sync_points(struct ctl_req *q, bool *warned)
{
	struct vm *vm = q->vm;
	_Atomic int *pend = &vm->shared[q->idx].ctl_sync;

	for (int bit = 1; bit <= 2; bit <<= 1) {
		struct vm_release_result res;
		int r;

		/*
		 * Taken before the work: a store that traps while it runs (the
		 * guest's next one, once this one landed) queues a request of its
		 * own, never counted as done by this one.
		 */
		if (!(atomic_fetch_and(pend, ~bit) & bit))
			continue;
		r = vm_release_sync(vm, q->idx, bit == 2, &res);
		if (r < 0) {
			atomic_fetch_or(pend, bit);
			if (!*warned)
				log_warn("vm %s: %s of a release region for its guest: %s (tried "
					 "again)", vm->spec.name, bit == 2 ? "acquire" : "release",
					 strerror(-r));
			*warned = true;
			return 0;
		}
	}
	return atomic_load(pend) ? 2 : 1;
}

/* Ask the orchestrator once: 1 done (or nothing to do), 2 ask again now, 0 ask again later. */
static int ask(struct ctl_req *q, bool *warned)
{
	struct vm *vm = q->vm;
	struct registrar *reg = ctl.reg ? atomic_load(ctl.reg) : NULL;
	char path[256], region[64];
	json_t *body, *ans = NULL;
	int want, st;
	bool release;

	pthread_mutex_lock(&vm->lock);
	release = vm->shared[q->idx].in_use && !strcmp(vm->shared[q->idx].mode, "release");
	want = vm->shared[q->idx].in_use ? atomic_load(&vm->shared[q->idx].ctl_pending) : 0;
	snprintf(region, sizeof(region), "%s", vm->shared[q->idx].id);
	pthread_mutex_unlock(&vm->lock);
	if (release)
		return sync_points(q, warned);
	if (!want)
		return 1;
	if (!reg) {
		if (!*warned)
			log_warn("vm %s: its guest asked to %s region %s, but this agent has no "
				 "--orchestrator: the write waits", vm->spec.name,
				 want == 1 ? "lock" : "unlock", region);
		*warned = true;
		return 0;
	}
	snprintf(path, sizeof(path), "/v1/nodes/%llu/regions/%s/%s",
		 (unsigned long long)ctl.node_id, region, want == 1 ? "lock" : "unlock");
	body = json_pack("{s:s}", "slot", vm->spec.name);
	st = body ? registrar_post(reg, path, body, CTL_TIMEOUT_MS, &ans) : -ENOMEM;
	json_decref(body);
	/*
	 * An unlock the orchestrator refuses (409: the slot no longer holds it,
	 * an operator unlocked it) or a region it does not know (404) is over:
	 * the pager lets the write land once the region is released anyway.
	 */
	if ((st == 409 && want == 2) || st == 404) {
		log_info("vm %s: region %s: %s for its guest not needed (%d)", vm->spec.name,
			 region, want == 1 ? "lock" : "unlock", st);
		st = 200;
	} else if (st == 200) {
		log_info("vm %s: region %s %s for its guest", vm->spec.name, region,
			 want == 1 ? "locked" : "unlocked");
	}
	if (st == 200) {
		/* Done, unless the guest asked for the other one meanwhile: that is next. */
		if (!atomic_compare_exchange_strong(&vm->shared[q->idx].ctl_pending, &want, 0))
			st = -EAGAIN;
	} else if (!*warned && !(st == 409 && want == 1)) {
		const char *msg = json_string_value(json_object_get(json_object_get(ans, "error"),
								    "message"));

		log_warn("vm %s: %s region %s for its guest: %d %s (asked again)", vm->spec.name,
			 want == 1 ? "lock" : "unlock", region, st, msg ? msg : "");
		*warned = true;
	}
	json_decref(ans);
	return st == 200 ? 1 : st == -EAGAIN ? 2 : 0;
}

static void *ctl_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ctl.mu);
	while (!ctl.stop) {
		struct ctl_req q;
		bool warned = false;

		if (!ctl.n) {
			pthread_cond_wait(&ctl.cv, &ctl.mu);
			continue;
		}
		q = ctl.q[0];
		memmove(ctl.q, ctl.q + 1, --ctl.n * sizeof(ctl.q[0]));
		pthread_mutex_unlock(&ctl.mu);
		/* Until done, the VM gone, or the agent stopping (the write then stays parked). */
		for (int r; (r = ask(&q, &warned)) != 1 && vm_get_state(q.vm) == VM_RUNNING &&
			    !ctl.stop;)
			if (r == 0)
				usleep(CTL_RETRY_MS * 1000);
		vm_unref(q.vm);
		pthread_mutex_lock(&ctl.mu);
	}
	pthread_mutex_unlock(&ctl.mu);
	return NULL;
}

/*
 * From a fault thread, inside its RCU read section: no vm->lock here (a
 * holder of it may wait for the fault threads). The region's slot is found
 * by plain reads: it is mapped (its fault is here) and cannot go while this
 * fault runs (a detach waits for the fault threads).
 */
void vm_ctl_request(struct vm *vm, int region, int op)
{
	int idx = -1, want = op == PAGER_CTL_LOCK ? 1 : 2, old;
	bool sync = op == PAGER_CTL_RELEASE || op == PAGER_CTL_ACQUIRE;

	for (int i = 0; i < VM_MAX_SHARED; i++)
		if (__atomic_load_n(&vm->shared[i].region, __ATOMIC_RELAXED) == region)
			idx = i;
	if (idx < 0)
		return;
	/* Release: the bits of both sync points; the worker takes every bit set. */
	old = sync ? atomic_fetch_or(&vm->shared[idx].ctl_sync, op == PAGER_CTL_RELEASE ? 1 : 2)
		   : atomic_exchange(&vm->shared[idx].ctl_pending, want);
	if (old)
		return;   /* queued already (the fault comes back each time the write retries) */
	pthread_mutex_lock(&ctl.mu);
	if (ctl.started && ctl.n < CTL_MAX) {
		ctl.q[ctl.n++] = (struct ctl_req){ vm_ref(vm), idx };
		pthread_cond_signal(&ctl.cv);
	} else {
		/* The next fault asks again. */
		atomic_store(sync ? &vm->shared[idx].ctl_sync : &vm->shared[idx].ctl_pending, 0);
		log_warn("vm %s: too many region requests of guests at once: this one waits",
			 vm->spec.name);
	}
	pthread_mutex_unlock(&ctl.mu);
}

int vm_ctl_start(struct registrar *_Atomic *reg, uint64_t node_id)
{
	int r;

	ctl.reg = reg;
	ctl.node_id = node_id;
	r = -pthread_create(&ctl.thread, NULL, ctl_main, NULL);
	if (r == 0)
		ctl.started = true;
	return r;
}

void vm_ctl_stop(void)
{
	if (!ctl.started)
		return;
	pthread_mutex_lock(&ctl.mu);
	ctl.stop = true;
	pthread_cond_broadcast(&ctl.cv);
	pthread_mutex_unlock(&ctl.mu);
	pthread_join(ctl.thread, NULL);
	while (ctl.n)
		vm_unref(ctl.q[--ctl.n].vm);
	ctl.started = false;
}
