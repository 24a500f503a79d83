// SPDX-License-Identifier: MIT
/*
 * Ownership epochs: the memory node's half of fencing (docs/memnode.md,
 * "Ownership epochs").
 *
 * Every allocated section has an epoch, the highest ownership epoch the
 * node has seen in a valid grant for it (0 when allocated). A write (WRITE,
 * CAS, FADD, and so the writes of a COPY into the section) through a grant
 * of a lower epoch is refused: its holder was the owner once, but the
 * section has been handed over since, and a late write of the old owner
 * must never land on the new owner's data. A write through a grant of a
 * higher epoch, or a FENCE with one, raises the section's epoch first.
 *
 * A raise takes the section's write lock, so it waits for every access
 * under way (they hold the read lock): once FENCE has answered, no write
 * of an older epoch is in progress or can start. The new epoch is made
 * durable (pool.c keeps the epochs in the pool file) before it is used, so
 * a restarted persistent node keeps refusing the old owner. Reads are not
 * fenced: an old owner reading does no harm.
 */
#include "memnode.h"

#include <errno.h>

int mn_table_fence(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t epoch,
		   uint32_t *ret_epoch)
{
	struct mn_sec *s;
	int r = 0;

	if (idx >= t->nsections)
		return -ENOENT;
	s = &t->secs[idx];
	pthread_rwlock_wrlock(&s->lock);
	if (s->state != MN_SEC_USED) {
		r = -ENOENT;
	} else if (s->generation != generation) {
		r = -ESTALE;
	} else if (epoch > s->epoch) {
		s->epoch = epoch;
		__atomic_store_n(&t->pool->epochs[idx], htole32(epoch), __ATOMIC_RELEASE);
		r = mn_pool_sync_epoch(t->pool, idx);
		if (r == 0)
			r = 1;
	}
	if (r >= 0 && ret_epoch)
		*ret_epoch = s->epoch;
	pthread_rwlock_unlock(&s->lock);
	return r;
}

int mn_table_lock_write(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t epoch,
			bool *ret_raised)
{
	*ret_raised = false;
	/* At most twice round: after a raise the epoch is at least ours. */
	for (;;) {
		int r = mn_table_rdlock(t, idx, generation);
		uint32_t cur;

		if (r < 0)
			return r;
		cur = t->secs[idx].epoch;
		if (epoch == cur)
			return 0;
		mn_table_unlock(t, idx);
		if (epoch < cur)
			return -EKEYREVOKED;
		r = mn_table_fence(t, idx, generation, epoch, NULL);
		if (r < 0)
			return r;
		*ret_raised |= r > 0;
	}
}
