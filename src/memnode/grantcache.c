// SPDX-License-Identifier: MIT
/*
 * The memory node's cache of verified grants. See grantcache.h.
 *
 * Direct-mapped on the first bytes of the signature (uniformly random for
 * an honest grant; an attacker choosing signatures can only evict entries,
 * which costs a verification, never skip one: a hit needs every byte
 * equal). One mutex: the critical section is a 104-byte compare or copy.
 */
#include "grantcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct mn_grant_cache {
	pthread_mutex_t mu;
	uint64_t mask;
	struct proto_grant *slot;
	bool *used;
};

int mn_grant_cache_new(unsigned bits, struct mn_grant_cache **ret)
{
	struct mn_grant_cache *gc = calloc(1, sizeof(*gc));

	if (!gc || bits > 20)
		goto fail;
	gc->mask = (1ull << bits) - 1;
	gc->slot = calloc(gc->mask + 1, sizeof(*gc->slot));
	gc->used = calloc(gc->mask + 1, sizeof(*gc->used));
	if (!gc->slot || !gc->used)
		goto fail;
	pthread_mutex_init(&gc->mu, NULL);
	*ret = gc;
	return 0;
fail:
	if (gc) {
		free(gc->slot);
		free(gc->used);
	}
	free(gc);
	return bits > 20 ? -EINVAL : -ENOMEM;
}

void mn_grant_cache_free(struct mn_grant_cache *gc)
{
	if (!gc)
		return;
	pthread_mutex_destroy(&gc->mu);
	free(gc->slot);
	free(gc->used);
	free(gc);
}

static uint64_t index_of(const struct mn_grant_cache *gc, const struct proto_grant *g)
{
	uint64_t h;

	memcpy(&h, g->sig, sizeof(h));
	return h & gc->mask;
}

bool mn_grant_cache_has(struct mn_grant_cache *gc, const struct proto_grant *g)
{
	uint64_t i = index_of(gc, g);
	bool hit;

	pthread_mutex_lock(&gc->mu);
	hit = gc->used[i] && memcmp(&gc->slot[i], g, sizeof(*g)) == 0;
	pthread_mutex_unlock(&gc->mu);
	return hit;
}

void mn_grant_cache_add(struct mn_grant_cache *gc, const struct proto_grant *g)
{
	uint64_t i = index_of(gc, g);

	pthread_mutex_lock(&gc->mu);
	gc->slot[i] = *g;
	gc->used[i] = true;
	pthread_mutex_unlock(&gc->mu);
}
