// SPDX-License-Identifier: MIT
/*
 * Memory migration of one section while the mapping keeps running: the
 * section moves from its memory node (the source, A) to a section on
 * another memory node (the target, B), which a memory node's COPY fills.
 *
 *   begin   from now on every write-back of the section goes to A and to B
 *           (acknowledged when both acknowledged; a failing B only ends the
 *           migration, never the write-back) and the pages written back are
 *           flagged for re-sending;
 *   (COPY)  A streams the section to B (the caller drives it);
 *   commit  re-send every flagged page to B (latest content: the local
 *           cache if resident, else read from A, which got every
 *           write-back), first in chunks while faults run, then fenced for
 *           the last few pages; switch the section's descriptor to B
 *           keeping resident pages and page state; stop dual writing;
 *   abort   stop dual writing, keep A.
 *
 * Why the re-send: COPY may read page P on A, then a dual write-back of a
 * newer P lands on A and B, then COPY writes its older P to B. Every page
 * written back before the COPY is over is therefore sent again at commit.
 * The caller commits only after COPY answered (its writes are all
 * acknowledged by B), so a dual write-back acknowledged by B after commit
 * began is final and needs no re-send: the flagged set only shrinks, and
 * the fenced part is normally empty.
 *
 * Locking: admin_lock serializes these calls with hotplug. The migration
 * state (r->mig[]) is created, read and freed under io_lock, which every
 * write-back batch holds (pager_evict.c), and the re-send runs under
 * io_lock a chunk at a time, so no write-back of a page can overtake its
 * re-send on B. The switch takes io_lock (so no write-back batch is in
 * flight), then fences the section (faults on it wait) and waits until no
 * fault thread serves a fault in that section (faults elsewhere go on); a
 * fault thread waiting for budget space stops waiting when a grace period
 * is requested, since the evictor cannot run meanwhile.
 * docs/pager.md, "Memory migration", describes the semantics.
 */
#include "pager_internal.h"

#include <string.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

#define RESEND_CHUNK 256u          /* pages re-sent per hold of io_lock */
#define QUIET_WAIT_MS 200u         /* commit: wait this long at most for a quiet section */

/* ---- write-back hooks (pager_evict.c, io_lock held) ------------------------ */

void pager_memmig_free(struct pager_memmig *m)
{
	if (!m)
		return;
	free(m->resend);
	free(m);
}

static void mig_fail(struct pager *p, struct pager_memmig *m, int err)
{
	if (m->err)
		return;
	m->err = err < 0 ? err : -EIO;
	atomic_store(&p->memmig_last_err, m->err);
	log_debug("pager %s: migration target %s failed: %s", p->name, m->target.addr,
		  strerror(-m->err));
}

static int mig_conn(struct pager *p)
{
	int r;

	if (p->mig_conn)
		return 0;
	r = p->cfg.backend->ops->conn_open(p->cfg.backend->priv, &p->mig_conn);
	if (r < 0)
		p->mig_conn = NULL;
	return r;
}

void pager_memmig_submit(struct pager *p, struct pager_wb_group *g, unsigned ng)
{
	const struct pager_backend_ops *ops = p->cfg.backend->ops;

	for (unsigned i = 0; i < ng; i++) {
		int r;

		g[i].dual = false;
		if (!g[i].mig || g[i].mig->err)
			continue;
		r = mig_conn(p);
		if (r >= 0)
			r = ops->write_submit(p->mig_conn, &g[i].mig->target, g[i].ext, g[i].next,
					      g[i].data);
		if (r < 0)
			mig_fail(p, g[i].mig, r);
		else
			g[i].dual = true;
	}
}

void pager_memmig_wait(struct pager *p, struct pager_wb_group *g, unsigned ng)
{
	const struct pager_backend_ops *ops = p->cfg.backend->ops;
	bool any = false;
	int r;

	for (unsigned i = 0; i < ng && !any; i++)
		any = g[i].dual;
	if (!any || !p->mig_conn)
		return;
	r = ops->write_wait(p->mig_conn);
	if (r >= 0)
		return;
	/* Which target failed is not known: every migration in the batch ends. */
	for (unsigned i = 0; i < ng; i++)
		if (g[i].dual) {
			mig_fail(p, g[i].mig, r);
			g[i].dual = false;
		}
	ops->reset(p->mig_conn);
}

void pager_memmig_written(struct pager *p, struct pager_wb_group *g, unsigned ng)
{
	for (unsigned i = 0; i < ng; i++) {
		struct pager_memmig *m = g[i].mig;

		if (!m || m->err)
			continue;
		if (g[i].dual) {
			m->pages_dual += g[i].npages;
			CTR_ADD(p, memmig_pages_dual, g[i].npages);
		}
		/*
		 * Before commit the COPY may still overwrite these pages on the
		 * target with older content: send them again at commit.
		 */
		if (m->copy_done && g[i].dual)
			continue;
		for (uint32_t e = 0; e < g[i].next; e++)
			for (uint32_t k = 0; k < g[i].ext[e].count; k++) {
				uint32_t pg = g[i].ext[e].page + k;

				if (!m->resend[pg]) {
					m->resend[pg] = 1;
					m->nresend++;
				}
			}
	}
}

/* ---- the re-send (io_lock held) -------------------------------------------- */

struct resend_ctx {
	struct pager *p;
	struct pager_region *r;
	unsigned index;
	uint8_t *buf;             /* RESEND_CHUNK pages */
	uint32_t *pages;          /* page numbers in the section, ascending */
	uint8_t *local;           /* per collected page: content from the file */
	uint32_t cursor;
	uint64_t sent;
};

struct fetch_run {
	const struct pager_backend_ops *ops;
	const struct pager_section *s;
	uint32_t page, n;
	void *buf;
};

static int fetch_run_cb(void *conn, void *arg)
{
	struct fetch_run *f = arg;

	return f->ops->fetch(conn, f->s, f->page, f->n, f->buf);
}

/*
 * Collect up to RESEND_CHUNK flagged pages from the cursor on (clearing
 * their flags), read their latest content and write it to the target.
 * Returns pages sent (0: nothing flagged), or -errno when the source could
 * not be read (the target failing only sets m->err).
 */
static int resend_chunk(struct resend_ctx *c, struct pager_memmig *m)
{
	struct pager *p = c->p;
	struct pager_region *r = c->r;
	const struct pager_backend_ops *ops = p->cfg.backend->ops;
	uint64_t pg0 = (uint64_t)c->index * p->sec_pages;
	struct pager_wb_group g;
	uint32_t n = 0, maxp;
	int rc;

	for (uint32_t scanned = 0; scanned < p->sec_pages && n < RESEND_CHUNK && m->nresend;
	     scanned++, c->cursor = (c->cursor + 1) % p->sec_pages) {
		if (!m->resend[c->cursor])
			continue;
		m->resend[c->cursor] = 0;
		m->nresend--;
		c->pages[n++] = c->cursor;
	}
	if (!n)
		return 0;
	/* Sorted (the cursor may have wrapped), for runs and extents. */
	for (uint32_t i = 1; i < n; i++)
		for (uint32_t j = i; j > 0 && c->pages[j - 1] > c->pages[j]; j--) {
			uint32_t t = c->pages[j];

			c->pages[j] = c->pages[j - 1];
			c->pages[j - 1] = t;
		}

	/*
	 * Resident pages come from the file (clean: the source's content;
	 * dirty: newer, and written back again later anyway). A BUSY page is a
	 * fetch in flight (evictions hold io_lock, as we do): the source has it.
	 */
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < n; i++)
		c->local[i] = (st_get(r, pg0 + c->pages[i]) & (ST_PRESENT | ST_BUSY)) == ST_PRESENT;
	pthread_mutex_unlock(&p->lock);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *d = c->buf + (size_t)i * PS;
		ssize_t got;

		if (!c->local[i])
			continue;
		/* A hole here was punched behind our back: the source has the data. */
		if (!pager_file_has_data(r, pg0 + c->pages[i], 1)) {
			c->local[i] = 0;
			continue;
		}
		got = pread(r->file_fd, d, PS, (off_t)(r->file_offset + (pg0 + c->pages[i]) * PS));
		if (got < 0)
			return -errno;
		if (got < (ssize_t)PS)
			memset(d + got, 0, PS - (size_t)got);
	}
	/* The others from the source, one READ per run of consecutive pages. */
	for (uint32_t i = 0; i < n;) {
		uint32_t j = i + 1;
		struct fetch_run f;

		if (c->local[i]) {
			i++;
			continue;
		}
		while (j < n && !c->local[j] && c->pages[j] == c->pages[j - 1] + 1)
			j++;
		f = (struct fetch_run){ ops, &r->sections[c->index], c->pages[i], j - i,
					c->buf + (size_t)i * PS };
		rc = pager_retry_io(p, &p->evict_conn, fetch_run_cb, &f);
		if (rc < 0)
			return rc;
		i = j;
	}

	/* Write to the target: extents in page order, data in the same order. */
	rc = mig_conn(p);
	if (rc < 0) {
		mig_fail(p, m, rc);
		return (int)n;
	}
	maxp = ops->max_pages(p->mig_conn);
	if (!maxp || maxp > PROTO_MAX_PAGES)
		maxp = PROTO_MAX_PAGES;
	for (uint32_t i = 0; i < n && !m->err;) {
		g = (struct pager_wb_group){ .s = &m->target, .data = c->buf + (size_t)i * PS };
		for (; i < n && g.npages < maxp; i++) {
			if (g.next && g.ext[g.next - 1].page + g.ext[g.next - 1].count == c->pages[i])
				g.ext[g.next - 1].count++;
			else if (g.next < PROTO_MAX_EXTENTS)
				g.ext[g.next++] = (struct proto_extent){ c->pages[i], 1 };
			else
				break;
			g.npages++;
		}
		rc = ops->write_submit(p->mig_conn, &m->target, g.ext, g.next, g.data);
		if (rc < 0)
			mig_fail(p, m, rc);
	}
	rc = ops->write_wait(p->mig_conn);
	if (rc < 0) {
		mig_fail(p, m, rc);
		ops->reset(p->mig_conn);
	}
	if (!m->err) {
		c->sent += n;
		CTR_ADD(p, memmig_pages_resent, n);
	}
	return (int)n;
}

/* ---- API ------------------------------------------------------------------- */

/* Region `region` with section `index` (admin_lock held), or NULL with *ret_err. */
static struct pager_region *get_region(struct pager *p, int region, unsigned index, int *ret_err)
{
	struct pager_region *r;

	if (region < 0 || region >= PAGER_MAX_REGIONS) {
		*ret_err = -EINVAL;
		return NULL;
	}
	if (pager_on_thread(p)) {
		*ret_err = -EDEADLK;
		return NULL;
	}
	r = atomic_load(&p->regions[region]);
	if (!r) {
		*ret_err = -ENOENT;
		return NULL;
	}
	if (index >= r->nsections) {
		*ret_err = -ERANGE;
		return NULL;
	}
	return r;
}

/* Forget the migration of r's section `index`; io_lock held. */
void pager_memmig_drop(struct pager *p, struct pager_region *r, unsigned index, bool failed)
{
	struct pager_memmig *m = r->mig[index];

	if (!m)
		return;
	r->mig[index] = NULL;
	atomic_fetch_sub(&p->memmig_active, 1);
	if (failed || m->err)
		CTR_ADD(p, memmig_failed, 1);
	else
		CTR_ADD(p, memmig_aborted, 1);
	pager_memmig_free(m);
}

int pager_section_find(struct pager *p, const struct pager_section *match, int *ret_region,
		       unsigned *ret_index)
{
	int rc = -ENOENT;

	if (!p || !match || match->kind != PAGER_SEC_REMOTE)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	for (unsigned ri = 0; ri < atomic_load(&p->nslots) && rc < 0; ri++) {
		struct pager_region *r = atomic_load(&p->regions[ri]);

		for (uint32_t i = 0; r && i < r->nsections; i++)
			if (pager_same_section(&r->sections[i], match)) {
				*ret_region = (int)ri;
				*ret_index = i;
				rc = 0;
				break;
			}
	}
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int pager_section_migration(struct pager *p, int region, unsigned index,
			    struct pager_section *ret_target)
{
	struct pager_region *r;
	int rc = 0;

	if (!p || !ret_target)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	r = get_region(p, region, index, &rc);
	if (r) {
		pthread_mutex_lock(&p->io_lock);
		if (r->mig[index])
			*ret_target = r->mig[index]->target;
		else
			rc = -ENOENT;
		pthread_mutex_unlock(&p->io_lock);
	}
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int pager_section_migrate_begin(struct pager *p, int region, unsigned index,
				const struct pager_section *target)
{
	struct pager_memmig *m;
	struct pager_region *r;
	int rc = 0;

	if (!p || !target || target->kind != PAGER_SEC_REMOTE)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->resend = calloc(p->sec_pages, 1);
	if (!m->resend) {
		pager_memmig_free(m);
		return -ENOMEM;
	}
	m->target = *target;
	m->begin_ns = now_ns();

	pthread_mutex_lock(&p->admin_lock);
	r = get_region(p, region, index, &rc);
	if (r && r->sections[index].kind != PAGER_SEC_REMOTE)
		rc = -EINVAL;               /* a local section has nothing to move */
	else if (r && pager_same_section(&r->sections[index], target))
		rc = -EINVAL;               /* the target is the section itself */
	if (rc == 0) {
		pthread_mutex_lock(&p->io_lock);
		if (r->mig[index]) {
			rc = -EBUSY;
		} else {
			r->mig[index] = m;
			m = NULL;
			atomic_fetch_add(&p->memmig_active, 1);
			CTR_ADD(p, memmig_started, 1);
		}
		pthread_mutex_unlock(&p->io_lock);
	}
	pthread_mutex_unlock(&p->admin_lock);
	pager_memmig_free(m);
	if (rc == 0)
		log_debug("pager %s: region %d section %u: migration to %s section %u begins",
			  p->name, region, index, target->addr, target->grant.section);
	return rc;
}

int pager_section_migrate_abort(struct pager *p, int region, unsigned index)
{
	struct pager_region *r;
	int rc = 0;

	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	r = get_region(p, region, index, &rc);
	if (r) {
		pthread_mutex_lock(&p->io_lock);
		if (r->mig[index])
			pager_memmig_drop(p, r, index, false);
		else
			rc = -ENOENT;
		pthread_mutex_unlock(&p->io_lock);
	}
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int pager_section_migrate_commit(struct pager *p, int region, unsigned index,
				 struct pager_memmig_result *ret)
{
	struct resend_ctx c = { .p = p, .index = index };
	struct pager_memmig_result res = { 0 };
	struct pager_memmig *m;
	struct pager_region *r;
	uint64_t t0 = now_ns(), f0, g0, pg0;
	int rc = 0, err = 0;

	if (!p)
		return -EINVAL;
	c.buf = aligned_alloc(PS, (size_t)RESEND_CHUNK * PS);
	c.pages = calloc(RESEND_CHUNK, sizeof(*c.pages));
	c.local = calloc(RESEND_CHUNK, 1);
	pthread_mutex_lock(&p->admin_lock);
	r = get_region(p, region, index, &rc);
	if (!r)
		goto out;
	c.r = r;
	pg0 = (uint64_t)index * p->sec_pages;
	pthread_mutex_lock(&p->io_lock);
	m = r->mig[index];
	if (!m) {
		pthread_mutex_unlock(&p->io_lock);
		rc = -ENOENT;
		goto out;
	}
	if (!c.buf || !c.pages || !c.local) {
		/* Keep the migration: the caller may retry or abort. */
		pthread_mutex_unlock(&p->io_lock);
		rc = -ENOMEM;
		goto out;
	}
	/* The COPY has answered: a target-acknowledged write-back is final from now on. */
	m->copy_done = true;
	res.pages_dual = m->pages_dual;
	pthread_mutex_unlock(&p->io_lock);

	/* 1. Bulk re-send while faults and eviction run, a chunk per hold of io_lock. */
	for (;;) {
		int n;

		pthread_mutex_lock(&p->io_lock);
		if (m->err || !m->nresend) {
			pthread_mutex_unlock(&p->io_lock);
			break;
		}
		n = resend_chunk(&c, m);
		res.rounds++;
		pthread_mutex_unlock(&p->io_lock);
		if (n < 0) {
			err = n;
			break;
		}
	}

	/*
	 * 2. io_lock first (an eviction batch in flight finishes before the
	 * pause starts), then fence the section (faults on it wait) and wait
	 * for a grace period of that section: no fault thread reads its
	 * descriptor any more. Fault threads busy with other sections are not
	 * waited for. The wait cuts short a fault thread's wait for budget
	 * space, which the evictor could not make while we hold io_lock.
	 */
	/*
	 * Fence when the section is quiet: a fetch in flight on it (slow when
	 * the COPY, the guest and its writer share two CPUs; once 18 ms) would
	 * otherwise be inside the pause. At most QUIET_WAIT_MS, then regardless.
	 */
	(void)pager_wait_section_quiet(p, r, index, QUIET_WAIT_MS);
	pthread_mutex_lock(&p->io_lock);
	f0 = now_ns();
	__atomic_store_n(&r->fence[index], 1, __ATOMIC_SEQ_CST);
	pager_synchronize_section(p, r, index);
	g0 = now_ns();
	while (!err && !m->err && m->nresend) {
		int n = resend_chunk(&c, m);

		res.rounds++;
		if (n < 0)
			err = n;
	}
	if (!err && m->err)
		err = -EREMOTEIO;
	if (!err) {
		/* 3. Switch: same pages, same state, new home. */
		pthread_mutex_lock(&p->lock);
		r->sections[index] = m->target;
		pthread_mutex_unlock(&p->lock);
		res.pages_dual = m->pages_dual;
		r->mig[index] = NULL;
		atomic_fetch_sub(&p->memmig_active, 1);
		CTR_ADD(p, memmig_committed, 1);
		pager_memmig_free(m);
	} else {
		if (err != -EREMOTEIO)
			atomic_store(&p->memmig_last_err, err);
		pager_memmig_drop(p, r, index, true);   /* abort semantics: stay on the source */
	}
	__atomic_store_n(&r->fence[index], 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&p->io_lock);
	res.pause_ns = now_ns() - f0;
	hist_observe(&p->h_memmig_pause, res.pause_ns);
	if (res.pause_ns > 2000000)
		log_info("pager %s: region %d section %u: pause %llu us (grace period %llu us)",
			 p->name, region, index, (unsigned long long)(res.pause_ns / 1000),
			 (unsigned long long)((g0 - f0) / 1000));
	/* Faults parked by the fence refault now, on the new section. */
	(void)pager_uffd_wake(r, pg0, p->sec_pages);
	rc = err;
	res.pages_resent = c.sent;
	res.total_ns = now_ns() - t0;
	if (rc == 0) {
		if (ret)
			*ret = res;
		log_debug("pager %s: region %d section %u migrated: %llu pages re-sent, "
			  "pause %llu us, %llu ms",
			  p->name, region, index, (unsigned long long)res.pages_resent,
			  (unsigned long long)(res.pause_ns / 1000),
			  (unsigned long long)(res.total_ns / 1000000));
	}
out:
	pthread_mutex_unlock(&p->admin_lock);
	free(c.buf);
	free(c.pages);
	free(c.local);
	return rc;
}

/* ---- evacuation: a local section becomes remote ----------------------------- */

/* Pages [a, b) of r have data in the file: PRESENT|DIRTY. Fenced, io_lock held. */
static uint64_t mark_dirty(struct pager *p, struct pager_region *r, uint64_t a, uint64_t b)
{
	pthread_mutex_lock(&p->lock);
	for (uint64_t pg = a; pg < b; pg++)
		st_set(r, pg, ST_PRESENT | ST_DIRTY);
	pthread_mutex_unlock(&p->lock);
	return b - a;
}

int pager_section_evacuate(struct pager *p, int region, unsigned index,
			   const struct pager_section *target, uint64_t *ret_pages)
{
	struct pager_region *r;
	uint64_t n = 0;
	int rc = 0;

	if (!p || !target || target->kind != PAGER_SEC_REMOTE)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	r = get_region(p, region, index, &rc);
	if (!r)
		goto out;
	if (r->sections[index].kind != PAGER_SEC_LOCAL) {
		rc = -EALREADY;
		goto out;
	}
	/*
	 * No batch in flight, the section fenced, no fault thread in it: the
	 * kind changes, and fault threads read it outside a fault too
	 * (REMOVE events), hence the full grace period.
	 */
	pthread_mutex_lock(&p->io_lock);
	__atomic_store_n(&r->fence[index], 1, __ATOMIC_SEQ_CST);
	pager_synchronize(p);
	/*
	 * A local section has no page state: the file says what the guest
	 * touched. Those pages stay where they are and become dirty pages of
	 * the remote section, so the cleaner, the evictor or a flush writes
	 * them to it (WP-protecting each before it is read, as for any dirty
	 * page). The others read as the fresh section's zeros.
	 */
	n = pager_file_runs(p, r, (uint64_t)index * p->sec_pages, p->sec_pages, true, mark_dirty);
	pthread_mutex_lock(&p->lock);
	r->sections[index] = *target;
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_add(&p->remote_pages, p->sec_pages);
	__atomic_store_n(&r->fence[index], 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&p->io_lock);
	pager_resident_add(p, (int64_t)n);
	pthread_cond_signal(&p->evict_cond);     /* over budget now? */
	(void)pager_uffd_wake(r, (uint64_t)index * p->sec_pages, p->sec_pages);
	log_debug("pager %s: region %d section %u evacuated to %s: %llu pages to write back",
		  p->name, region, index, target->addr, (unsigned long long)n);
	if (ret_pages)
		*ret_pages = n;
out:
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}
