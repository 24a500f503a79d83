// SPDX-License-Identifier: MIT
/*
 * Publishing the diffs of a release region (reldiff.c), for release.c and
 * for a flush of such a region (flush.c: detach, removal with write-back).
 */
#ifndef DISAGG_PAGER_RELDIFF_H
#define DISAGG_PAGER_RELDIFF_H

#include <stdint.h>

struct pager;
struct pager_region;

/*
 * Publish the diffs of every dirty page of release region r, io_lock held
 * (pager_release_publish without the control page; the lock serializes
 * the region's journal, reljournal.h). A batch the journal kept from a
 * publish before is sent again first. *ret_pages, *ret_bytes (may be
 * NULL): pages whose diff was sent, changed bytes. -EINVAL if r is no
 * release region; else 0 or the error of a batch that failed (its pages
 * stay dirty, the batch stays in the journal).
 */
int pager_release_publish_locked(struct pager *p, struct pager_region *r, uint64_t *ret_pages,
				 uint64_t *ret_bytes);

#endif /* DISAGG_PAGER_RELDIFF_H */
