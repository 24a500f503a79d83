// SPDX-License-Identifier: MIT
/*
 * Eviction: the evictor thread keeps the resident remote pages of a pager
 * within its budget (budget.h).
 *
 * Victims are chosen by a CLOCK hand over the remote pages: a page that was
 * installed or written since the hand last passed (REF) gets a second
 * chance; among the rest clean pages are taken first because they need no
 * write-back; dirty pages fill the batch when there are not enough clean
 * ones (a dirty page of a memory node that is down waits: its write would
 * fail; a dirty page of a release region is never written back whole:
 * when nothing else can go, the evictor publishes that region's diffs,
 * an early release, and its pages become clean: release.h). A batch
 * (default 64 pages) goes through pager_wb_batch() (writeback.c):
 * write-protect, write back and wait for the acks, punch, wake.
 *
 * With no budget pressure the same thread runs, one step per hold of
 * io_lock and with a 1 ms pause between steps, the reconciliation with the
 * file (cache.c, every reconcile_ms) and background write-back (clean.c).
 *
 * Every region pointer used here is taken under io_lock, which region.c
 * holds while it changes a region.
 */
#include "evict.h"

#include <stdlib.h>
#include <time.h>

#include "cache.h"
#include "clean.h"
#include "net.h"
#include "reldiff.h"
#include "source.h"
#include "writeback.h"
#include "thread.h"

static int cmp_victim(const void *a, const void *b)
{
	const struct pager_victim *x = a, *y = b;

	if (x->r->idx != y->r->idx)
		return x->r->idx < y->r->idx ? -1 : 1;
	return x->pg < y->pg ? -1 : x->pg > y->pg;
}

/* ---- victim selection (CLOCK, clean first) ------------------------------- */

static unsigned select_victims(struct pager *p, unsigned want, struct pager_victim *v,
			       struct pager_victim *dirty)
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
				v[nclean++] = (struct pager_victim){ r, p->hand_page, s, false };
			else if (ndirty < want && !r->release &&
				 !pager_sec_down(p, r, (unsigned)(p->hand_page / p->sec_pages)))
				/* A dirty page of a down node waits: its write would fail. */
				dirty[ndirty++] = (struct pager_victim){ r, p->hand_page, s, true };
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

/*
 * Nothing else to evict: publish the diffs of a release region that has
 * dirty pages (an early release, which release consistency allows), so
 * that they are clean and evictable next round. Pages published, or 0.
 */
static int publish_release(struct pager *p)
{
	for (unsigned ri = 0; ri < atomic_load(&p->nslots); ri++) {
		struct pager_region *r = atomic_load(&p->regions[ri]);
		uint64_t pages = 0;

		if (!r || !r->release || !atomic_load(&r->ndirty))
			continue;
		if (pager_release_publish_locked(p, r, &pages, NULL) < 0)
			return -EIO;
		if (pages)
			return (int)MIN(pages, (uint64_t)INT32_MAX);
	}
	return 0;
}

static int evict_batch(struct pager *p, unsigned want, struct pager_wb_bufs *b)
{
	unsigned nv;

	pthread_mutex_lock(&p->lock);
	nv = select_victims(p, want, b->v, b->tmp);
	pthread_mutex_unlock(&p->lock);
	if (!nv)
		return publish_release(p);
	qsort(b->v, nv, sizeof(*b->v), cmp_victim);
	return pager_wb_batch(p, b->v, nv, true, false, b) < 0 ? -EIO : (int)nv;
}

void *pager_evictor_main(void *arg)
{
	struct pager *p = arg;
	struct pager_wb_bufs b = { 0 };
	struct pager_cleaner c;
	bool active = false, cleaning = false;
	uint64_t last_reconcile = now_ns();
	struct pager_recon recon = { 0 };
	long idle_wait_ms = pager_cleaner_idle_ms(p);

	thread_name("pager-evict");
	if (pager_cleaner_init(p, &c) < 0 || pager_wb_bufs_alloc(&b, p->batch) < 0) {
		pager_wb_bufs_free(&b);
		pager_cleaner_fini(&c);
		atomic_store(&p->failed, -ENOMEM);
		return NULL;
	}
	pthread_mutex_lock(&p->lock);
	while (!atomic_load(&p->stop)) {
		uint64_t res = atomic_load(&p->resident), bud = atomic_load(&p->budget_pages);
		uint64_t low = bud == UINT64_MAX ? bud : bud - MIN(bud, (uint64_t)p->batch / 2);
		struct timespec ts;
		int n;

		pager_cleaner_tick(p, &c);
		/* Within the budget only: a warm-up may wait PAGER_WB_WARM_MS for a node. */
		if (res <= bud && atomic_exchange(&p->wb_warm, false)) {
			pthread_mutex_unlock(&p->lock);
			pthread_mutex_lock(&p->io_lock);
			pager_wb_warm(p);
			pthread_mutex_unlock(&p->io_lock);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		if (res > bud)
			active = true;
		if (active && res > low) {
			unsigned want = (unsigned)MIN((uint64_t)p->batch, res - low);

			pthread_mutex_unlock(&p->lock);
			pthread_mutex_lock(&p->io_lock);
			n = evict_batch(p, want, &b);
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
				done = pager_reconcile_step(p, &recon);
				pthread_mutex_unlock(&p->io_lock);
				pthread_mutex_lock(&p->lock);
				recon.running = !done;
				if (done)
					last_reconcile = now_ns();
				cleaning = true;   /* a 1 ms pause: waiters for io_lock get it */
				goto wait;
			}
			if (pager_cleaner_due(p, &c)) {
				/*
				 * One batch, then a pause of 1 ms: a flush, a removal
				 * or an eviction waiting for io_lock gets it (mutexes
				 * are not fair), and the write-back rate stays bounded.
				 */
				pthread_mutex_unlock(&p->lock);
				pthread_mutex_lock(&p->io_lock);
				n = pager_cleaner_step(p, &c);
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
	pager_wb_bufs_free(&b);
	pager_cleaner_fini(&c);
	return NULL;
}
