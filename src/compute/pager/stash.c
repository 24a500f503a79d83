// SPDX-License-Identifier: MIT
/*
 * A fault thread's stash of sealed neighbours (stash.h): the entries and
 * their buffers. What goes in and out of it is serve.c's and fault.c's.
 */
#include "stash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

int pager_stash_new(struct pager_stash **ret)
{
	struct pager_stash *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	for (unsigned i = 0; i < PAGER_STASH_ENTRIES; i++) {
		s->e[i].buf = aligned_alloc(PS, (size_t)PAGER_STASH_PAGES * PS);
		if (!s->e[i].buf) {
			pager_stash_free(s);
			return -ENOMEM;
		}
	}
	*ret = s;
	return 0;
}

void pager_stash_free(struct pager_stash *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < PAGER_STASH_ENTRIES; i++)
		free(s->e[i].buf);
	free(s);
}

struct pager_stash_ent *pager_stash_unused(struct pager_stash *s)
{
	for (unsigned i = 0; i < PAGER_STASH_ENTRIES; i++)
		if (!s->e[i].used)
			return &s->e[i];
	return NULL;
}

struct pager_stash_ent *pager_stash_oldest(struct pager_stash *s)
{
	struct pager_stash_ent *o = NULL;

	for (unsigned i = 0; s->used && i < PAGER_STASH_ENTRIES; i++)
		if (s->e[i].used && (!o || s->e[i].age < o->age))
			o = &s->e[i];
	return o;
}

struct pager_stash_ent *pager_stash_find(struct pager_stash *s, uint32_t region, uint32_t gen,
					 uint64_t pg)
{
	for (unsigned i = 0; s->used && i < PAGER_STASH_ENTRIES; i++) {
		struct pager_stash_ent *e = &s->e[i];

		if (e->used && e->region == region && e->gen == gen && pg >= e->start &&
		    pg < e->start + e->n && e->claimed[pg - e->start])
			return e;
	}
	return NULL;
}

void pager_stash_hold(struct pager_stash *s, struct pager_stash_ent *e)
{
	e->used = true;
	e->age = ++s->clock;
	s->used++;
	if (++s->holds >= PAGER_STASH_DECAY) {
		s->holds = 0;
		s->drops /= 2;
		s->regrets /= 2;
	}
}

void pager_stash_put(struct pager_stash *s, struct pager_stash_ent *e)
{
	if (!e->used)
		return;
	e->used = false;
	s->used--;
}
