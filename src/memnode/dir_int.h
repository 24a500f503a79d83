/* SPDX-License-Identifier: MIT */
/*
 * The coherence directory's insides (dir.c, dir_grace.c): not for the
 * rest of the memory node, which sees dir.h only.
 */
#ifndef DISAGG_MEMNODE_DIR_INT_H
#define DISAGG_MEMNODE_DIR_INT_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dir_types.h"
#include "dirtab.h"
#include "log.h"

#define DIR_NONE 0xff
#define RTAB_SIZE 1024           /* recall hash buckets (by seq) */

_Static_assert(PROTO_DIR_MAX_HOLDERS <= 16 && PROTO_DIR_MAX_HOLDERS < DIR_NONE,
	       "a copyset is 16 bits, an owner a slot number below DIR_NONE");

enum drop_why {
	DROP_LEASE, DROP_CLOSED, DROP_DETACH, DROP_REATTACH, DROP_RETIRE, DROP_GRACE, DROP_AWAY,
};

struct dir_holder {
	bool used;
	uint64_t node;
	uint16_t tag;                /* which of the node's holders (PROTO_FEAT_DIR_TAG) */
	uint32_t incarnation;        /* changes whenever the slot is attached or dropped */
	uint32_t grants;             /* DIR_READ/DIR_WRITE answered OK since it attached */
	bool versions;               /* its channel negotiated PROTO_FEAT_DIR_VERSION */
	bool reclaims;               /* ... PROTO_FEAT_DIR_RECLAIM: it can hand pages back */
	struct mn_conn *chan;        /* its recall channel (ops->ref); NULL: not back since a restart */
	/*
	 * Not 0: its channel closed (or was replaced) while it held pages; until
	 * then it may attach again, hand them back and say DONE (dir_away.c).
	 */
	uint64_t back_by_ns;
};

struct dir_job;

struct dir_sec {
	uint32_t idx, generation;
	unsigned nholders, njobs;
	struct dir_holder h[PROTO_DIR_MAX_HOLDERS];
	bool grace;                  /* after a restart: requests wait for the reclaims */
	uint16_t expect;             /* holder slots that may still reclaim (grace) */
	uint8_t *reclaimed;          /* grace: a bit per page its owner handed back */
	uint8_t *owner;              /* per page: a holder slot, or DIR_NONE */
	uint8_t *lastw;              /* per page: the holder slot that wrote it last, or DIR_NONE */
	uint8_t *mig;                /* per page: 1 when migratory */
	uint16_t *copyset;           /* per page: a bit per holder slot */
	struct dir_job **queue;      /* per page: its requests in arrival order, the first running */
};

/* A request answered on its own worker, inside mn_dir_request(). */
struct dir_sync {
	struct mn_obuf *reply;
	bool done;
};

struct dir_job {
	struct dir_job *next;        /* in its page's queue */
	struct dir_sec *s;
	struct mn_conn *conn;        /* the requester (ops->hold, unless answered at once) */
	struct mn_obuf *reply;       /* allocated with the job, for the largest answer */
	struct dir_sync *sync;
	uint64_t start_ns;
	uint16_t op;
	uint32_t page, incarnation;
	uint8_t holder;
	bool write, started;
	bool take;                   /* a read that may take ownership (PROTO_DIR_REQ_TAKE) */
	bool migrate;                /* ... and will: the owner was invalidated */
	int err;                     /* a recall could not be sent: fail, change nothing */
	unsigned pending;            /* recalls not settled */
};

struct dir_recall {
	struct dir_recall *hnext;    /* hash chain */
	struct dir_recall *prev, *next; /* lease order, oldest first */
	struct dir_recall *gather;   /* dir_holder_drop()'s list */
	struct dir_job *job;
	uint64_t seq, sent_ns, deadline_ns;
	uint8_t holder;
	uint32_t mode;
};

struct mn_dir {
	pthread_mutex_t mu;
	pthread_cond_t cond;         /* the lease thread: an earlier deadline, or stop */
	pthread_t thread;
	bool started, stopping;
	const struct mn_dir_ops *ops;
	struct mn_table *table;
	uint32_t nsections, npages;
	uint64_t lease_ns, next_seq;
	uint64_t lease_wake_ns;      /* when the lease thread looks next (under mu) */
	struct dir_sec **secs;       /* by section index; NULL: not in strict use */
	struct dir_recall *rtab[RTAB_SIZE];
	struct dir_recall *oldest, *newest;
	struct mn_dir_counters cnt;
	struct mn_dirtab *tab;       /* the holders on disk (NULL: the pool dies with us) */
	unsigned ngrace;             /* sections in their grace period */
	uint64_t grace_deadline_ns;
	uint64_t away_ns;            /* how long a holder whose channel closed may take to come back */
	unsigned naway;              /* holders away now (dir_away.c) */
	struct mn_dir_drop drops[MN_DIR_DROPS];   /* a ring: seq % MN_DIR_DROPS */
	uint64_t ndrops;
};


/* ---- sections and holders (dir.c, dir_grace.c) ---- */

static inline void sec_free(struct dir_sec *s)
{
	if (!s)
		return;
	free(s->owner);
	free(s->lastw);
	free(s->mig);
	free(s->copyset);
	free(s->queue);
	free(s->reclaimed);
	free(s);
}

static inline struct dir_sec *dir_sec_new(struct mn_dir *d, uint32_t idx, uint32_t generation)
{
	struct dir_sec *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->idx = idx;
	s->generation = generation;
	s->owner = malloc(d->npages);
	s->lastw = malloc(d->npages);
	s->mig = calloc(d->npages, 1);
	s->copyset = calloc(d->npages, sizeof(*s->copyset));
	s->queue = calloc(d->npages, sizeof(*s->queue));
	if (!s->owner || !s->lastw || !s->mig || !s->copyset || !s->queue) {
		sec_free(s);
		return NULL;
	}
	memset(s->owner, DIR_NONE, d->npages);
	memset(s->lastw, DIR_NONE, d->npages);
	d->secs[idx] = s;
	atomic_fetch_add(&d->cnt.sections, 1);
	return s;
}

static inline int dir_holder_find(const struct dir_sec *s, uint64_t node, uint16_t tag)
{
	for (int i = 0; i < PROTO_DIR_MAX_HOLDERS; i++)
		if (s->h[i].used && s->h[i].node == node && s->h[i].tag == tag)
			return i;
	return -1;
}


/* Section s leaves its grace period after a restart (dir_grace.c; d->mu held). */
static inline void dir_grace_end(struct mn_dir *d, struct dir_sec *s)
{
	if (!s->grace)
		return;
	s->grace = false;
	free(s->reclaimed);
	s->reclaimed = NULL;
	d->ngrace--;
	atomic_store(&d->cnt.grace_sections, d->ngrace);
	log_info("section %u: grace period over, %u holder(s) attached", s->idx, s->nholders);
}

#endif /* DISAGG_MEMNODE_DIR_INT_H */
