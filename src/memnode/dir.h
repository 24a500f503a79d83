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

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "obuf.h"
#include "disagg/proto.h"

#define MN_DIR_LEASE_MS 2000      /* default --dir-lease-ms */
#define MN_DIR_DEFERRED 1         /* mn_dir_request(): the reply comes later */

struct mn_conn;
struct mn_table;
struct mn_dir;

struct mn_dir_ops {
	/* Before a request is answered later: keep its connection (its worker's thread). */
	void (*hold)(struct mn_conn *c);
	/* The later answer, from any thread; drops the hold. */
	void (*post)(struct mn_conn *c, struct mn_obuf *ob, uint64_t start_ns, uint16_t op);
	/*
	 * A frame the node sends on its own (DIR_RECALL) on connection c, from
	 * any thread; an ob->kill marker closes c once what is queued is written.
	 */
	void (*push)(struct mn_conn *c, struct mn_obuf *ob);
	/* Keep connection c's memory while the directory points at it, and let it go. */
	void (*ref)(struct mn_conn *c);
	void (*unref)(struct mn_conn *c);
	/* Page `page` of section idx, allocated with `generation`: -ENOENT, -ESTALE. */
	int (*page_read)(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t page,
			 void *buf);
	int (*page_write)(struct mn_table *t, uint32_t idx, uint32_t generation, uint32_t page,
			  const void *data);
};

/* Counters and gauges for /metrics (stats.c reads them without locks). */
struct mn_dir_counters {
	_Atomic uint64_t recalls[2];     /* sent: [0] DOWNGRADE, [1] INVALIDATE */
	_Atomic uint64_t holders_lost;   /* dropped: no answer within the lease, or channel closed */
	_Atomic uint64_t pages_lost;     /* pages they owned (their unpublished writes are lost) */
	_Atomic uint64_t dirty_pages;    /* pages stored from recall answers */
	_Atomic uint64_t detached;       /* requests refused with DIR_DETACHED */
	_Atomic uint64_t migrated;       /* reads answered with ownership (migratory pages) */
	_Atomic uint64_t holders;        /* attached now */
	_Atomic uint64_t sections;       /* in strict use now */
	struct hist recall_latency;      /* recall sent -> answered (or its holder dropped) */
};

/*
 * A directory for a pool of `nsections` sections of `npages` pages. Starts
 * the lease thread, which drops the holders that leave a recall unanswered
 * for lease_ms.
 */
int mn_dir_new(const struct mn_dir_ops *ops, struct mn_table *t, uint32_t nsections,
	       uint32_t npages, unsigned lease_ms, struct mn_dir **ret);
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
 * for g->section; tag 0 without PROTO_FEAT_DIR_TAG.
 */
int mn_dir_attach(struct mn_dir *d, struct mn_conn *chan, const struct proto_grant *g,
		  uint16_t tag);
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
/* DIR_RECALL_ACK of recall `seq` on channel chan; dirty: the page, or NULL. */
int mn_dir_ack(struct mn_dir *d, struct mn_conn *chan, uint64_t seq, const void *dirty);
/* Connection chan closed: the holders whose channel it was are dropped. */
void mn_dir_conn_closed(struct mn_dir *d, struct mn_conn *chan);

/*
 * Holders lost (dropped at the lease, or their channel closed), the last
 * MN_DIR_DROPS of them, numbered from 1: what the memory node tells the
 * orchestrator with its heartbeats, which makes events of them.
 */
#define MN_DIR_DROPS 16
struct mn_dir_drop {
	uint64_t seq;
	uint32_t section, generation;
	uint64_t node;
	uint16_t tag;
	uint32_t pages;              /* pages it owned: its unpublished writes to them are lost */
	bool lease;                  /* true: no answer within the lease; false: channel closed */
};
/* Copy the drops with seq > after, oldest first, into out (up to max): how many. */
size_t mn_dir_drops(struct mn_dir *d, uint64_t after, struct mn_dir_drop *out, size_t max);

#endif /* DISAGG_MEMNODE_DIR_H */
