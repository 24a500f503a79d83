// SPDX-License-Identifier: MIT
/*
 * WRITE_DIFF frames applied at most once (once.h). The sections share a
 * few locks (striped by index); a section's writers are allocated when its
 * first PROTO_DIFF_ONCE frame comes, so a node without release regions
 * spends a pointer a section.
 */
#include "once.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

#define STRIPES 64u
#define WORDS (PROTO_DIFF_ONCE_FRAMES / 64)

struct once_writer {
	uint64_t holder, stream, batch;   /* stream 0: a free entry */
	uint64_t seen;                    /* the table's clock when it last came */
	uint64_t frames[WORDS];           /* of `batch`: applied */
};

struct once_sec {
	uint32_t generation;
	uint64_t clock;
	struct once_writer w[MN_ONCE_WRITERS];
};

struct mn_once {
	uint32_t nsections;
	struct once_sec **secs;
	pthread_mutex_t mu[STRIPES];
};

int mn_once_new(uint32_t nsections, struct mn_once **ret)
{
	struct mn_once *o = calloc(1, sizeof(*o));

	if (!o)
		return -ENOMEM;
	o->secs = calloc(nsections ? nsections : 1, sizeof(*o->secs));
	if (!o->secs) {
		free(o);
		return -ENOMEM;
	}
	o->nsections = nsections;
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_init(&o->mu[i], NULL);
	*ret = o;
	return 0;
}

void mn_once_free(struct mn_once *o)
{
	if (!o)
		return;
	for (uint32_t i = 0; i < o->nsections; i++)
		free(o->secs[i]);
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&o->mu[i]);
	free(o->secs);
	free(o);
}

/* The writer's entry, else a free one, else the one seen longest ago (emptied). */
static struct once_writer *writer(struct once_sec *s, uint64_t holder, uint64_t stream)
{
	struct once_writer *pick = NULL;

	for (unsigned i = 0; i < MN_ONCE_WRITERS; i++) {
		struct once_writer *w = &s->w[i];

		if (w->stream == stream && w->holder == holder)
			return w;
		if (!pick || (pick->stream && (!w->stream || w->seen < pick->seen)))
			pick = w;
	}
	memset(pick, 0, sizeof(*pick));
	pick->holder = holder;
	pick->stream = stream;
	return pick;
}

bool mn_once_begin(struct mn_once *o, uint32_t idx, uint32_t generation, uint64_t holder,
		   const struct proto_diff_once *id)
{
	struct once_writer *w;
	struct once_sec *s;
	uint64_t bit;

	pthread_mutex_lock(&o->mu[idx % STRIPES]);
	if (idx >= o->nsections)
		return true;
	s = o->secs[idx];
	if (!s) {
		s = o->secs[idx] = calloc(1, sizeof(*s));
		if (!s)
			return true;   /* applied as a frame without PROTO_DIFF_ONCE */
		s->generation = generation;
	}
	if (s->generation != generation) {
		memset(s, 0, sizeof(*s));
		s->generation = generation;
	}
	w = writer(s, holder, id->stream);
	w->seen = ++s->clock;
	if (id->batch < w->batch)
		return false;   /* older than what the writer sent since */
	if (id->batch > w->batch) {
		w->batch = id->batch;
		memset(w->frames, 0, sizeof(w->frames));
	}
	bit = 1ull << (id->frame % 64);
	if (w->frames[id->frame / 64] & bit)
		return false;
	w->frames[id->frame / 64] |= bit;
	return true;
}

void mn_once_end(struct mn_once *o, uint32_t idx)
{
	pthread_mutex_unlock(&o->mu[idx % STRIPES]);
}
