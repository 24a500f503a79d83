// SPDX-License-Identifier: MIT
/*
 * Aliases (alias.c): a second mapping of a region's file, in this process,
 * that the pager serves like the region's own.
 *
 * Whoever else maps guest RAM (the vhost-user back ends of the VM's disks)
 * must never read a page that is not fetched (a hole in the file reads as
 * zeros and allocates the page, FACTS) nor write one behind the pager's
 * back (the write-protect on QEMU's mapping would not see the write, and
 * eviction would drop it). So the alias is registered with a uffd of its
 * own, for MISSING and WP, and the pager keeps it in step with the region:
 *   - a MISSING fault on the alias is served as a fault on the region
 *     (installed in the region's mapping, which puts the page in the file,
 *     then the alias's thread is woken and maps it from the page cache);
 *   - a WP fault on the alias is a write: the page becomes dirty, as for a
 *     guest write;
 *   - every write-protect change and wake on the region is made on the
 *     alias too (cache.h's pager_uffd_wp and pager_uffd_wake): a page the
 *     pager cleans is read-only in both, and a thread that waits on a page
 *     is woken whichever mapping it faulted in.
 * The alias is write-protected whole when it is added: a first write to
 * any page through it traps (file-backed uffd-wp keeps a marker on pages
 * not mapped yet, and across punches).
 *
 * Only in the synchronous dirty mode (the default), and not for shared
 * regions: -EOPNOTSUPP otherwise. The region's side (struct pager_alias,
 * the wrappers that keep aliases in step) is in cache.h.
 */
#ifndef DISAGG_PAGER_ALIAS_H
#define DISAGG_PAGER_ALIAS_H

#include <stdbool.h>
#include <stdint.h>

struct pager;
struct pager_region;

/*
 * Which region maps bytes [off, off + len) of the file open as fd (same
 * inode)? *ret_region and *ret_pg (the region page of off). -ENOENT if
 * none holds the whole range, -EINVAL (off or len not page-aligned).
 */
int pager_region_of_file(struct pager *p, int fd, uint64_t off, uint64_t len, int *ret_region,
			 uint64_t *ret_pg);

/*
 * Serve [addr, addr + npages pages) as an alias of region pages
 * [pg0, pg0 + npages). uffd (kept by the caller, open until
 * pager_alias_remove has returned) must be registered for MISSING|WP on
 * that range, with UFFD_FEATURE_WP_HUGETLBFS_SHMEM and without
 * UFFD_USER_MODE_ONLY when the kernel may touch it (sendmsg, recvmsg).
 * Returns an alias id > 0 for pager_alias_remove(), or -EINVAL, -ENOENT
 * (no such region), -ERANGE, -ENOSPC (PAGER_MAX_ALIASES), -EOPNOTSUPP, or
 * the error of the initial write-protect.
 */
int64_t pager_alias_add(struct pager *p, int region, uint64_t pg0, uint64_t npages,
			uint64_t addr, int uffd);
/*
 * Stop serving the alias (before the caller unregisters, unmaps and
 * closes). A fault on it in flight stays blocked: call this when nothing
 * touches the mapping any more. -ENOENT if its region went away first
 * (then there is nothing left to do), -EINVAL, -EDEADLK.
 */
int pager_alias_remove(struct pager *p, int64_t id);

#endif /* DISAGG_PAGER_ALIAS_H */
