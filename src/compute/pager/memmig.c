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
 * The migration is a tee on the section (sink.h): installed by begin,
 * removed by commit or abort (or dropped when the region goes or the
 * section is discarded). The write-back path knows nothing about it.
 *
 * Locking: admin_lock serializes these calls with hotplug. The tee is
 * installed, used and removed under io_lock, which every write-back batch
 * holds (writeback.c), and the re-send runs under io_lock a chunk at a
 * time, so no write-back of a page can overtake its re-send on B. The switch takes io_lock (so no write-back batch is in
 * flight), then fences the section (faults on it wait) and waits until no
 * fault thread serves a fault in that section (faults elsewhere go on); a
 * fault thread waiting for budget space stops waiting when a grace period
 * is requested, since the evictor cannot run meanwhile.
 * docs/pager.md, "Memory migration", describes the semantics.
 */
#include "memmig.h"

#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "log.h"
#include "net.h"
#include "region.h"
#include "replica.h"
#include "sink.h"
#include "source.h"

#define RESEND_CHUNK 256u          /* pages re-sent per hold of io_lock */
#define QUIET_WAIT_MS 200u         /* commit: wait this long at most for a quiet section */

/* The pager's migrations (p->mm). */
struct pager_mm {
	void *conn;                  /* connection to the targets; io_lock */
	_Atomic int active;          /* migrations in progress */
	_Atomic int last_err;        /* why the last migration failed (0: none yet) */
};

/*
 * A section moving to another memory node: a tee on the section. While it
 * is installed every write-back of the section goes to the source and to
 * `target`; the pages written back before the COPY is over are flagged in
 * `resend` and sent to the target again at commit (the COPY may have
 * overwritten them with older content). Under io_lock.
 */
struct pager_memmig {
	struct pager_tee tee;
	unsigned pos;                /* the replica position that moves (0: unreplicated) */
	struct pager_section target;
	uint8_t *resend;             /* per page of the section: send to the target at commit */
	uint64_t nresend;            /* pages flagged in resend[] */
	bool copy_done;              /* commit began: the COPY is over */
	int err;                     /* the target failed: 0 or -errno (migration is dead) */
	uint64_t begin_ns;
	uint64_t pages_dual;         /* pages written to both during the window */
};

/* ---- the tee (sink.h; io_lock held) ----------------------------------------- */

static const struct pager_tee_ops mig_tee_ops;

static struct pager_memmig *mig_of(struct pager_tee *t)
{
	return container_of(t, struct pager_memmig, tee);
}

/* The migration of section `index` of r, or NULL. */
static struct pager_memmig *section_mig(struct pager_region *r, unsigned index)
{
	struct pager_tee *t = pager_tee_get(r, index);

	return t && t->ops == &mig_tee_ops ? mig_of(t) : NULL;
}

static void mig_free(struct pager_memmig *m)
{
	if (!m)
		return;
	free(m->resend);
	free(m);
}

/* A migration that was removed from its section ends (abort or failure). */
static void mig_end(struct pager *p, struct pager_memmig *m, bool failed)
{
	atomic_fetch_sub(&p->mm->active, 1);
	if (failed || m->err)
		CTR_ADD(p, memmig_failed, 1);
	else
		CTR_ADD(p, memmig_aborted, 1);
	mig_free(m);
}

static void mig_fail(struct pager *p, struct pager_memmig *m, int err)
{
	if (m->err)
		return;
	m->err = err < 0 ? err : -EIO;
	atomic_store(&p->mm->last_err, m->err);
	log_debug("pager %s: migration target %s failed: %s", p->name, m->target.addr,
		  strerror(-m->err));
}

static int mig_conn(struct pager *p)
{
	int r;

	if (p->mm->conn)
		return 0;
	r = p->cfg.backend->ops->conn_open(p->cfg.backend->priv, &p->mm->conn);
	if (r < 0)
		p->mm->conn = NULL;
	return r;
}

static bool tee_submit(struct pager *p, struct pager_tee *t, const struct pager_wb_group *g)
{
	struct pager_memmig *m = mig_of(t);
	int r;

	if (m->err)
		return false;
	r = mig_conn(p);
	if (r >= 0)
		r = p->cfg.backend->ops->write_submit(p->mm->conn, &m->target, g->ext, g->next,
						      g->data);
	if (r < 0) {
		mig_fail(p, m, r);
		return false;
	}
	return true;
}

static bool teed_here(const struct pager_wb_group *g)
{
	return g->teed && g->tee->ops == &mig_tee_ops;
}

static void tee_wait(struct pager *p, struct pager_wb_group *g, unsigned ng)
{
	const struct pager_backend_ops *ops = p->cfg.backend->ops;
	bool any = false;
	int r;

	for (unsigned i = 0; i < ng && !any; i++)
		any = teed_here(&g[i]);
	if (!any || !p->mm->conn)
		return;
	r = ops->write_wait(p->mm->conn);
	if (r >= 0)
		return;
	/* Which target failed is not known: every migration in the batch ends. */
	for (unsigned i = 0; i < ng; i++)
		if (teed_here(&g[i])) {
			mig_fail(p, mig_of(g[i].tee), r);
			g[i].teed = false;
		}
	ops->reset(p->mm->conn);
}

/* The batch is acknowledged by the source: flag what the target must get again. */
static void tee_written(struct pager *p, struct pager_tee *t, const struct pager_wb_group *g)
{
	struct pager_memmig *m = mig_of(t);

	if (m->err)
		return;
	if (g->teed) {
		m->pages_dual += g->npages;
		CTR_ADD(p, memmig_pages_dual, g->npages);
	}
	/*
	 * Before commit the COPY may still overwrite these pages on the
	 * target with older content: send them again at commit.
	 */
	if (m->copy_done && g->teed)
		return;
	for (uint32_t e = 0; e < g->next; e++)
		for (uint32_t k = 0; k < g->ext[e].count; k++) {
			uint32_t pg = g->ext[e].page + k;

			if (!m->resend[pg]) {
				m->resend[pg] = 1;
				m->nresend++;
			}
		}
}

static void tee_drop(struct pager *p, struct pager_tee *t)
{
	mig_end(p, mig_of(t), false);
}

static const struct pager_tee_ops mig_tee_ops = {
	.name = "memmig",
	.submit = tee_submit,
	.wait = tee_wait,
	.written = tee_written,
	.drop = tee_drop,
};

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
	/*
	 * Sealed pages (atrest.h): the source memory node holds exactly the
	 * ciphertext the table names (no write-back is in flight: io_lock), so
	 * every page is copied from it as it is, never sealed again here.
	 */
	if (pager_rcrypt(p, r))
		memset(c->local, 0, n);
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

		if (c->local[i]) {
			i++;
			continue;
		}
		while (j < n && !c->local[j] && c->pages[j] == c->pages[j - 1] + 1)
			j++;
		rc = pager_source_fetch_sec(p, &p->evict_conn, r, c->index, c->pages[i], j - i,
					    c->buf + (size_t)i * PS, NULL, NULL, NULL);
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
	maxp = ops->max_pages(p->mm->conn);
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
		rc = ops->write_submit(p->mm->conn, &m->target, g.ext, g.next, g.data);
		if (rc < 0)
			mig_fail(p, m, rc);
	}
	rc = ops->write_wait(p->mm->conn);
	if (rc < 0) {
		mig_fail(p, m, rc);
		ops->reset(p->mm->conn);
	}
	if (!m->err) {
		c->sent += n;
		CTR_ADD(p, memmig_pages_resent, n);
	}
	return (int)n;
}

/* ---- API ------------------------------------------------------------------- */

int pager_section_migration_replica(struct pager *p, int region, unsigned index,
				    unsigned *ret_replica, struct pager_section *ret_target)
{
	struct pager_region *r;
	int rc = 0;

	if (!p || !ret_target)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	r = pager_region_get(p, region, index, &rc);
	if (r) {
		struct pager_memmig *m;

		pthread_mutex_lock(&p->io_lock);
		m = section_mig(r, index);
		if (m) {
			*ret_target = m->target;
			if (ret_replica)
				*ret_replica = m->pos;
		} else {
			rc = -ENOENT;
		}
		pthread_mutex_unlock(&p->io_lock);
	}
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int pager_section_migrate_begin_replica(struct pager *p, int region, unsigned index,
					unsigned replica, const struct pager_section *target)
{
	struct pager_memmig *m;
	struct pager_region *r;
	int rc = 0;

	if (!p || !target || target->kind != PAGER_SEC_REMOTE)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->tee.ops = &mig_tee_ops;
	m->resend = calloc(p->sec_pages, 1);
	if (!m->resend) {
		mig_free(m);
		return -ENOMEM;
	}
	m->target = *target;
	m->target.nrep = 0;
	memset(m->target.more, 0, sizeof(m->target.more));
	m->pos = replica;
	m->begin_ns = now_ns();

	pthread_mutex_lock(&p->admin_lock);
	r = pager_region_get(p, region, index, &rc);
	if (r && r->sections[index].kind != PAGER_SEC_REMOTE)
		rc = -EINVAL;               /* a local section has nothing to move */
	else if (r && replica >= pager_rep_n(&r->sections[index]))
		rc = -ERANGE;               /* no such replica position */
	for (unsigned k = 0; rc == 0 && k < pager_rep_n(&r->sections[index]); k++)
		if (pager_rep_is(&r->sections[index], k, target))
			rc = -EINVAL;       /* the target is the section (one of its replicas) itself */
	if (rc == 0) {
		pthread_mutex_lock(&p->io_lock);
		if (pager_tee_get(r, index)) {
			rc = -EBUSY;
		} else {
			pager_tee_install(r, index, &m->tee);
			m = NULL;
			atomic_fetch_add(&p->mm->active, 1);
			CTR_ADD(p, memmig_started, 1);
		}
		pthread_mutex_unlock(&p->io_lock);
	}
	pthread_mutex_unlock(&p->admin_lock);
	mig_free(m);
	if (rc == 0)
		log_debug("pager %s: region %d section %u replica %u: migration to %s section %u "
			  "begins", p->name, region, index, replica, target->addr,
			  target->grant.section);
	return rc;
}

int pager_section_migrate_abort_replica(struct pager *p, int region, unsigned index,
					unsigned replica)
{
	struct pager_region *r;
	int rc = 0;

	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);
	r = pager_region_get(p, region, index, &rc);
	if (r) {
		struct pager_memmig *m;

		pthread_mutex_lock(&p->io_lock);
		m = section_mig(r, index);
		if (m && m->pos == replica) {
			pager_tee_remove(r, index);
			mig_end(p, m, false);
		} else {
			rc = -ENOENT;
		}
		pthread_mutex_unlock(&p->io_lock);
	}
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

int pager_section_migrate_commit_replica(struct pager *p, int region, unsigned index,
					 unsigned replica, struct pager_memmig_result *ret)
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
	r = pager_region_get(p, region, index, &rc);
	if (!r)
		goto out;
	c.r = r;
	pg0 = (uint64_t)index * p->sec_pages;
	pthread_mutex_lock(&p->io_lock);
	m = section_mig(r, index);
	if (!m || m->pos != replica) {
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
	(void)pager_rcu_wait_quiet(&p->rcu, pager_sec_key(r, index), QUIET_WAIT_MS);
	pthread_mutex_lock(&p->io_lock);
	f0 = now_ns();
	__atomic_store_n(&r->fence[index], 1, __ATOMIC_SEQ_CST);
	pager_rcu_synchronize_key(&p->rcu, pager_sec_key(r, index));
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
		if (pager_rep_replicated(&r->sections[index])) {
			/* The target takes the position, in (it got every write since begin). */
			pager_rep_set(&r->sections[index], m->pos, &m->target);
			pager_rep_set_in(p, r, index, m->pos);
		} else {
			r->sections[index] = m->target;
		}
		pthread_mutex_unlock(&p->lock);
		res.pages_dual = m->pages_dual;
		pager_tee_remove(r, index);
		atomic_fetch_sub(&p->mm->active, 1);
		CTR_ADD(p, memmig_committed, 1);
		mig_free(m);
	} else {
		if (err != -EREMOTEIO)
			atomic_store(&p->mm->last_err, err);
		pager_tee_remove(r, index);
		mig_end(p, m, true);   /* abort semantics: stay on the source */
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

int pager_section_migration(struct pager *p, int region, unsigned index,
			    struct pager_section *ret_target)
{
	return pager_section_migration_replica(p, region, index, NULL, ret_target);
}

int pager_section_migrate_begin(struct pager *p, int region, unsigned index,
				const struct pager_section *target)
{
	return pager_section_migrate_begin_replica(p, region, index, 0, target);
}

int pager_section_migrate_commit(struct pager *p, int region, unsigned index,
				 struct pager_memmig_result *ret)
{
	return pager_section_migrate_commit_replica(p, region, index, 0, ret);
}

int pager_section_migrate_abort(struct pager *p, int region, unsigned index)
{
	return pager_section_migrate_abort_replica(p, region, index, 0);
}

/* ---- lifecycle ------------------------------------------------------------------ */

int pager_mm_new(struct pager *p)
{
	p->mm = calloc(1, sizeof(*p->mm));
	return p->mm ? 0 : -ENOMEM;
}

void pager_mm_free(struct pager *p)
{
	if (!p->mm)
		return;
	if (p->mm->conn)
		p->cfg.backend->ops->conn_close(p->mm->conn);
	free(p->mm);
	p->mm = NULL;
}

void pager_mm_stats(struct pager *p, uint64_t *ret_active, int *ret_last_err)
{
	*ret_active = (uint64_t)atomic_load(&p->mm->active);
	*ret_last_err = atomic_load(&p->mm->last_err);
}
