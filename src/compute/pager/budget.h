// SPDX-License-Identifier: MIT
/*
 * The local cache budget: how many remote pages may be resident, and the
 * count of those that are (budget.c). Local sections are not counted.
 * Over the budget the evictor (evict.c) evicts down to `budget - batch/2`;
 * a fault thread waits (up to 200 ms) only when the resident count exceeds
 * budget + max(2 * batch, max_window + cluster), the hard limit. It is
 * checked before a fault, so each fault thread may go past it by what one
 * fault installs (a cluster, or a window).
 */
#ifndef DISAGG_PAGER_BUDGET_H
#define DISAGG_PAGER_BUDGET_H

#include <stdint.h>

struct pager;

/* Change the budget (bytes of remote pages resident). Eviction starts at once. */
int pager_set_budget(struct pager *p, uint64_t bytes);
/* Wait until resident <= budget (or timeout_ms, <0 forever): -ETIMEDOUT. */
int pager_wait_budget(struct pager *p, int timeout_ms);

/* n pages became resident (> 0) or left (< 0): wakes the evictor or the waiters. */
void pager_resident_add(struct pager *p, int64_t n);
/* A fault thread: wait (bounded) while the resident set is over the hard limit. */
void pager_budget_wait_space(struct pager *p);
/* Wake the threads waiting for space (the RCU's kick: a grace period needs them). */
void pager_budget_kick(void *pager);

#endif /* DISAGG_PAGER_BUDGET_H */
