// SPDX-License-Identifier: MIT
/*
 * A quiescent-state-based RCU for the fault threads (the readers).
 *
 * Each reader has a counter, odd while it is inside a read-side critical
 * section (it may hold pointers to what writers unpublish), and a key: what
 * it is working on now (a section; 0: nothing). A writer unpublishes first
 * (seq_cst stores), then waits for a grace period: pager_rcu_synchronize()
 * until every reader that was inside has left, pager_rcu_synchronize_key()
 * only for the readers that show the key. Sleeping outside a critical
 * section (the fault threads' epoll_wait) is a quiescent state. Readers pay
 * two atomic increments per critical section and no lock.
 *
 * A reader may block inside a critical section (a fault thread waiting for
 * budget space); `kick` is called when a grace period starts so that such
 * a wait can be cut short, and pager_rcu_waiting() tells the reader that a
 * grace period is being waited for.
 *
 * Why not liburcu's QSBR flavour: it has one grace-period domain per
 * process, and the agent runs one pager per VM. A grace period of one VM's
 * pager would wait for the fault threads of every VM, including one whose
 * fetch is retrying against a memory node that is down (fail_timeout_ms).
 * Here each pager has its own readers, and a grace period waits for those
 * only (and pager_rcu_synchronize_key() for one section's).
 */
#ifndef DISAGG_PAGER_RCU_H
#define DISAGG_PAGER_RCU_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct pager_rcu_reader {
	_Atomic uint64_t seq;          /* odd: inside a critical section */
	_Atomic uint64_t key;          /* what the reader works on (0: nothing) */
	char pad[64 - 2 * sizeof(uint64_t)];
};

struct pager_rcu {
	struct pager_rcu_reader *r;    /* [n]; NULL until pager_rcu_init (no reader yet) */
	unsigned n;
	_Atomic unsigned waiting;      /* grace periods being waited for */
	void (*kick)(void *arg);       /* a grace period starts: unblock waiting readers */
	void *kick_arg;
};

/* Readers 0 .. n-1. -ENOMEM. */
int pager_rcu_init(struct pager_rcu *rcu, unsigned n);
void pager_rcu_fini(struct pager_rcu *rcu);

static inline void pager_rcu_enter(struct pager_rcu *rcu, unsigned i)
{
	atomic_fetch_add(&rcu->r[i].seq, 1);
}

static inline void pager_rcu_exit(struct pager_rcu *rcu, unsigned i)
{
	atomic_fetch_add(&rcu->r[i].seq, 1);
}

/* Publish what reader i works on (seq_cst, before it checks what writers unpublish). */
static inline void pager_rcu_set_key(struct pager_rcu *rcu, unsigned i, uint64_t key)
{
	atomic_store(&rcu->r[i].key, key);
}

/* Is a writer waiting for a grace period? (A reader should not block now.) */
static inline bool pager_rcu_waiting(struct pager_rcu *rcu)
{
	return atomic_load(&rcu->waiting) != 0;
}

/* Wait until every reader that was inside a critical section has left it. */
void pager_rcu_synchronize(struct pager_rcu *rcu);
/* Wait until no reader shows `key` (the caller unpublished what key names). */
void pager_rcu_synchronize_key(struct pager_rcu *rcu, uint64_t key);
/* Wait (up to max_ms, no kick) until no reader shows `key`: true if so. */
bool pager_rcu_wait_quiet(struct pager_rcu *rcu, uint64_t key, unsigned max_ms);

#endif /* DISAGG_PAGER_RCU_H */
