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
 * One mutex guards the whole directory. Nothing under it blocks: a
 * critical section is a few list operations, at most one 4 KiB copy, or
 * (when a holder is dropped) one pass over its section's entries.
 */
#include "dir.h"

#include "dir_int.h"

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

/* ---- sections and holders ----------------------------------------------------- */

/* A section without holders leaves strict use (it has no requests then either). */
static void dir_sec_maybe_free(struct mn_dir *d, struct dir_sec *s)
{
	if (s->nholders || s->njobs || s->grace)
		return;
	d->secs[s->idx] = NULL;
	atomic_fetch_sub(&d->cnt.sections, 1);
	sec_free(s);
}

/* Is chan the recall channel of any holder? */
static bool chan_attached(const struct mn_dir *d, const struct mn_conn *chan)
{
	for (uint32_t k = 0; k < d->nsections; k++)
		for (unsigned i = 0; d->secs[k] && i < PROTO_DIR_MAX_HOLDERS; i++)
			if (d->secs[k]->h[i].used && d->secs[k]->h[i].chan == chan)
				return true;
	return false;
}

/* ---- recalls -------------------------------------------------------------------- */

static struct dir_recall **rtab_slot(struct mn_dir *d, uint64_t seq)
{
	struct dir_recall **pp = &d->rtab[seq % RTAB_SIZE];

	while (*pp && (*pp)->seq != seq)
		pp = &(*pp)->hnext;
	return pp;
}

static void lease_unlink(struct mn_dir *d, struct dir_recall *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		d->oldest = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		d->newest = r->prev;
	r->prev = r->next = NULL;
}

/* Ask holder slot i of the job's section to give up (mode) its copy of the job's page. */
static void recall_send(struct mn_dir *d, struct dir_job *j, unsigned i, uint32_t mode)
{
	struct dir_holder *hd = &j->s->h[i];
	struct dir_recall *r = calloc(1, sizeof(*r));
	struct proto_dir_recall m = {
		.seq = ++d->next_seq,
		.section = j->s->idx,
		.generation = j->s->generation,
		.page = j->page,
		.mode = mode,
		.grants = hd->grants,
		.version = hd->versions ? mn_dirtab_version(d->tab, j->s->idx, j->page) : 0,
	};
	struct mn_obuf *ob = r ? mn_request_new(PROTO_OP_DIR_RECALL, m.seq, sizeof(m)) : NULL;

	if (!ob) {
		free(r);
		j->err = -ENOMEM;
		return;
	}
	r->seq = m.seq;
	r->job = j;
	r->holder = (uint8_t)i;
	r->mode = mode;
	r->sent_ns = now_ns();
	r->deadline_ns = r->sent_ns + d->lease_ns;
	*rtab_slot(d, r->seq) = r;
	r->prev = d->newest;
	if (d->newest)
		d->newest->next = r;
	else
		d->oldest = r;
	d->newest = r;
	/*
	 * The lease thread looks at least every lease_ns, so a new recall's
	 * deadline is after its next look: no wake-up (a cross-CPU one, tens
	 * of microseconds here) on the path of every hand-over.
	 */
	if (r->deadline_ns < d->lease_wake_ns)
		pthread_cond_signal(&d->cond);
	j->pending++;
	atomic_fetch_add(&d->cnt.recalls[mode == PROTO_DIR_DOWNGRADE ? 0 : 1], 1);
	wire_dir_recall_swap(&m);
	memcpy(ob->data + PROTO_HDR_SIZE, &m, sizeof(m));
	d->ops->push(hd->chan, ob);
}

/* ---- requests ------------------------------------------------------------------- */

static bool job_attached(const struct dir_job *j)
{
	const struct dir_holder *hd = &j->s->h[j->holder];

	return hd->used && hd->incarnation == j->incarnation;
}

/* The recalls a request needs before it can be answered. */
static void job_recall(struct mn_dir *d, struct dir_job *j)
{
	struct dir_sec *s = j->s;
	uint8_t own = s->owner[j->page];
	unsigned others = s->copyset[j->page] & ~(1u << j->holder);

	if (!job_attached(j))
		return;
	if (!j->write) {
		if (own == DIR_NONE || own == j->holder)
			return;
		j->migrate = j->take && s->mig[j->page];
		recall_send(d, j, own, j->migrate ? PROTO_DIR_INVALIDATE : PROTO_DIR_DOWNGRADE);
		return;
	}
	/* An upgrade after another holder's write: the page migrates (see the top). */
	if (own == DIR_NONE && (s->copyset[j->page] & (1u << j->holder)) &&
	    __builtin_popcount(s->copyset[j->page]) == 2 && s->lastw[j->page] != DIR_NONE &&
	    s->lastw[j->page] != j->holder && (s->copyset[j->page] & (1u << s->lastw[j->page])))
		s->mig[j->page] = 1;
	for (unsigned i = 0; i < PROTO_DIR_MAX_HOLDERS; i++)
		if (others & (1u << i))
			recall_send(d, j, i, PROTO_DIR_INVALIDATE);
}

/* Every recall of the job (at the head of its page's queue) is settled: answer it. */
static void job_finish(struct mn_dir *d, struct dir_job *j)
{
	struct dir_sec *s = j->s;
	struct mn_obuf *ob = TAKE_PTR(j->reply);
	uint8_t *out = ob->data + PROTO_HDR_SIZE;
	unsigned bit = 1u << j->holder;
	bool had = j->write && (s->copyset[j->page] & bit);
	bool rep = j->write || j->take;      /* the answer starts with a proto_dir_write_rep */
	struct proto_dir_write_rep w = {
		.flags = (had ? PROTO_DIR_HAD_COPY : 0) | (j->migrate ? PROTO_DIR_OWNED : 0),
	};
	size_t len = 0;
	int r = j->err;

	if (r == 0 && !job_attached(j))
		r = -EUNATCH;
	if (r == 0 && !had)
		r = d->ops->page_read(d->table, s->idx, s->generation, j->page,
				      rep ? out + sizeof(w) : out);
	if (r == 0 && rep) {
		wire_dir_write_rep_swap(&w);
		memcpy(out, &w, sizeof(w));
		len = sizeof(w) + (had ? 0 : PROTO_PAGE_SIZE);
	}
	if (r == 0 && (j->write || j->migrate)) {
		/* A new owner: counted on disk before it learns it (dir_grace.c). */
		(void)mn_dirtab_bump(d->tab, s->idx, j->page);
		s->owner[j->page] = j->holder;
		s->copyset[j->page] = (uint16_t)bit;
		if (j->write)
			s->lastw[j->page] = j->holder;
		else
			atomic_fetch_add(&d->cnt.migrated, 1);
	} else if (r == 0) {
		/* An owner other than the requester was downgraded (or dropped) first. */
		len = rep ? len : PROTO_PAGE_SIZE;
		s->owner[j->page] = DIR_NONE;
		s->copyset[j->page] |= (uint16_t)bit;
	}
	if (r == 0)
		s->h[j->holder].grants++;
	else if (r == -EUNATCH)
		atomic_fetch_add(&d->cnt.detached, 1);
	mn_reply_set(ob, proto_errno_to_status(r), len);
	if (j->sync) {
		j->sync->reply = ob;
		j->sync->done = true;
	} else {
		d->ops->post(j->conn, ob, j->start_ns, j->op);
	}
	s->queue[j->page] = j->next;
	s->njobs--;
	free(j);
}

/* Run page p's requests, first come first served, until one waits for recalls. */
static void page_run(struct mn_dir *d, struct dir_sec *s, uint32_t p)
{
	struct dir_job *j;

	while ((j = s->queue[p]) && !j->started) {
		j->started = true;
		job_recall(d, j);
		if (j->pending)
			return;
		job_finish(d, j);
	}
}

/* Recall r is settled (answered, or its holder dropped). */
static void recall_done(struct mn_dir *d, struct dir_recall *r)
{
	struct dir_job *j = r->job;

	*rtab_slot(d, r->seq) = r->hnext;
	if (r->prev || d->oldest == r)
		lease_unlink(d, r);
	hist_observe(&d->cnt.recall_latency, now_ns() - r->sent_ns);
	free(r);
	if (--j->pending == 0) {
		struct dir_sec *s = j->s;
		uint32_t p = j->page;

		job_finish(d, j);
		page_run(d, s, p);
	}
}

/*
 * Holder slot i leaves section s: out of every entry, its recalls settled
 * without data, its channel let go. Its requests still queued are answered
 * DIR_DETACHED when their turn comes.
 */
static void dir_holder_drop(struct mn_dir *d, struct dir_sec *s, unsigned i, enum drop_why why)
{
	static const char *const why_str[] = {
		[DROP_LEASE] = "dropped, its channel closed: unpublished writes to the pages it owned are lost",
		[DROP_CLOSED] = "dropped: unpublished writes to the pages it owned are lost",
		[DROP_DETACH] = "detached",
		[DROP_REATTACH] = "attached again: its copies are forgotten",
		[DROP_RETIRE] = "forgotten: the section was freed and allocated again",
		[DROP_GRACE] = "dropped, not back in the grace period: its unpublished writes are lost",
	};
	struct dir_holder *hd = &s->h[i];
	struct dir_recall *mine = NULL, *r, *next;
	uint16_t keep = (uint16_t)~(1u << i);
	unsigned owned = 0;

	for (uint32_t p = 0; p < d->npages; p++) {
		if (s->owner[p] == i) {
			s->owner[p] = DIR_NONE;
			owned++;
		}
		if (s->lastw[p] == i)
			s->lastw[p] = DIR_NONE;
		s->copyset[p] &= keep;
	}
	/* On disk first: a restart from here on does not let it reclaim anything. */
	mn_dirtab_clear(d->tab, s->idx, i);
	if (why == DROP_LEASE || why == DROP_CLOSED || why == DROP_GRACE) {
		uint64_t seq = ++d->ndrops;

		d->drops[seq % MN_DIR_DROPS] = (struct mn_dir_drop){
			.seq = seq, .section = s->idx, .generation = s->generation,
			.node = hd->node, .tag = hd->tag, .pages = owned,
			.lease = why != DROP_CLOSED,
		};
		atomic_fetch_add(&d->cnt.holders_lost, 1);
		atomic_fetch_add(&d->cnt.pages_lost, owned);
		log_warn("section %u: node %llu/%u %s (%u pages)", s->idx,
			 (unsigned long long)hd->node, hd->tag, why_str[why], owned);
	} else {
		log_info("section %u: node %llu/%u %s", s->idx, (unsigned long long)hd->node,
			 hd->tag, why_str[why]);
	}
	if (why == DROP_LEASE && hd->chan) {
		struct mn_obuf *kill = mn_request_new(PROTO_OP_DIR_RECALL, 0, 0);

		if (kill) {
			kill->kill = true;
			d->ops->push(hd->chan, kill);
		}
	}
	if (hd->chan)
		d->ops->unref(hd->chan);
	*hd = (struct dir_holder){ .incarnation = hd->incarnation + 1 };
	s->nholders--;
	s->expect &= (uint16_t)~(1u << i);
	if (s->grace && !s->expect)
		dir_grace_end(d, s);
	atomic_fetch_sub(&d->cnt.holders, 1);
	/* Gather first: settling them runs requests, which may send other recalls. */
	for (r = d->oldest; r; r = next) {
		next = r->next;
		if (r->job->s == s && r->holder == i) {
			lease_unlink(d, r);
			r->gather = mine;
			mine = r;
		}
	}
	while ((r = mine)) {
		mine = r->gather;
		recall_done(d, r);
	}
}

/* Forget section s entirely (it was freed and allocated again). */
static void sec_retire(struct mn_dir *d, struct dir_sec *s)
{
	for (unsigned i = 0; i < PROTO_DIR_MAX_HOLDERS; i++)
		if (s->h[i].used)
			dir_holder_drop(d, s, i, DROP_RETIRE);
	dir_sec_maybe_free(d, s);
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
		/* Idle, it still looks every lease_ns (recall_send counts on it). */
		next = now + d->lease_ns;
		if (d->ngrace)
			next = MIN(next, d->grace_deadline_ns);
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
		  uint16_t tag, bool versions)
{
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
		sec_retire(d, s);
		s = NULL;
	}
	if (!s && !(s = dir_sec_new(d, g->section, g->generation))) {
		r = -ENOMEM;
		goto out;
	}
	i = dir_holder_find(s, g->holder_id, tag);
	if (i >= 0 && !s->h[i].chan) {
		/* Back after a restart: its slot waited for it (dir_grace.c). */
		hd = &s->h[i];
		hd->chan = chan;
		hd->grants = 0;
		hd->versions = versions;
		hd->incarnation++;
		d->ops->ref(chan);
		log_info("section %u: node %llu/%u attached again after the restart%s", s->idx,
			 (unsigned long long)g->holder_id, tag,
			 s->grace ? ": it may reclaim its pages" : "");
		goto out;
	}
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
	if (i < 0 || s->grace) {
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
		page_run(d, s, page);
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
	r = d->stopping ? NULL : *rtab_slot(d, seq);
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
	recall_done(d, r);
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
	       uint32_t npages, unsigned lease_ms, struct mn_dirtab *tab, struct mn_dir **ret)
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
	while ((r = d->oldest)) {
		lease_unlink(d, r);
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
