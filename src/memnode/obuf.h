/* SPDX-License-Identifier: MIT */
/*
 * Reply frames and a connection's output queue (obuf.c): a frame is built
 * whole (header and payload, contiguous) and queued; the queue goes out
 * through the connection's byte I/O (fio.h) as many frames at a time as
 * it takes.
 */
#ifndef DISAGG_MEMNODE_OBUF_H
#define DISAGG_MEMNODE_OBUF_H

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

#endif /* DISAGG_MEMNODE_OBUF_H */
