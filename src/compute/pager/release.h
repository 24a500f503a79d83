// SPDX-License-Identifier: MIT
/*
 * Shared regions in mode release (release.c, with reldiff.c publishing the
 * diffs and relfault.c the fault side; docs/sharing.md): every VM
 * that maps one writes it, caching is free, and several VMs may change
 * different bytes of the same page, as in TreadMarks. A page comes in
 * write-protected; its first write fault keeps a **twin** (the page as it
 * was) and un-protects it. A **release** publishes what this VM changed:
 * every dirty page is write-protected again, its byte diff against the
 * twin goes to the memory node (WRITE_DIFF, wirediff.h), and once that is
 * acknowledged the twin is dropped and the page is clean. An **acquire**
 * drops every cached page that is not dirty, so that the next reads fetch
 * what others released; dirty pages keep their content and twin (this
 * VM's unpublished writes survive).
 *
 * Dirty pages of a release region are never written back whole: the
 * cleaner leaves them alone, the evictor does not take them (when nothing
 * else can go it publishes the region's diffs, an early release, and
 * evicts the pages once clean), and a flush (detach, compute migration,
 * pager_remove_region with write-back) publishes diffs.
 *
 * Control pages, as in mode exclusive: the region's page npages-2 is
 * RELEASE and npages-1 is ACQUIRE. A guest's store to one traps
 * (write-protect fault), the pager asks the VM (cfg.on_control,
 * PAGER_CTL_RELEASE or _ACQUIRE), whose call of pager_release_publish or
 * pager_release_acquire lets the store land. A control page traps only
 * while there may be work: RELEASE is protected again when a page becomes
 * dirty, ACQUIRE when a page is fetched or published; a store that does
 * not trap had nothing to do.
 */
#ifndef DISAGG_PAGER_RELEASE_H
#define DISAGG_PAGER_RELEASE_H

#include <stdint.h>

struct pager;

/*
 * Publish the diffs of every dirty page of release region `region`, wait
 * for the memory node's acknowledgement, then drop their twins. On failure
 * the pages that were not acknowledged stay dirty with their twins (the
 * next release sends them again) and the error is returned. A guest's
 * store to the RELEASE page that waited lands. *ret_pages: pages whose
 * diff was sent; *ret_bytes: changed bytes. -ENOENT, -EINVAL (not a
 * release region), -EDEADLK (from a pager thread).
 */
int pager_release_publish(struct pager *p, int region, uint64_t *ret_pages, uint64_t *ret_bytes);

/*
 * Drop every cached page of release region `region` that is clean (not
 * written since the last release): the next access fetches it. A guest's
 * store to the ACQUIRE page that waited lands. *ret_dropped: pages dropped.
 */
int pager_release_acquire(struct pager *p, int region, uint64_t *ret_dropped);

#endif /* DISAGG_PAGER_RELEASE_H */
