/* SPDX-License-Identifier: MIT */
/*
 * The server's half of the fabric handshake (hsserver.c): HELLO and AUTH
 * as docs/protocol.md describes them, for every node that serves the
 * fabric protocol (memory nodes, device nodes). The client's half is
 * mnhello.h.
 *
 * A connection keeps a struct hs_peer. HELLO: hs_hello_parse() checks the
 * frame, the caller applies its own policy to the claimed node id
 * (revocation), and hs_hello_accept() answers with the server's proof.
 * AUTH: hs_auth() checks the client's proof, and the orchestrator's when
 * it is offered. Every refusal ends the connection (the caller's part).
 */
#ifndef DISAGG_HSSERVER_H
#define DISAGG_HSSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "cert.h"
#include "grant.h"
#include "disagg/proto.h"

struct hs_server {
	const struct auth_key *key;           /* cluster key */
	const struct grant_key *grant_key;    /* checks the orchestrator's proof; NULL: none */
	uint64_t node_id;                     /* ours */
	uint32_t features;                    /* what we offer (PROTO_FEAT_*) */
};

struct hs_peer {
	bool hello_done;
	bool authed;
	bool orch;               /* AUTH carried the orchestrator's proof */
	bool has_cert;           /* TLS: the peer's verified certificate says `cert` */
	struct cert_id cert;
	uint64_t peer_id;
	uint32_t features;       /* negotiated */
	uint8_t client_nonce[PROTO_NONCE_SIZE];
	uint8_t server_nonce[PROTO_NONCE_SIZE];
};

/*
 * A HELLO payload into *ret (host order): -EBADMSG (a second HELLO, or
 * malformed), -EPROTONOSUPPORT (no common version), -EACCES (over TLS, a
 * node id other than the certificate's; *ret is filled in).
 */
int hs_hello_parse(const struct hs_peer *a, const void *p, size_t len,
		   struct proto_hello_req *ret);
/*
 * Take the HELLO: *rep (host order in: the limits the caller filled in;
 * out: the complete reply in wire order, its features, node id, nonce and
 * proof set here).
 */
int hs_hello_accept(const struct hs_server *s, struct hs_peer *a,
		    const struct proto_hello_req *req, struct proto_hello_rep *rep);

enum hs_auth_fail {
	HS_AUTH_OK,
	HS_AUTH_PROOF,           /* the MAC, or the orchestrator's signature, is wrong */
	HS_AUTH_ROLE,            /* the orchestrator's proof from a certificate of another role */
};

/*
 * An AUTH payload (plain, or with the orchestrator's proof): 0, then
 * a->authed and a->orch are set; -EBADMSG (again, or malformed);
 * -EACCES (before HELLO, or *ret_why).
 */
int hs_auth(const struct hs_server *s, struct hs_peer *a, const void *p, size_t len,
	    enum hs_auth_fail *ret_why);

#endif /* DISAGG_HSSERVER_H */
