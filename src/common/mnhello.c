// SPDX-License-Identifier: MIT
/*
 * The client's half of the memory node's handshake. See mnhello.h; the
 * frames and MACs are in docs/protocol.md ("HELLO and AUTH"). Both frames
 * go out and come back whole, blocking until the deadline: nothing else
 * is on the connection yet.
 */
#include "mnhello.h"

#include <errno.h>
#include <string.h>

#include "macro.h"
#include "wire.h"

/* One handshake request; the largest is the orchestrator's AUTH. */
static int hs_send(struct fio *io, uint16_t op, uint64_t id, const void *p, size_t len,
		   uint64_t deadline)
{
	uint8_t buf[PROTO_HDR_SIZE + MAX(sizeof(struct proto_hello_req),
					 sizeof(struct proto_auth_orch_req))];
	struct proto_hdr h = {
		.magic = PROTO_MAGIC, .version = PROTO_VERSION, .opcode = op,
		.len = (uint32_t)len, .req_id = id,
	};

	if (len > sizeof(buf) - PROTO_HDR_SIZE)
		return -E2BIG;
	wire_hdr_encode(&h, buf);
	memcpy(buf + PROTO_HDR_SIZE, p, len);
	return fio_write_full(io, buf, PROTO_HDR_SIZE + len, deadline);
}

/* Read one handshake reply to request `id`: OK status with exactly `len` bytes. */
static int hs_reply(struct fio *io, uint16_t op, uint64_t id, void *buf, size_t len,
		    uint64_t deadline)
{
	uint8_t hb[PROTO_HDR_SIZE];
	struct proto_hdr h;
	int r;

	r = fio_read_full(io, hb, sizeof(hb), deadline);
	if (r < 0)
		return r;
	if (wire_hdr_decode(hb, sizeof(hb), &h) < 0 || !(h.flags & PROTO_F_REPLY) ||
	    h.opcode != op || h.req_id != id)
		return -EBADMSG;
	if (h.status != PROTO_ST_OK)
		return proto_status_to_errno(h.status);
	if (h.len != len)
		return -EBADMSG;
	return fio_read_full(io, buf, len, deadline);
}

int mnhello_client(struct fio *io, const struct mnhello_id *id, uint64_t deadline,
		   struct proto_hello_rep *ret)
{
	struct proto_hello_req hq = {
		.ver_min = PROTO_VERSION, .ver_max = PROTO_VERSION,
		.features = id->features, .node_id = id->node_id,
	};
	struct proto_hello_rep hr;
	struct proto_auth_orch_req aq;    /* a plain AUTH sends only its MAC */
	uint8_t cnonce[PROTO_NONCE_SIZE], mac[PROTO_MAC_SIZE];
	int r;

	r = auth_random(cnonce, sizeof(cnonce));
	if (r < 0)
		return r;
	memcpy(hq.nonce, cnonce, sizeof(cnonce));
	wire_hello_req_swap(&hq);
	r = hs_send(io, PROTO_OP_HELLO, 1, &hq, sizeof(hq), deadline);
	if (r < 0)
		return r;
	r = hs_reply(io, PROTO_OP_HELLO, 1, &hr, sizeof(hr), deadline);
	if (r < 0)
		return r;
	wire_hello_rep_swap(&hr);
	r = auth_hello_mac(id->key, true, cnonce, hr.nonce, id->node_id, hr.node_id, mac);
	if (r < 0)
		return r;
	if (!auth_mac_equal(mac, hr.mac))
		return -EKEYREJECTED; /* the server does not hold the cluster key */
	if (hr.version != PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (hr.max_pages == 0 || hr.max_inflight == 0)
		return -EBADMSG;
	if (id->tls_peer && hr.node_id != id->tls_peer->node_id)
		return -EKEYREJECTED;  /* its certificate names another memory node */

	r = auth_hello_mac(id->key, false, cnonce, hr.nonce, id->node_id, hr.node_id, aq.mac);
	if (r < 0)
		return r;
	if (id->orch_key) {
		r = grant_orch_sign(id->orch_key, cnonce, hr.nonce, id->node_id, hr.node_id, aq.sig);
		if (r < 0)
			return r;
	}
	r = hs_send(io, PROTO_OP_AUTH, 2, &aq,
		    id->orch_key ? sizeof(aq) : sizeof(struct proto_auth_req), deadline);
	if (r < 0)
		return r;
	r = hs_reply(io, PROTO_OP_AUTH, 2, NULL, 0, deadline);
	if (r < 0)
		return r;
	*ret = hr;
	return 0;
}
