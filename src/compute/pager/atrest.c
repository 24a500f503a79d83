// SPDX-License-Identifier: MIT
/*
 * The pager's side of guest memory at rest (atrest.h): sealing write-back
 * groups, opening fetched pages, and the page-metadata table's hand-over;
 * also the hold of a compute migration's destination, which waits for that
 * table and for the replicas the source took out (PAGER_HOLD_*).
 */
#include "atrest.h"

#include <string.h>

#include "cache.h"
#include "log.h"

int pager_open_page(struct pager *p, struct pager_region *r, uint64_t pg, void *buf)
{
	int rc = pager_crypt_open(p->cfg.crypt, r->slot_page + pg, buf, buf);

	if (rc == -EBADMSG) {
		if (atomic_fetch_add(&p->c.integrity_failures, 1) == 0)
			log_error("pager %s: a memory node returned a page that fails "
				  "authentication (slot page %llu): it is never mapped",
				  p->name, (unsigned long long)(r->slot_page + pg));
	} else if (rc < 0) {
		log_error("pager %s: cannot open slot page %llu: %s", p->name,
			  (unsigned long long)(r->slot_page + pg), strerror(-rc));
	}
	return rc;
}

void pager_meta_fresh(struct pager *p, struct pager_region *r)
{
	if (!pager_rcrypt(p, r))
		return;
	for (uint32_t s = 0; s < r->nsections; s++)
		if (r->sections[s].kind == PAGER_SEC_REMOTE)
			pager_crypt_forget(p->cfg.crypt, r->slot_page + (uint64_t)s * p->sec_pages,
					   p->sec_pages);
}

void pager_hold_release(struct pager *p, unsigned bits)
{
	if (atomic_fetch_and(&p->hold, ~bits) & ~bits)
		return;   /* something else is still to come */
	pthread_mutex_lock(&p->admin_lock);
	for (unsigned i = 0; i < PAGER_MAX_REGIONS; i++) {
		struct pager_region *r = atomic_load(&p->regions[i]);

		if (!r || atomic_load(&r->dead))
			continue;
		for (uint32_t s = 0; s < r->nsections; s++)
			if (r->sections[s].kind == PAGER_SEC_REMOTE)
				(void)pager_uffd_wake(r, (uint64_t)s * p->sec_pages, p->sec_pages);
	}
	pthread_mutex_unlock(&p->admin_lock);
}

void pager_meta_done(struct pager *p)
{
	pager_hold_release(p, PAGER_HOLD_META);
}

int pager_meta_import(struct pager *p, const void *data, size_t len)
{
	int rc;

	if (!p->cfg.crypt)
		return -ENOTSUP;
	rc = pager_crypt_import(p->cfg.crypt, data, len);
	if (rc < 0)
		return rc;
	pager_meta_done(p);
	return 0;
}

const void *pager_meta_table(struct pager *p, size_t *ret_len)
{
	if (!p->cfg.crypt)
		return NULL;
	return pager_crypt_table(p->cfg.crypt, ret_len);
}

bool pager_meta_pending(struct pager *p)
{
	return atomic_load(&p->hold) & PAGER_HOLD_META;
}
