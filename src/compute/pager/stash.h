// SPDX-License-Identifier: MIT
/*
 * Sealed neighbours (sealed slots only, crypt.h): a random fault's cluster
 * is fetched in one round trip, but only the faulting page is opened and
 * installed before the guest is woken. The other claimed pages stay
 * sealed, and BUSY, in one of the fault thread's stash entries, with the
 * buffer they were fetched into. They are opened and installed (serve.c,
 * pager_stash_install):
 *   - when the guest faults on one of them (the whole entry: the guest
 *     came back to that cluster), on this thread, without a round trip;
 *   - when the fault thread has nothing else to do (fault.c: after it has
 *     yielded the CPU once, so that a guest woken on the same CPU runs
 *     first), one entry at a time, oldest first, looking for faults
 *     between entries; the thread never sleeps with a stash entry held;
 *   - or never, when a new fault needs an entry and all are held: the
 *     oldest is given up unopened (its claims released, counted in
 *     pages_stash_dropped); a later fault fetches those pages again.
 *     Unless the guest has been coming back to neighbours given up
 *     before (pager_stash_keep): then the oldest is opened and installed
 *     on the new fault's time. A fault that may wait for budget space
 *     gives the whole stash up first (serve.c).
 * A page that fails authentication is never installed, as on the fault's
 * own page (atrest.h): its claim is released and a fault on it finds it bad
 * again, and parks.
 *
 * A stash belongs to one fault thread; entries name their region by slot
 * and generation, looked up again under the thread's RCU read section.
 */
#ifndef DISAGG_PAGER_STASH_H
#define DISAGG_PAGER_STASH_H

#include <stdbool.h>
#include <stdint.h>

#define PAGER_STASH_ENTRIES 8u
#define PAGER_STASH_PAGES   32u   /* pages per entry: a random fault's range */
#define PAGER_STASH_DECAY   64u

struct pager_stash_ent {
	bool used;
	uint32_t region, gen;        /* p->regions[region], of generation gen */
	uint64_t start, n;           /* pages [start, start + n) of the region */
	uint64_t sec;                /* the section of the fault they came with */
	uint64_t age;
	uint32_t resets;             /* the section's r->resets when held */
	uint8_t claimed[PAGER_STASH_PAGES]; /* 1: claimed (BUSY) by us, still sealed */
	uint8_t *buf;                /* PAGER_STASH_PAGES pages, page i at (i - start) */
};

struct pager_stash {
	uint64_t clock;
	unsigned used;
	/*
	 * When all entries are held, the oldest is opened and installed if
	 * the guest came back often to neighbours given up before (regrets:
	 * faults on HIST_DROPPED pages, against drops), else given up. Both
	 * halve every PAGER_STASH_DECAY entries held.
	 */
	unsigned drops, regrets, holds;
	struct pager_stash_ent e[PAGER_STASH_ENTRIES];
};

int pager_stash_new(struct pager_stash **ret);
void pager_stash_free(struct pager_stash *s);

static inline bool pager_stash_pending(const struct pager_stash *s)
{
	return s && s->used;
}

/* An unused entry (its buffer to fetch into), or NULL if all are held. */
struct pager_stash_ent *pager_stash_unused(struct pager_stash *s);
/* The oldest held entry, or NULL. */
struct pager_stash_ent *pager_stash_oldest(struct pager_stash *s);
/* The held entry with page pg of (region, gen) claimed, or NULL. */
struct pager_stash_ent *pager_stash_find(struct pager_stash *s, uint32_t region, uint32_t gen,
					 uint64_t pg);
/* All entries held: open the oldest (true) rather than give it up? */
static inline bool pager_stash_keep(const struct pager_stash *s)
{
	return s->regrets * 2 > s->drops;
}

/* Hold e (filled by the caller). */
void pager_stash_hold(struct pager_stash *s, struct pager_stash_ent *e);
/* e is done with (installed, released, or its region is gone). */
void pager_stash_put(struct pager_stash *s, struct pager_stash_ent *e);

#endif /* DISAGG_PAGER_STASH_H */
