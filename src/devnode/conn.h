/* SPDX-License-Identifier: MIT */
/*
 * A device-node connection (conn.c): a thread of its own per connection.
 */
#ifndef DISAGG_DEVNODE_CONN_H
#define DISAGG_DEVNODE_CONN_H

#include "devnode.h"

/* Serve fd (connected, any mode) on a thread of its own; on failure (-EBUSY over
 * max_conns or while stopping, -ENOMEM) fd stays the caller's to close. */
int dn_conn_start(struct dn_node *n, int fd);
/* Close every connection and wait for their threads (shutdown). */
void dn_conn_stop_all(struct dn_node *n);

/* What a handler may use of its connection. */
struct hs_peer *dn_conn_peer(struct dn_conn *c);
struct dn_node *dn_conn_node(struct dn_conn *c);
/* Queue a reply: `len` bytes of payload (wire order) copied after the header. */
int dn_reply(struct dn_conn *c, const struct proto_hdr *req, uint32_t status, const void *p,
	     size_t len);
/* Close the connection once the queued replies are written (or cancel that). */
void dn_conn_close_after_reply(struct dn_conn *c, bool close);
/*
 * The node id the connection speaks for (its certificate's, or its
 * HELLO's): -EACCES when that node is revoked (the caller counts and
 * closes), else 0. Set before the list is read, so that a list arriving
 * meanwhile finds the connection in dn_conn_revoke_scan().
 */
int dn_conn_identify(struct dn_conn *c, uint64_t node_id);
/* A new revocation list: shut the connections of the nodes on it now. */
void dn_conn_revoke_scan(struct dn_node *n);

/* An open volume of the connection (BLK_OPEN); handles index conn's table. */
struct dn_handle {
	bool used;
	bool rdonly;
	int fd;
	unsigned inflight;                 /* requests on the ring */
	uint64_t size;
	char name[PROTO_VOL_NAME_SIZE];
	struct dn_fence fence;             /* its epoch, and whether it was fenced */
};
struct dn_handle *dn_conn_handles(struct dn_conn *c);
/*
 * Put a block request on the connection's ring: rq's cookie is set here;
 * `buf` (malloc'ed, READ: PROTO_HDR_SIZE + len, the data after the header;
 * WRITE: the frame's payload, data at data_off) becomes the request's and
 * is freed or sent with the reply.
 */
int dn_conn_submit(struct dn_conn *c, const struct proto_hdr *req, struct dn_blk_req *rq,
		   unsigned handle, uint8_t *buf);
#endif /* DISAGG_DEVNODE_CONN_H */
