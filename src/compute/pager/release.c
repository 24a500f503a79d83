// SPDX-License-Identifier: MIT
/*
 * Shared regions in mode release (release.h): the sync points. A release
 * publishes the diffs (reldiff.c) and an acquire drops the clean pages
 * (share.c's pager_shared_drop); each then lets a guest's store to its
 * control page that waited land (relfault.c).
 */
#include "release.h"

#include "cache.h"
#include "reldiff.h"
#include "relfault.h"
#include "share.h"

/*
 * Operation k starts: what makes work for it from now on (a page written
 * or fetched meanwhile) is not covered by it, and makes the store that
 * waits ask again (relfault.c).
 */
static void ctl_begin(struct pager *p, struct pager_region *r, unsigned k)
{
	pthread_mutex_lock(&p->lock);
	r->ctl_work[k] = false;
	pthread_mutex_unlock(&p->lock);
}

/* Operation k is done: a guest's store that waited for it lands (when it traps again). */
static void ctl_complete(struct pager *p, struct pager_region *r, unsigned k)
{
	bool wake;

	pthread_mutex_lock(&p->lock);
	wake = r->ctl_req[k];
	if (wake) {
		r->ctl_req[k] = false;
		r->ctl_done[k] = true;
	}
	pthread_mutex_unlock(&p->lock);
	if (wake)
		(void)pager_uffd_wake(r, pager_release_ctl_pg(r, k), 1);
}

/* The release region `region`, admin_lock taken; NULL with *ret_err. */
static struct pager_region *release_get(struct pager *p, int region, int *ret_err)
{
	struct pager_region *r = pager_shared_get(p, region, ret_err);

	if (r && !r->release) {
		pthread_mutex_unlock(&p->admin_lock);
		*ret_err = -EINVAL;
		return NULL;
	}
	return r;
}

int pager_release_publish(struct pager *p, int region, uint64_t *ret_pages, uint64_t *ret_bytes)
{
	struct pager_region *r;
	int rc;

	*ret_pages = *ret_bytes = 0;
	r = release_get(p, region, &rc);
	if (!r)
		return rc;
	ctl_begin(p, r, 0);
	pthread_mutex_lock(&p->io_lock);
	rc = pager_release_publish_locked(p, r, ret_pages, ret_bytes);
	pthread_mutex_unlock(&p->io_lock);
	if (rc == 0)
		ctl_complete(p, r, 0);
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int pager_release_acquire(struct pager *p, int region, uint64_t *ret_dropped)
{
	struct pager_region *r;
	int rc;

	*ret_dropped = 0;
	r = release_get(p, region, &rc);
	if (!r)
		return rc;
	ctl_begin(p, r, 1);
	*ret_dropped = (uint64_t)pager_shared_drop(p, r, true);
	/* The store that asked lands first: woken with the rest, it would ask again. */
	ctl_complete(p, r, 1);
	(void)pager_uffd_wake(r, 0, r->npages);   /* faults that met the fence */
	pthread_mutex_unlock(&p->admin_lock);
	return 0;
}

