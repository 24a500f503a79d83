// SPDX-License-Identifier: MIT
/*
 * The coherence directory's core (dir_core.h): sections, recalls, requests
 * and dropping a holder, the parts that dir.c's entry points, the grace
 * period (dir_grace.c) and away holders (dir_away.c) share. dir.c's top
 * comment tells how they work together. d->mu is held by every caller.
 */
#include "dir_core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "net.h"
#include "wire.h"

/* ---- sections and holders ----------------------------------------------------- */

/* A section without holders leaves strict use (it has no requests then either). */
void dir_sec_maybe_free(struct mn_dir *d, struct dir_sec *s)
{
	if (s->nholders || s->njobs || s->grace)
		return;
	d->secs[s->idx] = NULL;
	atomic_fetch_sub(&d->cnt.sections, 1);
	sec_free(s);
}

/* ---- recalls -------------------------------------------------------------------- */

struct dir_recall **dir_recall_slot(struct mn_dir *d, uint64_t seq)
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
	*dir_recall_slot(d, r->seq) = r;
	j->pending++;
	if (hd->back_by_ns) {
		/* Away (dir_away.c): it waits, unsent and without a lease, until it is back. */
		free(ob);
		return;
	}
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
void dir_page_run(struct mn_dir *d, struct dir_sec *s, uint32_t p)
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
void dir_recall_done(struct mn_dir *d, struct dir_recall *r)
{
	struct dir_job *j = r->job;

	*dir_recall_slot(d, r->seq) = r->hnext;
	if (r->prev || d->oldest == r)
		lease_unlink(d, r);
	hist_observe(&d->cnt.recall_latency, now_ns() - r->sent_ns);
	free(r);
	if (--j->pending == 0) {
		struct dir_sec *s = j->s;
		uint32_t p = j->page;

		job_finish(d, j);
		dir_page_run(d, s, p);
	}
}

struct dir_recall *dir_recalls_of(struct mn_dir *d, struct dir_sec *s, unsigned i, bool settle)
{
	struct dir_recall *mine = NULL, *r;

	/* Gather first: settling them runs requests, which may send other recalls. */
	for (unsigned b = 0; b < RTAB_SIZE; b++)
		for (r = d->rtab[b]; r; r = r->hnext) {
			if (r->job->s != s || r->holder != i)
				continue;
			if (r->prev || d->oldest == r)
				lease_unlink(d, r);
			r->gather = mine;
			mine = r;
		}
	if (!settle)
		return mine;
	while ((r = mine)) {
		mine = r->gather;
		dir_recall_done(d, r);
	}
	return NULL;
}

/*
 * Holder slot i leaves section s: out of every entry, its recalls settled
 * without data, its channel let go. Its requests still queued are answered
 * DIR_DETACHED when their turn comes.
 */
unsigned dir_holder_forget(struct mn_dir *d, struct dir_sec *s, unsigned i)
{
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
	return owned;
}

bool dir_recall_pending(const struct mn_dir *d, const struct dir_sec *s, unsigned i, uint32_t page)
{
	for (unsigned b = 0; b < RTAB_SIZE; b++)
		for (const struct dir_recall *r = d->rtab[b]; r; r = r->hnext)
			if (r->job->s == s && r->holder == i && r->job->page == page)
				return true;
	return false;
}

void dir_holder_drop(struct mn_dir *d, struct dir_sec *s, unsigned i, enum drop_why why)
{
	static const char *const why_str[] = {
		[DROP_LEASE] = "dropped, its channel closed: unpublished writes to the pages it owned are lost",
		[DROP_CLOSED] = "dropped: unpublished writes to the pages it owned are lost",
		[DROP_DETACH] = "detached",
		[DROP_REATTACH] = "attached again: its copies are forgotten",
		[DROP_RETIRE] = "forgotten: the section was freed and allocated again",
		[DROP_GRACE] = "dropped, not back in the grace period: its unpublished writes are lost",
		[DROP_AWAY] = "dropped, not back in time after its channel closed: unpublished writes lost",
	};
	struct dir_holder *hd = &s->h[i];
	unsigned owned = dir_holder_forget(d, s, i);

	/* On disk first: a restart from here on does not let it reclaim anything. */
	mn_dirtab_clear(d->tab, s->idx, i);
	/* Lost: it may have written; a closed channel of a holder that owned nothing lost nothing. */
	if (why == DROP_LEASE || why == DROP_GRACE || why == DROP_AWAY ||
	    (why == DROP_CLOSED && owned)) {
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
			 hd->tag, why == DROP_CLOSED ? "dropped: its channel closed, it owned no page"
						     : why_str[why]);
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
	if (hd->back_by_ns)
		atomic_store(&d->cnt.holders_away, --d->naway);
	*hd = (struct dir_holder){ .incarnation = hd->incarnation + 1 };
	s->nholders--;
	s->expect &= (uint16_t)~(1u << i);
	if (s->grace && !s->expect)
		dir_grace_end(d, s);
	atomic_fetch_sub(&d->cnt.holders, 1);
	(void)dir_recalls_of(d, s, i, true);
}

/* Forget section s entirely (it was freed and allocated again). */
void dir_sec_retire(struct mn_dir *d, struct dir_sec *s)
{
	for (unsigned i = 0; i < PROTO_DIR_MAX_HOLDERS; i++)
		if (s->h[i].used)
			dir_holder_drop(d, s, i, DROP_RETIRE);
	dir_sec_maybe_free(d, s);
}
