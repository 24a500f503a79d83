// SPDX-License-Identifier: MIT
/*
 * Replicated sections (replica.h): the out-mask of each section, views of
 * one replica for the backend, finding and dropping a replica, and the
 * report thread that tells the agent (cfg.on_replica) which replicas were
 * taken out.
 *
 * Taking a replica out happens where a failure is seen: a fault thread's
 * fetch (source.c), a write-back batch under io_lock (sink.c), the control
 * plane (pager_replica_drop). None of them may call the agent with a lock
 * held, so each queues a report here and the report thread calls
 * on_replica, with no pager lock held, once per replica taken out.
 */
#include "replica.h"

#include "cache.h"
#include "log.h"
#include "thread.h"

/* A replica taken out, waiting to be reported. */
struct rep_event {
	struct rep_event *next;
	int region;
	unsigned index, replica;
	struct pager_section view;
	int err;
};

/* The report queue (p->repl). */
struct pager_repl {
	pthread_mutex_t lock;          /* the queue (a leaf lock) */
	pthread_cond_t cond;           /* something queued, or stop */
	struct rep_event *head, **tail;
	bool stop;
	pthread_t thread;
	bool started;
};

/* ---- descriptors ----------------------------------------------------------- */

void pager_rep_view(const struct pager_section *s, unsigned k, struct pager_section *ret)
{
	*ret = *s;
	ret->nrep = 0;
	memset(ret->more, 0, sizeof(ret->more));
	if (k == 0 || k >= pager_rep_n(s))
		return;
	memcpy(ret->addr, s->more[k - 1].addr, sizeof(ret->addr));
	ret->grant = s->more[k - 1].grant;
}

void pager_rep_set(struct pager_section *s, unsigned k, const struct pager_section *target)
{
	if (k == 0) {
		memcpy(s->addr, target->addr, sizeof(s->addr));
		s->grant = target->grant;
	} else if (k < pager_rep_n(s)) {
		memcpy(s->more[k - 1].addr, target->addr, sizeof(s->more[k - 1].addr));
		s->more[k - 1].grant = target->grant;
	}
}

bool pager_rep_is(const struct pager_section *s, unsigned k, const struct pager_section *match)
{
	struct pager_section v;

	if (k >= pager_rep_n(s))
		return false;
	pager_rep_view(s, k, &v);
	return pager_same_section(&v, match);
}

/* ---- the out-mask ------------------------------------------------------------ */

unsigned pager_rep_out(const struct pager_region *r, unsigned sec)
{
	return atomic_load_explicit(&r->rout[sec], memory_order_acquire);
}

unsigned pager_rep_in(const struct pager_region *r, unsigned sec)
{
	unsigned n = pager_rep_n(&r->sections[sec]);

	return ((1u << n) - 1) & ~pager_rep_out(r, sec);
}

int pager_rep_next_in(const struct pager_region *r, unsigned sec, int after)
{
	unsigned in = pager_rep_in(r, sec);

	for (unsigned k = (unsigned)(after + 1); k < PAGER_MAX_REPLICAS; k++)
		if (in & (1u << k))
			return (int)k;
	return -1;
}

static void report(struct pager *p, struct pager_region *r, unsigned sec, unsigned k, int err)
{
	struct pager_repl *q = p->repl;
	struct rep_event *e = calloc(1, sizeof(*e));

	if (!e) {
		log_warn("pager %s: replica %u of region %u section %u out, not reported: %s",
			 p->name, k, r->idx, sec, strerror(ENOMEM));
		return;
	}
	e->region = (int)r->idx;
	e->index = sec;
	e->replica = k;
	e->err = err;
	pager_rep_view(&r->sections[sec], k, &e->view);
	pthread_mutex_lock(&q->lock);
	*q->tail = e;
	q->tail = &e->next;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

int pager_rep_take_out(struct pager *p, struct pager_region *r, unsigned sec, unsigned k, int err)
{
	unsigned n = pager_rep_n(&r->sections[sec]);
	uint8_t cur = atomic_load(&r->rout[sec]), want;

	if (k >= n || n < 2)
		return -ERANGE;
	do {
		if (cur & (1u << k))
			return -EALREADY;
		want = (uint8_t)(cur | (1u << k));
		if ((((1u << n) - 1) & ~want) == 0)
			return -EBUSY;         /* the last in-replica stays in */
	} while (!atomic_compare_exchange_weak(&r->rout[sec], &cur, want));
	atomic_store(&r->rerr[sec * PAGER_MAX_REPLICAS + k], err);
	atomic_fetch_add(&p->replicas_out, 1);
	log_warn("pager %s: region %u section %u: replica %u (memory node %llu) taken out: %s",
		 p->name, r->idx, sec, k,
		 (unsigned long long)(k == 0 ? r->sections[sec].grant.memnode_id
					     : r->sections[sec].more[k - 1].grant.memnode_id),
		 strerror(-err));
	report(p, r, sec, k, err);
	return 0;
}

void pager_rep_mark_recorded(struct pager *p, struct pager_region *r, unsigned sec)
{
	const struct pager_section *s = &r->sections[sec];
	unsigned n = pager_rep_n(s);
	uint8_t cur, want;

	if (!r->rout || n < 2 || !(s->out & ((1u << n) - 1)))
		return;
	cur = atomic_load(&r->rout[sec]);
	do {
		want = (uint8_t)(cur | (s->out & ((1u << n) - 1)));
		if ((((1u << n) - 1) & ~want) == 0)
			return;                /* a record that names every replica: none */
	} while (!atomic_compare_exchange_weak(&r->rout[sec], &cur, want));
	for (unsigned k = 0; k < n; k++)
		if ((want & ~cur) & (1u << k))
			atomic_store(&r->rerr[sec * PAGER_MAX_REPLICAS + k], -ESTALE);
	atomic_fetch_add(&p->replicas_out, (uint64_t)__builtin_popcount((unsigned)(want & ~cur)));
}

void pager_rep_reset(struct pager *p, struct pager_region *r, unsigned sec)
{
	uint8_t old;

	if (!r->rout)
		return;
	old = atomic_exchange(&r->rout[sec], 0);
	if (old)
		atomic_fetch_sub(&p->replicas_out, (uint64_t)__builtin_popcount(old));
}

void pager_rep_set_in(struct pager *p, struct pager_region *r, unsigned sec, unsigned k)
{
	uint8_t old = atomic_fetch_and(&r->rout[sec], (uint8_t)~(1u << k));

	if (old & (1u << k))
		atomic_fetch_sub(&p->replicas_out, 1);
}

/* ---- the report thread ------------------------------------------------------------ */

static void *report_main(void *arg)
{
	struct pager *p = arg;
	struct pager_repl *q = p->repl;

	thread_name("pager-repl");
	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct rep_event *e = q->head;

		if (!e) {
			if (q->stop)
				break;
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		q->head = e->next;
		if (!q->head)
			q->tail = &q->head;
		pthread_mutex_unlock(&q->lock);
		if (p->cfg.on_replica)
			p->cfg.on_replica(p->cfg.opaque, e->region, e->index, e->replica, &e->view,
					  e->err);
		free(e);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int pager_repl_new(struct pager *p)
{
	struct pager_repl *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->tail = &q->head;
	p->repl = q;
	return 0;
}

int pager_repl_start(struct pager *p)
{
	int r = pthread_create(&p->repl->thread, NULL, report_main, p);

	if (r)
		return -r;
	p->repl->started = true;
	return 0;
}

/* The reports queued before stop are still delivered. */
void pager_repl_stop(struct pager *p)
{
	struct pager_repl *q = p->repl;

	if (!q || !q->started)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	q->started = false;
}

void pager_repl_free(struct pager *p)
{
	struct pager_repl *q = p->repl;

	if (!q)
		return;
	while (q->head) {
		struct rep_event *e = q->head;

		q->head = e->next;
		free(e);
	}
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
	p->repl = NULL;
}
