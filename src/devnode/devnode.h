/* SPDX-License-Identifier: MIT */
/*
 * disagg-devnode, the device node (docs/devnode.md): block volumes served
 * over the fabric protocol.
 *
 * Modules:
 *   main.c     options, keys, the HTTP endpoint, the accept loop
 *   conn.c     one thread per connection: framing, its io_uring ring
 *              (blkio.h), the bounded queues, the replies
 *   ops.c      one handler per opcode: HELLO/AUTH (hsserver.h), BLK_*
 *              through grants, VOL_* and REVOKE for the orchestrator
 *   stats.c    counters, /metrics and /healthz
 *   volume.c, volume_block.c, volume_import.c, blkio.c   the store (files
 *              and block devices given with --block-device) and its I/O
 *
 * A connection's thread owns everything of the connection (its handles,
 * its ring, its buffers): nothing of it is shared but the node's counters,
 * and the node id it speaks for, which a new revocation list reads to shut
 * the connections of revoked nodes (dn_conn_revoke_scan).
 * conn.c reaches the handlers through n->dispatch, so that the two do not
 * include each other.
 */
#ifndef DISAGG_DEVNODE_H
#define DISAGG_DEVNODE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "blkio.h"
#include "fence.h"
#include "grant.h"
#include "hsserver.h"
#include "metrics.h"
#include "revlist.h"
#include "volume.h"
#include "disagg/proto.h"

#define DN_DEPTH_DEFAULT     64u       /* requests in flight per connection */
#define DN_DEPTH_MAX         256u      /* PROTO_MAX_INFLIGHT */
#define DN_MAX_CONNS         256u
#define DN_HANDSHAKE_MS      5000u
#define DN_PREAUTH_MAX       512u      /* largest frame before AUTH */
#define DN_OUT_CAP           (8u << 20) /* reply bytes queued before reading stops */
#define DN_IN_CAP            (16u << 20) /* request bytes held in flight before reading stops */

struct dn_limits {
	unsigned depth;
	unsigned max_conns;
	unsigned handshake_ms;
};

struct dn_stats {
	_Atomic uint64_t connections;      /* accepted, ever */
	_Atomic uint64_t conns_open;
	_Atomic uint64_t rejected_conns;   /* over max_conns */
	_Atomic uint64_t auth_failed;
	_Atomic uint64_t tls_failures;     /* TLS handshakes refused or timed out */
	_Atomic uint64_t handshake_timeouts;
	_Atomic uint64_t bad_frames;
	_Atomic uint64_t grants_refused;
	_Atomic uint64_t denied;           /* VOL_*, REVOKE without the orchestrator's capability */
	_Atomic uint64_t revoked_handshake; /* TLS handshakes of revoked nodes refused */
	_Atomic uint64_t revoked_hello;    /* HELLOs naming a revoked node refused */
	_Atomic uint64_t revoked_closed;   /* live connections closed by a new list */
	_Atomic uint64_t requests[PROTO_OP_MAX];
	_Atomic uint64_t errors[PROTO_OP_MAX];
	_Atomic uint64_t bytes_read, bytes_written;
	_Atomic uint64_t io_errors;        /* the kernel failed a read, write or flush */
	_Atomic uint64_t queue_full;       /* times a connection stopped reading (depth, bytes) */
	struct hist latency[PROTO_OP_MAX];
};

struct dn_conn;

/*
 * What a connection does with a validated frame (ops.c's dn_dispatch).
 * `payload` is h->len bytes; *owned, when not NULL, is the malloc'ed
 * buffer it lives in: a handler that keeps it (BLK_WRITE) sets *owned to
 * NULL.
 */
typedef void (*dn_dispatch_fn)(struct dn_conn *c, const struct proto_hdr *h, uint8_t *payload,
			       uint8_t **owned);

struct dn_node {
	dn_dispatch_fn dispatch;
	uint64_t node_id;
	struct auth_key key;
	struct grant_key *grant_key;       /* public half: grants and the orchestrator */
	struct tls_ctx *tls;               /* TLS on the fabric, or NULL: plaintext */
	struct dn_volumes *vols;
	struct dn_fences *fences;          /* who may write which volume (fence.h) */
	struct revlist revoked;            /* revoked node ids, in DATA/revoked (revlist.h) */
	struct dn_limits limits;
	struct dn_stats stats;
	_Atomic bool stopping;
	pthread_mutex_t mu;                /* conns */
	struct dn_conn *conns;
	unsigned nconns;
};

#endif /* DISAGG_DEVNODE_H */
