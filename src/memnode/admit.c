// SPDX-License-Identifier: MIT
/*
 * Admission of protocol connections: the caps that keep a peer without
 * the cluster key from filling the memory node.
 *
 * The acceptor asks mn_admit() for every accepted connection under the
 * node's max_conns. It is refused (the acceptor counts it, per reason)
 * when its source address already holds
 * max_per_addr connections, or when it would be one connection too many
 * that has not authenticated yet: max_unauth in all, max_unauth_per_addr
 * from one address. A connection stops counting as unauthenticated when
 * AUTH succeeds on it (mn_admit_authed) and stops counting at all when it
 * closes (mn_admit_release).
 *
 * Per-address counts live in a small chained hash table under one mutex:
 * it is touched once per accept, authentication and close, never per
 * request. An address's entry exists while it has connections; the
 * connection keeps a pointer to it.
 */
#include "admit.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define ADMIT_BUCKETS 1024

struct mn_peer {
	struct mn_peer *next;
	uint8_t addr[16];        /* IPv6, or IPv4-mapped */
	unsigned conns;          /* open connections from this address */
	unsigned unauth;         /* ... of which not authenticated yet */
};

struct mn_admit {
	pthread_mutex_t mu;
	struct mn_limits lim;
	_Atomic uint64_t unauth; /* unauthenticated connections in all (changed under mu) */
	struct mn_peer *buckets[ADMIT_BUCKETS];
};

int mn_admit_new(const struct mn_limits *lim, struct mn_admit **ret)
{
	struct mn_admit *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->lim = *lim;
	pthread_mutex_init(&a->mu, NULL);
	*ret = a;
	return 0;
}

void mn_admit_free(struct mn_admit *a)
{
	if (!a)
		return;
	for (unsigned i = 0; i < ADMIT_BUCKETS; i++)
		while (a->buckets[i]) {
			struct mn_peer *p = a->buckets[i];

			a->buckets[i] = p->next;
			free(p);
		}
	pthread_mutex_destroy(&a->mu);
	free(a);
}

/* The address as 16 bytes (IPv4 mapped into IPv6); other families share one key. */
static void addr_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	} else if (ss->ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	}
}

static unsigned addr_hash(const uint8_t key[16])
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (unsigned i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % ADMIT_BUCKETS;
}

enum mn_admit_verdict mn_admit(struct mn_admit *a, const struct sockaddr_storage *ss,
			       struct mn_peer **ret)
{
	const struct mn_limits *lim = &a->lim;
	enum mn_admit_verdict v = MN_ADMIT_OK;
	struct mn_peer *p;
	uint8_t key[16];
	unsigned b;

	addr_key(ss, key);
	b = addr_hash(key);
	pthread_mutex_lock(&a->mu);
	for (p = a->buckets[b]; p; p = p->next)
		if (memcmp(p->addr, key, 16) == 0)
			break;
	if (p && p->conns >= lim->max_per_addr)
		v = MN_ADMIT_PER_ADDR;
	else if (a->unauth >= lim->max_unauth ||
		 (p && p->unauth >= lim->max_unauth_per_addr))
		v = MN_ADMIT_UNAUTH;
	else if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p) {
			v = MN_ADMIT_NOMEM;
		} else {
			memcpy(p->addr, key, 16);
			p->next = a->buckets[b];
			a->buckets[b] = p;
		}
	}
	if (v == MN_ADMIT_OK) {
		p->conns++;
		p->unauth++;
		a->unauth++;
		*ret = p;
	}
	pthread_mutex_unlock(&a->mu);
	return v;
}

void mn_admit_authed(struct mn_admit *a, struct mn_peer *p)
{
	if (!p)
		return;         /* adopted without admission (mn_server_adopt) */
	pthread_mutex_lock(&a->mu);
	p->unauth--;
	a->unauth--;
	pthread_mutex_unlock(&a->mu);
}

void mn_admit_release(struct mn_admit *a, struct mn_peer *p, bool unauth)
{
	struct mn_peer **pp;

	if (!p)
		return;
	pthread_mutex_lock(&a->mu);
	if (unauth) {
		p->unauth--;
		a->unauth--;
	}
	if (--p->conns == 0) {
		for (pp = &a->buckets[addr_hash(p->addr)]; *pp != p; pp = &(*pp)->next)
			;
		*pp = p->next;
		free(p);
	}
	pthread_mutex_unlock(&a->mu);
}

uint64_t mn_admit_unauth(struct mn_admit *a)
{
	return atomic_load(&a->unauth);
}
