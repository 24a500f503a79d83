// SPDX-License-Identifier: MIT
/*
 * The coherence directory: Ivy's single writer / multiple readers, per
 * 4 KiB page of a section in strict use (docs/memnode.md, "Coherence
 * directory"; the frames in docs/protocol.md).
 *
 * A section enters strict use when its first holder attaches, with every
 * page's entry empty (the memory node's page is the truth). Each entry is
 * the owner (a holder slot, or none) and the copyset (a bit per slot); the
 * owner, when there is one, is the whole copyset. A section has at most
 * PROTO_DIR_MAX_HOLDERS slots.
 *
 * Requests for one page queue on it and run one at a time; requests for
 * different pages never wait for each other. A request that needs recalls
 * sends them (DIR_RECALL on the holders' channels, all at once) and stays
 * at the head of its page's queue until every one is answered or its
 * holder has been dropped; no thread ever waits for a recall. Whoever
 * settles the last recall (the worker that read the ack, the lease thread,
 * the worker closing a channel) finishes the request: the entry changes,
 * the reply (built in a buffer allocated with the request) goes to the
 * requester's worker (ops->post), and the page's next request starts. A
 * request that needs no recall is answered on its own worker at once.
 *
 * Recalls wait in the order they were sent; all leases are equally long,
 * so the oldest is the first to expire. The lease thread sleeps until
 * then and drops that recall's holder from the section: out of every
 * entry, its other recalls settled with no data, and its channel closed
 * (so that the holder learns it at once and drops the copies the directory
 * no longer counts, instead of reading them for ever; the other sections
 * of that channel lose it too).
 *
 * Migratory pages (docs/protocol.md, REQ_TAKE): a write that upgrades a
 * read copy right after another holder's write marks the page; a read of
 * a marked page that may take ownership invalidates the owner and gets the
 * only copy (one request a hand-over); an owner that gives such a page
 * back clean (it only read it) clears the mark.
 *
 * A holder whose recall channel closes while it holds pages is *away*
 * (dir_away.c) rather than dropped: its recalls wait unsent until it is
 * back and has handed its pages back, or its time is up.
 *
 * The files: this one has the entry points and the lease thread;
 * dir_core.c the sections, recalls and requests; dir_grace.c the grace
 * period after a restart; dir_away.c the holders away.
 *
 * One mutex guards the whole directory. Nothing under it blocks: a
 * critical section is a few list operations, at most one 4 KiB copy, or
 * (when a holder is dropped) one pass over its section's entries.
 */
#include "dir.h"

#include "dir_int.h"
#include "dir_away.h"
#include "dir_core.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "net.h"
#include "thread.h"
#include "wire.h"

/* Is chan the recall channel of any holder? */
static bool chan_attached(const struct mn_dir *d, const struct mn_conn *chan)
{
	for (uint32_t k = 0; k < d->nsections; k++)
		for (unsigned i = 0; d->secs[k] && i < PROTO_DIR_MAX_HOLDERS; i++)
			if (d->secs[k]->h[i].used && d->secs[k]->h[i].chan == chan)
				return true;
	return false;
}

/* ---- the lease -------------------------------------------------------------------- */

/*
 * A restart's grace period is over (dir_grace.c): every holder that did not
 * come back and say it was done is dropped, as at a lease.
 */
static void grace_expire(struct mn_dir *d)
{
	for (uint32_t k = 0; k < d->nsections; k++) {
		struct dir_sec *s = d->secs[k];

		if (!s || !s->grace)
			continue;
		for (unsigned i = 0; i < PROTO_DIR_MAX_HOLDERS; i++)
			if (s->expect & (1u << i))
				dir_holder_drop(d, s, i, DROP_GRACE);
		dir_grace_end(d, s);    /* the last drop ended it already, unless none was left */
		dir_sec_maybe_free(d, s);
	}
}

static void *lease_main(void *arg)
{
	struct mn_dir *d = arg;

	thread_name("mn-lease");
	pthread_mutex_lock(&d->mu);
	while (!d->stopping) {
		struct dir_recall *r = d->oldest;
		uint64_t now = now_ns(), next;
		struct dir_sec *s;

		if (d->ngrace && now >= d->grace_deadline_ns) {
			grace_expire(d);
			continue;
		}
		if (d->naway && dir_away_expire(d, now))
			continue;
		/* Idle, it still looks every lease_ns (recall_send counts on it). */
		next = now + d->lease_ns;
		if (d->ngrace)
			next = MIN(next, d->grace_deadline_ns);
		if (d->naway)
			next = MIN(next, dir_away_next(d));
		if (r && now < r->deadline_ns)
			next = MIN(next, r->deadline_ns);
		if (!r || now < r->deadline_ns) {
			struct timespec ts = {
				.tv_sec = (time_t)(next / 1000000000),
				.tv_nsec = (long)(next % 1000000000),
			};

			d->lease_wake_ns = next;
			pthread_cond_timedwait(&d->cond, &d->mu, &ts);
			d->lease_wake_ns = 0;   /* awake: it looks at the list before it waits */
			continue;
		}
		s = r->job->s;
		log_warn("section %u: node %llu did not answer the recall of page %u within %llu ms",
			 s->idx, (unsigned long long)s->h[r->holder].node, r->job->page,
			 (unsigned long long)(d->lease_ns / 1000000));
		dir_holder_drop(d, s, r->holder, DROP_LEASE);
		dir_sec_maybe_free(d, s);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* ---- entry points --------------------------------------------------------------------- */

int mn_dir_attach(struct mn_dir *d, struct mn_conn *chan, const struct proto_grant *g,
		  uint16_t tag, uint32_t features)
{
	bool versions = features & PROTO_FEAT_DIR_VERSION;
	bool reclaims = features & PROTO_FEAT_DIR_RECLAIM;
	struct dir_sec *s = NULL;
	struct dir_holder *hd;
	int i, r = 0;

	if (g->section >= d->nsections)
		return -ENOENT;
	pthread_mutex_lock(&d->mu);
	if (d->stopping) {
		r = -ESHUTDOWN;
		goto out;
	}
	s = d->secs[g->section];
	if (s && s->generation != g->generation) {
		dir_sec_retire(d, s);
		s = NULL;
	}
	if (!s && !(s = dir_sec_new(d, g->section, g->generation))) {
		r = -ENOMEM;
		goto out;
	}
	i = dir_holder_find(s, g->holder_id, tag);
	if (i >= 0 && !s->h[i].chan) {
		/* Back after a restart, or away: its slot waited for it (dir_grace.c, dir_away.c). */
		hd = &s->h[i];
		hd->chan = chan;
		hd->grants = 0;
		hd->versions = versions;
		hd->reclaims = reclaims;
		hd->incarnation++;
		d->ops->ref(chan);
		log_info("section %u: node %llu/%u attached again after %s%s", s->idx,
			 (unsigned long long)g->holder_id, tag,
			 hd->back_by_ns ? "its channel closed" : "the restart",
			 s->grace || hd->back_by_ns ? ": it may reclaim its pages" : "");
		goto out;
	}
	/* A new channel while the old one is open: the holder lost it, not us. */
	if (i >= 0 && reclaims && dir_holder_away(d, s, (unsigned)i, chan, versions))
		goto out;
	if (i >= 0)
		dir_holder_drop(d, s, (unsigned)i, DROP_REATTACH);
	for (i = 0; i < PROTO_DIR_MAX_HOLDERS && s->h[i].used; i++)
		;
	if (i == PROTO_DIR_MAX_HOLDERS) {
		log_info("section %u: node %llu/%u refused: %u holders already", s->idx,
			 (unsigned long long)g->holder_id, tag, PROTO_DIR_MAX_HOLDERS);
		r = -EUSERS;
		goto out;
	}
	hd = &s->h[i];
	hd->used = true;
	hd->node = g->holder_id;
	hd->tag = tag;
	hd->chan = chan;
	hd->grants = 0;
	hd->versions = versions;
	hd->reclaims = reclaims;
	hd->incarnation++;
	d->ops->ref(chan);
	mn_dirtab_set(d->tab, s->idx, (unsigned)i, hd->node, tag, s->generation);
	s->nholders++;
	atomic_fetch_add(&d->cnt.holders, 1);
	log_info("section %u: node %llu/%u attached (%u holders)", s->idx,
		 (unsigned long long)g->holder_id, tag, s->nholders);
out:
	if (s)
		dir_sec_maybe_free(d, s);
	pthread_mutex_unlock(&d->mu);
	return r;
}

int mn_dir_detach(struct mn_dir *d, const struct proto_grant *g, uint16_t tag)
{
	struct dir_sec *s;
	int i = -1;

	pthread_mutex_lock(&d->mu);
	s = g->section < d->nsections && !d->stopping ? d->secs[g->section] : NULL;
	if (s && s->generation == g->generation)
		i = dir_holder_find(s, g->holder_id, tag);
	if (i >= 0) {
		dir_holder_drop(d, s, (unsigned)i, DROP_DETACH);
		dir_sec_maybe_free(d, s);
	} else {
		atomic_fetch_add(&d->cnt.detached, 1);
	}
	pthread_mutex_unlock(&d->mu);
	return i >= 0 ? 0 : -EUNATCH;
}

int mn_dir_request(struct mn_dir *d, struct mn_conn *c, const struct proto_hdr *h,
		   const struct proto_grant *g, uint16_t tag, uint32_t page, bool write,
		   bool take, struct mn_obuf **ret)
{
	struct dir_sync sync = { 0 };
	struct dir_job *j;
	struct dir_sec *s;
	int i = -1, r = 0;

	if (page >= d->npages)
		return -ERANGE;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->reply = mn_reply_new(h, PROTO_ST_OK, sizeof(struct proto_dir_write_rep) + PROTO_PAGE_SIZE);
	if (!j->reply) {
		free(j);
		return -ENOMEM;
	}
	pthread_mutex_lock(&d->mu);
	s = g->section < d->nsections && !d->stopping ? d->secs[g->section] : NULL;
	if (s && s->generation == g->generation)
		i = dir_holder_find(s, g->holder_id, tag);
	/* In a grace period, or away and not done handing back: ask again. */
	if (i < 0 || s->grace || s->h[i].back_by_ns) {
		r = d->stopping ? -ESHUTDOWN : i >= 0 ? -EINPROGRESS : -EUNATCH;
		if (r == -EUNATCH)
			atomic_fetch_add(&d->cnt.detached, 1);
		pthread_mutex_unlock(&d->mu);
		free(j->reply);
		free(j);
		return r;
	}
	*j = (struct dir_job){
		.s = s, .conn = c, .reply = j->reply, .start_ns = now_ns(), .op = h->opcode,
		.page = page, .incarnation = s->h[i].incarnation, .holder = (uint8_t)i,
		.write = write, .take = take && !write,
	};
	struct dir_job **tail = &s->queue[page];

	while (*tail)
		tail = &(*tail)->next;
	*tail = j;
	s->njobs++;
	if (s->queue[page] == j) {
		j->sync = &sync;
		dir_page_run(d, s, page);
		if (sync.done) {
			pthread_mutex_unlock(&d->mu);
			*ret = sync.reply;
			return 0;
		}
		j->sync = NULL;
	}
	d->ops->hold(c);
	pthread_mutex_unlock(&d->mu);
	return MN_DIR_DEFERRED;
}

int mn_dir_ack(struct mn_dir *d, struct mn_conn *chan, uint64_t seq, const void *dirty, bool quiet)
{
	struct dir_recall *r;
	struct dir_sec *s;
	uint32_t p;
	int ret = 0;

	pthread_mutex_lock(&d->mu);
	r = d->stopping ? NULL : *dir_recall_slot(d, seq);
	if (!r || r->job->s->h[r->holder].chan != chan) {
		ret = d->stopping ? -ESHUTDOWN : chan_attached(d, chan) ? -ENOENT : -EUNATCH;
		if (ret == -EUNATCH)
			atomic_fetch_add(&d->cnt.detached, 1);
		goto out;
	}
	s = r->job->s;
	p = r->job->page;
	if (dirty && s->owner[p] == r->holder) {
		/* Stored whatever the section's epoch: the node asked for it from a holder attached now. */
		ret = d->ops->page_write(d->table, s->idx, s->generation, p, dirty);
		if (ret == 0)
			atomic_fetch_add(&d->cnt.dirty_pages, 1);
		else
			log_warn("section %u: page %u from node %llu not stored: %s", s->idx, p,
				 (unsigned long long)s->h[r->holder].node, strerror(-ret));
		ret = 0;
	} else if (dirty) {
		log_debug("section %u: page %u from node %llu ignored: it does not own it", s->idx,
			  p, (unsigned long long)s->h[r->holder].node);
	}
	if (r->mode == PROTO_DIR_INVALIDATE)
		s->copyset[p] &= (uint16_t)~(1u << r->holder);
	if (s->owner[p] == r->holder) {
		/*
		 * It owned the page and did not write it: read-shared, not
		 * migratory. Dirty: it wrote it last (an owner's writes ask
		 * nothing, so this is where the directory learns of them).
		 */
		if (!dirty)
			s->mig[p] = 0;
		else
			s->lastw[p] = r->holder;
		s->owner[p] = DIR_NONE;
	}
	atomic_fetch_add(&d->cnt.acks[quiet], 1);
	dir_recall_done(d, r);
out:
	pthread_mutex_unlock(&d->mu);
	return ret;
}

void mn_dir_conn_closed(struct mn_dir *d, struct mn_conn *chan)
{
	pthread_mutex_lock(&d->mu);
	for (uint32_t k = 0; k < d->nsections && !d->stopping; k++) {
		struct dir_sec *s = d->secs[k];

		for (unsigned i = 0; s && i < PROTO_DIR_MAX_HOLDERS; i++) {
			if (!s->h[i].used || s->h[i].chan != chan)
				continue;
			log_warn("section %u: the recall channel of node %llu closed", s->idx,
				 (unsigned long long)s->h[i].node);
			if (!s->h[i].reclaims || !dir_holder_away(d, s, i, NULL, false))
				dir_holder_drop(d, s, i, DROP_CLOSED);
		}
		if (s)
			dir_sec_maybe_free(d, s);
	}
	pthread_mutex_unlock(&d->mu);
}

size_t mn_dir_drops(struct mn_dir *d, uint64_t after, struct mn_dir_drop *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&d->mu);
	for (uint64_t seq = MAX(after + 1, d->ndrops > MN_DIR_DROPS ?
				d->ndrops - MN_DIR_DROPS + 1 : 1);
	     seq <= d->ndrops && n < max; seq++)
		out[n++] = d->drops[seq % MN_DIR_DROPS];
	pthread_mutex_unlock(&d->mu);
	return n;
}

/* ---- life cycle ------------------------------------------------------------------------ */

int mn_dir_new(const struct mn_dir_ops *ops, struct mn_table *t, uint32_t nsections,
	       uint32_t npages, unsigned lease_ms, unsigned away_ms, struct mn_dirtab *tab,
	       struct mn_dir **ret)
{
	struct mn_dir *d;
	pthread_condattr_t ca;
	int r;

	if (!lease_ms)
		return -EINVAL;   /* the lease thread looks every lease: it would spin */
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->secs = calloc(nsections ? nsections : 1, sizeof(*d->secs));
	if (!d->secs) {
		free(d);
		return -ENOMEM;
	}
	d->ops = ops;
	d->table = t;
	d->nsections = nsections;
	d->npages = npages;
	d->lease_ns = (uint64_t)lease_ms * 1000000;
	d->away_ns = (uint64_t)away_ms * 1000000;
	d->tab = tab;
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);     /* now_ns()'s clock */
	pthread_cond_init(&d->cond, &ca);
	pthread_condattr_destroy(&ca);
	r = -pthread_create(&d->thread, NULL, lease_main, d);
	if (r < 0) {
		mn_dir_free(d);
		return r;
	}
	d->started = true;
	*ret = d;
	return 0;
}

void mn_dir_stop(struct mn_dir *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	d->stopping = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->mu);
	if (d->started)
		pthread_join(d->thread, NULL);
	d->started = false;
}

void mn_dir_free(struct mn_dir *d)
{
	struct dir_recall *r;

	if (!d)
		return;
	mn_dir_stop(d);
	for (unsigned b = 0; b < RTAB_SIZE; b++)
		while ((r = d->rtab[b])) {
			d->rtab[b] = r->hnext;
			free(r);
		}
	for (uint32_t k = 0; k < d->nsections; k++) {
		struct dir_sec *s = d->secs[k];

		for (uint32_t p = 0; s && p < d->npages; p++) {
			struct dir_job *j;

			while ((j = s->queue[p])) {
				s->queue[p] = j->next;
				d->ops->unref(j->conn);    /* held, never answered */
				free(j->reply);
				free(j);
			}
		}
		for (unsigned i = 0; s && i < PROTO_DIR_MAX_HOLDERS; i++)
			if (s->h[i].used && s->h[i].chan)
				d->ops->unref(s->h[i].chan);
		sec_free(s);
	}
	free(d->secs);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

const struct mn_dir_counters *mn_dir_counters(const struct mn_dir *d)
{
	return &d->cnt;
}
