/* SPDX-License-Identifier: MIT */
/*
 * Reply frames and a connection's output queue (obuf.c): a frame is built
 * whole (header and payload, contiguous) and queued; the queue goes out
 * through the connection's byte I/O (fio.h) as many frames at a time as
 * it takes. A worker's post queue takes frames from other threads.
 */
#ifndef DISAGG_MEMNODE_OBUF_H
#define DISAGG_MEMNODE_OBUF_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fio.h"
#include "disagg/proto.h"

struct mn_conn;

/* An outgoing frame: header + payload, contiguous. */
struct mn_obuf {
	struct mn_obuf *next;
	struct mn_conn *conn;    /* set while posted from another thread */
	uint64_t start_ns;       /* posted: when the request arrived */
	uint16_t op;             /* posted: its opcode */
	bool push;               /* posted: a frame the node sends on its own (no request) */
	bool kill;               /* not a frame: close the connection once what is before it is written */
	size_t len, off;
	uint8_t data[];
};

/* A FIFO of frames, and what it holds. */
struct mn_outq {
	struct mn_obuf *head, **tail;
	size_t bytes;
	unsigned frames;
};

/* Allocate a reply frame for request `req` with `len` bytes of payload (at data + 32). */
struct mn_obuf *mn_reply_new(const struct proto_hdr *req, uint32_t status, size_t len);
/* A request frame the node sends on its own (DIR_RECALL), `len` bytes of payload. */
struct mn_obuf *mn_request_new(uint16_t op, uint64_t req_id, size_t len);
/*
 * Shrink a reply built by mn_reply_new() to `len` bytes of payload (no
 * more than it was made with) and set its status.
 */
void mn_reply_set(struct mn_obuf *ob, uint32_t status, size_t len);
/* The status in a frame's header. */
uint32_t mn_obuf_status(const struct mn_obuf *ob);
void mn_outq_push(struct mn_outq *q, struct mn_obuf *ob);
/* Free every frame. */
void mn_outq_clear(struct mn_outq *q);
/*
 * Write what io takes: >0 bytes written (sent frames freed), 0 nothing
 * could be written now (or nothing queued), <0 the connection is broken.
 * Bytes io staged (fio_wpending) are pushed first.
 */
ssize_t mn_outq_flush(struct mn_outq *q, struct fio *io);

/*
 * Frames handed to a worker by other threads (answers of COPY and of the
 * directory, recalls): a locked FIFO, and an eventfd that the worker polls
 * and that wakes it.
 */
struct mn_postq {
	pthread_mutex_t mu;
	struct mn_obuf *head, **tail;
	int efd;                 /* -1 until mn_postq_init() succeeded */
};

int mn_postq_init(struct mn_postq *q);
/* Frees the frames still queued; accepts a queue whose init failed. */
void mn_postq_destroy(struct mn_postq *q);
/* Queue ob (any thread) and wake the worker. */
void mn_postq_push(struct mn_postq *q, struct mn_obuf *ob);
/* Wake the worker without a frame (any thread). */
void mn_postq_kick(struct mn_postq *q);
/* The worker: everything queued, oldest first (linked by ->next), the eventfd drained. */
struct mn_obuf *mn_postq_take(struct mn_postq *q);

#endif /* DISAGG_MEMNODE_OBUF_H */
