/* SPDX-License-Identifier: MIT */
/*
 * The coherence directory of shared regions in mode strict (dir.c): for
 * every 4 KiB page of a section in strict use, the owner (the one holder
 * with a writable copy, or none) and the copyset (the holders with read
 * copies), with the requests for each page served one at a time and the
 * recalls they need sent on the holders' recall channels.
 *
 * The directory knows connections and the section table only as opaque
 * pointers: what it needs of them (answering a request later, sending a
 * frame on a channel, keeping a connection alive, reading and writing a
 * page) comes through struct mn_dir_ops, so this module depends on
 * nothing of the server's.
 */
#ifndef DISAGG_MEMNODE_DIR_H
#define DISAGG_MEMNODE_DIR_H

#include <stdbool.h>
#include <stdint.h>

#include "dir_types.h"

/*
 * A directory for a pool of `nsections` sections of `npages` pages. Starts
 * the lease thread, which drops the holders that leave a recall unanswered
 * for lease_ms (at least 1; -EINVAL for 0), and those away (their channel
 * closed while they held pages, dir_away.h) for longer than away_ms (0:
 * dropped when the channel closes). tab (NULL: none; not owned) is where
 * the attached holders are kept on disk (dirtab.h), for mn_dir_grace_load
 * (dir_grace.h) after a restart.
 */
int mn_dir_new(const struct mn_dir_ops *ops, struct mn_table *t, uint32_t nsections,
	       uint32_t npages, unsigned lease_ms, unsigned away_ms, struct mn_dirtab *tab,
	       struct mn_dir **ret);
/* Stop the lease thread; from then on the directory sends and answers nothing. */
void mn_dir_stop(struct mn_dir *d);
/* After the server stopped: lets go of every connection still referenced. Accepts NULL. */
void mn_dir_free(struct mn_dir *d);
const struct mn_dir_counters *mn_dir_counters(const struct mn_dir *d);

/*
 * The calls below take a grant the caller has verified (signature, holder
 * = the peer, rights) for a section it found allocated with the grant's
 * generation. Errors: -errno for the reply status (-EUNATCH: the holder
 * is not attached; -EUSERS: no room for another holder).
 */
/*
 * Connection chan becomes the recall channel of holder (g->holder_id, tag)
 * for g->section; tag 0 without PROTO_FEAT_DIR_TAG. features: what chan
 * negotiated (PROTO_FEAT_DIR_VERSION: its recalls carry the page's
 * version; PROTO_FEAT_DIR_RECLAIM: it may be away, dir_away.h).
 */
int mn_dir_attach(struct mn_dir *d, struct mn_conn *chan, const struct proto_grant *g,
		  uint16_t tag, uint32_t features);
int mn_dir_detach(struct mn_dir *d, const struct proto_grant *g, uint16_t tag);
/*
 * DIR_READ (write false) or DIR_WRITE of page `page` by holder
 * (g->holder_id, tag), request header h on connection c; take: a DIR_READ
 * with PROTO_DIR_REQ_TAKE (the grant allows writing). 0 with the reply in
 * *ret (to queue now), MN_DIR_DEFERRED (ops->hold was called; ops->post
 * answers), or -errno.
 */
int mn_dir_request(struct mn_dir *d, struct mn_conn *c, const struct proto_hdr *h,
		   const struct proto_grant *g, uint16_t tag, uint32_t page, bool write,
		   bool take, struct mn_obuf **ret);
/*
 * DIR_RECALL_ACK of recall `seq` on channel chan; dirty: the page, or NULL;
 * quiet: no reply goes back if it succeeds (counted apart).
 */
int mn_dir_ack(struct mn_dir *d, struct mn_conn *chan, uint64_t seq, const void *dirty, bool quiet);
/*
 * Connection chan closed: the holders whose channel it was are away
 * (dir_away.h), or dropped if nothing of theirs is worth waiting for.
 */
void mn_dir_conn_closed(struct mn_dir *d, struct mn_conn *chan);

/* Copy the drops with seq > after, oldest first, into out (up to max): how many. */
size_t mn_dir_drops(struct mn_dir *d, uint64_t after, struct mn_dir_drop *out, size_t max);

#endif /* DISAGG_MEMNODE_DIR_H */
