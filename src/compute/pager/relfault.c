// SPDX-License-Identifier: MIT
/*
 * Release regions, the fault side (relfault.h): twins kept at a page's
 * first write fault, and the RELEASE and ACQUIRE control pages (release.h
 * explains when they trap). Everything here runs with p->lock held.
 */
#include "relfault.h"

#include <stdlib.h>

#include "cache.h"
#include "twin.h"
#include "writeback.h"

int pager_release_twin_locked(struct pager_region *r, uint64_t pg)
{
	uint8_t tw[PS];
	int rc;

	if (pager_twin_has(r->twins, pg))
		return 0;
	rc = pager_wb_read_run(r, pg, 1, tw);
	return rc < 0 ? rc : pager_twin_put(r->twins, pg, tw);
}

void pager_release_arm_locked(struct pager_region *r, unsigned k)
{
	uint64_t pg = pager_release_ctl_pg(r, k);

	r->ctl_work[k] = true;
	if (!r->control || r->ctl_armed[k])
		return;
	/* Absent, it traps anyway: a fault installs control pages protected. */
	if (!(st_get(r, pg) & ST_PRESENT) || pager_uffd_wp(r, pg, 1, true) == 0)
		r->ctl_armed[k] = true;
}

void pager_release_ctl_fault(struct pager *p, struct pager_region *r, uint64_t pg)
{
	unsigned k = pg == pager_release_ctl_pg(r, 0) ? 0 : 1;
	int rc;

	if (r->ctl_done[k] && r->ctl_work[k]) {
		/*
		 * Done, but there is work again since (a page fetched or written
		 * meanwhile): once the store lands the page stays writable, so
		 * that work would be missed by the next store. Ask again.
		 */
		r->ctl_done[k] = false;
	}
	if (r->ctl_done[k]) {
		/* Done since the store trapped: it lands, never written back (not dirty). */
		r->ctl_done[k] = false;
		rc = pager_uffd_wp(r, pg, 1, false);
		if (rc == 0)
			r->ctl_armed[k] = false;
		else
			r->ctl_done[k] = true;   /* the store traps again and lands then */
		pthread_mutex_unlock(&p->lock);
		if (rc < 0)
			(void)pager_uffd_wake(r, pg, 1);
		return;
	}
	r->ctl_req[k] = true;
	pthread_mutex_unlock(&p->lock);
	CTR_ADD(p, shared_writes_waited, 1);
	if (p->cfg.on_control)
		p->cfg.on_control(p->cfg.opaque, (int)r->idx,
				  k ? PAGER_CTL_ACQUIRE : PAGER_CTL_RELEASE);
}
