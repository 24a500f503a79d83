/* SPDX-License-Identifier: MIT */
/*
 * The coherence directory after a restart (dir_grace.c): the grace period
 * in which the holders attached before it hand back the pages they changed.
 */
#ifndef DISAGG_MEMNODE_DIR_GRACE_H
#define DISAGG_MEMNODE_DIR_GRACE_H

#include <stdint.h>

#include "dir.h"

/*
 * At start, before the node serves: the holders the directory's table on
 * disk names (mn_dir_new's tab) for sections still allocated with their
 * generation get grace_ms (0: none, they are forgotten) to attach again
 * and reclaim the pages they changed (mn_dir_reclaim). Until they all have,
 * or the time is up, the section's DIR_READ and DIR_WRITE answer
 * -EINPROGRESS. Does nothing without a table.
 */
int mn_dir_grace_load(struct mn_dir *d, unsigned grace_ms);

/*
 * DIR_RECLAIM by holder (g->holder_id, tag) on its recall channel chan:
 * page `page` as it changed it before the restart (data), or with data
 * NULL the end of its reclaim of the section (0 whenever the holder is
 * attached on chan). A page: -EUNATCH unless the section is in its grace
 * period and the holder was attached before the restart and attached
 * again on chan since, or the holder is away (dir_away.h) and attached
 * again on chan: then a page it still owns is stored, any other ignored,
 * and DONE ends its absence. recalled: the holder gave the page up in a recall
 * answer just before the restart; it is stored only if no holder hands back
 * that page without it, and, with the version of that recall (version not
 * NULL), only if nobody was made the page's owner after it (0 either way).
 */
int mn_dir_reclaim(struct mn_dir *d, struct mn_conn *chan, const struct proto_grant *g,
		   uint16_t tag, uint32_t page, const void *data, bool recalled,
		   const uint32_t *version);

#endif /* DISAGG_MEMNODE_DIR_GRACE_H */
