// SPDX-License-Identifier: MIT
/*
 * Regions and sections (region.c): add and remove a mapping, give one of
 * its sections a new backing, turn a local section into a remote one, find
 * a remote section.
 */
#ifndef DISAGG_PAGER_REGION_H
#define DISAGG_PAGER_REGION_H

#include <stdbool.h>
#include <stdint.h>

#include "types.h"

struct pager_region;

/*
 * Add a mapping; may be called before or after pager_start(). Returns the
 * region index (a free slot: the lowest one, slots of removed regions are
 * reused) or -errno: -EINVAL, -ENOSPC (PAGER_MAX_REGIONS in use), -ENOMEM,
 * -EOPNOTSUPP (a shared region with a replicated section, replica.h).
 *
 * Ownership: rc->uffd, rc->file_fd and rc->pagemap_fd stay the caller's.
 * The pager never closes them; it sets O_NONBLOCK on the uffd's file
 * description and moves the file_fd's file position (lseek SEEK_DATA/HOLE),
 * so do not share those descriptions with code that relies on either. They
 * must stay open until pager_remove_region() or pager_free() has returned.
 */
int pager_add_region(struct pager *p, const struct pager_region_config *rc);

/* Is the caller one of p's threads (a fault thread, the evictor)? For region changes: admin_lock held. */
bool pager_on_thread(struct pager *p);

/*
 * Hot-unplug: stop serving region `region` and release its slot.
 *
 * Call it BEFORE the mapping is unmapped and after its user has stopped
 * touching it (the guest has offlined the memory). On return:
 *   - no pager thread uses the region any more: it is out of the fault
 *     threads' epoll set, faults in flight on it have finished or were
 *     abandoned (a fetch in retry is cancelled; its thread stays blocked),
 *     and no eviction or flush batch holds its pages;
 *   - its resident pages are out of the budget accounting and the remote
 *     sections' range of the file is punched (a later region over the same
 *     file starts empty; local sections' file content is left alone);
 *   - the slot can be reused by pager_add_region();
 *   - the fds are untouched: close them (after the munmap) when you like.
 * writeback false: dirty pages are DISCARDED without write-back: the
 * section is being released. Flush first (or pass true) to keep the data.
 * writeback true: dirty and discarded pages are written back (and
 * acknowledged) after the region stopped being served; if that fails the
 * region is served again, nothing is removed, and the error is returned.
 * A fault on the range after removal is never served (its thread stays
 * blocked until the range is unmapped or unregistered or the uffd closed).
 * Blocks for a grace period of the fault threads (microseconds normally;
 * at most one backend attempt while a fetch is retrying, or 200 ms while a
 * fault thread waits for budget space) and for an eviction batch in flight.
 * -EINVAL, -ENOENT (no such region), -EDEADLK (called from a pager thread,
 * e.g. from on_fail), or the write-back error.
 */
int pager_remove_region(struct pager *p, int region, bool writeback);

/*
 * Give section `index` of region `region` a new backing (virtio-mem plug:
 * local, or remote with its grant; unplug: back to local). The section is
 * fenced while it changes: faults on it wait and are served by the new
 * section afterwards.
 * discard false: the section must be idle: no page resident, dirty or in
 * flight, and no data in the file range (a local section that was touched
 * has data). Otherwise -EBUSY and nothing changes.
 * discard true: whatever the section holds is dropped WITHOUT write-back
 * and its file range punched (virtio-mem unplug: QEMU discards the memory
 * anyway). The new section starts empty.
 * Changing only the grant of the same remote section (same memory node id,
 * section and generation; e.g. a renewed grant) keeps the resident pages
 * and is always allowed. For a replicated section (replica.h) "the same"
 * means the same replicas at the same positions (-EINVAL otherwise: a
 * replica is added or moved only by memory migration), and the replicas
 * that are out stay out; another section (discard, or an idle one) has
 * every replica in.
 * -EINVAL, -ENOENT, -ERANGE (index beyond the region), -EBUSY, -EDEADLK,
 * -EOPNOTSUPP (a replicated section for a shared region).
 */
int pager_region_set_section(struct pager *p, int region, unsigned index,
			     const struct pager_section *sec, bool discard);

/*
 * Evacuation: local section `index` of `region` becomes the remote section
 * `target` (a fresh, zeroed one), keeping its content. The pages the guest
 * touched (data in the file) stay resident and become dirty, so they are
 * written to the target by the cleaner, the evictor or the next
 * pager_flush(); the others read as the target's zeros. The section is
 * fenced only while its state is set. *ret_pages (may be NULL): the pages
 * to write back. -EALREADY (not local), -EINVAL, -ENOENT, -ERANGE, -EDEADLK.
 */
int pager_section_evacuate(struct pager *p, int region, unsigned index,
			   const struct pager_section *target, uint64_t *ret_pages);
/*
 * Which region and section index hold the remote section `match` (same
 * memory node id, section and generation as position 0 of a section; a
 * replica at another position is found by pager_section_find_replica)?
 * -ENOENT if none, -EINVAL.
 */
int pager_section_find(struct pager *p, const struct pager_section *match, int *ret_region,
		       unsigned *ret_index);

/*
 * Which region, section index and position hold the remote section `s`
 * (same memory node id, section and generation as one of its positions)?
 * Every position of every remote section is looked at. 0, -ENOENT, -EINVAL.
 */
int pager_section_find_replica(struct pager *p, const struct pager_section *s, int *ret_region,
			       unsigned *ret_index, unsigned *ret_replica);
/*
 * The control plane takes the replica `replica` (matched as above) out:
 * it is never written nor read again by this pager (on_replica is called
 * as for a failure, with err -ECANCELED). 0 (also if it was out already),
 * -ENOENT (no such replica), -EINVAL, -EDEADLK (on a pager thread), -EBUSY
 * (it is the only in-replica of its section: refused).
 */
int pager_replica_drop(struct pager *p, const struct pager_section *replica);
/* The replicas out now: how many were written to ret (at most max). */
int pager_replicas_out(struct pager *p, struct pager_replica_out *ret, size_t max);
/*
 * A compute migration's destination (cfg.replicas_pending): the source's
 * replicas out were dropped here (pager_replica_drop), so every parked
 * fault on a remote page may go on. Idempotent.
 */
void pager_replicas_settled(struct pager *p);
/* Faults on remote pages still wait for pager_replicas_settled. */
bool pager_replicas_pending(struct pager *p);

/* ---- for the pager's own layers ------------------------------------------- */

/*
 * Region `region` with section `index`, admin_lock held; NULL with
 * *ret_err: -EINVAL, -EDEADLK (on a pager thread), -ENOENT, -ERANGE.
 */
struct pager_region *pager_region_get(struct pager *p, int region, unsigned index, int *ret_err);
/* Free a region nobody reaches any more (its tees are dropped). */
void pager_region_free(struct pager_region *r);

#endif /* DISAGG_PAGER_REGION_H */
