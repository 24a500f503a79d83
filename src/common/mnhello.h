/* SPDX-License-Identifier: MIT */
/*
 * The client's half of a memory node's handshake (mnhello.c): HELLO, the
 * check of the server's proof that it holds the cluster key, and AUTH
 * (with the orchestrator's proof when a grant key is given), as
 * docs/protocol.md describes them. The memory-node client (mnclient.c)
 * runs it on every new connection; it needs nothing of the client's own
 * state, only the connection's byte I/O.
 */
#ifndef DISAGG_MNHELLO_H
#define DISAGG_MNHELLO_H

#include <stdint.h>

#include "auth.h"
#include "cert.h"
#include "fio.h"
#include "grant.h"
#include "disagg/proto.h"

struct mnhello_id {
	const struct auth_key *key;        /* cluster key */
	const struct grant_key *orch_key;  /* the orchestrator's, or NULL */
	uint64_t node_id;                  /* ours */
	uint32_t features;                 /* offered (PROTO_FEAT_*) */
	const struct cert_id *tls_peer;    /* over TLS: the server's certificate; else NULL */
};

/*
 * HELLO and AUTH over io, blocking until `deadline` (now_ns() clock).
 * *ret receives the server's HELLO reply in host order, checked: its MAC,
 * version, limits and (over TLS) node id. -EKEYREJECTED: the server does
 * not hold the cluster key or is not the node of its certificate; a
 * refused AUTH gives its status's errno.
 */
int mnhello_client(struct fio *io, const struct mnhello_id *id, uint64_t deadline,
		   struct proto_hello_rep *ret);

#endif /* DISAGG_MNHELLO_H */
