// SPDX-License-Identifier: MIT
/*
 * Replicated sections (replica.c; docs/pager.md, "Replicated sections"). A
 * remote section with nrep >= 2 lives on nrep memory nodes at once:
 * positions 0 (the descriptor's addr/grant) to nrep - 1 (more[]). Each
 * position is either in (written and read) or out (stale: never used again
 * until a memory migration of that position puts a new section in it).
 *
 * The out-mask of a section (region's rout[], bit k: position k is out) is
 * set lock-free by whoever sees a failure (a CAS loop that never takes the
 * last in-replica out) and reset when the section's descriptor is
 * replaced. The backend is always called with a "view" of one replica: a
 * copy of the section with that replica's addr/grant and nrep 0.
 *
 * pager_section_find_replica, pager_replica_drop and pager_replicas_out
 * are in region.h. A replica taken out is reported through cfg.on_replica by the report
 * thread of this module (no pager lock is held there); the takers may hold
 * io_lock.
 */
#ifndef DISAGG_PAGER_REPLICA_H
#define DISAGG_PAGER_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

struct pager_region;

/* Replica positions of s: nrep when replicated (at most PAGER_MAX_REPLICAS), else 1. */
static inline unsigned pager_rep_n(const struct pager_section *s)
{
	if (s->kind != PAGER_SEC_REMOTE || s->nrep < 2)
		return 1;
	return s->nrep < PAGER_MAX_REPLICAS ? s->nrep : PAGER_MAX_REPLICAS;
}

static inline bool pager_rep_replicated(const struct pager_section *s)
{
	return pager_rep_n(s) >= 2;
}

/* *ret = s with the addr/grant of position k (k < pager_rep_n(s)) and nrep 0. */
void pager_rep_view(const struct pager_section *s, unsigned k, struct pager_section *ret);
/* Put addr/grant of `target` in position k of s (memory migration's commit). */
void pager_rep_set(struct pager_section *s, unsigned k, const struct pager_section *target);
/* Is position k of s the remote section `match` (memory node id, section, generation)? */
bool pager_rep_is(const struct pager_section *s, unsigned k, const struct pager_section *match);

/* ---- for the pager's own layers ------------------------------------------- */

/* The out-mask of section sec of r (bit k: position k is out). Lock-free. */
unsigned pager_rep_out(const struct pager_region *r, unsigned sec);
/* Positions of section sec of r that are in, as a mask (never empty for a remote section). */
unsigned pager_rep_in(const struct pager_region *r, unsigned sec);
/* The lowest in-position after `after` (-1: from the start), or -1. */
int pager_rep_next_in(const struct pager_region *r, unsigned sec, int after);

/*
 * Take position k of section sec of r out because of err. The bit is set
 * by a CAS; only the report queue's leaf lock is taken (briefly), so any
 * thread may call it with any pager lock held. 0: taken out now (reported through on_replica
 * later, from the report thread); -EALREADY: it was out; -EBUSY: it is the
 * only in-replica (never taken out); -ERANGE: no such position.
 */
int pager_rep_take_out(struct pager *p, struct pager_region *r, unsigned sec, unsigned k, int err);
/*
 * The positions the section's descriptor names as out (its `out`, from a
 * record: they missed writes before) are out, quietly (no report: whoever
 * recorded them knows). Never every position. After the descriptor was
 * added or set.
 */
void pager_rep_mark_recorded(struct pager *p, struct pager_region *r, unsigned sec);
/* Every position of section sec is in again (its descriptor was replaced); p->lock or fenced. */
void pager_rep_reset(struct pager *p, struct pager_region *r, unsigned sec);
/* Position k of section sec is in again (memory migration's commit). */
void pager_rep_set_in(struct pager *p, struct pager_region *r, unsigned sec, unsigned k);

/* Lifecycle (pager.c): the report queue and its thread. */
int pager_repl_new(struct pager *p);
int pager_repl_start(struct pager *p);
void pager_repl_stop(struct pager *p);
void pager_repl_free(struct pager *p);

#endif /* DISAGG_PAGER_REPLICA_H */
