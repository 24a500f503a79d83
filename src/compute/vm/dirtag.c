// SPDX-License-Identifier: MIT
/*
 * Holder tags of strict regions (dirtag.h): a bitmap of the tags in use,
 * the lowest free one first. Tag 0 is the compute node itself (a holder
 * that predates tags) and is never handed out.
 */
#include "dirtag.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define NTAGS 65536u

static pthread_mutex_t tags_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t tags_used[NTAGS / 64];

static void set_all(struct vm_shared *s, uint16_t tag)
{
	for (unsigned k = 0; k < s->nsec; k++)
		s->secs[k].sec.dir_tag = tag;
}

static bool used(uint32_t t)
{
	return tags_used[t / 64] & (1ull << (t % 64));
}

/* Tag t is s's now (tags_mu held). */
static void take(struct vm_shared *s, uint32_t t)
{
	tags_used[t / 64] |= 1ull << (t % 64);
	set_all(s, (uint16_t)t);
}

int vm_dirtag_take_again(struct vm_shared *s, uint16_t want)
{
	int r = -EUSERS;

	if (strcmp(s->mode, "strict") != 0 || !s->nsec)
		return 0;
	pthread_mutex_lock(&tags_mu);
	if (want && !used(want)) {
		take(s, want);
		pthread_mutex_unlock(&tags_mu);
		return 0;
	}
	for (uint32_t t = 1; t < NTAGS; t++)
		if (!used(t)) {
			take(s, t);
			r = 0;
			break;
		}
	pthread_mutex_unlock(&tags_mu);
	return r;
}

int vm_dirtag_take(struct vm_shared *s)
{
	return vm_dirtag_take_again(s, 0);
}

void vm_dirtag_give(struct vm_shared *s)
{
	uint16_t t = s->nsec ? s->secs[0].sec.dir_tag : 0;

	if (!t)
		return;
	pthread_mutex_lock(&tags_mu);
	tags_used[t / 64] &= ~(1ull << (t % 64));
	pthread_mutex_unlock(&tags_mu);
	set_all(s, 0);
}
