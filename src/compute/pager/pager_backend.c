// SPDX-License-Identifier: MIT
/*
 * Pager backends (struct pager_backend_ops).
 *
 * "memnode": remote sections on memory nodes through mnclient. A
 * connection (one per pager thread; mnclient is not thread-safe) keeps one
 * mnc per memory-node address, connected on first use. A fetch is one READ
 * request; with spin_us it busy-polls for the reply that long before it
 * sleeps, which saves the scheduler wakeup on this kind of machine.
 * Write-backs are pipelined (mnc_write_async) and waited for together.
 *
 * "local": sections in anonymous memory of this process. It is the "uffd
 * floor" of the benchmark (the same fault path without a network) and lets
 * tests run without a memory node; it can inject errors and delays, for
 * every section or for the sections of one memory node id.
 */
#include "pager.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "mnclient.h"
#include "net.h"

void pager_backend_free(struct pager_backend *be)
{
	if (!be)
		return;
	if (be->ops && be->ops->destroy)
		be->ops->destroy(be->priv);
	free(be);
}

/* ---- local ------------------------------------------------------------- */

struct local_sec {
	uint64_t memnode, section;
	uint8_t *mem;
};

struct local_be {
	size_t secsize;
	pthread_mutex_t lock;
	struct local_sec *s;
	size_t n, cap;
	_Atomic int err;
	_Atomic unsigned delay_us;
	_Atomic uint64_t err_node;    /* with node_err: only this memory node fails */
	_Atomic int node_err;
};

struct local_conn {
	struct local_be *be;
	struct local_sec last;
};

static int local_find(struct local_conn *c, const struct pager_section *s, uint8_t **ret)
{
	struct local_be *be = c->be;
	uint8_t *mem = NULL;

	if (c->last.mem && c->last.memnode == s->grant.memnode_id &&
	    c->last.section == s->grant.section) {
		*ret = c->last.mem;
		return 0;
	}
	pthread_mutex_lock(&be->lock);
	for (size_t i = 0; i < be->n; i++)
		if (be->s[i].memnode == s->grant.memnode_id && be->s[i].section == s->grant.section)
			mem = be->s[i].mem;
	if (!mem) {
		if (be->n == be->cap) {
			size_t nc = be->cap ? be->cap * 2 : 16;
			struct local_sec *ns = realloc(be->s, nc * sizeof(*ns));

			if (!ns)
				goto nomem;
			be->s = ns;
			be->cap = nc;
		}
		mem = mmap(NULL, be->secsize, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (mem == MAP_FAILED)
			goto nomem;
		be->s[be->n++] = (struct local_sec){ s->grant.memnode_id, s->grant.section, mem };
	}
	pthread_mutex_unlock(&be->lock);
	c->last = (struct local_sec){ s->grant.memnode_id, s->grant.section, mem };
	*ret = mem;
	return 0;
nomem:
	pthread_mutex_unlock(&be->lock);
	return -ENOMEM;
}

static int local_check(struct local_be *be, const struct pager_section *s)
{
	unsigned d = atomic_load_explicit(&be->delay_us, memory_order_relaxed);
	int ne = atomic_load_explicit(&be->node_err, memory_order_relaxed);

	if (d)
		usleep(d);
	if (ne && s->grant.memnode_id == atomic_load(&be->err_node))
		return ne;
	return atomic_load_explicit(&be->err, memory_order_relaxed);
}

static int local_conn_open(void *priv, void **ret)
{
	struct local_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->be = priv;
	*ret = c;
	return 0;
}

static void local_conn_close(void *conn)
{
	free(conn);
}

static int local_fetch(void *conn, const struct pager_section *s, uint32_t page, uint32_t npages,
		       void *buf)
{
	struct local_conn *c = conn;
	uint8_t *mem;
	int r = local_check(c->be, s);

	if (r < 0)
		return r;
	if (((uint64_t)page + npages) * PAGER_PAGE_SIZE > c->be->secsize)
		return -ERANGE;
	r = local_find(c, s, &mem);
	if (r < 0)
		return r;
	memcpy(buf, mem + (size_t)page * PAGER_PAGE_SIZE, (size_t)npages * PAGER_PAGE_SIZE);
	return 0;
}

static int local_write_submit(void *conn, const struct pager_section *s,
			      const struct proto_extent *ext, uint32_t next, const void *data)
{
	struct local_conn *c = conn;
	const uint8_t *d = data;
	uint8_t *mem;
	int r = local_check(c->be, s);

	if (r < 0)
		return r;
	r = local_find(c, s, &mem);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < next; i++) {
		size_t len = (size_t)ext[i].count * PAGER_PAGE_SIZE;

		if (((uint64_t)ext[i].page + ext[i].count) * PAGER_PAGE_SIZE > c->be->secsize)
			return -ERANGE;
		memcpy(mem + (size_t)ext[i].page * PAGER_PAGE_SIZE, d, len);
		d += len;
	}
	return 0;
}

static int local_write_wait(void *conn)
{
	return 0;
}

static void local_reset(void *conn)
{
}

static uint32_t local_max_pages(void *conn)
{
	return PROTO_MAX_PAGES;
}

static void local_destroy(void *priv)
{
	struct local_be *be = priv;

	for (size_t i = 0; i < be->n; i++)
		munmap(be->s[i].mem, be->secsize);
	free(be->s);
	pthread_mutex_destroy(&be->lock);
	free(be);
}

static const struct pager_backend_ops local_ops = {
	.name = "local",
	.conn_open = local_conn_open,
	.conn_close = local_conn_close,
	.fetch = local_fetch,
	.write_submit = local_write_submit,
	.write_wait = local_write_wait,
	.reset = local_reset,
	.max_pages = local_max_pages,
	.destroy = local_destroy,
};

int pager_backend_local_new(size_t section_size, struct pager_backend **ret)
{
	struct pager_backend *b;
	struct local_be *be;

	if (!section_size || section_size % PAGER_PAGE_SIZE)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	be = calloc(1, sizeof(*be));
	if (!b || !be) {
		free(b);
		free(be);
		return -ENOMEM;
	}
	be->secsize = section_size;
	pthread_mutex_init(&be->lock, NULL);
	b->ops = &local_ops;
	b->priv = be;
	*ret = b;
	return 0;
}

void pager_backend_local_set_error(struct pager_backend *b, int err)
{
	struct local_be *be = b->priv;

	atomic_store(&be->err, err);
}

void pager_backend_local_set_node_error(struct pager_backend *b, uint64_t memnode_id, int err)
{
	struct local_be *be = b->priv;

	atomic_store(&be->err_node, memnode_id);
	atomic_store(&be->node_err, err);
}

void pager_backend_local_set_delay(struct pager_backend *b, unsigned delay_us)
{
	struct local_be *be = b->priv;

	atomic_store(&be->delay_us, delay_us);
}

/* ---- memnode ------------------------------------------------------------ */

#define MN_MAX_NODES 16

struct mn_be {
	struct auth_key key;
	uint64_t node_id;
	int timeout_ms;
	unsigned spin_us;
};

struct mn_conn {
	struct mn_be *be;
	struct {
		char addr[PROTO_MAX_ADDR];
		struct mnc *c;
	} n[MN_MAX_NODES];
	unsigned nn;
	int werr;
	bool rdone;
	int rstatus;
};

static int mn_get(struct mn_conn *c, const char *addr, struct mnc **ret)
{
	unsigned i;
	int r;

	for (i = 0; i < c->nn; i++)
		if (strcmp(c->n[i].addr, addr) == 0)
			break;
	if (i == c->nn) {
		if (c->nn == MN_MAX_NODES)
			return -ENOSPC;
		snprintf(c->n[i].addr, sizeof(c->n[i].addr), "%s", addr);
		c->n[i].c = NULL;
		c->nn++;
	}
	if (c->n[i].c && mnc_broken(c->n[i].c)) {
		mnc_close(c->n[i].c);
		c->n[i].c = NULL;
	}
	if (!c->n[i].c) {
		struct mnc_opts o = {
			.addr = addr,
			.key = &c->be->key,
			.node_id = c->be->node_id,
			.timeout_ms = c->be->timeout_ms,
		};

		r = mnc_connect(&o, &c->n[i].c);
		if (r < 0) {
			c->n[i].c = NULL;
			return r;
		}
	}
	*ret = c->n[i].c;
	return 0;
}

static int mn_conn_open(void *priv, void **ret)
{
	struct mn_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->be = priv;
	*ret = c;
	return 0;
}

static void mn_reset(void *conn)
{
	struct mn_conn *c = conn;

	for (unsigned i = 0; i < c->nn; i++) {
		mnc_close(c->n[i].c);
		c->n[i].c = NULL;
	}
	c->werr = 0;
}

static void mn_conn_close(void *conn)
{
	if (!conn)
		return;
	mn_reset(conn);
	free(conn);
}

static void mn_read_done(void *opaque, int status, size_t len)
{
	struct mn_conn *c = opaque;

	c->rdone = true;
	c->rstatus = status;
}

static int mn_read_one(struct mn_conn *c, struct mnc *m, const struct proto_grant *g,
		       uint32_t page, uint32_t n, void *buf)
{
	struct proto_extent e = { page, n };
	uint64_t t0, deadline;
	int r;

	if (!c->be->spin_us)
		return mnc_read(m, g, &e, 1, buf);
	c->rdone = false;
	r = mnc_read_async(m, g, &e, 1, buf, mn_read_done, c);
	if (r < 0)
		return r;
	t0 = now_ns();
	deadline = t0 + (uint64_t)c->be->spin_us * 1000;
	while (!c->rdone && now_ns() < deadline) {
		r = mnc_poll(m, 0);
		if (r < 0 && !c->rdone)
			return r;
	}
	deadline = t0 + (uint64_t)(c->be->timeout_ms > 0 ? c->be->timeout_ms : 5000) * 1000000;
	while (!c->rdone) {
		uint64_t now = now_ns();

		if (now >= deadline)
			return -ETIMEDOUT;
		r = mnc_poll(m, (int)MAX((deadline - now) / 1000000, 1));
		if (r < 0 && !c->rdone)
			return r;
	}
	return c->rstatus;
}

static int mn_fetch(void *conn, const struct pager_section *s, uint32_t page, uint32_t npages,
		    void *buf)
{
	struct mn_conn *c = conn;
	struct mnc *m;
	uint32_t maxp;
	int r = mn_get(c, s->addr, &m);

	if (r < 0)
		return r;
	maxp = MAX(mnc_info(m)->max_pages, 1u);
	while (npages) {
		uint32_t n = MIN(npages, maxp);

		r = mn_read_one(c, m, &s->grant, page, n, buf);
		if (r < 0)
			return r;
		page += n;
		npages -= n;
		buf = (uint8_t *)buf + (size_t)n * PAGER_PAGE_SIZE;
	}
	return 0;
}

static void mn_write_done(void *opaque, int status, size_t len)
{
	struct mn_conn *c = opaque;

	if (status < 0 && !c->werr)
		c->werr = status;
}

static int mn_write_submit(void *conn, const struct pager_section *s,
			   const struct proto_extent *ext, uint32_t next, const void *data)
{
	struct mn_conn *c = conn;
	struct mnc *m;
	int r = mn_get(c, s->addr, &m);

	if (r < 0)
		return r;
	return mnc_write_async(m, &s->grant, ext, next, data, mn_write_done, c);
}

static int mn_write_wait(void *conn)
{
	struct mn_conn *c = conn;
	int r = 0;

	for (unsigned i = 0; i < c->nn; i++) {
		if (!c->n[i].c)
			continue;
		int d = mnc_drain(c->n[i].c);
		if (d < 0 && !r)
			r = d;
	}
	if (c->werr) {
		r = c->werr;
		c->werr = 0;
	}
	return r;
}

static uint32_t mn_max_pages(void *conn)
{
	struct mn_conn *c = conn;
	uint32_t m = PROTO_MAX_PAGES;

	if (!c)
		return m;
	for (unsigned i = 0; i < c->nn; i++)
		if (c->n[i].c)
			m = MIN(m, mnc_info(c->n[i].c)->max_pages);
	return m ? m : 1;
}

static void mn_destroy(void *priv)
{
	struct mn_be *be = priv;

	explicit_bzero(&be->key, sizeof(be->key));
	free(be);
}

static const struct pager_backend_ops memnode_ops = {
	.name = "memnode",
	.conn_open = mn_conn_open,
	.conn_close = mn_conn_close,
	.fetch = mn_fetch,
	.write_submit = mn_write_submit,
	.write_wait = mn_write_wait,
	.reset = mn_reset,
	.max_pages = mn_max_pages,
	.destroy = mn_destroy,
};

int pager_backend_memnode_new(const struct auth_key *key, uint64_t node_id, int timeout_ms,
			      unsigned spin_us, struct pager_backend **ret)
{
	struct pager_backend *b;
	struct mn_be *be;

	if (!key)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	be = calloc(1, sizeof(*be));
	if (!b || !be) {
		free(b);
		free(be);
		return -ENOMEM;
	}
	be->key = *key;
	be->node_id = node_id;
	be->timeout_ms = timeout_ms;
	be->spin_us = spin_us;
	b->ops = &memnode_ops;
	b->priv = be;
	*ret = b;
	return 0;
}
