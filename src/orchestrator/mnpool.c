// SPDX-License-Identifier: MIT
/*
 * Cached authenticated connections from the orchestrator to memory nodes.
 *
 * A connection (struct mnc) is not thread-safe, so a request thread takes
 * one out of the cache for a call and puts it back afterwards; when none
 * is idle it connects (HELLO + AUTH with the cluster key under our
 * --node-id). A connection that broke is dropped. A call that fails on a
 * cached connection because the peer closed it meanwhile (-EPIPE,
 * -ECONNRESET) is retried once on a fresh connection: ALLOC and FREE are
 * never sent twice on a connection that had delivered them, since a
 * broken cached connection fails before the request leaves. COPY (memory
 * migration) runs on the same connections; it waits for the whole copy
 * (mnclient allows ten times the connection's timeout for it).
 *
 * The cache holds at most MNPOOL_PER_NODE idle connections per node and
 * MNPOOL_MAX in all (oldest dropped first), in a small hash by node id.
 */
#include "orch.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "mnadmin.h"
#include "mnclient.h"

#define MNPOOL_BUCKETS 256
#define MNPOOL_PER_NODE 4
#define MNPOOL_MAX 4096
#define MNPOOL_TIMEOUT_MS 5000
#define MNPOOL_COPY_GRANT_TTL_S 3600   /* the source grant of a COPY */

struct mnp_entry {
	struct mnp_entry *next;
	uint64_t node_id;
	char addr[STORE_ADDR_MAX];
	struct mnc *c;
};

struct mnpool {
	struct orch *o;
	pthread_mutex_t mu;
	struct mnp_entry *buckets[MNPOOL_BUCKETS];
	size_t nidle;
};

int mnpool_new(struct orch *o, struct mnpool **ret)
{
	struct mnpool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->o = o;
	pthread_mutex_init(&p->mu, NULL);
	*ret = p;
	return 0;
}

void mnpool_free(struct mnpool *p)
{
	if (!p)
		return;
	for (size_t b = 0; b < MNPOOL_BUCKETS; b++) {
		struct mnp_entry *e = p->buckets[b], *next;

		for (; e; e = next) {
			next = e->next;
			mnc_close(e->c);
			free(e);
		}
	}
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static size_t bucket(uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 56) % MNPOOL_BUCKETS;
}

/* Take an idle connection to the node at addr, or NULL. */
static struct mnc *take(struct mnpool *p, uint64_t id, const char *addr)
{
	struct mnp_entry **pp, *e;
	struct mnc *c = NULL;

	pthread_mutex_lock(&p->mu);
	for (pp = &p->buckets[bucket(id)]; (e = *pp); pp = &e->next) {
		if (e->node_id == id && strcmp(e->addr, addr) == 0) {
			*pp = e->next;
			c = e->c;
			free(e);
			p->nidle--;
			break;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return c;
}

static void put(struct mnpool *p, uint64_t id, const char *addr, struct mnc *c)
{
	struct mnp_entry *e, **pp;
	unsigned same = 0;

	if (!c || mnc_broken(c) || p->nidle >= MNPOOL_MAX) {
		mnc_close(c);
		return;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		mnc_close(c);
		return;
	}
	e->node_id = id;
	snprintf(e->addr, sizeof(e->addr), "%s", addr);
	e->c = c;
	pthread_mutex_lock(&p->mu);
	for (pp = &p->buckets[bucket(id)]; *pp; pp = &(*pp)->next)
		if ((*pp)->node_id == id)
			same++;
	if (same >= MNPOOL_PER_NODE || p->nidle >= MNPOOL_MAX) {
		pthread_mutex_unlock(&p->mu);
		mnc_close(c);
		free(e);
		return;
	}
	e->next = p->buckets[bucket(id)];
	p->buckets[bucket(id)] = e;
	p->nidle++;
	pthread_mutex_unlock(&p->mu);
}

void mnpool_forget(struct mnpool *p, uint64_t id)
{
	struct mnp_entry **pp, *e, *drop = NULL;

	pthread_mutex_lock(&p->mu);
	pp = &p->buckets[bucket(id)];
	while ((e = *pp)) {
		if (e->node_id == id) {
			*pp = e->next;
			e->next = drop;
			drop = e;
			p->nidle--;
		} else {
			pp = &e->next;
		}
	}
	pthread_mutex_unlock(&p->mu);
	while (drop) {
		e = drop->next;
		mnc_close(drop->c);
		free(drop);
		drop = e;
	}
}

/*
 * The whole revocation list, to a memory node (nodes_revoke, a new
 * connection, a sweep) or a device node (orch_volumes.revoke).
 */
int revoke_push(struct orch *o, struct mnc *c)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r;

	r = o->store->ops->revoked_list(o->store, &ids, &n);
	if (r < 0)
		return r;
	r = mnc_revoke(c, ids, n);
	if (r == -EOPNOTSUPP && n == 0)
		return 0;         /* an older node, and nothing to tell it */
	return r;
}

static int connect_node(struct mnpool *p, const struct node_rec *n, struct mnc **ret)
{
	struct mnc_opts opts = {
		.addr = n->addr,
		.key = &p->o->key,
		.orch_key = p->o->grant_key,
		.node_id = p->o->node_id,
		.timeout_ms = MNPOOL_TIMEOUT_MS,
	};
	int r = mnc_connect(&opts, ret);

	if (r < 0)
		return r;
	if (mnc_info(*ret)->node_id != n->id) {
		log_warn("memory node at %s says it is node %llu, registered as %llu", n->addr,
			 (unsigned long long)mnc_info(*ret)->node_id, (unsigned long long)n->id);
		mnc_close(*ret);
		*ret = NULL;
		return -ESTALE;
	}
	/* A new connection: the node gets the whole revocation list first. */
	r = revoke_push(p->o, *ret);
	if (r < 0) {
		log_warn("memory node %llu: cannot push the revocation list: %s",
			 (unsigned long long)n->id, strerror(-r));
		mnc_close(*ret);
		*ret = NULL;
		return r;
	}
	return 0;
}

enum mnp_op { MNP_ALLOC, MNP_FREE, MNP_COPY, MNP_FENCE, MNP_REVOKE };

/* COPY: dst_grant, dst_addr, rep. FENCE: dst_grant is the grant presented, epoch the answer. */
struct mnp_copy {
	const struct proto_grant *dst_grant;
	const char *dst_addr;
	struct proto_copy_rep *rep;
	uint32_t *epoch;
};

/* `owner`: the owner of an ALLOC, the epoch of a FREE. */
static int do_op(struct mnpool *p, const struct node_rec *n, enum mnp_op op, uint64_t owner,
		 uint32_t *section, uint32_t *generation, const struct mnp_copy *cp)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct mnc *c = take(p, n->id, n->addr);
		bool cached = c != NULL;
		struct proto_section ps;
		int r;

		if (!c) {
			r = connect_node(p, n, &c);
			if (r < 0)
				return r;
		}
		if (op == MNP_ALLOC) {
			r = mnc_alloc(c, owner, &ps);
			if (r == 0) {
				*section = ps.section;
				*generation = ps.generation;
			}
		} else if (op == MNP_FREE) {
			r = mnc_free(c, *section, *generation, (uint32_t)owner);
		} else if (op == MNP_FENCE) {
			r = mnc_fence(c, cp->dst_grant, cp->epoch);
		} else if (op == MNP_REVOKE) {
			r = cached ? revoke_push(p->o, c) : 0;   /* a new one was told at connect */
		} else {
			/* A grant of our own to read the source, for as long as the copy may take. */
			struct proto_grant sg;

			r = grant_mint(p->o->grant_key, n->id, p->o->node_id, *section, *generation, 0,
				       PROTO_R_READ, (uint64_t)time(NULL) + MNPOOL_COPY_GRANT_TTL_S,
				       &sg);
			if (r == 0)
				r = mnc_copy(c, &sg, cp->dst_grant, cp->dst_addr, cp->rep);
		}
		if (cached && (r == -EPIPE || r == -ECONNRESET) && mnc_broken(c)) {
			mnc_close(c);
			continue;
		}
		put(p, n->id, n->addr, c);
		return r;
	}
	return -EPIPE;
}

int mnpool_alloc(struct mnpool *p, const struct node_rec *n, uint64_t owner,
		 uint32_t *ret_section, uint32_t *ret_generation)
{
	return do_op(p, n, MNP_ALLOC, owner, ret_section, ret_generation, NULL);
}

int mnpool_free_section(struct mnpool *p, const struct node_rec *n, uint32_t section,
			uint32_t generation, uint32_t epoch)
{
	return do_op(p, n, MNP_FREE, epoch, &section, &generation, NULL);
}

/* REVOKE may be repeated: it replaces the node's whole list. */
int mnpool_revoke(struct mnpool *p, const struct node_rec *n)
{
	return do_op(p, n, MNP_REVOKE, 0, NULL, NULL, NULL);
}

/* FENCE may be repeated: raising an epoch twice is raising it once. */
int mnpool_fence(struct mnpool *p, const struct node_rec *n, const struct proto_grant *g,
		 uint32_t *ret_epoch)
{
	struct mnp_copy cp = { .dst_grant = g, .epoch = ret_epoch };

	return do_op(p, n, MNP_FENCE, 0, NULL, NULL, &cp);
}

/* COPY may be repeated: a retry on a fresh connection only copies again. */
int mnpool_copy(struct mnpool *p, const struct node_rec *n, uint32_t src, uint32_t src_gen,
		const struct proto_grant *dst_grant, const char *dst_addr,
		struct proto_copy_rep *ret)
{
	struct mnp_copy cp = { .dst_grant = dst_grant, .dst_addr = dst_addr, .rep = ret };

	return do_op(p, n, MNP_COPY, 0, &src, &src_gen, &cp);
}
