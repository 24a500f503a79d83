/* SPDX-License-Identifier: MIT */
/*
 * A vhost-user-blk storage back end on a device node's volume
 * (vu_devnode.c): the guest's requests go over the fabric (dnclient.h)
 * straight between guest memory and the node, each buffer of a request
 * its own BLK_READ or BLK_WRITE, pipelined on one connection.
 *
 * Outages (hard mode, like NFS's): when the connection breaks, requests
 * that were on it and new ones wait. The back end reconnects (every
 * 200 ms) with its grant, opens the volume again and sends them again;
 * a write sent twice stores the same bytes, a flush sent again covers
 * every write answered before it. Only when the node has been unreachable
 * for `outage_ms` do the waiting requests, and new ones, fail with EIO
 * (the guest sees an I/O error) until it is back. 0 means fail at once
 * (soft mode).
 *
 * Deferred (a compute migration's destination): the grant is of a newer
 * ownership epoch than the source's, and a writable open with it fences
 * the source (docs/devnode.md, "Fencing"). So the store only checks it
 * with a read-only open at first (the size comes from there) and opens the
 * volume for writing when the guest's first request comes: the guest runs
 * here then, and the source stopped and drained its requests before.
 */
#ifndef DISAGG_VU_DEVNODE_H
#define DISAGG_VU_DEVNODE_H

#include <stdint.h>

#include "mnclient.h"
#include "vu_blk.h"

extern const struct vu_blk_store_ops vu_devnode_ops;

struct vu_devnode;

struct vu_devnode_conf {
	struct mnc_opts conn;          /* the device node: address, cluster key, our node id */
	struct proto_grant grant;      /* for the volume, held by conn.node_id */
	const char *volume;
	bool readonly;
	unsigned outage_ms;            /* how long requests wait for an unreachable node */
	bool deferred;                 /* open for writing at the first request only */
	/*
	 * Nonzero: the volume's size, known already (a restarted agent's
	 * disk). If the node cannot be reached now, the store starts in an
	 * outage instead of failing: requests wait, it reconnects.
	 */
	uint64_t known_size;
};

/*
 * Connect, open the volume (its size: *ret_size) and make the store
 * (it keeps copies of conf's address and volume name; conn.key and
 * conn.tls must outlive it):
 * the first connection must work (-errno of dnclient.h otherwise),
 * unless the size is known and the node is only unreachable.
 */
int vu_devnode_new(const struct vu_devnode_conf *conf, struct vu_devnode **ret,
		   uint64_t *ret_size);
void vu_devnode_free(struct vu_devnode *s);
/*
 * The grant it opens the volume with, or a new one (a renewal) for its
 * next (re)connection: any thread, while the store's own thread serves.
 */
void vu_devnode_grant(struct vu_devnode *s, struct proto_grant *ret);
void vu_devnode_set_grant(struct vu_devnode *s, const struct proto_grant *g);

struct vu_devnode_stats {
	uint64_t outages, reconnects, resent, failed_in_outage;
};
const struct vu_devnode_stats *vu_devnode_stats(const struct vu_devnode *s);

#endif /* DISAGG_VU_DEVNODE_H */
