/* SPDX-License-Identifier: MIT */
/*
 * Admission of the memory node's protocol connections (admit.c): how many
 * may be open from one address, and how many may not have authenticated
 * yet, in all and per address. The caps and timeouts themselves are the
 * operator's options (struct mn_limits).
 */
#ifndef DISAGG_MEMNODE_ADMIT_H
#define DISAGG_MEMNODE_ADMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Connection caps and timeouts (options of main.c). */
struct mn_limits {
	unsigned max_conns;
	unsigned max_per_addr;
	unsigned max_unauth;
	unsigned max_unauth_per_addr;
	unsigned handshake_ms;    /* accept -> authenticated */
	unsigned idle_ms;         /* authenticated and idle; 0: never closed */
};

struct mn_admit;
struct mn_peer;

enum mn_admit_verdict {
	MN_ADMIT_OK,
	MN_ADMIT_MAX_CONNS,       /* the node's max_conns (the acceptor checks it) */
	MN_ADMIT_PER_ADDR,        /* its address is at max_per_addr */
	MN_ADMIT_UNAUTH,          /* max_unauth, or max_unauth_per_addr for its address */
	MN_ADMIT_NOMEM,
};

int mn_admit_new(const struct mn_limits *lim, struct mn_admit **ret);
void mn_admit_free(struct mn_admit *a);   /* accepts NULL */
/* May a connection from ss open? On OK it counts as unauthenticated; *ret is its address. */
enum mn_admit_verdict mn_admit(struct mn_admit *a, const struct sockaddr_storage *ss,
			       struct mn_peer **ret);
/* The connection of address p authenticated. Accepts NULL p. */
void mn_admit_authed(struct mn_admit *a, struct mn_peer *p);
/* A connection of address p closed (unauth: it never authenticated). Accepts NULL p. */
void mn_admit_release(struct mn_admit *a, struct mn_peer *p, bool unauth);
/* Connections open now that have not authenticated. */
uint64_t mn_admit_unauth(struct mn_admit *a);

#endif /* DISAGG_MEMNODE_ADMIT_H */
