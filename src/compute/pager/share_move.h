/* SPDX-License-Identifier: MIT */
/*
 * Moving a shared region to other sections (share_move.c): what a memory
 * migration of a region (docs/sharing.md, "Moving a region to another
 * memory node") asks of each pager that serves it. Park: every fault on
 * the region waits, every page changed here is written back and
 * acknowledged, then every page is dropped; the memory node's copy is the
 * only one. Switch: the parked region's sections become others (its pages
 * are gone: nothing to carry). Unpark: the faults that waited go on, on
 * whatever sections the region has then.
 */
#ifndef DISAGG_PAGER_SHARE_MOVE_H
#define DISAGG_PAGER_SHARE_MOVE_H

#include <stdbool.h>
#include <stdint.h>

#include "types.h"

struct pager;

/*
 * Write back every page of shared `region` that needs it and wait for the
 * acknowledgements, without parking it (the guest goes on writing): done
 * before a park, so that the park, inside the pause, has little left to
 * write. *ret_flushed: pages written back. Errors as pager_shared_park.
 */
int pager_shared_writeback(struct pager *p, int region, uint64_t *ret_flushed);

/*
 * Park shared `region`: faults on it wait from now on (the vCPU blocks in
 * the hypervisor, as for a fenced section); then every page that needs it
 * is written back (write-protected first, so no write lands after) and
 * acknowledged, and every cached page is dropped. On a write-back failure
 * the region is unparked, keeps its pages, and the error is returned.
 * Parking a parked region only drops what it caches (nothing).
 * *ret_flushed, *ret_dropped: pages written back, resident pages dropped.
 * -ENOENT, -EINVAL (not shared), -EDEADLK, -EOPNOTSUPP (WP_ASYNC pager).
 */
int pager_shared_park(struct pager *p, int region, uint64_t *ret_flushed,
		      uint64_t *ret_dropped);

/*
 * Parked `region` gets sections `secs` (n: all of them, in order); the
 * same section with another grant only takes the grant. -ENOTCONN (not
 * parked), -EINVAL (n not the region's count, a bad section), -EOPNOTSUPP
 * (a replicated section: shared regions are not replicated), -ENOENT,
 * -EDEADLK.
 */
int pager_shared_switch(struct pager *p, int region, const struct pager_section *secs,
			unsigned n);

/*
 * Let the faults on `region` go on. A strict region must have attached to
 * its directory again first (it left it when it parked): its count of the
 * directory's answers starts from 0. 1 (it was parked), 0 (it was not),
 * or -errno.
 */
int pager_shared_unpark(struct pager *p, int region);

#endif /* DISAGG_PAGER_SHARE_MOVE_H */
