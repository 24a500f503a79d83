// SPDX-License-Identifier: MIT
/*
 * The "local" backend (backend_local.h): sections in anonymous memory of
 * this process. It is the "uffd floor" of the benchmark (the same fault
 * path without a network) and lets tests run without a memory node; it
 * can inject errors and delays, for every section or for the sections of
 * one memory node id.
 */
#include "backend_local.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "macro.h"

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

/* Writes are done (or refused) at submit: nothing fails in write_wait. */
static int local_write_result(void *conn, const struct pager_section *s)
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
	.write_result = local_write_result,
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
