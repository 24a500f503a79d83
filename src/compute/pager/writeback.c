// SPDX-License-Identifier: MIT
/*
 * One write-back batch (writeback.h), the mechanism that eviction, the
 * cleaner and flush share. For a batch of BUSY victims, sorted by region
 * and page:
 *
 *   1. (the caller claimed the victims: fault threads leave WP faults on
 *      them to us)
 *   2. UFFDIO_WRITEPROTECT the dirty ones (runs): no write can land after this
 *   3. pread their content from the file, write it through the sink
 *      (pipelined, one request per section run) and WAIT FOR THE ACKS
 *   4. eviction only: fallocate(PUNCH_HOLE) the victims (runs): this zaps
 *      every mapping
 *   5. record the new state (absent, or clean) and UFFDIO_WAKE the runs: a
 *      writer that faulted during 2-4 retries, faults MISSING (or WP) and
 *      gets the written-back data.
 *
 * If the write-back fails (after retries for fail_timeout_ms), nothing is
 * punched: the victims stay resident and the writers are woken. A page is
 * never dropped before the memory node acknowledged its data, unless the
 * memory node refused it because this pager no longer owns the section
 * (fenced: sink.c), in which case the batch completes as if written.
 */
#include "writeback.h"

#include <string.h>
#include <unistd.h>

#include "budget.h"
#include "cache.h"
#include "log.h"
#include "net.h"

int pager_wb_bufs_alloc(struct pager_wb_bufs *b, unsigned n)
{
	b->buf = aligned_alloc(PS, (size_t)n * PS);
	b->groups = calloc(n, sizeof(*b->groups));
	b->v = calloc(n, sizeof(*b->v));
	b->tmp = calloc(n, sizeof(*b->tmp));
	return b->buf && b->groups && b->v && b->tmp ? 0 : -ENOMEM;
}

void pager_wb_bufs_free(struct pager_wb_bufs *b)
{
	free(b->buf);
	free(b->groups);
	free(b->v);
	free(b->tmp);
}

/* Call fn on each run of consecutive victims (same region) with flag set. */
static void for_runs(struct pager_victim *v, unsigned nv, bool (*sel)(const struct pager_victim *),
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

static bool sel_all(const struct pager_victim *v) { return true; }
static bool sel_wp(const struct pager_victim *v)
{
	return v->wb && (v->st & ST_PRESENT) && (v->st & ST_DIRTY);
}

int pager_wb_protect(struct pager_region *r, uint64_t pg, uint64_t n)
{
	for (unsigned tries = 0;; tries++) {
		int rc = pager_uffd_wp(r, pg, n, true);

		if (rc != -EAGAIN || tries > 20000)
			return rc;
		usleep(50); /* an event is pending; a fault thread reads it */
	}
}

static void run_wp(struct pager_region *r, uint64_t pg, uint64_t n, void *arg)
{
	int *err = arg, rc = pager_wb_protect(r, pg, n);

	if (rc < 0 && !*err)
		*err = rc;
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
 * A batch woke its writers: the wait of the first write that found a page
 * BUSY since the last batch (serve_wp.c), until now. An approximation
 * (that write may have waited for another batch), good for its tail.
 */
static void busy_waited(struct pager *p)
{
	uint64_t t0 = atomic_exchange(&p->busy_wait_ns, 0);

	if (t0)
		hist_observe(&p->h_busy, now_ns() - t0);
}

int pager_wb_read_run(struct pager_region *r, uint64_t pg, unsigned n, uint8_t *d)
{
	size_t len = (size_t)n * PS, done = 0;
	off_t off = (off_t)(r->file_offset + pg * PS);

	while (done < len) {
		ssize_t k = pread(r->file_fd, d + done, len - done, off + (off_t)done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		done += (size_t)k;
	}
	memset(d + done, 0, len - done);
	return 0;
}

/*
 * Write back (v[i].wb) and, for an eviction, punch a batch of BUSY victims
 * sorted by region and page. Returns pages written back or -errno.
 */
int pager_wb_batch(struct pager *p, struct pager_victim *v, unsigned nv, bool evict, bool skip_wp,
		   struct pager_wb_bufs *b)
{
	uint8_t *buf = b->buf;
	struct pager_wb_group *groups = b->groups;
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

	/*
	 * 3. Content: what the file holds, one pread per run of consecutive
	 * pages: a present page from the page cache, zeros for a hole (a
	 * discarded page; pread of a tmpfs hole does not allocate). Never
	 * trust a state snapshot to decide "zeros": the file is the truth.
	 */
	for (unsigned i = 0, k = 0; i < nv && !err;) {
		unsigned j = i + 1;

		if (!v[i].wb) {
			i++;
			continue;
		}
		while (j < nv && v[j].wb && v[j].r == v[i].r && v[j].pg == v[j - 1].pg + 1)
			j++;
		err = pager_wb_read_run(v[i].r, v[i].pg, j - i, buf + (size_t)k * PS);
		k += j - i;
		i = j;
	}

	/* 4. Write-back groups: extents of one section, up to maxp pages each. */
	for (unsigned i = 0; i < nv && !err; i++) {
		uint8_t *d;
		struct pager_wb_group *g;
		uint32_t sec, page;

		if (!v[i].wb)
			continue;
		d = buf + (size_t)nwb * PS;
		sec = (uint32_t)(v[i].pg / p->sec_pages);
		page = (uint32_t)(v[i].pg % p->sec_pages);
		g = ng ? &groups[ng - 1] : NULL;
		if (!g || g->s != &v[i].r->sections[sec] || g->npages >= maxp) {
			g = &groups[ng++];
			g->s = &v[i].r->sections[sec];
			g->r = v[i].r;
			g->sec = sec;
			g->slot_page = v[i].r->slot_page + (uint64_t)sec * p->sec_pages;
			g->tee = pager_tee_get(v[i].r, sec);
			g->teed = false;
			g->clear = v[i].r->shared;
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
						      .r = v[i].r, .sec = sec,
						      .slot_page = v[i].r->slot_page +
								   (uint64_t)sec * p->sec_pages,
						      .tee = pager_tee_get(v[i].r, sec), .data = d,
						      .clear = v[i].r->shared };
			g->ext[g->next++] = (struct proto_extent){ page, 1 };
		}
		g->npages++;
		nwb++;
	}
	if (!err && ng)
		err = pager_sink_write(p, &p->evict_conn, groups, ng);
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
		busy_waited(p);
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
			nv8 = cur & ~(ST_BUSY | ST_DIRTY | ST_SNAP);
			if (v[i].wb)
				nv8 &= (uint8_t)~ST_DISCARD;
		}
		if (evict && err) {
			/* Punch failed: the page is still there, keep it (clean now). */
			nv8 = (cur & ~(ST_BUSY | ST_DIRTY | ST_SNAP | ST_RMV)) |
			      (v[i].wb ? 0 : (cur & ST_DISCARD));
			if (cur & ST_PRESENT)
				dropped--;
		}
		st_set(v[i].r, v[i].pg, nv8);
	}
	pthread_mutex_unlock(&p->lock);
	/* 5. Writers that faulted meanwhile retry now. */
	for_runs(v, nv, sel_all, run_wake, NULL);
	busy_waited(p);
	if (dropped)
		pager_resident_add(p, -dropped);
	CTR_ADD(p, pages_written_back, nwb);
	if (evict) {
		CTR_ADD(p, pages_evicted, nv);
		hist_observe(&p->h_evict, now_ns() - t0);
	}
	return err ? err : (int)nwb;
}

void pager_wb_warm(struct pager *p)
{
	const struct pager_backend_ops *ops = p->cfg.backend->ops;
	uint32_t n = atomic_load(&p->nslots);

	if (!ops->connect)
		return;
	if (!p->evict_conn && ops->conn_open(p->cfg.backend->priv, &p->evict_conn) < 0) {
		p->evict_conn = NULL;
		return;
	}
	/* io_lock held: a region cannot be freed under us (pager_remove_region). */
	for (uint32_t i = 0; i < n; i++) {
		struct pager_region *r = atomic_load(&p->regions[i]);

		for (uint32_t k = 0; r && k < r->nsections; k++) {
			int e;

			if (r->sections[k].kind != PAGER_SEC_REMOTE)
				continue;
			/*
			 * A node that does not answer soon is left to the
			 * write-back's own connection: this thread evicts, and
			 * a flush waits for io_lock.
			 */
			e = ops->connect(p->evict_conn, &r->sections[k], PAGER_WB_WARM_MS);
			if (e < 0) {
				log_debug("pager %s: write-back connection for region %u not opened "
					  "ahead: %s", p->name, r->idx, strerror(-e));
				return;
			}
		}
	}
}
