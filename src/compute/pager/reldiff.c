// SPDX-License-Identifier: MIT
/*
 * Publishing a release region's diffs (reldiff.h; release.h says what a
 * release is). A publish claims (BUSY) a batch of dirty pages under
 * p->lock, so that faults on them wait for it, write-protects them, reads
 * their content from the file, encodes each page's runs of changed bytes
 * against its twin (a page without one, which the pager could not track,
 * goes whole) into the journal's buffer and cuts them into WRITE_DIFF
 * frames of at most max_pages pages. The batch is kept in the journal
 * (reljournal.h) before its frames go, on the write-back connection
 * (io_lock held), retried as write-backs are, each with its ids so that
 * the memory node applies it at most once. Once every frame is
 * acknowledged the pages are clean and their twins freed, then the
 * journal forgets the batch. Otherwise the pages stay dirty, twins kept,
 * and the batch stays in the journal: the next publish (in this process
 * or in a restarted agent's) sends it again first, as it was, and then
 * makes the published content its pages' twins, so that what follows
 * sends only what changed since. A frame sent again is not applied again,
 * so it never undoes another slot's later release of the same bytes.
 */
#include "reldiff.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "budget.h"
#include "cache.h"
#include "log.h"
#include "relfault.h"
#include "reljournal.h"
#include "twin.h"
#include "wirediff.h"
#include "writeback.h"

#define REL_BATCH PAGER_RELJ_PAGES
#define REL_FRAME_MAX ((size_t)PROTO_MAX_PAYLOAD - WIRE_DIFF_HEAD_MAX)
#define REL_WHOLE (sizeof(struct proto_diff_page) + sizeof(struct proto_diff_run) + PS)

struct rel_batch {
	struct pager_region *r;
	uint64_t pg[REL_BATCH];
	uint8_t st[REL_BATCH];        /* state when claimed */
	unsigned n;
	uint8_t *pages;               /* REL_BATCH pages: their content */
	uint8_t *twins;               /* REL_BATCH pages: their twins (twin.h) */
	uint8_t *enc;                 /* the encoded diffs: the journal's buffer */
	struct pager_relj_frame f[REL_BATCH];
	unsigned nf;
	const struct pager_backend_ops *ops;
};

/* Claim up to REL_BATCH pages that need publishing, from *pg on. */
static unsigned claim(struct pager *p, struct pager_region *r, uint64_t *pg, struct rel_batch *b)
{
	b->n = 0;
	pthread_mutex_lock(&p->lock);
	for (; *pg < r->npages && b->n < REL_BATCH; (*pg)++) {
		uint8_t s;

		if (!pager_sec_remote(p, r, *pg)) {
			*pg = (*pg / p->sec_pages + 1) * p->sec_pages - 1;
			continue;
		}
		s = st_get(r, *pg);
		/* BUSY: a fetch in flight, which installs the page clean and protected. */
		if (pager_ctl_page(r, *pg) || (s & ST_BUSY) || !st_needs_wb(s))
			continue;
		st_set(r, *pg, s | ST_BUSY);
		b->pg[b->n] = *pg;
		b->st[b->n++] = s;
	}
	pthread_mutex_unlock(&p->lock);
	return b->n;
}

/* Send the journal's pending batch: each frame with its ids (reljournal.h). */
static int send_frames(void *conn, void *arg)
{
	struct rel_batch *b = arg;
	const struct pager_relj_frame *f;
	unsigned n;
	int r = 0;

	(void)pager_reljournal_pending(b->r->journal, &f, &n);
	for (unsigned i = 0; i < n && r == 0; i++) {
		struct proto_diff_once once;

		pager_reljournal_ids(b->r->journal, i, &once);
		r = b->ops->diff_submit(conn, &b->r->sections[f[i].sec], f[i].npages, &once,
					b->enc + f[i].off, f[i].len);
	}
	if (r == 0)
		r = b->ops->write_wait(conn);
	return r;
}

/* Protect, read and encode the claimed pages into frames. */
static int encode(struct pager *p, struct rel_batch *b, uint32_t maxp, uint64_t *ret_pages,
		  uint64_t *ret_bytes)
{
	struct pager_region *r = b->r;
	size_t used = 0;
	int rc = 0;

	b->nf = 0;
	for (unsigned i = 0; i < b->n && rc == 0;) {
		unsigned j = i + 1;

		while (j < b->n && b->pg[j] == b->pg[j - 1] + 1 &&
		       !((b->st[j] ^ b->st[i]) & ST_PRESENT))
			j++;
		/* Protected first: what is read below is what the guest wrote, and stays so. */
		if (b->st[i] & ST_PRESENT) {
			rc = pager_wb_protect(r, b->pg[i], j - i);
			if (rc == 0)
				rc = pager_wb_read_run(r, b->pg[i], j - i, b->pages + (size_t)i * PS);
		} else {
			memset(b->pages + (size_t)i * PS, 0, (size_t)(j - i) * PS);   /* discarded */
		}
		if (rc == 0)
			rc = pager_twins_read(r->twins, b->pg[i], j - i, b->twins + (size_t)i * PS);
		i = j;
	}
	for (unsigned i = 0; i < b->n && rc == 0; i++) {
		uint64_t pg = b->pg[i], changed = 0;
		uint32_t sec = (uint32_t)(pg / p->sec_pages);
		struct pager_relj_frame *f = b->nf ? &b->f[b->nf - 1] : NULL;
		size_t n;

		if (!f || f->sec != sec || f->npages >= maxp ||
		    f->len + WIRE_DIFF_PAGE_MAX > REL_FRAME_MAX) {
			f = &b->f[b->nf++];
			*f = (struct pager_relj_frame){ .sec = sec, .off = (uint32_t)used };
		}
		/* Only the publisher frees twins, and faults leave a BUSY page alone. */
		n = wire_diff_page_encode((uint32_t)(pg % p->sec_pages),
					  pager_twin_has(r->twins, pg) ? b->twins + (size_t)i * PS : NULL,
					  b->pages + (size_t)i * PS, b->enc + used, &changed);
		if (!n) {
			if (!f->npages)
				b->nf--;
			continue;
		}
		f->npages++;
		f->len += (uint32_t)n;
		used += n;
		(*ret_pages)++;
		*ret_bytes += changed;
	}
	return rc;
}

/* Settle a claimed batch: published (ok: clean, twins freed) or not (dirty still). */
static void settle(struct pager *p, struct rel_batch *b, bool ok)
{
	struct pager_region *r = b->r;
	uint64_t run0 = 0;
	int64_t gone = 0;

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < b->n; i++) {
		uint64_t pg = b->pg[i];
		uint8_t s = st_get(r, pg);

		if (!ok) {
			st_set(r, pg, s & ~ST_BUSY);
			continue;
		}
		/* The twins of a run of pages go in one punch (twin.h), at its last page. */
		if (i == 0 || b->pg[i - 1] + 1 != pg)
			run0 = pg;
		if (i + 1 == b->n || b->pg[i + 1] != pg + 1)
			pager_twin_drop(r->twins, run0, pg + 1 - run0);
		if (s & ST_RMV) {
			/* Discarded while we published: zeros, written at the next release. */
			st_set(r, pg, ST_DISCARD);
			(void)pager_punch(r, pg, 1);
			gone++;
		} else {
			st_set(r, pg, (s & ST_PRESENT) ? (uint8_t)((s & ~(ST_BUSY | ST_DIRTY |
								       ST_DISCARD)) | ST_PRESENT) : 0);
		}
	}
	if (ok && b->n)
		pager_release_arm_locked(r, 1);   /* clean pages now: an acquire has work */
	pthread_mutex_unlock(&p->lock);
	if (gone)
		pager_resident_add(p, -gone);
	for (unsigned i = 0; i < b->n;) {
		unsigned j = i + 1;

		while (j < b->n && b->pg[j] == b->pg[j - 1] + 1)
			j++;
		(void)pager_uffd_wake(r, b->pg[i], j - i);
		i = j;
	}
}

/*
 * A batch sent again is published: its content becomes its pages' twins,
 * so that the next diff holds only what changed since. A page that has no
 * twin was settled before (the publisher dropped it) and is left alone,
 * unless its diff was the whole page and it is still dirty: then the
 * diff is the twin it lacks.
 */
static void retwin(struct pager *p, struct rel_batch *b)
{
	struct pager_region *r = b->r;
	const struct pager_relj_frame *f;
	uint8_t *tw = b->twins;
	unsigned n;

	(void)pager_reljournal_pending(r->journal, &f, &n);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *d = b->enc + f[i].off;

		for (uint32_t k = 0; k < f[i].npages; k++) {
			uint32_t page;
			size_t len = wire_diff_page_apply(d, NULL, &page);
			uint64_t pg = (uint64_t)f[i].sec * p->sec_pages + page;
			uint8_t s;

			pthread_mutex_lock(&p->lock);
			s = st_get(r, pg);
			if (pager_twin_has(r->twins, pg)) {
				if (pager_twins_read(r->twins, pg, 1, tw) == 0) {
					(void)wire_diff_page_apply(d, tw, NULL);
					(void)pager_twin_set(r->twins, pg, tw);
				}
			} else if (len == REL_WHOLE && st_needs_wb(s) && !(s & ST_BUSY)) {
				(void)wire_diff_page_apply(d, tw, NULL);
				(void)pager_twin_set(r->twins, pg, tw);
			}
			pthread_mutex_unlock(&p->lock);
			d += len;
		}
	}
}

/* The journal's frames lie in the region and in the buffer, each well formed. */
static bool journal_sane(struct pager *p, struct pager_region *r, const uint8_t *enc)
{
	const struct pager_relj_frame *f;
	unsigned n;

	(void)pager_reljournal_pending(r->journal, &f, &n);
	for (unsigned i = 0; i < n; i++)
		if (f[i].sec >= r->nsections || r->sections[f[i].sec].kind != PAGER_SEC_REMOTE ||
		    wire_diff_body_check(enc + f[i].off, f[i].len, f[i].npages, p->sec_pages,
					 NULL) < 0)
			return false;
	return true;
}

/* Send the batch the journal keeps (a publish before this one did not settle it). */
static int resend(struct pager *p, struct rel_batch *b)
{
	struct pager_region *r = b->r;
	uint64_t batch = pager_reljournal_pending(r->journal, NULL, NULL);
	int rc;

	if (!batch)
		return 0;
	if (!journal_sane(p, r, b->enc)) {
		log_error("pager %s: region %u: the journal's batch %llu does not fit the region; "
			  "dropped unsent", p->name, r->idx, (unsigned long long)batch);
		return pager_reljournal_end(r->journal);
	}
	rc = pager_retry_io(p, &p->evict_conn, send_frames, b);
	if (rc < 0)
		return rc;
	retwin(p, b);
	CTR_ADD(p, release_batches_resent, 1);
	return pager_reljournal_end(r->journal);
}

int pager_release_publish_locked(struct pager *p, struct pager_region *r, uint64_t *ret_pages,
				 uint64_t *ret_bytes)
{
	struct rel_batch *b;
	uint64_t pg = 0, pages = 0, bytes = 0;
	uint32_t maxp;
	int rc = 0;

	if (!r->release)
		return -EINVAL;
	/*
	 * A write fault un-protects (waking the writer) before it records the
	 * page dirty, under p->lock: passing through the lock makes every write
	 * that completed before this call count.
	 */
	pthread_mutex_lock(&p->lock);
	pthread_mutex_unlock(&p->lock);
	if (!atomic_load(&r->ndirty) && !pager_reljournal_pending(r->journal, NULL, NULL))
		goto out;
	b = calloc(1, sizeof(*b));
	if (b) {
		b->pages = malloc((size_t)REL_BATCH * PS);
		b->twins = malloc((size_t)REL_BATCH * PS);
	}
	if (!b || !b->pages || !b->twins) {
		rc = -ENOMEM;
		goto done;
	}
	b->r = r;
	b->enc = pager_reljournal_buf(r->journal);
	b->ops = p->cfg.backend->ops;
	maxp = MIN(b->ops->max_pages(p->evict_conn), (uint32_t)PROTO_MAX_PAGES);
	rc = resend(p, b);
	while (rc == 0 && claim(p, r, &pg, b)) {
		uint64_t np = 0, nb = 0, batch = 0;

		rc = encode(p, b, maxp, &np, &nb);
		if (rc == 0 && b->nf) {
			rc = pager_reljournal_begin(r->journal, b->f, b->nf, &batch);
			if (rc == 0)
				rc = pager_retry_io(p, &p->evict_conn, send_frames, b);
		}
		settle(p, b, rc == 0);
		if (rc == 0 && b->nf && pager_reljournal_end(r->journal) < 0)
			log_warn("pager %s: region %u: the journal keeps batch %llu (sent again, "
				 "and not applied again, at the next release)", p->name, r->idx,
				 (unsigned long long)batch);
		if (rc == 0) {
			pages += np;
			bytes += nb;
		}
	}
	CTR_ADD(p, release_pages_published, pages);
	CTR_ADD(p, release_diff_bytes, bytes);
	if (rc < 0)
		log_warn("pager %s: region %u: publishing its diffs failed (%s); the pages stay "
			 "dirty", p->name, r->idx, strerror(-rc));
done:
	if (b) {
		free(b->pages);
		free(b->twins);
		free(b);
	}
out:
	if (ret_pages)
		*ret_pages = pages;
	if (ret_bytes)
		*ret_bytes = bytes;
	return rc;
}
