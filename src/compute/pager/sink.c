// SPDX-License-Identifier: MIT
/*
 * The sink (sink.h): a write-back batch goes to the backend and to the
 * tees of its sections, and is done when the backend acknowledged it.
 *
 * A write-back the memory node refuses because this pager no longer owns
 * the section (FENCED: a newer owner's epoch, -EKEYREVOKED; STALE: a new
 * generation, -ESTALE) is not retried (backend.c) and not a failure:
 * retrying cannot help and the data is a leftover of a hand-over, so the
 * batch completes as if written and its refused pages are dropped
 * (counted in writebacks_fenced, logged).
 */
#include "sink.h"

#include <string.h>

#include "backend.h"
#include "cache.h"
#include "crypt.h"
#include "log.h"
#include "net.h"
#include "replica.h"
#include "source.h"

#define MAX_TEE_OPS 4u             /* kinds of tee in one batch (one today: memmig) */

struct wb_io {
	struct pager *p;
	struct pager_wb_group *g;
	unsigned ng;
};

/* Each group with a tee goes to it too, after the backend's writes were queued. */
static void tees_submit(struct pager *p, struct pager_wb_group *g, unsigned ng)
{
	for (unsigned i = 0; i < ng; i++)
		g[i].teed = g[i].tee && g[i].tee->ops->submit(p, g[i].tee, &g[i]);
}

/* Wait for the tees: once for each kind of tee that took a group. */
static void tees_wait(struct pager *p, struct pager_wb_group *g, unsigned ng)
{
	const struct pager_tee_ops *seen[MAX_TEE_OPS];
	unsigned nseen = 0;

	for (unsigned i = 0; i < ng; i++) {
		const struct pager_tee_ops *ops;
		unsigned k;

		if (!g[i].teed)
			continue;
		ops = g[i].tee->ops;
		for (k = 0; k < nseen && seen[k] != ops; k++)
			;
		if (k < nseen)
			continue;
		if (nseen < MAX_TEE_OPS)
			seen[nseen++] = ops;
		ops->wait(p, g, ng);
	}
}

static bool fenced_err(int err)
{
	return err == -EKEYREVOKED || err == -ESTALE;
}

/*
 * Submit group g: to its section, or to each in-replica of a replicated
 * one (a view each). A replica's submit failing for a transport reason is
 * only its result (the others may acknowledge); any other failure fails
 * the attempt.
 */
static int submit_group(const struct pager_backend_ops *ops, void *conn, struct pager_wb_group *g)
{
	struct pager_section v;
	unsigned in;
	int r;

	g->sent = 0;
	if (!g->r || !pager_rep_replicated(g->s))
		return ops->write_submit(conn, g->s, g->ext, g->next, g->data);
	in = pager_rep_in(g->r, g->sec);
	for (unsigned k = 0; k < PAGER_MAX_REPLICAS; k++) {
		if (!(in & (1u << k)))
			continue;
		pager_rep_view(g->s, k, &v);
		r = ops->write_submit(conn, &v, g->ext, g->next, g->data);
		if (r < 0 && !pager_err_transport(r))
			return r;
		g->rres[k] = r < 0 ? r : 0;
		g->sent |= (uint8_t)(1u << k);
	}
	return 0;
}

/*
 * The round failed with err: can the replicas save it? Each replica's
 * result is its submit's or its node's (write_result). In a replicated
 * group, a replica that failed for a transport reason while another
 * acknowledged is taken out. The batch is written (0, or the fenced error
 * seen) when every unreplicated group succeeded (or was fenced) and every
 * replicated group has an acknowledging replica and no other failure;
 * else err stands (the batch is retried, backend.c).
 */
static int wb_rescue(struct pager *p, void *conn, struct pager_wb_group *g, unsigned ng, int err)
{
	const struct pager_backend_ops *ops = p->cfg.backend->ops;
	bool saved = true, any = false;
	int fenced = 0;

	if (!ops->write_result || fenced_err(err))
		return err;
	for (unsigned i = 0; i < ng; i++)
		any |= g[i].sent != 0;
	if (!any)
		return err;
	for (unsigned i = 0; i < ng; i++) {
		unsigned acked = 0, failed = 0;
		struct pager_section v;

		if (!g[i].sent) {
			int r = ops->write_result(conn, g[i].s);

			if (fenced_err(r))
				fenced = r;
			else if (r < 0)
				saved = false;
			continue;
		}
		for (unsigned k = 0; k < PAGER_MAX_REPLICAS; k++) {
			int r;

			if (!(g[i].sent & (1u << k)))
				continue;
			pager_rep_view(g[i].s, k, &v);
			r = g[i].rres[k] < 0 ? g[i].rres[k] : ops->write_result(conn, &v);
			g[i].rres[k] = r;
			if (r >= 0 || fenced_err(r)) {
				acked |= 1u << k;
				if (r < 0)
					fenced = r;
			} else {
				failed |= 1u << k;
			}
		}
		for (unsigned k = 0; acked && k < PAGER_MAX_REPLICAS; k++)
			if ((failed & (1u << k)) && pager_err_transport(g[i].rres[k])) {
				int t = pager_rep_take_out(p, g[i].r, g[i].sec, k, g[i].rres[k]);

				if (t == 0 || t == -EALREADY) {
					failed &= ~(1u << k);
					g[i].sent &= (uint8_t)~(1u << k);
				}
			}
		if (!acked || failed)
			saved = false;
	}
	return saved ? fenced : err;
}

static int wb_cb(void *conn, void *arg)
{
	struct wb_io *io = arg;
	const struct pager_backend_ops *ops = io->p->cfg.backend->ops;
	int r;

	for (unsigned i = 0; i < io->ng; i++) {
		r = submit_group(ops, conn, &io->g[i]);
		if (r < 0)
			return r;
	}
	tees_submit(io->p, io->g, io->ng);
	r = ops->write_wait(conn);
	tees_wait(io->p, io->g, io->ng);
	if (r < 0)
		r = wb_rescue(io->p, conn, io->g, io->ng, r);
	else
		for (unsigned i = 0; i < io->ng; i++)   /* a replica's submit may have failed */
			for (unsigned k = 0; k < PAGER_MAX_REPLICAS; k++)
				if ((io->g[i].sent & (1u << k)) && io->g[i].rres[k] < 0) {
					r = wb_rescue(io->p, conn, io->g, io->ng, io->g[i].rres[k]);
					goto out;
				}
out:
	return r;
}

/*
 * The memory node refused part of a write-back batch because this pager no
 * longer owns the section (write_wait: every other write succeeded). It is
 * the late write of an old owner: drop it. Warn once per pager.
 */
static void wb_fenced(struct pager *p, int err, const struct pager_wb_group *g, unsigned ng)
{
	static const char what[] = "this VM no longer owns the section (a newer owner fenced it)";
	unsigned nwb = 0;

	for (unsigned i = 0; i < ng; i++)
		nwb += g[i].npages;
	if (atomic_fetch_add(&p->c.writebacks_fenced, 1) == 0)
		log_warn("pager %s: a memory node refused write-back: %s; dropping the refused "
			 "pages of this batch of %u and of any later one (%s)",
			 p->name, err == -ESTALE ? "the section was freed and allocated again" : what,
			 nwb, strerror(-err));
	else
		log_debug("pager %s: write-back of a batch of %u refused (%s)", p->name, nwb,
			  strerror(-err));
}

/* Seal the pages of the groups in place (guest memory at rest, crypt.h). */
static int seal_groups(struct pager *p, struct pager_wb_group *g, unsigned ng)
{
	struct pager_crypt *c = p->cfg.crypt;
	uint64_t n = 0;

	for (unsigned i = 0; i < ng; i++) {
		uint8_t *d = (uint8_t *)g[i].data;

		if (g[i].clear)
			continue;
		for (uint32_t e = 0; e < g[i].next; e++)
			for (uint32_t k = 0; k < g[i].ext[e].count; k++) {
				int r = pager_crypt_seal(c, g[i].slot_page + g[i].ext[e].page + k, d, d);

				if (r < 0) {
					log_error("pager %s: cannot seal page %llu for write-back: %s",
						  p->name,
						  (unsigned long long)(g[i].slot_page + g[i].ext[e].page + k),
						  strerror(-r));
					return r;
				}
				d += PS;
				n++;
			}
	}
	CTR_ADD(p, pages_sealed, n);
	return 0;
}

int pager_sink_write(struct pager *p, void **connp, struct pager_wb_group *g, unsigned ng)
{
	struct wb_io io = { p, g, ng };
	uint64_t w0 = now_ns();
	int err = 0;

	/*
	 * Sealed once per batch: a retry sends the same ciphertext (same
	 * nonce, same plaintext), and a tee (memory migration's target) gets
	 * exactly what the memory node gets.
	 */
	if (p->cfg.crypt)
		err = seal_groups(p, g, ng);
	if (err < 0)
		return err;
	err = pager_retry_io(p, connp, wb_cb, &io);

	hist_observe(&p->h_writeback, now_ns() - w0);
	if (err == -EKEYREVOKED || err == -ESTALE) {
		wb_fenced(p, err, g, ng);
		err = 0;
	}
	if (err > 0)
		err = 0;
	if (!err)
		for (unsigned i = 0; i < ng; i++) {
			if (g[i].tee)
				g[i].tee->ops->written(p, g[i].tee, &g[i]);
			if (g[i].sent > 1)   /* positions >= 1 written */
				CTR_ADD(p, replica_pages_written,
					(uint64_t)g[i].npages * __builtin_popcount(g[i].sent & ~1u));
		}
	return err;
}

/* ---- tees on sections ---------------------------------------------------------- */

void pager_tee_install(struct pager_region *r, unsigned sec, struct pager_tee *t)
{
	r->tee[sec] = t;
}

struct pager_tee *pager_tee_get(struct pager_region *r, unsigned sec)
{
	return r->tee[sec];
}

struct pager_tee *pager_tee_remove(struct pager_region *r, unsigned sec)
{
	struct pager_tee *t = r->tee[sec];

	r->tee[sec] = NULL;
	return t;
}

void pager_tee_drop(struct pager *p, struct pager_region *r, unsigned sec)
{
	struct pager_tee *t = pager_tee_remove(r, sec);

	if (t)
		t->ops->drop(p, t);
}
