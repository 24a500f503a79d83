// SPDX-License-Identifier: MIT
/*
 * The local cache budget (budget.h): resident accounting, the waits for
 * space, and the budget API. The evictor (evict.c) does the evicting.
 */
#include "budget.h"

#include <time.h>

#include "core.h"
#include "net.h"

static uint64_t hard_limit(const struct pager *p)
{
	uint64_t b = atomic_load(&p->budget_pages);
	uint64_t slack = MAX((uint64_t)p->batch * 2, (uint64_t)p->max_window + p->cluster);

	return b > UINT64_MAX - slack ? UINT64_MAX : b + slack;
}

void pager_resident_add(struct pager *p, int64_t n)
{
	uint64_t v = atomic_fetch_add(&p->resident, (uint64_t)n) + (uint64_t)n;

	if (n > 0) {
		uint64_t m = atomic_load(&p->max_resident);
		while (v > m && !atomic_compare_exchange_weak(&p->max_resident, &m, v))
			;
		if (v > atomic_load(&p->budget_pages))
			pthread_cond_signal(&p->evict_cond);
	} else {
		pthread_cond_broadcast(&p->space_cond);
	}
}

/* Wait (bounded) while the resident set is over the hard limit. */
void pager_budget_wait_space(struct pager *p)
{
	struct timespec ts;
	uint64_t t0;

	if (atomic_load(&p->resident) <= hard_limit(p))
		return;
	t0 = now_ns();
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 200 * 1000 * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&p->lock);
	pthread_cond_signal(&p->evict_cond);
	while (!atomic_load(&p->stop) && !pager_rcu_waiting(&p->rcu) &&
	       atomic_load(&p->resident) > hard_limit(p))
		if (pthread_cond_timedwait(&p->space_cond, &p->lock, &ts) != 0)
			break;
	pthread_mutex_unlock(&p->lock);
	hist_observe(&p->h_space, now_ns() - t0);
}

void pager_budget_kick(void *arg)
{
	struct pager *p = arg;

	pthread_mutex_lock(&p->lock);
	pthread_cond_broadcast(&p->space_cond);
	pthread_mutex_unlock(&p->lock);
}

int pager_set_budget(struct pager *p, uint64_t bytes)
{
	uint64_t pages = bytes == UINT64_MAX ? UINT64_MAX : bytes / PS;

	if (p->mode == PAGER_DIRTY_ASYNC_WP && !p->cfg.allow_async_evict &&
	    pages < atomic_load(&p->remote_pages))
		return -EOPNOTSUPP;
	pthread_mutex_lock(&p->lock);
	atomic_store(&p->budget_pages, pages);
	pthread_cond_signal(&p->evict_cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int pager_wait_budget(struct pager *p, int timeout_ms)
{
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ns() + (uint64_t)timeout_ms * 1000000;
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	while (atomic_load(&p->resident) > atomic_load(&p->budget_pages)) {
		struct timespec ts;

		if (atomic_load(&p->failed)) {
			rc = atomic_load(&p->failed);
			break;
		}
		if (now_ns() >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		pthread_cond_signal(&p->evict_cond);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000000L;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->space_cond, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}
