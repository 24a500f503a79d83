// SPDX-License-Identifier: MIT
/*
 * The fault threads' RCU (rcu.h): grace periods by polling the readers'
 * counters, with a back-off from 10 us to 1 ms.
 */
#include "rcu.h"

#include <stdlib.h>
#include <unistd.h>

#include "macro.h"
#include "net.h"

int pager_rcu_init(struct pager_rcu *rcu, unsigned n)
{
	rcu->r = calloc(n, sizeof(*rcu->r));
	if (!rcu->r)
		return -ENOMEM;
	rcu->n = n;
	return 0;
}

void pager_rcu_fini(struct pager_rcu *rcu)
{
	free(rcu->r);
	rcu->r = NULL;
	rcu->n = 0;
}

static void begin(struct pager_rcu *rcu)
{
	atomic_fetch_add(&rcu->waiting, 1);
	if (rcu->kick)
		rcu->kick(rcu->kick_arg);
}

/*
 * Grace period: wait until every reader that was inside a critical section
 * when we were called has left it. Callers unpublish first (seq_cst
 * stores), so a reader entering later sees that.
 */
void pager_rcu_synchronize(struct pager_rcu *rcu)
{
	uint64_t snap[64], *sp = snap;
	_cleanup_free_ uint64_t *heap = NULL;

	if (!rcu->r)
		return;
	/*
	 * A reader waiting for budget space (up to 200 ms) is inside its
	 * critical section, and the caller may hold io_lock, which the evictor
	 * needs to make space: tell such readers to stop waiting.
	 */
	begin(rcu);
	if (rcu->n > ARRAY_SIZE(snap)) {
		heap = calloc(rcu->n, sizeof(*heap));
		if (!heap) {
			/* No memory for snapshots: wait for each reader to be outside. */
			for (unsigned i = 0; i < rcu->n; i++)
				while (atomic_load(&rcu->r[i].seq) & 1)
					usleep(50);
			atomic_fetch_sub(&rcu->waiting, 1);
			return;
		}
		sp = heap;
	}
	for (unsigned i = 0; i < rcu->n; i++)
		sp[i] = atomic_load(&rcu->r[i].seq);
	for (unsigned i = 0; i < rcu->n; i++) {
		unsigned us = 10;

		if (!(sp[i] & 1))
			continue;
		while (atomic_load(&rcu->r[i].seq) == sp[i]) {
			usleep(us);
			us = MIN(us * 2, 1000u);
		}
	}
	atomic_fetch_sub(&rcu->waiting, 1);
}

static bool key_in_use(struct pager_rcu *rcu, uint64_t key)
{
	for (unsigned i = 0; i < rcu->n; i++)
		if (atomic_load(&rcu->r[i].key) == key)
			return true;
	return false;
}

/*
 * Grace period for one key, whose object the caller has unpublished
 * (seq_cst): wait only for the readers that show it. A reader publishes
 * its key (seq_cst) before it checks what writers unpublish, so either it
 * sees the change and keeps off, or we see its key and wait for it.
 * Readers busy with other keys go on meanwhile (memory migration pauses
 * one section, not the VM).
 */
void pager_rcu_synchronize_key(struct pager_rcu *rcu, uint64_t key)
{
	unsigned us = 10;

	if (!rcu->r)
		return;
	begin(rcu);   /* cut short a reader's wait for budget space */
	while (key_in_use(rcu, key)) {
		usleep(us);
		us = MIN(us * 2, 1000u);
	}
	atomic_fetch_sub(&rcu->waiting, 1);
}

bool pager_rcu_wait_quiet(struct pager_rcu *rcu, uint64_t key, unsigned max_ms)
{
	uint64_t end = now_ns() + max_ms * 1000000ull;

	if (!rcu->r)
		return true;
	while (key_in_use(rcu, key)) {
		if (now_ns() > end)
			return false;
		usleep(20);
	}
	return true;
}
