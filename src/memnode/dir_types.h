/* SPDX-License-Identifier: MIT */
/*
 * The coherence directory's types (dir.h has its functions): the
 * operations it needs of the server, its counters, and the record of a
 * lost holder. A header of its own so that the directory's insides
 * (dir_int.h) need not include dir.h.
 */
#ifndef DISAGG_MEMNODE_DIR_TYPES_H
#define DISAGG_MEMNODE_DIR_TYPES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "obuf.h"
#include "disagg/proto.h"

#define MN_DIR_LEASE_MS 2000      /* default --dir-lease-ms */
#define MN_DIR_GRACE_MS 10000     /* default --dir-grace-ms */
#define MN_DIR_DEFERRED 1         /* mn_dir_request(): the reply comes later */

struct mn_conn;
struct mn_table;
struct mn_dir;
struct mn_dirtab;

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
	_Atomic uint64_t acks[2];        /* recall answers taken: [0] replied to, [1] quiet */
	_Atomic uint64_t detached;       /* requests refused with DIR_DETACHED */
	_Atomic uint64_t migrated;       /* reads answered with ownership (migratory pages) */
	_Atomic uint64_t reclaimed;      /* pages stored from DIR_RECLAIM after a restart */
	_Atomic uint64_t superseded;     /* RECALLED pages set aside: a later owner's is newer */
	_Atomic uint64_t grace_sections; /* sections in their grace period now */
	_Atomic uint64_t holders_away;   /* channel closed while holding pages: may come back, now */
	_Atomic uint64_t holders_back;   /* away holders that came back and handed back their pages */
	_Atomic uint64_t holders;        /* attached now */
	_Atomic uint64_t sections;       /* in strict use now */
	struct hist recall_latency;      /* recall sent -> answered (or its holder dropped) */
};

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
#endif /* DISAGG_MEMNODE_DIR_TYPES_H */
