/* SPDX-License-Identifier: MIT */
/*
 * The coherence directory's core (dir_core.c), for its other files (dir.c,
 * dir_grace.c, dir_away.c). Every call is made with d->mu held.
 */
#ifndef DISAGG_MEMNODE_DIR_CORE_H
#define DISAGG_MEMNODE_DIR_CORE_H

#include <stdbool.h>
#include <stdint.h>

#include "dir_int.h"

/* A section without holders, requests or grace period leaves strict use. */
void dir_sec_maybe_free(struct mn_dir *d, struct dir_sec *s);
/* Where recall seq is (or would be) in the recall table. */
struct dir_recall **dir_recall_slot(struct mn_dir *d, uint64_t seq);
/* Recall r is settled (answered, or its holder dropped): its request may finish. */
void dir_recall_done(struct mn_dir *d, struct dir_recall *r);
/* Run page p's requests, first come first served, until one waits for recalls. */
void dir_page_run(struct mn_dir *d, struct dir_sec *s, uint32_t p);
/*
 * The recalls waiting for holder slot i of s, out of the lease's list and
 * linked through ->gather; settled, if settle is set (dir_recall_done,
 * which may start requests that send other recalls).
 */
struct dir_recall *dir_recalls_of(struct mn_dir *d, struct dir_sec *s, unsigned i, bool settle);
/* Does a recall of page `page` wait for holder slot i of s (sent, or away: not yet)? */
bool dir_recall_pending(const struct mn_dir *d, const struct dir_sec *s, unsigned i, uint32_t page);
/* Holder slot i out of every entry of s (owner, last writer, copyset): how many it owned. */
unsigned dir_holder_forget(struct mn_dir *d, struct dir_sec *s, unsigned i);
/*
 * Holder slot i leaves section s: out of every entry, its recalls settled
 * without data, its channel let go (dir_core.c).
 */
void dir_holder_drop(struct mn_dir *d, struct dir_sec *s, unsigned i, enum drop_why why);
/* Forget section s entirely (it was freed and allocated again). */
void dir_sec_retire(struct mn_dir *d, struct dir_sec *s);

#endif /* DISAGG_MEMNODE_DIR_CORE_H */
