// SPDX-License-Identifier: MIT
/*
 * Reply frames and output queues. See obuf.h.
 */
#include "obuf.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "wire.h"

#define MN_IOV_BATCH 64

struct mn_obuf *mn_reply_new(const struct proto_hdr *req, uint32_t status, size_t len)
{
	struct mn_obuf *ob = malloc(sizeof(*ob) + PROTO_HDR_SIZE + len);
	struct proto_hdr h = {
		.magic = PROTO_MAGIC,
		.version = PROTO_VERSION,
		.opcode = req->opcode,
		.flags = PROTO_F_REPLY,
		.len = (uint32_t)len,
		.req_id = req->req_id,
		.status = status,
	};

	if (!ob)
		return NULL;
	ob->next = NULL;
	ob->conn = NULL;
	ob->len = PROTO_HDR_SIZE + len;
	ob->off = 0;
	wire_hdr_encode(&h, ob->data);
	return ob;
}

uint32_t mn_obuf_status(const struct mn_obuf *ob)
{
	uint32_t st;

	memcpy(&st, ob->data + offsetof(struct proto_hdr, status), sizeof(st));
	return le32toh(st);
}

void mn_outq_push(struct mn_outq *q, struct mn_obuf *ob)
{
	ob->next = NULL;
	*q->tail = ob;
	q->tail = &ob->next;
	q->bytes += ob->len;
	q->frames++;
}

void mn_outq_clear(struct mn_outq *q)
{
	while (q->head) {
		struct mn_obuf *ob = q->head;

		q->head = ob->next;
		free(ob);
	}
	q->tail = &q->head;
	q->bytes = 0;
	q->frames = 0;
}

ssize_t mn_outq_flush(struct mn_outq *q, struct fio *io)
{
	ssize_t total = 0;

	if (fio_wpending(io)) {
		int r = fio_flush(io);

		if (r == -EAGAIN)
			return 0;
		if (r < 0)
			return r;
	}
	while (q->head) {
		struct iovec iov[MN_IOV_BATCH];
		struct mn_obuf *ob;
		size_t n = 0;
		ssize_t wr;

		for (ob = q->head; ob && n < MN_IOV_BATCH; ob = ob->next) {
			iov[n].iov_base = ob->data + ob->off;
			iov[n].iov_len = ob->len - ob->off;
			n++;
		}
		wr = fio_writev(io, iov, (int)n);
		if (wr < 0)
			return wr == -EAGAIN ? total : wr;
		q->bytes -= (size_t)wr;
		total += wr;
		while (wr > 0) {
			size_t left;

			ob = q->head;
			left = ob->len - ob->off;
			if ((size_t)wr < left) {
				ob->off += (size_t)wr;
				break;
			}
			wr -= (ssize_t)left;
			q->head = ob->next;
			q->frames--;
			free(ob);
		}
		if (!q->head)
			q->tail = &q->head;
	}
	return total;
}
