// SPDX-License-Identifier: MIT
/*
 * The server's half of the fabric handshake (hsserver.h).
 */
#include "hsserver.h"

#include <errno.h>
#include <string.h>

#include "wire.h"

int hs_hello_parse(const struct hs_peer *a, const void *p, size_t len,
		   struct proto_hello_req *ret)
{
	struct proto_hello_req req;
	int r;

	if (a->hello_done)
		return -EBADMSG;
	r = wire_fixed(p, len, &req, sizeof(req));
	if (r < 0)
		return r;
	wire_hello_req_swap(&req);
	/* Highest common version of [ver_min, ver_max] and {PROTO_VERSION}. */
	if (req.ver_min > req.ver_max || req.ver_min > PROTO_VERSION ||
	    req.ver_max < PROTO_VERSION)
		return -EPROTONOSUPPORT;
	*ret = req;
	/* Over TLS the node id is the certificate's: no claiming another node's. */
	if (a->has_cert && req.node_id != a->cert.node_id)
		return -EACCES;
	return 0;
}

int hs_hello_accept(const struct hs_server *s, struct hs_peer *a,
		    const struct proto_hello_req *req, struct proto_hello_rep *rep)
{
	int r;

	a->peer_id = req->node_id;
	a->features = req->features & s->features;
	memcpy(a->client_nonce, req->nonce, PROTO_NONCE_SIZE);
	r = auth_random(a->server_nonce, PROTO_NONCE_SIZE);
	if (r < 0)
		return r;
	rep->version = PROTO_VERSION;
	rep->features = a->features;
	rep->node_id = s->node_id;
	memcpy(rep->nonce, a->server_nonce, PROTO_NONCE_SIZE);
	r = auth_hello_mac(s->key, true, a->client_nonce, a->server_nonce, a->peer_id,
			   s->node_id, rep->mac);
	if (r < 0)
		return r;
	wire_hello_rep_swap(rep);
	a->hello_done = true;
	return 0;
}

int hs_auth(const struct hs_server *s, struct hs_peer *a, const void *p, size_t len,
	    enum hs_auth_fail *ret_why)
{
	struct proto_auth_orch_req req;   /* the plain AUTH is its first 32 bytes */
	bool orch = len == sizeof(struct proto_auth_orch_req);
	uint8_t mac[PROTO_MAC_SIZE];
	int r;

	*ret_why = HS_AUTH_OK;
	if (a->authed)
		return -EBADMSG;
	if (!a->hello_done)
		return -EACCES;
	r = wire_fixed(p, len, &req, orch ? sizeof(req) : sizeof(struct proto_auth_req));
	if (r < 0)
		return r;
	r = auth_hello_mac(s->key, false, a->client_nonce, a->server_nonce, a->peer_id,
			   s->node_id, mac);
	if (r < 0)
		return r;
	if (!auth_mac_equal(mac, req.mac) ||
	    (orch && (!s->grant_key ||
		      grant_orch_verify(s->grant_key, a->client_nonce, a->server_nonce,
					a->peer_id, s->node_id, req.sig) < 0))) {
		*ret_why = HS_AUTH_PROOF;
		return -EACCES;
	}
	if (orch && a->has_cert && a->cert.role != CERT_ROLE_ORCH) {
		*ret_why = HS_AUTH_ROLE;
		return -EACCES;
	}
	a->authed = true;
	a->orch = orch;
	return 0;
}
