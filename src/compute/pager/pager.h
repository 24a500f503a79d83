// SPDX-License-Identifier: MIT
/*
 * The pager: remote memory for any mapping of a tmpfs file, through
 * userfaultfd. This is its public API: the lifecycle below, and the
 * headers of the layers that offer calls to users.
 *
 * A `struct pager` serves one group of mappings (one VM) with one local
 * cache budget. Each mapping ("region") is a tmpfs/memfd file mapped
 * MAP_SHARED somewhere - usually in another process (QEMU) - and registered
 * with a uffd for MISSING|WP. The pager only uses uffd ioctls on that uffd
 * and pread/fallocate on the file fd: it never dereferences the mapping's
 * addresses, so the mapping may live in any process.
 *
 * The region is cut into sections (pager_config.section_size). A section is
 * local (served as zero pages, never evicted, not counted in the budget) or
 * remote: section `grant.section` on a memory node, reached through the
 * backend (struct pager_backend_ops: "memnode" through mnclient, or
 * "local", a buffer in this process used as the uffd floor in benchmarks
 * and tests).
 *
 * Regions can be removed while the pager runs (DIMM hot-unplug) and a
 * region's sections reassigned (virtio-mem plug/unplug): see
 * pager_remove_region() and pager_region_set_section() (region.h). A
 * remote section can move to another memory node while it is in use:
 * pager_section_migrate_begin/commit/abort() (memmig.h).
 *
 *   types.h            sections, backend ops, config, stats (the types)
 *   uffd.h             open and register a uffd
 *   backend_local.h    the "local" backend; backend_memnode.h: "memnode"
 *   backend.h          pager_backend_free
 *   region.h           add/remove regions, change and find sections
 *   alias.h            other mappings of a region's file, served alike
 *   share.h            shared regions: release, invalidate, acquire
 *   release.h          shared regions in mode release: twins, diffs, sync points
 *   share_move.h       a shared region moving to other sections: park, switch
 *   serve_strict.h     strict shared regions: recalls from the directory
 *   pager_adopt.h      take over a region an earlier pager served
 *   budget.h           the local cache budget
 *   flush.h            write back everything
 *   memmig.h           move a section to another memory node
 *   hot.h              hot pages and prefetch (compute migration)
 *   source.h           memory nodes that are down
 *   stats.h            statistics and metrics
 *
 * docs/pager.md shows the layers, and describes the design, the thread
 * model, the eviction policy, hotplug and the failure behaviour.
 */
#ifndef DISAGG_PAGER_H
#define DISAGG_PAGER_H

#include "macro.h"
#include "types.h"

#include "alias.h"
#include "atrest.h"
#include "backend.h"
#include "backend_local.h"
#include "backend_memnode.h"
#include "budget.h"
#include "flush.h"
#include "hot.h"
#include "memmig.h"
#include "pager_adopt.h"
#include "region.h"
#include "serve_strict.h"
#include "release.h"
#include "replica.h"
#include "share.h"
#include "share_move.h"
#include "source.h"
#include "stats.h"
#include "uffd.h"

int pager_new(const struct pager_config *cfg, struct pager **ret);
/* Stops the threads (any blocked faulting thread stays blocked) and frees. Accepts NULL. */
void pager_free(struct pager *p);
DEFINE_CLEANUP_FUNC(struct pager, pager_free)
#define _cleanup_pager_ _cleanup_(pager_freep)

/* Start the fault threads, the evictor and the health thread. -EALREADY. */
int pager_start(struct pager *p);

#endif /* DISAGG_PAGER_H */
