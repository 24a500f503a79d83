// SPDX-License-Identifier: MIT
/*
 * The source: fetching pages through the backend (the fetch half of
 * struct pager_backend_ops), and each memory node's failure state with the
 * health thread that notices a node answering again.
 *
 * A fetch is retried with reconnects (backend.c) unless it is cancelled:
 * the caller's check runs before every attempt (a region being removed, a
 * section fenced), so a fetch in retry gives up within one attempt.
 *
 * A fetch that cannot complete within fail_timeout_ms for a transport
 * reason (timeout, connection refused or reset) marks its memory node
 * down. Nothing about that is sticky or pager-wide:
 *   - a fault on a section of a down node is parked: the faulting thread
 *     stays blocked in the kernel (no zero page, no SIGBUS unless the
 *     fail mode asks for it), and the fault thread goes on serving faults
 *     on local sections and on other memory nodes;
 *   - the evictor and the cleaner leave the dirty pages of a down node
 *     alone (its clean pages can still be evicted: they need no write);
 *   - the health thread probes each down node every probe_ms with a
 *     one-page fetch of a section that failed, on its own connection. An
 *     answer, even an error status, means the node is reachable again: the
 *     node is marked up and every range of its sections is woken
 *     (UFFDIO_WAKE), so the parked threads fault again and are served.
 * cfg.on_node is called once per transition, from the thread that saw it,
 * with no pager lock held.
 *
 * A replicated section (replica.h) fails over instead: each in-replica but
 * the last gets one attempt; a transport error takes it out and the next
 * one is asked at once. Only its last in-replica's node is ever marked
 * down by a fetch of it, and only then do its faults park.
 */
#include "source.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "cache.h"
#include "log.h"
#include "net.h"
#include "replica.h"
#include "thread.h"

#define PAGER_MAX_NODES 64

/* A memory node this pager has seen fail. */
struct pager_node {
	uint64_t id;                   /* memory node id; set once, before n counts it */
	_Atomic int down;              /* 0: answers; else the -errno that marked it down */
	struct pager_section probe;    /* a section of it to probe while down (lock) */
	uint64_t down_ns;
};

/* The memory nodes of a pager (p->nodes). */
struct pager_nodes {
	pthread_mutex_t lock;          /* adds to nodes[], the health thread's sleep (a leaf lock) */
	pthread_cond_t cond;           /* a node went down, or stop */
	struct pager_node nodes[PAGER_MAX_NODES];
	_Atomic unsigned n;
	_Atomic unsigned ndown;        /* nodes down now */
	pthread_t health;
	bool health_started;
};

/* ---- fetch ------------------------------------------------------------------ */

struct fetch_arg {
	const struct pager_backend_ops *ops;
	const struct pager_section *s;
	uint32_t page, npages;
	void *buf;
	bool (*cancelled)(void *arg);
	void *cancel_arg;
};

static int fetch_cb(void *conn, void *arg)
{
	struct fetch_arg *f = arg;

	if (f->cancelled && f->cancelled(f->cancel_arg))
		return -ECANCELED;
	return f->ops->fetch(conn, f->s, f->page, f->npages, f->buf);
}

int pager_source_fetch(struct pager *p, void **connp, const struct pager_section *s,
		       uint32_t page, uint32_t npages, void *buf, bool (*cancelled)(void *arg),
		       void *arg)
{
	struct fetch_arg f = { p->cfg.backend->ops, s, page, npages, buf, cancelled, arg };

	return pager_retry_io(p, connp, fetch_cb, &f);
}

/*
 * One attempt on replica view v, reconnecting once if the connection was
 * broken (not after a timeout: a stalled node would cost it twice).
 */
static int fetch_once(struct pager *p, void **connp, struct fetch_arg *f)
{
	const struct pager_backend_ops *ops = f->ops;
	int timeout = p->cfg.replica_timeout_ms > 0 ? p->cfg.replica_timeout_ms : 1000;
	int r = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (!*connp) {
			r = ops->conn_open(p->cfg.backend->priv, connp);
			if (r < 0) {
				*connp = NULL;
				return r;
			}
		}
		if (ops->fetch_timeout)
			ops->fetch_timeout(*connp, timeout);
		r = fetch_cb(*connp, f);
		if (ops->fetch_timeout)
			ops->fetch_timeout(*connp, 0);
		if (r >= 0 || !pager_err_transport(r))
			return r;
		ops->reset(*connp);
		if (r == -ETIMEDOUT)
			return r;
	}
	return r;
}

int pager_source_fetch_sec(struct pager *p, void **connp, struct pager_region *r, unsigned sec,
			   uint32_t page, uint32_t npages, void *buf, bool (*cancelled)(void *arg),
			   void *arg, struct pager_section *ret_view)
{
	struct fetch_arg f = { p->cfg.backend->ops, NULL, page, npages, buf, cancelled, arg };
	const struct pager_section *s = &r->sections[sec];
	struct pager_section v;
	bool failed = false;
	int k = -1, rc;

	if (!pager_rep_replicated(s)) {
		if (ret_view)
			*ret_view = *s;
		return pager_source_fetch(p, connp, s, page, npages, buf, cancelled, arg);
	}
	for (;;) {
		unsigned in = pager_rep_in(r, sec);

		k = pager_rep_next_in(r, sec, k);
		if (k < 0)          /* the ones before were taken out meanwhile: start again */
			k = pager_rep_next_in(r, sec, -1);
		pager_rep_view(s, (unsigned)k, &v);
		if (ret_view)
			*ret_view = v;
		if (__builtin_popcount(in) <= 1) {
			/* The last in-replica: as an unreplicated section (retried, parks). */
			rc = pager_source_fetch(p, connp, &v, page, npages, buf, cancelled, arg);
			break;
		}
		f.s = &v;
		rc = fetch_once(p, connp, &f);
		if (rc >= 0 || !pager_err_transport(rc))
			break;
		pager_count_error(p, rc, "replica fetch (failing over)");
		failed = true;
		(void)pager_rep_take_out(p, r, sec, (unsigned)k, rc);
	}
	if (rc >= 0 && failed)
		CTR_ADD(p, replica_failovers, 1);
	return rc;
}

/* ---- memory nodes ----------------------------------------------------------- */

/* Is err a transport failure (the node may come back) rather than an answer? */
bool pager_err_transport(int err)
{
	switch (-err) {
	case ETIMEDOUT: case ECONNREFUSED: case ECONNRESET: case ECONNABORTED: case EPIPE:
	case EHOSTUNREACH: case ENETUNREACH: case ENOTCONN: case EIO: case EPROTO:
	case EBADMSG: case EAGAIN: case EHOSTDOWN: case ENETDOWN:
		return true;
	default:
		return false;
	}
}

/* The node's slot, or NULL. Lock-free: ids are published before n grows. */
static struct pager_node *node_find(struct pager_nodes *t, uint64_t id)
{
	unsigned n = atomic_load_explicit(&t->n, memory_order_acquire);

	for (unsigned i = 0; i < n; i++)
		if (t->nodes[i].id == id)
			return &t->nodes[i];
	return NULL;
}

int pager_sec_down(struct pager *p, const struct pager_region *r, unsigned sec)
{
	const struct pager_section *s = &r->sections[sec];
	unsigned in;
	int k;

	if (s->kind != PAGER_SEC_REMOTE)
		return 0;
	if (!atomic_load_explicit(&p->nodes->ndown, memory_order_relaxed))
		return 0;
	if (!pager_rep_replicated(s))
		return pager_node_down(p, s->grant.memnode_id);
	in = pager_rep_in(r, sec);
	if (__builtin_popcount(in) > 1)
		return 0;     /* a fetch fails over */
	k = __builtin_ctz(in);
	return pager_node_down(p, k == 0 ? s->grant.memnode_id : s->more[k - 1].grant.memnode_id);
}

int pager_node_down(struct pager *p, uint64_t memnode_id)
{
	struct pager_node *n;

	if (!atomic_load_explicit(&p->nodes->ndown, memory_order_relaxed))
		return 0;     /* the common case: one load */
	n = node_find(p->nodes, memnode_id);
	return n ? atomic_load(&n->down) : 0;
}

void pager_node_failed(struct pager *p, const struct pager_section *s, int err)
{
	struct pager_nodes *t = p->nodes;
	struct pager_node *n;
	int expected = 0;

	if (s->kind != PAGER_SEC_REMOTE || err >= 0)
		return;
	pthread_mutex_lock(&t->lock);
	n = node_find(t, s->grant.memnode_id);
	if (!n) {
		unsigned i = atomic_load(&t->n);

		if (i == PAGER_MAX_NODES) {
			pthread_mutex_unlock(&t->lock);
			log_warn("pager %s: more than %u memory nodes: node %llu not tracked",
				 p->name, PAGER_MAX_NODES, (unsigned long long)s->grant.memnode_id);
			return;
		}
		n = &t->nodes[i];
		n->id = s->grant.memnode_id;
		atomic_store_explicit(&t->n, i + 1, memory_order_release);
	}
	if (!atomic_compare_exchange_strong(&n->down, &expected, err)) {
		pthread_mutex_unlock(&t->lock);
		return;       /* already down */
	}
	n->probe = *s;
	n->down_ns = now_ns();
	atomic_fetch_add(&t->ndown, 1);
	CTR_ADD(p, node_down_events, 1);
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	log_warn("pager %s: memory node %llu (%s) does not answer: %s; its faults wait",
		 p->name, (unsigned long long)s->grant.memnode_id, s->addr, strerror(-err));
	if (p->cfg.on_node)
		p->cfg.on_node(p->cfg.opaque, s->grant.memnode_id, s->addr, true, err);
}

/* Wake every range of the sections of memory node `id`, in every region. */
static void wake_node(struct pager *p, uint64_t id)
{
	pthread_mutex_lock(&p->admin_lock);
	for (unsigned i = 0; i < PAGER_MAX_REGIONS; i++) {
		struct pager_region *r = atomic_load(&p->regions[i]);

		if (!r || atomic_load(&r->dead))
			continue;
		for (uint32_t s = 0; s < r->nsections; s++)
			for (unsigned k = 0; k < pager_rep_n(&r->sections[s]); k++) {
				struct pager_section v;

				pager_rep_view(&r->sections[s], k, &v);
				if (v.kind == PAGER_SEC_REMOTE && v.grant.memnode_id == id) {
					(void)pager_uffd_wake(r, (uint64_t)s * p->sec_pages,
							      p->sec_pages);
					break;
				}
			}
	}
	pthread_mutex_unlock(&p->admin_lock);
}

/* The health thread saw node n (its probe section s) answer. The table lock is not held. */
static void node_up(struct pager *p, struct pager_node *n, const struct pager_section *s)
{
	uint64_t ms = (now_ns() - n->down_ns) / 1000000;
	int err = atomic_exchange(&n->down, 0);

	if (!err)
		return;
	atomic_fetch_sub(&p->nodes->ndown, 1);
	CTR_ADD(p, node_up_events, 1);
	log_info("pager %s: memory node %llu (%s) answers again after %llu ms", p->name,
		 (unsigned long long)n->id, s->addr, (unsigned long long)ms);
	wake_node(p, n->id);
	/* The evictor may have left work for this node. */
	pthread_mutex_lock(&p->lock);
	pthread_cond_signal(&p->evict_cond);
	pthread_mutex_unlock(&p->lock);
	if (p->cfg.on_node)
		p->cfg.on_node(p->cfg.opaque, n->id, s->addr, false, 0);
}

/* One probe of a down node: true if it answered (with data or with an error status). */
static bool probe(struct pager *p, void **conn, const struct pager_section *s, void *buf)
{
	const struct pager_backend_ops *ops = p->cfg.backend->ops;
	int r = 0;

	if (!*conn)
		r = ops->conn_open(p->cfg.backend->priv, conn);
	if (r < 0) {
		*conn = NULL;
		return !pager_err_transport(r);
	}
	r = ops->fetch(*conn, s, 0, 1, buf);
	if (r < 0 && pager_err_transport(r)) {
		ops->reset(*conn);
		return false;
	}
	return true;
}

static void *health_main(void *arg)
{
	struct pager *p = arg;
	struct pager_nodes *t = p->nodes;
	void *conn = NULL, *buf = aligned_alloc(PS, PS);

	thread_name("pager-health");
	pthread_mutex_lock(&t->lock);
	while (!atomic_load(&p->stop)) {
		unsigned nn = atomic_load(&t->n);
		struct timespec ts;

		if (!atomic_load(&t->ndown)) {
			pthread_cond_wait(&t->cond, &t->lock);
			continue;
		}
		for (unsigned i = 0; i < nn && buf && !atomic_load(&p->stop); i++) {
			struct pager_node *n = &t->nodes[i];
			struct pager_section s;
			bool ok;

			if (!atomic_load(&n->down))
				continue;
			s = n->probe;
			pthread_mutex_unlock(&t->lock);
			ok = probe(p, &conn, &s, buf);
			if (ok)
				node_up(p, n, &s);
			pthread_mutex_lock(&t->lock);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)p->cfg.probe_ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (!atomic_load(&p->stop))
			pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	}
	pthread_mutex_unlock(&t->lock);
	if (conn)
		p->cfg.backend->ops->conn_close(conn);
	free(buf);
	return NULL;
}

int pager_nodes_new(struct pager *p)
{
	struct pager_nodes *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	p->nodes = t;
	return 0;
}

int pager_nodes_start(struct pager *p)
{
	int r = pthread_create(&p->nodes->health, NULL, health_main, p);

	if (r)
		return -r;
	p->nodes->health_started = true;
	return 0;
}

void pager_nodes_stop(struct pager *p)
{
	struct pager_nodes *t = p->nodes;

	if (!t || !t->health_started)
		return;
	pthread_mutex_lock(&t->lock);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->health, NULL);
	t->health_started = false;
}

void pager_nodes_free(struct pager *p)
{
	struct pager_nodes *t = p->nodes;

	if (!t)
		return;
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
	p->nodes = NULL;
}

int pager_nodes_state(struct pager *p, struct pager_node_state *ret, size_t max)
{
	struct pager_nodes *t = p->nodes;
	unsigned n = atomic_load_explicit(&t->n, memory_order_acquire), k = 0;

	for (unsigned i = 0; i < n && k < max; i++) {
		int err = atomic_load(&t->nodes[i].down);

		if (!err)
			continue;
		ret[k].memnode_id = t->nodes[i].id;
		ret[k].err = err;
		k++;
	}
	return (int)k;
}

unsigned pager_nodes_down(struct pager *p)
{
	return atomic_load(&p->nodes->ndown);
}
