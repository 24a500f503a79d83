// SPDX-License-Identifier: MIT
/*
 * The "memnode" backend (backend_memnode.h): remote sections on memory
 * nodes through mnclient. A connection (one per pager thread; mnclient is
 * not thread-safe) keeps one mnc per memory-node address, connected on
 * first use, and a second one for the coherence directory's requests if
 * it sends any (PROTO_FEAT_DIR_CONN: the memory node serves those on one
 * worker, with the recall channels). A fetch is one READ request; with spin_us it busy-polls for
 * the reply that long before it sleeps, which saves the scheduler wakeup
 * on this kind of machine. Write-backs are pipelined (mnc_write_async) and
 * waited for together.
 * A write the memory node refuses because this node no longer owns the
 * section (FENCED: a newer ownership epoch; STALE: a new generation) is
 * reported by write_wait only when every other write of the round
 * succeeded, so that the pager can drop exactly what was refused and never
 * mistakes a real failure for it (docs/pager.md, "Fenced write-backs").
 * Each node of a connection keeps the result of the round's writes to it
 * (write_result), so that a replicated write-back knows which replica
 * failed (sink.c).
 */
#include "backend_memnode.h"

#include <string.h>

#include "log.h"
#include "mnclient.h"
#include "mndiff.h"
#include "net.h"

#define MN_MAX_NODES 16

struct mn_be {
	struct auth_key key;
	uint64_t node_id;
	int timeout_ms;
	unsigned spin_us;
};

/* One memory node of a connection, and the result of this round's writes to it. */
struct mn_node {
	char addr[PROTO_MAX_ADDR];
	struct mnc *c;
	struct mnc *dc;               /* directory requests (PROTO_FEAT_DIR_CONN), opened on first use */
	int werr;                     /* first failed write of this round (not fenced), or 0 */
	int wfenced;                  /* -EKEYREVOKED or -ESTALE seen in this round, or 0 */
	int wres;                     /* the last round's result (write_result) */
};

struct mn_conn {
	struct mn_be *be;
	struct mn_node n[MN_MAX_NODES];
	unsigned nn;
	bool wround;                  /* writes submitted since the last write_wait */
	int fetch_timeout_ms;         /* > 0: this deadline for fetches (a replica's) */
	int connect_timeout_ms;       /* > 0: this deadline for connections opened now */
	bool rdone;
	int rstatus;
};

static int mn_get_node(struct mn_conn *c, const char *addr, bool dir, struct mn_node **ret_node,
		       struct mnc **ret)
{
	struct mnc **mp;
	unsigned i;
	int r;

	for (i = 0; i < c->nn; i++)
		if (strcmp(c->n[i].addr, addr) == 0)
			break;
	if (i == c->nn) {
		if (c->nn == MN_MAX_NODES)
			return -ENOSPC;
		snprintf(c->n[i].addr, sizeof(c->n[i].addr), "%s", addr);
		c->n[i].c = c->n[i].dc = NULL;
		c->n[i].werr = c->n[i].wfenced = c->n[i].wres = 0;
		c->nn++;
	}
	mp = dir ? &c->n[i].dc : &c->n[i].c;
	if (*mp && mnc_broken(*mp)) {
		mnc_close(*mp);
		*mp = NULL;
	}
	if (!*mp) {
		/*
		 * Directory requests have a connection of their own, which the
		 * memory node serves on the worker of its recall channels
		 * (PROTO_FEAT_DIR_CONN); fetches and write-backs stay spread.
		 */
		struct mnc_opts o = {
			.addr = addr,
			.key = &c->be->key,
			.node_id = c->be->node_id,
			.timeout_ms = c->be->timeout_ms,
			.connect_timeout_ms = c->connect_timeout_ms,
			.features = dir ? PROTO_FEAT_ALL | PROTO_FEAT_DIR_CONN : 0,
		};

		r = mnc_connect(&o, mp);
		if (r < 0) {
			*mp = NULL;
			/*
			 * Whoever answers at addr is not that memory node (its
			 * certificate or its HELLO does not check out): for the
			 * pager the node cannot be reached, as when nothing
			 * answers, not a refused grant. It parks, or fails over
			 * to another replica, and is retried.
			 */
			if (r == -EKEYREJECTED || r == -EPERM) {
				log_debug("memory node %s: connection refused as not that node "
					  "(%s): treated as unreachable", addr, strerror(-r));
				r = -EPROTO;
			}
			return r;
		}
	}
	*ret = *mp;
	if (ret_node)
		*ret_node = &c->n[i];
	return 0;
}

static int mn_get(struct mn_conn *c, const char *addr, struct mnc **ret)
{
	return mn_get_node(c, addr, false, NULL, ret);
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
		mnc_close(c->n[i].dc);
		c->n[i].c = c->n[i].dc = NULL;
		c->n[i].werr = c->n[i].wfenced = 0;
	}
	c->wround = false;
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

	int timeout_ms = c->fetch_timeout_ms > 0 ? c->fetch_timeout_ms : c->be->timeout_ms;

	if (!c->be->spin_us && c->fetch_timeout_ms <= 0)
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
	deadline = t0 + (uint64_t)(timeout_ms > 0 ? timeout_ms : 5000) * 1000000;
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
	struct mn_node *n = opaque;

	if (status == -EKEYREVOKED || status == -ESTALE) {
		if (!n->wfenced)
			n->wfenced = status;
	} else if (status < 0 && !n->werr) {
		n->werr = status;
	}
}

/* The first write of a round forgets the last round's per-node results. */
static void mn_round_begin(struct mn_conn *c)
{
	if (c->wround)
		return;
	c->wround = true;
	for (unsigned i = 0; i < c->nn; i++)
		c->n[i].werr = c->n[i].wfenced = c->n[i].wres = 0;
}

static int mn_write_submit(void *conn, const struct pager_section *s,
			   const struct proto_extent *ext, uint32_t next, const void *data)
{
	struct mn_conn *c = conn;
	struct mn_node *n;
	struct mnc *m;
	int r;

	mn_round_begin(c);
	r = mn_get_node(c, s->addr, false, &n, &m);
	if (r < 0)
		return r;
	return mnc_write_async(m, &s->grant, ext, next, data, mn_write_done, n);
}

/*
 * Wait for every node's writes. The round's result: a failed write (not
 * fenced) first, then a failed drain, then a fenced write. Each node keeps
 * its own result in the same order (write_result).
 */
static int mn_write_wait(void *conn)
{
	struct mn_conn *c = conn;
	int werr = 0, derr = 0, fenced = 0;

	for (unsigned i = 0; i < c->nn; i++) {
		struct mn_node *n = &c->n[i];
		int d = n->c ? mnc_drain(n->c) : 0;

		n->wres = n->werr ? n->werr : d < 0 ? d : n->wfenced;
		if (n->werr && !werr)
			werr = n->werr;
		if (d < 0 && !derr)
			derr = d;
		if (n->wfenced && !fenced)
			fenced = n->wfenced;
		n->werr = n->wfenced = 0;
	}
	c->wround = false;
	return werr ? werr : derr ? derr : fenced;
}

static int mn_write_result(void *conn, const struct pager_section *s)
{
	struct mn_conn *c = conn;

	for (unsigned i = 0; i < c->nn; i++)
		if (strcmp(c->n[i].addr, s->addr) == 0)
			return c->n[i].wres;
	return 0;
}

static void mn_fetch_timeout(void *conn, int timeout_ms)
{
	struct mn_conn *c = conn;

	c->fetch_timeout_ms = timeout_ms;
}

/* Release regions' diffs (release.h): acknowledged like writes, by mn_write_wait. */
static int mn_diff_submit(void *conn, const struct pager_section *s, uint32_t npages,
			  const struct proto_diff_once *once, const void *body, size_t len)
{
	struct mn_conn *c = conn;
	struct mn_node *n;
	struct mnc *m;
	int r;

	mn_round_begin(c);
	r = mn_get_node(c, s->addr, false, &n, &m);
	if (r < 0)
		return r;
	return mnc_write_diff_async(m, &s->grant, npages, once, body, len, mn_write_done, n);
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

/* Strict shared regions: one page through the section's coherence directory. */
static int mn_dir_fetch(void *conn, const struct pager_section *s, uint32_t page, bool write,
			void *buf, bool *ret_had_copy, bool *ret_owned)
{
	struct mn_conn *c = conn;
	struct mnc *m;
	int r = mn_get_node(c, s->addr, true, NULL, &m);

	*ret_had_copy = *ret_owned = false;
	if (r < 0)
		return r;
	return write ? mnc_dir_write(m, &s->grant, s->dir_tag, page, buf, ret_had_copy)
		     : mnc_dir_read(m, &s->grant, s->dir_tag, page, buf, ret_owned);
}

/* Connect to section s's node, and its replicas' (a write-back's nodes), ahead of time. */
static int mn_connect_sec(void *conn, const struct pager_section *s, int timeout_ms)
{
	struct mn_conn *c = conn;
	struct mnc *m;
	int r;

	c->connect_timeout_ms = timeout_ms;
	r = mn_get(conn, s->addr, &m);
	for (unsigned k = 1; r == 0 && k < s->nrep; k++)
		r = mn_get(conn, s->more[k - 1].addr, &m);
	c->connect_timeout_ms = 0;
	return r;
}

static const struct pager_backend_ops memnode_ops = {
	.name = "memnode",
	.conn_open = mn_conn_open,
	.conn_close = mn_conn_close,
	.fetch = mn_fetch,
	.dir_fetch = mn_dir_fetch,
	.write_submit = mn_write_submit,
	.write_wait = mn_write_wait,
	.diff_submit = mn_diff_submit,
	.reset = mn_reset,
	.max_pages = mn_max_pages,
	.write_result = mn_write_result,
	.connect = mn_connect_sec,
	.fetch_timeout = mn_fetch_timeout,
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
