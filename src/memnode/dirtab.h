/* SPDX-License-Identifier: MIT */
/*
 * The directory's holder table on disk (dirtab.c): for every section of a
 * pool that outlives the process (tmpfs or file backing), which holders
 * (node, tag) are attached to its coherence directory, slot by slot, and
 * the section generation they attached to. The directory writes a slot
 * when a holder attaches and clears it when the holder leaves or is
 * dropped, before anything it owned is given to another holder; after a
 * restart it lets exactly those holders reclaim the pages they had changed
 * (dir_grace.c). Beside them, every page's ownership version: how many
 * times the directory has made a holder the page's owner, so that a
 * restarted node can tell a recall answer it had taken before it died from
 * one it never read (docs/protocol.md, "Page versions"). Stores go to a
 * shared mapping of the file, so a killed process loses none.
 */
#ifndef DISAGG_MEMNODE_DIRTAB_H
#define DISAGG_MEMNODE_DIRTAB_H

#include <stdbool.h>
#include <stdint.h>

#include "disagg/proto.h"

struct mn_dirtab;

struct mn_dirtab_ent {
	uint64_t node;
	uint32_t generation;
	uint16_t tag;
	uint16_t used;           /* 1: attached */
};

/*
 * Open (or create) the table of a pool file at `pool_path` (its name with
 * ".dir" appended) for `nsections` sections of `npages` pages. A table of
 * another geometry or format, or a damaged one, starts empty (logged).
 * NULL path: *ret = NULL, and every call below accepts a NULL table and
 * does nothing (versions are 0).
 */
int mn_dirtab_open(const char *pool_path, uint32_t nsections, uint32_t npages,
		   struct mn_dirtab **ret);
void mn_dirtab_close(struct mn_dirtab *t);
void mn_dirtab_set(struct mn_dirtab *t, uint32_t section, unsigned slot, uint64_t node,
		   uint16_t tag, uint32_t generation);
void mn_dirtab_clear(struct mn_dirtab *t, uint32_t section, unsigned slot);
/* Slot `slot` of `section`: false if the table is NULL or the slot is unused. */
bool mn_dirtab_get(const struct mn_dirtab *t, uint32_t section, unsigned slot,
		   struct mn_dirtab_ent *ret);

/* Page `page` of `section`: its ownership version (0: never owned, or no table). */
uint32_t mn_dirtab_version(const struct mn_dirtab *t, uint32_t section, uint32_t page);
/* Count a new owner of the page, on disk before it returns: its new version (wraps). */
uint32_t mn_dirtab_bump(struct mn_dirtab *t, uint32_t section, uint32_t page);

#endif /* DISAGG_MEMNODE_DIRTAB_H */
