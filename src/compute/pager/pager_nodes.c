// SPDX-License-Identifier: MIT
/*
 * Per-memory-node failure state of a pager, and the health thread that
 * notices a node answering again.
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
 */
#include "pager_internal.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

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

/* The node's slot, or NULL. Lock-free: ids are published before nnodes grows. */
static struct pager_node *node_find(struct pager *p, uint64_t id)
{
	unsigned n = atomic_load_explicit(&p->nnodes, memory_order_acquire);

	for (unsigned i = 0; i < n; i++)
		if (p->nodes[i].id == id)
			return &p->nodes[i];
	return NULL;
}

int pager_node_down(struct pager *p, uint64_t memnode_id)
{
	struct pager_node *n;

	if (!atomic_load_explicit(&p->ndown, memory_order_relaxed))
		return 0;     /* the common case: one load */
	n = node_find(p, memnode_id);
	return n ? atomic_load(&n->down) : 0;
}

void pager_node_failed(struct pager *p, const struct pager_section *s, int err)
{
	struct pager_node *n;
	int expected = 0;

	if (s->kind != PAGER_SEC_REMOTE || err >= 0)
		return;
	pthread_mutex_lock(&p->node_lock);
	n = node_find(p, s->grant.memnode_id);
	if (!n) {
		unsigned i = atomic_load(&p->nnodes);

		if (i == PAGER_MAX_NODES) {
			pthread_mutex_unlock(&p->node_lock);
			log_warn("pager %s: more than %u memory nodes: node %llu not tracked",
				 p->name, PAGER_MAX_NODES, (unsigned long long)s->grant.memnode_id);
			return;
		}
		n = &p->nodes[i];
		n->id = s->grant.memnode_id;
		atomic_store_explicit(&p->nnodes, i + 1, memory_order_release);
	}
	if (!atomic_compare_exchange_strong(&n->down, &expected, err)) {
		pthread_mutex_unlock(&p->node_lock);
		return;       /* already down */
	}
	n->probe = *s;
	n->down_ns = now_ns();
	atomic_fetch_add(&p->ndown, 1);
	CTR_ADD(p, node_down_events, 1);
	pthread_cond_signal(&p->node_cond);
	pthread_mutex_unlock(&p->node_lock);
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
			if (r->sections[s].kind == PAGER_SEC_REMOTE &&
			    r->sections[s].grant.memnode_id == id)
				(void)pager_uffd_wake(r, (uint64_t)s * p->sec_pages, p->sec_pages);
	}
	pthread_mutex_unlock(&p->admin_lock);
}

/* The health thread saw node n (its probe section s) answer. node_lock not held. */
static void node_up(struct pager *p, struct pager_node *n, const struct pager_section *s)
{
	uint64_t ms = (now_ns() - n->down_ns) / 1000000;
	int err = atomic_exchange(&n->down, 0);

	if (!err)
		return;
	atomic_fetch_sub(&p->ndown, 1);
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
	void *conn = NULL, *buf = aligned_alloc(PS, PS);

	pthread_mutex_lock(&p->node_lock);
	while (!atomic_load(&p->stop)) {
		unsigned nn = atomic_load(&p->nnodes);
		struct timespec ts;

		if (!atomic_load(&p->ndown)) {
			pthread_cond_wait(&p->node_cond, &p->node_lock);
			continue;
		}
		for (unsigned i = 0; i < nn && buf && !atomic_load(&p->stop); i++) {
			struct pager_node *n = &p->nodes[i];
			struct pager_section s;
			bool ok;

			if (!atomic_load(&n->down))
				continue;
			s = n->probe;
			pthread_mutex_unlock(&p->node_lock);
			ok = probe(p, &conn, &s, buf);
			if (ok)
				node_up(p, n, &s);
			pthread_mutex_lock(&p->node_lock);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)p->cfg.probe_ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (!atomic_load(&p->stop))
			pthread_cond_timedwait(&p->node_cond, &p->node_lock, &ts);
	}
	pthread_mutex_unlock(&p->node_lock);
	if (conn)
		p->cfg.backend->ops->conn_close(conn);
	free(buf);
	return NULL;
}

int pager_nodes_start(struct pager *p)
{
	int r = pthread_create(&p->health, NULL, health_main, p);

	if (r)
		return -r;
	p->health_started = true;
	return 0;
}

void pager_nodes_stop(struct pager *p)
{
	if (!p->health_started)
		return;
	pthread_mutex_lock(&p->node_lock);
	pthread_cond_broadcast(&p->node_cond);
	pthread_mutex_unlock(&p->node_lock);
	pthread_join(p->health, NULL);
	p->health_started = false;
}

int pager_nodes_state(struct pager *p, struct pager_node_state *ret, size_t max)
{
	unsigned n = atomic_load_explicit(&p->nnodes, memory_order_acquire), k = 0;

	for (unsigned i = 0; i < n && k < max; i++) {
		int err = atomic_load(&p->nodes[i].down);

		if (!err)
			continue;
		ret[k].memnode_id = p->nodes[i].id;
		ret[k].err = err;
		k++;
	}
	return (int)k;
}
