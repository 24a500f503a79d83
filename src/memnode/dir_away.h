/* SPDX-License-Identifier: MIT */
/*
 * Holders away (dir_away.c): a holder whose recall channel closed while it
 * held pages keeps them for a while, so that a restarted compute agent can
 * hand back what its guest wrote. For the directory's own files (dir.c,
 * dir_grace.c); every call is made with d->mu held.
 */
#ifndef DISAGG_MEMNODE_DIR_AWAY_H
#define DISAGG_MEMNODE_DIR_AWAY_H

#include <stdbool.h>
#include <stdint.h>

#include "dir_int.h"

/*
 * Holder slot i of s lost its channel (chan NULL: closed) or attaches
 * again on chan while the old one is open: it is away, keeping what it
 * holds, until it says DONE or d->away_ns passes. false: nothing of it is
 * worth waiting for (it holds nothing, the section is in its grace
 * period, or --dir-grace-ms is 0): the caller drops it. Only for a holder
 * whose channel negotiated PROTO_FEAT_DIR_RECLAIM (it could not say DONE).
 */
bool dir_holder_away(struct mn_dir *d, struct dir_sec *s, unsigned i, struct mn_conn *chan,
		     bool versions);
/*
 * DONE from holder slot i, away and attached again: the pages it handed
 * back are stored; it now holds nothing, and the recalls that waited for
 * it are settled.
 */
void dir_holder_back(struct mn_dir *d, struct dir_sec *s, unsigned i);
/* The earliest time an away holder must be back by (d->naway > 0). */
uint64_t dir_away_next(const struct mn_dir *d);
/* Drop the holders not back by now: whether any was. */
bool dir_away_expire(struct mn_dir *d, uint64_t now);

#endif /* DISAGG_MEMNODE_DIR_AWAY_H */
