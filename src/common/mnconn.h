/* SPDX-License-Identifier: MIT */
/*
 * The connection engine of the memory-node client (mnconn.c): the state
 * of one connection (struct mnc), its request slots, the send queue, the
 * receive path that matches replies to requests (and takes the recalls a
 * node sends on a recall channel), and waiting. The client's interface
 * (mnclient.h, mnclient.c) builds every request on it. Only the client's
 * own files include this header; everyone else sees struct mnc as opaque.
 */
#ifndef DISAGG_MNCONN_H
#define DISAGG_MNCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cert.h"
#include "fifo.h"
#include "fio.h"
#include "mntypes.h"
#include "disagg/proto.h"

#define MNC_HEAD_MAX     (PROTO_HDR_SIZE + sizeof(struct proto_io_req) + \
			  PROTO_MAX_EXTENTS * sizeof(struct proto_extent))
#define MNC_STG_SIZE     (64u << 10)
#define MNC_RCVTIMEO_MS  100          /* SO_RCVTIMEO: a blocking receive wakes that often */
#define MNC_NONE         (-1)

struct mnc_req {
	uint64_t id;                 /* 0 = free */
	uint16_t op;
	bool exact;                  /* reply payload must be exactly rlen (else <= rlen) */
	bool noreply;                /* complete once sent: no reply comes when it succeeds */
	int next;                    /* free list or send queue link */
	mnc_done_fn done;
	void *opaque;
	void *rbuf;                  /* where reply payload goes (NULL: none expected) */
	size_t rlen;
	/* send side */
	size_t head_len, sent, total;
	const void *data;            /* WRITE page data (caller's) */
	uint8_t head[MNC_HEAD_MAX];
};

struct mnc {
	int fd;
	struct cert_id peer;         /* the server's certificate (TLS) */
	struct fio io;               /* plain or TLS byte I/O on fd */
	int err;                     /* 0, or why the connection is broken */
	int timeout_ms;
	struct mnc_info info;
	uint64_t seq;
	unsigned cap, inflight;
	unsigned completions;        /* requests completed, ever (mnc_poll's count) */
	unsigned in_callback;        /* completion callbacks running (submissions wait) */
	int free_head, last;         /* last: most recently allocated slot */
	int sq_head, sq_tail;        /* send queue */
	size_t sq_bytes;             /* its unsent bytes */
	struct mnc_req *slots;
	/* receive state */
	struct proto_hdr rh;         /* current reply header (when in_payload) */
	struct mnc_req *rreq;        /* its request (NULL: discard payload) */
	uint8_t *rdst;               /* payload destination (NULL: discard) */
	size_t rgot;
	bool in_payload;
	bool rpush;                  /* the current frame is a DIR_RECALL (into rcall) */
	bool chan;                   /* a recall channel: DIR_RECALL frames are taken */
	struct proto_dir_recall rcall;
	struct fifo recalls;         /* struct mnc_recall, not taken yet */
	size_t stg_off, stg_len;     /* unconsumed staging bytes: [stg_off, stg_len) */
	uint64_t rx_ns, tx_ns;       /* when bytes last came in and went out (stall reports) */
	uint64_t rx_bytes, tx_bytes; /* how many, ever */
	uint8_t stg[MNC_STG_SIZE];
};

/* Break the connection: every outstanding request completes with err. */
void mnconn_fail_all(struct mnc *c, int err);
/*
 * One round of I/O: send what is queued, then receive, sleeping until
 * `deadline` (ns, 0 = don't sleep, UINT64_MAX = forever) if nothing comes,
 * then send what the completions queued.
 * Returns 0 (progress made or deadline passed) or <0 when broken.
 */
int mnconn_io_round(struct mnc *c, uint64_t deadline);
/* now_ns() + ms, UINT64_MAX for ms < 0. */
uint64_t mnconn_deadline_after(int ms);
/* Wait until *flag is set (or nothing is in flight, flag NULL); a deadline breaks the connection. */
int mnconn_wait_until(struct mnc *c, const bool *flag, uint64_t deadline);
/* A free request slot, waiting for replies while the table is full. */
int mnconn_get_slot(struct mnc *c, struct mnc_req **ret);
/*
 * Queue request r: its header is encoded in front of the `fixed_len`
 * payload bytes already in r->head, `data_len` bytes from `data` follow
 * (not copied). From here on its callback will run; returns 0.
 */
int mnconn_submit(struct mnc *c, struct mnc_req *r, uint16_t op, size_t fixed_len,
		  const void *data, size_t data_len);

/* A synchronous wait: mnconn_sync_done as the callback, &sync as its opaque. */
struct mnconn_sync {
	bool done;
	int status;
	size_t len;
};
void mnconn_sync_done(void *opaque, int status, size_t len);
/* Wait up to ms for it: its status, or why the wait failed. */
int mnconn_sync_wait(struct mnc *c, struct mnconn_sync *w, int ms);
/*
 * A synchronous request: a fixed payload `req` (already little-endian),
 * `datalen` more bytes from `data`, and a reply of exactly (exact) or at
 * most `replen` bytes into `rep` (*ret_len, may be NULL: its length).
 */
int mnconn_call(struct mnc *c, uint16_t op, const void *req, size_t reqlen, const void *data,
		size_t datalen, void *rep, size_t replen, bool exact, int ms, size_t *ret_len);
/*
 * A request the server does not answer when it succeeds: it completes once
 * written (returns then: data may be reused). A refusal arrives as a reply
 * whose slot is gone, and breaks the connection (start_reply: only for
 * DIR_RECALL_ACK on a recall channel, the one such request).
 */
int mnconn_send_only(struct mnc *c, uint16_t op, const void *req, size_t reqlen,
		     const void *data, size_t datalen, int ms);

#endif /* DISAGG_MNCONN_H */
