// SPDX-License-Identifier: MIT
/*
 * Aliases of a region (alias.h).
 *
 * Who reads r->alias[]: the fault threads (inside a read-side critical
 * section, rcu.h), the evictor, the cleaner and flush (io_lock), and the
 * region changes (admin_lock). Adding publishes under all three and p->lock;
 * removing unpublishes the same way and then waits for a grace period, so
 * that nobody uses the entry when it is freed.
 *
 * An alias id: the region's slot (bits 0-7), the alias's slot (8-15), its
 * serial in the region (16-31) and the region's generation (32-62).
 */
#include "alias.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "cache.h"
#include "fault.h"
#include "region.h"

static int64_t alias_id(const struct pager_region *r, unsigned slot, uint32_t serial)
{
	return (int64_t)(r->gen & 0x7fffffffu) << 32 | (int64_t)(serial & 0xffffu) << 16 |
	       (int64_t)slot << 8 | r->idx;
}

/* Set r->alias[slot] to a (or NULL): under io_lock and p->lock, so no batch nor fault sees half. */
static void alias_publish(struct pager *p, struct pager_region *r, unsigned slot,
			  struct pager_alias *a)
{
	pthread_mutex_lock(&p->io_lock);
	pthread_mutex_lock(&p->lock);
	atomic_store(&r->alias[slot], a);
	if (a)
		atomic_fetch_add(&r->nalias, 1);
	else
		atomic_fetch_sub(&r->nalias, 1);
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->io_lock);
}

int pager_region_of_file(struct pager *p, int fd, uint64_t off, uint64_t len, int *ret_region,
			 uint64_t *ret_pg)
{
	struct stat want, st;
	int rc = -ENOENT;

	if (!p || fd < 0 || !len || off % PS || len % PS || off + len < off)
		return -EINVAL;
	if (fstat(fd, &want) < 0)
		return -errno;
	pthread_mutex_lock(&p->admin_lock);
	for (unsigned i = 0; i < PAGER_MAX_REGIONS && rc == -ENOENT; i++) {
		struct pager_region *r = atomic_load(&p->regions[i]);

		if (!r || atomic_load(&r->dead) || fstat(r->file_fd, &st) < 0 ||
		    st.st_dev != want.st_dev || st.st_ino != want.st_ino)
			continue;
		if (off < r->file_offset || off + len > r->file_offset + r->length)
			continue;
		*ret_region = (int)i;
		*ret_pg = (off - r->file_offset) / PS;
		rc = 0;
	}
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int64_t pager_alias_add(struct pager *p, int region, uint64_t pg0, uint64_t npages,
			uint64_t addr, int uffd)
{
	struct pager_alias *ap;
	struct pager_region *r;
	unsigned slot;
	int64_t id;
	int fl, rc;

	if (!p || !npages || addr % PS || uffd < 0)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	r = pager_region_get(p, region, 0, &rc);
	if (!r)
		goto out;
	if (r->shared || p->mode != PAGER_DIRTY_SYNC_WP) {
		rc = -EOPNOTSUPP;
		goto out;
	}
	if (pg0 > r->npages || npages > r->npages - pg0) {
		rc = -ERANGE;
		goto out;
	}
	for (slot = 0; slot < PAGER_MAX_ALIASES && atomic_load(&r->alias[slot]); slot++)
		;
	if (slot == PAGER_MAX_ALIASES) {
		rc = -ENOSPC;
		goto out;
	}
	ap = calloc(1, sizeof(*ap));
	if (!ap) {
		rc = -ENOMEM;
		goto out;
	}
	*ap = (struct pager_alias){ .uffd = uffd, .base = addr, .pg0 = pg0, .npages = npages,
				    .serial = ++r->alias_gen };
	fl = fcntl(uffd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(uffd, F_SETFL, fl | O_NONBLOCK);
	/* Before it is published: from the start, a write through it traps. */
	rc = uffd_writeprotect(uffd, addr, npages * PS, true);
	if (rc < 0) {
		free(ap);
		goto out;
	}
	alias_publish(p, r, slot, ap);
	rc = pager_fault_watch_fd(p, r, uffd);
	if (rc < 0) {
		alias_publish(p, r, slot, NULL);
		pager_rcu_synchronize(&p->rcu);
		free(ap);
		goto out;
	}
	id = alias_id(r, slot, ap->serial);
	pthread_mutex_unlock(&p->admin_lock);
	log_debug("pager %s: region %d: alias of pages %llu+%llu at %#llx", p->name, region,
		  (unsigned long long)pg0, (unsigned long long)npages, (unsigned long long)addr);
	return id;
out:
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int pager_alias_remove(struct pager *p, int64_t id)
{
	unsigned region = (unsigned)(id & 0xff), slot = (unsigned)(id >> 8 & 0xff);
	uint32_t serial = (uint32_t)(id >> 16 & 0xffff), gen = (uint32_t)(id >> 32);
	struct pager_alias *ap;
	struct pager_region *r;
	int rc;

	if (!p || id <= 0 || slot >= PAGER_MAX_ALIASES || region >= PAGER_MAX_REGIONS)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	r = pager_region_get(p, (int)region, 0, &rc);
	if (!r) {
		pthread_mutex_unlock(&p->admin_lock);
		return rc;
	}
	ap = atomic_load(&r->alias[slot]);
	if ((r->gen & 0x7fffffffu) != gen || !ap || (ap->serial & 0xffffu) != serial) {
		pthread_mutex_unlock(&p->admin_lock);
		return -ENOENT;
	}
	alias_publish(p, r, slot, NULL);
	pager_fault_unwatch_fd(p, ap->uffd);
	/* Fault threads let go; a batch that used it ended before the unpublish (io_lock). */
	pager_rcu_synchronize(&p->rcu);
	pthread_mutex_unlock(&p->admin_lock);
	free(ap);
	return 0;
}
