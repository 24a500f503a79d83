// SPDX-License-Identifier: MIT
/*
 * The section table: which sections of the pool are allocated, to whom,
 * and in which generation.
 *
 * Each section has an in-memory entry with a reader-writer lock. Page I/O,
 * atomics and copies hold the read lock while they check the state and
 * generation and touch the pages, so an allocation or a free (write lock)
 * can never race with an access through an older grant: a stale reader
 * either finishes before the section changes hands or sees the new
 * generation and fails with -ESTALE.
 *
 * Allocation zeroes the section before the record says it is in use, so a
 * crash at any point cannot hand old data to a new owner; a free zeroes it
 * again to give the memory back at once. The generation increases on every
 * allocation and is kept in free records too, so a restarted persistent
 * node never reuses a generation. An anonymous pool starts its generations
 * from a random base, so grants minted before a restart do not match.
 *
 * Allocation also resets the section's ownership epoch (fence.c) to 0,
 * durably, before the record says "used": grants of the new generation
 * start at epoch 0, and no grant of an older generation matches anyway.
 */
#include "memnode.h"

#include <errno.h>
#include <string.h>

#include "macro.h"

static void rec_store(struct mn_pool *p, uint32_t idx, uint32_t state, uint32_t generation,
		      uint64_t owner, bool set_body)
{
	struct mn_rec *rec = &p->recs[idx];

	if (set_body) {
		__atomic_store_n(&rec->generation, htole32(generation), __ATOMIC_RELAXED);
		__atomic_store_n(&rec->owner, htole64(owner), __ATOMIC_RELAXED);
	}
	/* The state word last, in one aligned store. */
	__atomic_store_n(&rec->state, htole32(state), __ATOMIC_RELEASE);
}

int mn_table_init(struct mn_table *t, struct mn_pool *p)
{
	pthread_rwlockattr_t attr;
	uint32_t base = 0;
	int r;

	memset(t, 0, sizeof(*t));
	t->pool = p;
	t->nsections = p->nsections;
	t->secs = calloc(p->nsections, sizeof(*t->secs));
	if (!t->secs)
		return -ENOMEM;
	if (p->backing == MN_BACK_ANON) {
		r = auth_random(&base, sizeof(base));
		if (r < 0) {
			free(t->secs);
			t->secs = NULL;
			return r;
		}
		base &= 0x7fff0000u;
	}
	pthread_mutex_init(&t->mu, NULL);
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	for (uint32_t i = 0; i < t->nsections; i++) {
		struct mn_sec *s = &t->secs[i];
		struct mn_rec *rec = &p->recs[i];

		pthread_rwlock_init(&s->lock, &attr);
		if (p->backing == MN_BACK_ANON) {
			s->state = MN_SEC_FREE;
			s->generation = base;
			continue;
		}
		s->state = le32toh(rec->state);
		s->generation = le32toh(rec->generation);
		s->owner = le64toh(rec->owner);
		s->epoch = le32toh(p->epochs[i]);
		if (s->state == MN_SEC_USED)
			t->nused++;
	}
	pthread_rwlockattr_destroy(&attr);
	return 0;
}

void mn_table_destroy(struct mn_table *t)
{
	if (!t->secs)
		return;
	for (uint32_t i = 0; i < t->nsections; i++)
		pthread_rwlock_destroy(&t->secs[i].lock);
	pthread_mutex_destroy(&t->mu);
	free(t->secs);
	t->secs = NULL;
}

int mn_table_alloc(struct mn_table *t, uint64_t owner, struct proto_section *ret)
{
	struct mn_sec *s = NULL;
	uint32_t idx = 0, gen;
	int r;

	pthread_mutex_lock(&t->mu);
	for (uint32_t k = 0; k < t->nsections; k++) {
		uint32_t i = (t->hint + k) % t->nsections;

		if (t->secs[i].state == MN_SEC_FREE) {
			idx = i;
			s = &t->secs[i];
			break;
		}
	}
	if (!s) {
		pthread_mutex_unlock(&t->mu);
		return -ENOSPC;
	}
	pthread_rwlock_wrlock(&s->lock);
	/* Zero first: the record must not say "used" before the data is gone. */
	r = mn_pool_zero(t->pool, idx);
	if (r < 0)
		goto out;
	/* Likewise the epoch of the previous generation. */
	__atomic_store_n(&t->pool->epochs[idx], 0, __ATOMIC_RELEASE);
	r = mn_pool_sync_epoch(t->pool, idx);
	if (r < 0)
		goto out;
	s->epoch = 0;
	gen = s->generation + 1;
	if (gen == 0)
		gen = 1;
	rec_store(t->pool, idx, MN_SEC_USED, gen, owner, true);
	r = mn_pool_sync_rec(t->pool, idx);
	if (r < 0) {
		/* Not durable: roll the record back (the generation stays spent). */
		rec_store(t->pool, idx, MN_SEC_FREE, gen, 0, true);
		s->generation = gen;
		goto out;
	}
	s->state = MN_SEC_USED;
	s->generation = gen;
	s->owner = owner;
	t->nused++;
	t->hint = (idx + 1) % t->nsections;
	*ret = (struct proto_section){ .section = idx, .generation = gen, .owner_id = owner };
	r = 0;
out:
	pthread_rwlock_unlock(&s->lock);
	pthread_mutex_unlock(&t->mu);
	return r;
}

int mn_table_free(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t epoch)
{
	struct mn_sec *s;
	int r;

	if (idx >= t->nsections)
		return -ENOENT;
	s = &t->secs[idx];
	pthread_mutex_lock(&t->mu);
	pthread_rwlock_wrlock(&s->lock);
	if (s->state != MN_SEC_USED) {
		r = -ENOENT;
		goto out;
	}
	if (s->generation != generation) {
		r = -ESTALE;
		goto out;
	}
	if (epoch < s->epoch) {
		r = -EKEYREVOKED;     /* an old owner: the section has been handed over */
		goto out;
	}
	rec_store(t->pool, idx, MN_SEC_FREE, 0, 0, false);
	s->state = MN_SEC_FREE;
	t->nused--;
	r = mn_pool_sync_rec(t->pool, idx);
	/* Give the memory back now; allocation zeroes again anyway. */
	(void)mn_pool_zero(t->pool, idx);
out:
	pthread_rwlock_unlock(&s->lock);
	pthread_mutex_unlock(&t->mu);
	return r;
}

uint32_t mn_table_list(struct mn_table *t, uint32_t start, uint32_t max,
		       struct proto_section *out, uint32_t *ret_next)
{
	uint32_t n = 0, i;

	pthread_mutex_lock(&t->mu);
	for (i = start; i < t->nsections && n < max; i++) {
		const struct mn_sec *s = &t->secs[i];

		if (s->state != MN_SEC_USED)
			continue;
		out[n++] = (struct proto_section){
			.section = i,
			.generation = s->generation,
			.owner_id = s->owner,
		};
	}
	pthread_mutex_unlock(&t->mu);
	*ret_next = MIN(i, t->nsections);
	return n;
}

int mn_table_rdlock(struct mn_table *t, uint32_t idx, uint32_t generation)
{
	struct mn_sec *s;

	if (idx >= t->nsections)
		return -ENOENT;
	s = &t->secs[idx];
	pthread_rwlock_rdlock(&s->lock);
	if (s->state != MN_SEC_USED) {
		pthread_rwlock_unlock(&s->lock);
		return -ENOENT;
	}
	if (s->generation != generation) {
		pthread_rwlock_unlock(&s->lock);
		return -ESTALE;
	}
	return 0;
}

void mn_table_unlock(struct mn_table *t, uint32_t idx)
{
	pthread_rwlock_unlock(&t->secs[idx].lock);
}

/* The directory's page copies (dir.h). */
static int page_copy(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t page,
		     void *dst, const void *src)
{
	uint8_t *p;
	int r;

	if (page >= t->pool->section_pages)
		return -ERANGE;
	r = mn_table_rdlock(t, idx, generation);
	if (r < 0)
		return r;
	p = mn_pool_section(t->pool, idx) + (size_t)page * PROTO_PAGE_SIZE;
	memcpy(dst ? dst : p, src ? src : p, PROTO_PAGE_SIZE);
	mn_table_unlock(t, idx);
	return 0;
}

int mn_table_page_read(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t page,
		       void *buf)
{
	return page_copy(t, idx, generation, page, buf, NULL);
}

int mn_table_page_write(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t page,
			const void *data)
{
	return page_copy(t, idx, generation, page, NULL, data);
}
