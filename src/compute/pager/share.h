// SPDX-License-Identifier: MIT
/*
 * Shared regions (share.c): a mapping that several VMs, on several compute
 * nodes, map at once (an ivshmem device in each guest; docs/sharing.md).
 * Its pager region is added with pager_region_config.shared: its pages
 * travel in clear (each VM has its own slot key) and it is either
 * writable (this VM holds the region) or read-only (a write waits, its
 * thread blocked, until this VM holds it).
 *
 * In mode exclusive the compute agent moves a region between the two:
 * release (write back everything, then read-only), invalidate (drop the
 * cached pages so that the next reads fetch what another VM released) and
 * acquire (invalidate, then writable: the writes that waited go on).
 * Each is serialized with the other region changes (admin_lock) and
 * refuses to run on a pager thread (-EDEADLK).
 */
#ifndef DISAGG_PAGER_SHARE_H
#define DISAGG_PAGER_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

struct pager;

/*
 * Make `region` read-only, then write back every page of it that needs it
 * and wait until the memory node acknowledged them. On failure (a memory
 * node that does not answer, a refusal) the region is writable again, the
 * writes that waited meanwhile go on, and the error is returned.
 * *ret_flushed: pages written back (a release region: pages whose diffs
 * were published). -ENOENT, -EINVAL (not shared),
 * -EOPNOTSUPP (a pager that tracks writes without faults: WP_ASYNC).
 */
int pager_shared_release(struct pager *p, int region, uint64_t *ret_flushed);

/*
 * Drop every cached page of read-only `region` (punched, forgotten): the
 * next access fetches it from the memory node. -EBUSY if the region is
 * writable (release it first: its writes would be lost).
 * *ret_dropped: resident pages dropped.
 */
int pager_shared_invalidate(struct pager *p, int region, uint64_t *ret_dropped);

/*
 * Acquire: invalidate, then make the region writable and wake the writes
 * that waited. The caller gave its sections write grants first
 * (pager_region_set_section with the same sections).
 */
int pager_shared_acquire(struct pager *p, int region, uint64_t *ret_dropped);

/*
 * Strict region: drop every cached page, dirty ones too, WITHOUT write-back
 * (the directory forgot this node: its copies may be stale and its
 * unpublished writes are lost). -EINVAL if not strict.
 */
int pager_strict_reset(struct pager *p, int region, uint64_t *ret_dropped);

/*
 * Strict region whose recall channel broke: as pager_strict_reset, but
 * first keep every page this node owned and changed since its last
 * write-back (each write-protected before it is read, under the region's
 * fence, so no guest write is missed) on the region's answers' file
 * (answers.h), *ret_kept of them; pager_strict_kept_next reads them back
 * one at a time. The directory takes them back (DIR_RECLAIM) if the
 * memory node restarted, or if it kept this node's pages while its
 * channel was gone (an away holder, docs/memnode.md); otherwise they are
 * lost. A page that cannot be written there is lost (logged).
 */
int pager_strict_keep(struct pager *p, int region, size_t *ret_kept, uint64_t *ret_dropped);
/*
 * Strict region handed back by the shim to a restarted agent (the pager
 * added it afresh): the page state of the dead pager is gone, so every
 * page with data in the region's file (what the guest wrote to the pages
 * that node owned, and copies) is kept as pager_strict_keep keeps a
 * changed page (over what the file kept before: these are newer), and
 * then dropped. The answers the dead agent kept on file (answers.h) of
 * pages not kept go in *ret_answers (malloc'd, at most
 * PAGER_ANSWER_SLOTS; NULL when none), as pages given up in recalls: hand
 * them back first. The directory stores the pages this node still owns
 * there, and the answers it never read, and ignores the rest.
 */
int pager_strict_adopt(struct pager *p, int region, struct pager_kept **ret_answers,
		       size_t *ret_nanswers, size_t *ret_kept, uint64_t *ret_dropped);
/*
 * The next page pager_strict_keep or pager_strict_adopt kept, at or after
 * page *pos of the region (0 to start): 1 with *out and *pos moved past
 * it, 0 when there is none, -errno.
 */
int pager_strict_kept_next(struct pager *p, int region, uint64_t *pos, struct pager_kept *out);
/* The answers and pages kept on file (answers.h) were handed back: forget them. */
int pager_strict_answers_clear(struct pager *p, int region);

/* Is `region` a shared one that is writable now? (false: no such region) */
bool pager_shared_writable(struct pager *p, int region);

/* ---- for the pager's own layers (release.c, share_move.c) ------------------- */

struct pager_region;
/*
 * The shared region `region` with admin_lock taken, or NULL with *ret_err
 * and the lock released: -EINVAL, -ENOENT, -EDEADLK (a pager thread),
 * -EOPNOTSUPP (WP_ASYNC).
 */
struct pager_region *pager_shared_get(struct pager *p, int region, int *ret_err);
/*
 * Write back every page of r that needs it (a release region: publish its
 * diffs) and wait for the acknowledgements (admin_lock held).
 * *ret_flushed: pages written back or published.
 */
int pager_shared_flush(struct pager *p, struct pager_region *r, uint64_t *ret_flushed);
/*
 * Drop r's cached pages (admin_lock held): every page, dirty ones without
 * write-back (r read-only, or a strict reset), or with clean_only the
 * clean ones (a release region's acquire). The sections are fenced
 * meanwhile; wake the region afterwards. Returns resident pages dropped.
 */
int64_t pager_shared_drop(struct pager *p, struct pager_region *r, bool clean_only);

#endif /* DISAGG_PAGER_SHARE_H */
