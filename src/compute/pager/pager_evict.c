// SPDX-License-Identifier: MIT
/*
 * Eviction, write-back and flush.
 *
 * The evictor thread keeps the resident remote pages of a pager within its
 * budget. Victims are chosen by a CLOCK hand over the remote pages: a page
 * that was installed or written since the hand last passed (REF) gets a
 * second chance; among the rest clean pages are taken first because they
 * need no write-back; dirty pages fill the batch when there are not enough
 * clean ones. A batch (default 64 pages) is evicted with few syscalls:
 *
 *   1. mark the victims BUSY (fault threads then leave WP faults on them to us)
 *   2. UFFDIO_WRITEPROTECT the dirty ones (runs): no write can land after this
 *   3. pread their content from the file, write it to the memory node
 *      (pipelined, one request per section run) and WAIT FOR THE ACKS
 *   4. fallocate(PUNCH_HOLE) the victims (runs): this zaps every mapping
 *   5. mark them absent and UFFDIO_WAKE the runs: a writer that faulted
 *      during 2-4 retries, faults MISSING and gets the written-back data.
 *
 * If the write-back fails (after retries for fail_timeout_ms), nothing is
 * punched: the victims stay resident and the writers are woken.
 *
 * pager_flush() runs the same batch without steps 4-5's punch: dirty pages
 * are re-protected, written back and marked clean. It also writes zeros for
 * discarded pages, so that after a flush the memory node holds the truth
 * (migration relies on that). In the WP_ASYNC mode it finds dirty pages
 * with PAGEMAP_SCAN (which re-protects them atomically) instead of state bits.
 *
 * Reconciliation: a punch of the file behind the pager's back (fallocate
 * from the mapping's process) sends no uffd event. A page punched that way
 * is found by its next MISSING fault (pager.c); one that is never touched
 * again would stay counted as resident, so the idle evictor (every
 * reconcile_ms, one section per hold of io_lock) compares the PRESENT pages
 * with the file's holes (SEEK_HOLE/SEEK_DATA) and un-counts the punched
 * ones. pager_flush() does not: a punched dirty page reads as zeros from
 * the file, which is what its write-back must send.
 *
 * Every region pointer used here is taken under io_lock, which
 * pager_remove_region() and pager_region_set_section() hold while they
 * change a region.
 *
 * A section being migrated to another memory node (pager_memmig.c) is
 * written back to both nodes: wb_cb() submits the source writes, then the
 * target's (pager_memmig_submit), and waits for both; a target that fails
 * ends its migration but never fails the write-back.
 */
#include "pager_internal.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"


struct recon_cursor {
	unsigned region;
	uint32_t sec;
	bool running;                /* a pass is under way */
};

static bool reconcile_step(struct pager *p, struct recon_cursor *rc);

struct victim {
	struct pager_region *r;
	uint64_t pg;
	uint8_t st;
	bool wb;          /* write back */
};

/* ---- retries ------------------------------------------------------------- */

static bool err_fatal(int err)
{
	switch (-err) {
	case EKEYREJECTED: case EKEYEXPIRED: case EPERM: case EACCES: case ERANGE:
	case EINVAL: case E2BIG: case ENOENT: case ESTALE: case ECANCELED:
		return true;
	default:
		return false;
	}
}

int pager_retry_io(struct pager *p, void **connp, int (*fn)(void *conn, void *arg), void *arg)
{
	const struct pager_backend_ops *ops = p->cfg.backend->ops;
	uint64_t start = now_ns();
	unsigned delay_ms = 2;

	for (;;) {
		int r;

		if (!*connp) {
			r = ops->conn_open(p->cfg.backend->priv, connp);
			if (r < 0)
				*connp = NULL;
		} else {
			r = 0;
		}
		if (r >= 0) {
			r = fn(*connp, arg);
			if (r >= 0)
				return r;
		}
		/* A cancelled attempt (region removed, section fenced) is no backend error. */
		if (r != -ECANCELED)
			CTR_ADD(p, errors, 1);
		if (err_fatal(r))
			return r;
		if (*connp)
			ops->reset(*connp);
		if (atomic_load(&p->stop))
			return -ECANCELED;
		if ((now_ns() - start) / 1000000 >= (uint64_t)p->cfg.fail_timeout_ms)
			return r;
		usleep(delay_ms * 1000);
		delay_ms = MIN(delay_ms * 2, 200u);
	}
}

/* ---- one write-back batch ------------------------------------------------ */

struct wb_io {
	struct pager *p;
	struct pager_wb_group *g;
	unsigned ng;
};

static int wb_cb(void *conn, void *arg)
{
	struct wb_io *io = arg;
	const struct pager_backend_ops *ops = io->p->cfg.backend->ops;

	int r;

	for (unsigned i = 0; i < io->ng; i++) {
		r = ops->write_submit(conn, io->g[i].s, io->g[i].ext, io->g[i].next, io->g[i].data);
		if (r < 0)
			return r;
	}
	/* A migrating section is written to its target too, on its own connection. */
	pager_memmig_submit(io->p, io->g, io->ng);
	r = ops->write_wait(conn);
	pager_memmig_wait(io->p, io->g, io->ng);
	return r;
}

static int cmp_victim(const void *a, const void *b)
{
	const struct victim *x = a, *y = b;

	if (x->r->idx != y->r->idx)
		return x->r->idx < y->r->idx ? -1 : 1;
	return x->pg < y->pg ? -1 : x->pg > y->pg;
}

/* Call fn on each run of consecutive victims (same region) with flag set. */
static void for_runs(struct victim *v, unsigned nv, bool (*sel)(const struct victim *),
		     void (*fn)(struct pager_region *r, uint64_t pg, uint64_t n, void *arg), void *arg)
{
	for (unsigned i = 0; i < nv;) {
		unsigned j = i + 1;

		if (!sel(&v[i])) {
			i++;
			continue;
		}
		while (j < nv && sel(&v[j]) && v[j].r == v[i].r && v[j].pg == v[j - 1].pg + 1)
			j++;
		fn(v[i].r, v[i].pg, v[j - 1].pg - v[i].pg + 1, arg);
		i = j;
	}
}

static bool sel_all(const struct victim *v) { return true; }
static bool sel_wp(const struct victim *v)
{
	return v->wb && (v->st & ST_PRESENT) && (v->st & ST_DIRTY);
}

static void run_wp(struct pager_region *r, uint64_t pg, uint64_t n, void *arg)
{
	int *err = arg;

	for (unsigned tries = 0;; tries++) {
		int rc = pager_uffd_wp(r, pg, n, true);

		if (rc != -EAGAIN || tries > 20000) {
			if (rc < 0 && !*err)
				*err = rc;
			return;
		}
		usleep(50); /* an event is pending; a fault thread reads it */
	}
}

static void run_punch(struct pager_region *r, uint64_t pg, uint64_t n, void *arg)
{
	int *err = arg, rc = pager_punch(r, pg, n);

	if (rc < 0 && !*err)
		*err = rc;
}

static void run_wake(struct pager_region *r, uint64_t pg, uint64_t n, void *arg)
{
	(void)pager_uffd_wake(r, pg, n);
}

/*
 * Write back (v[i].wb) and, for an eviction, punch a batch of BUSY victims
 * sorted by region and page. Returns pages written back or -errno.
 */
static int wb_batch(struct pager *p, struct victim *v, unsigned nv, bool evict, bool skip_wp,
		    uint8_t *buf, struct pager_wb_group *groups)
{
	uint32_t maxp = p->cfg.backend->ops->max_pages(p->evict_conn ? p->evict_conn : NULL);
	unsigned nwb = 0, ng = 0;
	uint64_t t0 = now_ns();
	int64_t dropped = 0;
	int err = 0;

	if (!maxp || maxp > PROTO_MAX_PAGES)
		maxp = PROTO_MAX_PAGES;
	/* 2. No write lands after this (sync mode). */
	if (!skip_wp && p->mode == PAGER_DIRTY_SYNC_WP)
		for_runs(v, nv, sel_wp, run_wp, &err);

	/* 3. Content and write-back groups. */
	for (unsigned i = 0; i < nv && !err; i++) {
		uint8_t *d;
		struct pager_wb_group *g;
		uint32_t sec, page;

		if (!v[i].wb)
			continue;
		d = buf + (size_t)nwb * PS;
		{
			/*
			 * The content is what the file holds: a present page from the
			 * page cache, zeros for a hole (a discarded page; pread of a
			 * tmpfs hole does not allocate). Never trust a state snapshot
			 * to decide "zeros": the file is the truth.
			 */
			ssize_t n = pread(v[i].r->file_fd, d, PS,
					  (off_t)(v[i].r->file_offset + v[i].pg * PS));
			if (n < 0) {
				err = -errno;
				break;
			}
			if (n < (ssize_t)PS)
				memset(d + n, 0, PS - (size_t)n);
		}
		sec = (uint32_t)(v[i].pg / p->sec_pages);
		page = (uint32_t)(v[i].pg % p->sec_pages);
		g = ng ? &groups[ng - 1] : NULL;
		if (!g || g->s != &v[i].r->sections[sec] || g->npages >= maxp) {
			g = &groups[ng++];
			g->s = &v[i].r->sections[sec];
			g->mig = v[i].r->mig[sec];
			g->dual = false;
			g->next = 0;
			g->npages = 0;
			g->data = d;
		}
		if (g->next && g->ext[g->next - 1].page + g->ext[g->next - 1].count == page) {
			g->ext[g->next - 1].count++;
		} else if (g->next < PROTO_MAX_EXTENTS) {
			g->ext[g->next++] = (struct proto_extent){ page, 1 };
		} else {
			g = &groups[ng++];
			*g = (struct pager_wb_group){ .s = &v[i].r->sections[sec],
						      .mig = v[i].r->mig[sec], .data = d };
			g->ext[g->next++] = (struct proto_extent){ page, 1 };
		}
		g->npages++;
		nwb++;
	}
	if (!err && ng) {
		struct wb_io io = { p, groups, ng };
		uint64_t w0 = now_ns();

		err = pager_retry_io(p, &p->evict_conn, wb_cb, &io);
		hist_observe(&p->h_writeback, now_ns() - w0);
		if (err > 0)
			err = 0;
		if (!err)
			pager_memmig_written(p, groups, ng);
	}
	if (err) {
		/* Nothing is dropped: release the victims, the writers retry. */
		pthread_mutex_lock(&p->lock);
		for (unsigned i = 0; i < nv; i++) {
			uint8_t cur = st_get(v[i].r, v[i].pg);

			if (cur & ST_RMV) {
				if (cur & ST_PRESENT)
					dropped++;
				st_set(v[i].r, v[i].pg, ST_DISCARD);
			} else {
				st_set(v[i].r, v[i].pg, cur & ~ST_BUSY);
			}
		}
		pthread_mutex_unlock(&p->lock);
		for_runs(v, nv, sel_all, run_wake, NULL);
		if (dropped)
			pager_resident_add(p, -dropped);
		return err;
	}

	/* 4. Punch: the data is safe on the memory node. */
	if (evict)
		for_runs(v, nv, sel_all, run_punch, &err);

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < nv; i++) {
		uint8_t cur = st_get(v[i].r, v[i].pg), nv8;

		if (cur & ST_RMV) {
			nv8 = ST_DISCARD;                /* removed meanwhile: zeros */
			if (cur & ST_PRESENT)
				dropped++;
		} else if (evict) {
			nv8 = v[i].wb ? 0 : (cur & ST_DISCARD);
			if (cur & ST_PRESENT)
				dropped++;
		} else {
			nv8 = cur & ~(ST_BUSY | ST_DIRTY);
			if (v[i].wb)
				nv8 &= (uint8_t)~ST_DISCARD;
		}
		if (evict && err) {
			/* Punch failed: the page is still there, keep it (clean now). */
			nv8 = (cur & ~(ST_BUSY | ST_DIRTY | ST_RMV)) |
			      (v[i].wb ? 0 : (cur & ST_DISCARD));
			if (cur & ST_PRESENT)
				dropped--;
		}
		st_set(v[i].r, v[i].pg, nv8);
	}
	pthread_mutex_unlock(&p->lock);
	/* 5. Writers that faulted meanwhile retry now. */
	for_runs(v, nv, sel_all, run_wake, NULL);
	if (dropped)
		pager_resident_add(p, -dropped);
	CTR_ADD(p, pages_written_back, nwb);
	if (evict) {
		CTR_ADD(p, pages_evicted, nv);
		hist_observe(&p->h_evict, now_ns() - t0);
	}
	return err ? err : (int)nwb;
}

/* ---- victim selection (CLOCK, clean first) ------------------------------- */

static unsigned select_victims(struct pager *p, unsigned want, struct victim *v,
			       struct victim *dirty)
{
	unsigned nr = atomic_load(&p->nslots), nclean = 0, ndirty = 0, n;
	uint64_t scanned = 0, limit = 2 * atomic_load(&p->remote_pages) + 2;
	bool async = p->mode == PAGER_DIRTY_ASYNC_WP;

	if (!nr)
		return 0;
	while (nclean < want && scanned < limit) {
		struct pager_region *r;
		uint8_t s;

		if (p->hand_region >= nr) {
			p->hand_region = 0;
			p->hand_page = 0;
		}
		r = atomic_load(&p->regions[p->hand_region]);
		if (!r || p->hand_page >= r->npages) {
			p->hand_region++;
			p->hand_page = 0;
			scanned++;
			continue;
		}
		if (!pager_sec_remote(p, r, p->hand_page)) {
			p->hand_page = (p->hand_page / p->sec_pages + 1) * p->sec_pages;
			scanned++;
			continue;
		}
		s = st_get(r, p->hand_page);
		if ((s & (ST_PRESENT | ST_BUSY)) == ST_PRESENT) {
			if (s & ST_REF)
				st_set(r, p->hand_page, s & ~ST_REF);
			else if (!(s & ST_DIRTY) && !async)
				v[nclean++] = (struct victim){ r, p->hand_page, s, false };
			else if (ndirty < want &&
				 !pager_sec_down(p, &r->sections[p->hand_page / p->sec_pages]))
				/* A dirty page of a down node waits: its write would fail. */
				dirty[ndirty++] = (struct victim){ r, p->hand_page, s, true };
		}
		p->hand_page++;
		scanned++;
		if (nclean + ndirty >= want && scanned >= (uint64_t)want * 64)
			break;
	}
	n = nclean;
	for (unsigned i = 0; i < ndirty && n < want; i++)
		v[n++] = dirty[i];
	for (unsigned i = 0; i < n; i++)
		st_set(v[i].r, v[i].pg, v[i].st | ST_BUSY);
	return n;
}

static int evict_batch(struct pager *p, unsigned want, uint8_t *buf, struct pager_wb_group *groups,
		       struct victim *v, struct victim *tmp)
{
	unsigned nv;

	pthread_mutex_lock(&p->lock);
	nv = select_victims(p, want, v, tmp);
	pthread_mutex_unlock(&p->lock);
	if (!nv)
		return 0;
	qsort(v, nv, sizeof(*v), cmp_victim);
	return wb_batch(p, v, nv, true, false, buf, groups) < 0 ? -EIO : (int)nv;
}

struct evict_bufs {
	uint8_t *buf;
	struct pager_wb_group *groups;
	struct victim *v, *tmp;
};

static int bufs_alloc_n(struct evict_bufs *b, unsigned n)
{
	b->buf = aligned_alloc(PS, (size_t)n * PS);
	b->groups = calloc(n, sizeof(*b->groups));
	b->v = calloc(n, sizeof(*b->v));
	b->tmp = calloc(n, sizeof(*b->tmp));
	return b->buf && b->groups && b->v && b->tmp ? 0 : -ENOMEM;
}

static int bufs_alloc(struct pager *p, struct evict_bufs *b)
{
	return bufs_alloc_n(b, p->batch);
}

static void bufs_free(struct evict_bufs *b)
{
	free(b->buf);
	free(b->groups);
	free(b->v);
	free(b->tmp);
}

/* ---- background write-back (the cleaner) --------------------------------- */

#define CLEAN_BATCH 256u        /* pages per cleaner batch (io_lock held that long) */
#define CLEAN_SCAN  16384u      /* page states looked at per p->lock hold */
/*
 * The age clock: p->wb_epoch advances every writeback_delay_ms /
 * CLEAN_EPOCHS. A page stamped with epoch E (st_set) is written back from
 * epoch E + CLEAN_EPOCHS + 1 on: it has been dirty for at least the delay
 * and at most 1 + 1/CLEAN_EPOCHS of it (plus the evictor's wake-up lag).
 */
#define CLEAN_EPOCHS 4u

struct cleaner {
	struct evict_bufs b;
	unsigned region;             /* cursor: slot and page */
	uint64_t page;
	bool found;                  /* this sweep claimed something */
	uint32_t idle_epoch;         /* a whole sweep found nothing eligible in this epoch */
	bool idle;
	uint64_t last_bump;          /* wb_epoch last advanced (ns) */
};

static uint64_t epoch_ns(const struct pager *p)
{
	/* A page is eligible CLEAN_EPOCHS + 1 epochs after the one it became dirty in. */
	return MAX((uint64_t)p->cfg.writeback_delay_ms * 1000000 / CLEAN_EPOCHS, 1000000ull);
}

static bool cleaner_on(const struct pager *p)
{
	return p->cfg.writeback_delay_ms > 0 && p->mode == PAGER_DIRTY_SYNC_WP;
}

/*
 * Claim up to `max` pages, in cursor order (sorted by region and page),
 * that need writing back and became dirty more than CLEAN_EPOCHS epochs
 * before the current one (dirty for writeback_delay_ms at least). Looks
 * at CLEAN_SCAN page states at most; regions without dirty pages and local
 * sections are skipped whole. io_lock held. *wrapped: the sweep is over.
 */
static unsigned claim_old(struct pager *p, struct cleaner *c, struct victim *v, unsigned max,
			  bool *wrapped)
{
	unsigned nr = atomic_load(&p->nslots), n = 0;
	uint8_t epoch = (uint8_t)atomic_load(&p->wb_epoch);
	uint64_t scanned = 0;

	*wrapped = false;
	pthread_mutex_lock(&p->lock);
	while (n < max && scanned < CLEAN_SCAN) {
		struct pager_region *r;
		uint8_t s;

		if (c->region >= nr) {
			c->region = 0;
			c->page = 0;
			*wrapped = true;
			break;
		}
		r = atomic_load(&p->regions[c->region]);
		if (!r || c->page >= r->npages || !atomic_load(&r->ndirty)) {
			c->region++;
			c->page = 0;
			continue;
		}
		scanned++;
		if (!pager_sec_remote(p, r, c->page) ||
		    pager_sec_down(p, &r->sections[c->page / p->sec_pages])) {
			/* Local, or its memory node is down: nothing to write now. */
			c->page = (c->page / p->sec_pages + 1) * p->sec_pages;
			continue;
		}
		s = st_get(r, c->page);
		if (st_needs_wb(s) && !(s & ST_BUSY) &&
		    (uint8_t)(epoch - r->dep[c->page]) > CLEAN_EPOCHS) {
			v[n++] = (struct victim){ r, c->page, s, true };
			st_set(r, c->page, s | ST_BUSY);
		}
		c->page++;
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

/*
 * One step of background write-back; io_lock held. Returns pages written
 * back (> 0: call again soon), 0 if nothing was eligible in this step, or
 * -errno. The pages stay resident and clean (write-protected): the next
 * write to one takes a WP fault and makes it dirty again.
 */
static int clean_step(struct pager *p, struct cleaner *c)
{
	bool wrapped;
	unsigned n = claim_old(p, c, c->b.v, CLEAN_BATCH, &wrapped);
	int w;

	if (n)
		c->found = true;
	if (wrapped) {
		if (!c->found) {
			c->idle = true;
			c->idle_epoch = atomic_load(&p->wb_epoch);
		}
		c->found = false;
	}
	if (!n)
		return 0;
	w = wb_batch(p, c->b.v, n, false, false, c->b.buf, c->b.groups);
	if (w > 0)
		CTR_ADD(p, pages_cleaned, (uint64_t)w);
	if (w < 0) {
		/* The pages stay dirty; try again in the next epoch. */
		c->idle = true;
		c->idle_epoch = atomic_load(&p->wb_epoch);
	}
	return w;
}

/* Advance the age clock; each pass of the evictor's loop. */
static void cleaner_tick(struct pager *p, struct cleaner *c)
{
	uint64_t t = now_ns();

	if (!cleaner_on(p))
		return;
	if (t - c->last_bump >= epoch_ns(p)) {
		atomic_fetch_add(&p->wb_epoch, 1);
		/* Keep the period (the evictor wakes late); never bump twice at once. */
		c->last_bump += epoch_ns(p);
		if (t - c->last_bump >= epoch_ns(p))
			c->last_bump = t;
	}
}

/* Called by the evictor with p->lock held when there is no budget pressure. */
static bool cleaner_due(struct pager *p, struct cleaner *c)
{
	if (!cleaner_on(p))
		return false;
	if (c->idle && atomic_load(&p->wb_epoch) == c->idle_epoch)
		return false;   /* nothing new can be old enough before the next epoch */
	c->idle = false;
	return atomic_load(&p->dirty_pages) != 0 && !atomic_load(&p->failed);
}

void *pager_evictor_main(void *arg)
{
	struct pager *p = arg;
	struct evict_bufs b = { 0 };
	struct cleaner c = { .last_bump = now_ns() };
	bool active = false, cleaning = false;
	uint64_t last_reconcile = now_ns();
	struct recon_cursor recon = { 0 };
	long idle_wait_ms = 100;

	if (bufs_alloc(p, &b) < 0 || bufs_alloc_n(&c.b, CLEAN_BATCH) < 0) {
		bufs_free(&b);
		bufs_free(&c.b);
		atomic_store(&p->failed, -ENOMEM);
		return NULL;
	}
	if (p->cfg.writeback_delay_ms > 0)
		idle_wait_ms = (long)MIN(MAX(epoch_ns(p) / 1000000 / 2, 1ull), 100ull);
	pthread_mutex_lock(&p->lock);
	while (!atomic_load(&p->stop)) {
		uint64_t res = atomic_load(&p->resident), bud = atomic_load(&p->budget_pages);
		uint64_t low = bud == UINT64_MAX ? bud : bud - MIN(bud, (uint64_t)p->batch / 2);
		struct timespec ts;
		int n;

		cleaner_tick(p, &c);
		if (res > bud)
			active = true;
		if (active && res > low) {
			unsigned want = (unsigned)MIN((uint64_t)p->batch, res - low);

			pthread_mutex_unlock(&p->lock);
			pthread_mutex_lock(&p->io_lock);
			n = evict_batch(p, want, b.buf, b.groups, b.v, b.tmp);
			pthread_mutex_unlock(&p->io_lock);
			pthread_mutex_lock(&p->lock);
			pthread_cond_broadcast(&p->space_cond);
			if (n > 0)
				continue;
			/* Nothing evictable right now (all busy/referenced), or an error. */
		} else {
			active = false;
			if (recon.running ||
			    (p->cfg.reconcile_ms > 0 && atomic_load(&p->resident) &&
			     now_ns() - last_reconcile >= (uint64_t)p->cfg.reconcile_ms * 1000000)) {
				bool done;

				pthread_mutex_unlock(&p->lock);
				pthread_mutex_lock(&p->io_lock);
				done = reconcile_step(p, &recon);
				pthread_mutex_unlock(&p->io_lock);
				pthread_mutex_lock(&p->lock);
				recon.running = !done;
				if (done)
					last_reconcile = now_ns();
				cleaning = true;   /* a 1 ms pause: waiters for io_lock get it */
				goto wait;
			}
			if (cleaner_due(p, &c)) {
				/*
				 * One batch, then a pause of 1 ms: a flush, a removal
				 * or an eviction waiting for io_lock gets it (mutexes
				 * are not fair), and the write-back rate stays bounded.
				 */
				pthread_mutex_unlock(&p->lock);
				pthread_mutex_lock(&p->io_lock);
				n = clean_step(p, &c);
				pthread_mutex_unlock(&p->io_lock);
				pthread_mutex_lock(&p->lock);
				if (n == 0 && !c.idle)
					continue;   /* only scanned: go on with the sweep */
				cleaning = n > 0;
			}
		}
wait:
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (active ? 2 : cleaning ? 1 : idle_wait_ms) * 1000000L;
		cleaning = false;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->evict_cond, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_lock(&p->io_lock);
	if (p->evict_conn)
		p->cfg.backend->ops->conn_close(p->evict_conn);
	p->evict_conn = NULL;
	pthread_mutex_unlock(&p->io_lock);
	bufs_free(&b);
	bufs_free(&c.b);
	return NULL;
}

/* ---- budget --------------------------------------------------------------- */

int pager_set_budget(struct pager *p, uint64_t bytes)
{
	uint64_t pages = bytes == UINT64_MAX ? UINT64_MAX : bytes / PS;

	if (p->mode == PAGER_DIRTY_ASYNC_WP && !p->cfg.allow_async_evict &&
	    pages < atomic_load(&p->remote_pages))
		return -EOPNOTSUPP;
	pthread_mutex_lock(&p->lock);
	atomic_store(&p->budget_pages, pages);
	pthread_cond_signal(&p->evict_cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int pager_wait_budget(struct pager *p, int timeout_ms)
{
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ns() + (uint64_t)timeout_ms * 1000000;
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	while (atomic_load(&p->resident) > atomic_load(&p->budget_pages)) {
		struct timespec ts;

		if (atomic_load(&p->failed)) {
			rc = atomic_load(&p->failed);
			break;
		}
		if (now_ns() >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		pthread_cond_signal(&p->evict_cond);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000000L;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->space_cond, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* ---- flush ---------------------------------------------------------------- */

/*
 * Called with p->lock held. A BUSY page during a flush is a fetch in flight
 * (evictions hold io_lock, as the flush does): its final state may need a
 * write-back (installed writable, or a discarded page whose zeros the node
 * has not got). Wait for it: as long as a fetch may retry (fail_timeout_ms)
 * and a second more. Returns the state; still BUSY means the flush fails.
 */
static uint8_t wait_not_busy(struct pager *p, struct pager_region *r, uint64_t pg)
{
	uint8_t s = st_get(r, pg);
	uint64_t end = 0;
	unsigned us = 20;

	while (s & ST_BUSY) {
		uint64_t now = now_ns();

		if (!end)
			end = now + ((uint64_t)p->cfg.fail_timeout_ms + 1000) * 1000000ull;
		else if (now > end)
			break;
		pthread_mutex_unlock(&p->lock);
		usleep(us);
		us = MIN(us * 2, 1000u);
		pthread_mutex_lock(&p->lock);
		s = st_get(r, pg);
	}
	return s;
}

/*
 * Claim up to `max` pages of r from *pg on that need writing back (sync
 * mode). *ret_err: -EBUSY if a page stayed BUSY too long (never skipped
 * silently: the flush would claim a success it has not got).
 */
static unsigned claim_dirty(struct pager *p, struct pager_region *r, uint64_t *pg,
			    struct victim *v, unsigned max, int *ret_err)
{
	unsigned n = 0;

	pthread_mutex_lock(&p->lock);
	for (; *pg < r->npages && n < max; (*pg)++) {
		uint8_t s;

		if (!pager_sec_remote(p, r, *pg)) {
			*pg = (*pg / p->sec_pages + 1) * p->sec_pages - 1;
			continue;
		}
		s = wait_not_busy(p, r, *pg);
		if (s & ST_BUSY) {
			*ret_err = -EBUSY;
			break;
		}
		if (((s & ST_PRESENT) && (s & ST_DIRTY)) || (s & ST_DISCARD)) {
			v[n++] = (struct victim){ r, *pg, s, true };
			st_set(r, *pg, s | ST_BUSY);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

/*
 * Async mode: PAGEMAP_SCAN finds written pages of one section and
 * re-protects them atomically. No max_pages limit: every page the kernel
 * re-protects must reach us (a page re-protected but not reported would be
 * lost), so the victim array holds a whole section.
 */
static int scan_written(struct pager *p, struct pager_region *r, uint64_t *pg, struct victim *v,
			unsigned *ret_n)
{
	static const unsigned nvec = 256;
	_cleanup_free_ struct page_region *vec = calloc(nvec, sizeof(*vec));
	uint64_t sec_end = (*pg / p->sec_pages + 1) * p->sec_pages;
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = r->base + *pg * PS,
		.end = r->base + sec_end * PS,
		.vec_len = nvec,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	long nreg;
	unsigned n = 0;

	if (!vec)
		return -ENOMEM;
	a.vec = (uintptr_t)vec;
	nreg = ioctl(r->pagemap_fd, PAGEMAP_SCAN, &a);
	if (nreg < 0)
		return -errno;
	pthread_mutex_lock(&p->lock);
	for (long i = 0; i < nreg; i++)
		for (uint64_t ad = vec[i].start; ad < vec[i].end; ad += PS) {
			uint64_t q = (ad - r->base) / PS;
			uint8_t s = wait_not_busy(p, r, q);

			if (s & ST_BUSY)
				continue;
			v[n++] = (struct victim){ r, q, (uint8_t)(s | ST_DIRTY), true };
			st_set(r, q, s | ST_BUSY);
		}
	pthread_mutex_unlock(&p->lock);
	*pg = a.walk_end > r->base ? (a.walk_end - r->base) / PS : sec_end;
	if (*pg <= (a.start - r->base) / PS)
		*pg = sec_end;
	*ret_n = n;
	return 0;
}

/*
 * Sync mode, io_lock held: nothing of r to write back? No page needs it
 * and none is BUSY (a fetch in flight may be about to record a write fault's
 * page as dirty; evictions and the cleaner are excluded by io_lock).
 */
static bool region_clean(struct pager *p, struct pager_region *r)
{
	return p->mode == PAGER_DIRTY_SYNC_WP && !atomic_load(&r->ndirty) &&
	       !atomic_load(&r->nbusy);
}

static int flush_region(struct pager *p, struct pager_region *r, struct evict_bufs *b)
{
	uint64_t pg;
	int rc = 0;

	if (region_clean(p, r))
		return 0;

	/*
	 * No reconciliation here: it walks every resident page of the file
	 * (about 100 ms for 1.5 GiB) and a flush does not need it. A dirty
	 * page punched behind our back reads as zeros from the file, so its
	 * write-back sends the zeros the punch left, as the DISCARD rule
	 * would; it then stays counted as resident until the idle evictor's
	 * reconciliation finds it.
	 */
	if (p->mode == PAGER_DIRTY_ASYNC_WP) {
		_cleanup_free_ struct victim *sv = calloc(p->sec_pages, sizeof(*sv));

		if (!sv)
			rc = -ENOMEM;
		for (pg = 0; pg < r->npages && rc >= 0;) {
			unsigned n = 0;

			if (!pager_sec_remote(p, r, pg)) {
				pg = (pg / p->sec_pages + 1) * p->sec_pages;
				continue;
			}
			rc = scan_written(p, r, &pg, sv, &n);
			for (unsigned k = 0; k < n; k += p->batch) {
				int w = wb_batch(p, sv + k, MIN(p->batch, n - k), false, true, b->buf,
						 b->groups);
				if (w < 0 && rc >= 0)
					rc = w;
			}
		}
	}
	/* Sync mode dirty pages, and discarded pages in both modes. */
	for (pg = 0; pg < r->npages && rc >= 0;) {
		int busy = 0;
		unsigned n = claim_dirty(p, r, &pg, b->v, p->batch, &busy);

		if (n)
			rc = wb_batch(p, b->v, n, false, false, b->buf, b->groups);
		if (busy && rc >= 0) {
			log_warn("pager %s: flush: a page stayed busy for %d ms", p->name,
				 p->cfg.fail_timeout_ms + 1000);
			rc = busy;
		}
		if (!n)
			break;
	}
	return rc < 0 ? rc : 0;
}

int pager_flush_region_locked(struct pager *p, struct pager_region *r)
{
	struct evict_bufs b = { 0 };
	int rc;

	if (bufs_alloc(p, &b) < 0) {
		bufs_free(&b);
		return -ENOMEM;
	}
	rc = flush_region(p, r, &b);
	CTR_ADD(p, flushes, 1);
	bufs_free(&b);
	return rc;
}

int pager_flush(struct pager *p)
{
	struct evict_bufs b = { 0 };
	int rc = 0;

	pthread_mutex_lock(&p->io_lock);
	/*
	 * A WP fault un-protects (and so wakes the writer) and records DIRTY
	 * under p->lock: passing through the lock makes every write that
	 * completed before this call visible in the counts.
	 */
	pthread_mutex_lock(&p->lock);
	pthread_mutex_unlock(&p->lock);
	/*
	 * Nothing dirty and no fetch in flight (evictions and the cleaner hold
	 * io_lock): nothing to walk. Async mode tracks writes in the page
	 * tables, not in the state: always scan there.
	 */
	if (p->mode == PAGER_DIRTY_SYNC_WP && !atomic_load(&p->dirty_pages) &&
	    !atomic_load(&p->busy_pages)) {
		pthread_mutex_unlock(&p->io_lock);
		CTR_ADD(p, flushes, 1);
		return 0;
	}
	if (bufs_alloc(p, &b) < 0) {
		pthread_mutex_unlock(&p->io_lock);
		bufs_free(&b);
		return -ENOMEM;
	}
	for (unsigned ri = 0; ri < atomic_load(&p->nslots) && rc >= 0; ri++) {
		struct pager_region *r = atomic_load(&p->regions[ri]);

		if (r)
			rc = flush_region(p, r, &b);
	}
	pthread_mutex_unlock(&p->io_lock);
	CTR_ADD(p, flushes, 1);
	bufs_free(&b);
	return rc < 0 ? rc : 0;
}

/* ---- reconciliation with the file ------------------------------------------ */

/*
 * Pages [a, b) of r are holes in the file (per SEEK_HOLE): un-count the
 * ones the state has as resident. Each candidate is re-checked under the
 * lock: a PRESENT page that is not BUSY has finished its install, so a hole
 * then means a punch behind our back, not an install in progress.
 */
static uint64_t reconcile_holes(struct pager *p, struct pager_region *r, uint64_t a, uint64_t b)
{
	uint64_t n = 0;

	pthread_mutex_lock(&p->lock);
	for (uint64_t pg = a; pg < b; pg++) {
		uint8_t s = st_get(r, pg);

		if ((s & (ST_PRESENT | ST_BUSY)) != ST_PRESENT || pager_file_has_data(r, pg, 1))
			continue;
		/* Clean: the memory node has it. Dirty: lost, the file says zeros. */
		st_set(r, pg, (s & (ST_DIRTY | ST_DISCARD)) ? ST_DISCARD : 0);
		n++;
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Compare section `sec` of r with the file's holes; io_lock held. */
static uint64_t reconcile_section(struct pager *p, struct pager_region *r, uint32_t sec)
{
	uint64_t n;

	if (r->sections[sec].kind != PAGER_SEC_REMOTE)
		return 0;
	n = pager_file_runs(p, r, (uint64_t)sec * p->sec_pages, p->sec_pages, false,
			    reconcile_holes);
	if (n) {
		pager_resident_add(p, -(int64_t)n);
		CTR_ADD(p, pages_punched, n);
	}
	return n;
}

/*
 * One step of the idle evictor's reconciliation: the next remote section,
 * io_lock held. A section of a fully resident 128 MiB region costs a few ms
 * of SEEK_HOLE; a whole 2 GiB guest about 100 ms, too long to keep io_lock
 * (flushes, evictions and memory-migration commits wait for it), so a pass
 * goes one section at a time. True when the pass is complete.
 */
static bool reconcile_step(struct pager *p, struct recon_cursor *rc)
{
	unsigned nslots = atomic_load(&p->nslots);

	for (; rc->region < nslots; rc->region++, rc->sec = 0) {
		struct pager_region *r = atomic_load(&p->regions[rc->region]);

		if (!r || rc->sec >= r->nsections)
			continue;
		(void)reconcile_section(p, r, rc->sec++);
		return false;
	}
	rc->region = 0;
	rc->sec = 0;
	return true;
}
