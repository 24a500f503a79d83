// SPDX-License-Identifier: MIT
/*
 * Reply frames and output queues. See obuf.h.
 */
#include "obuf.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "macro.h"
#include "wire.h"

#define MN_IOV_BATCH 64

static struct mn_obuf *frame_new(const struct proto_hdr *h)
{
	struct mn_obuf *ob = malloc(sizeof(*ob) + PROTO_HDR_SIZE + h->len);

	if (!ob)
		return NULL;
	ob->next = NULL;
	ob->conn = NULL;
	ob->push = false;
	ob->kill = false;
	ob->len = PROTO_HDR_SIZE + h->len;
	ob->off = 0;
	wire_hdr_encode(h, ob->data);
	return ob;
}

struct mn_obuf *mn_reply_new(const struct proto_hdr *req, uint32_t status, size_t len)
{
	return frame_new(&(struct proto_hdr){
		.magic = PROTO_MAGIC,
		.version = PROTO_VERSION,
		.opcode = req->opcode,
		.flags = PROTO_F_REPLY,
		.len = (uint32_t)len,
		.req_id = req->req_id,
		.status = status,
	});
}

struct mn_obuf *mn_request_new(uint16_t op, uint64_t req_id, size_t len)
{
	return frame_new(&(struct proto_hdr){
		.magic = PROTO_MAGIC,
		.version = PROTO_VERSION,
		.opcode = op,
		.len = (uint32_t)len,
		.req_id = req_id,
	});
}

void mn_reply_set(struct mn_obuf *ob, uint32_t status, size_t len)
{
	struct proto_hdr h;

	if (PROTO_HDR_SIZE + len > ob->len || wire_hdr_decode(ob->data, PROTO_HDR_SIZE, &h) < 0)
		return;
	h.status = status;
	h.len = (uint32_t)len;
	ob->len = PROTO_HDR_SIZE + len;
	wire_hdr_encode(&h, ob->data);
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

/* ---- post queues ------------------------------------------------------------- */

int mn_postq_init(struct mn_postq *q)
{
	pthread_mutex_init(&q->mu, NULL);
	q->head = NULL;
	q->tail = &q->head;
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return q->efd < 0 ? -errno : 0;
}

void mn_postq_destroy(struct mn_postq *q)
{
	struct mn_obuf *ob = q->tail ? mn_postq_take(q) : NULL;

	while (ob) {
		struct mn_obuf *next = ob->next;

		free(ob);
		ob = next;
	}
	if (q->efd >= 0)
		close(q->efd);
	q->efd = -1;
	if (q->tail)
		pthread_mutex_destroy(&q->mu);
	q->tail = NULL;
}

void mn_postq_kick(struct mn_postq *q)
{
	uint64_t one = 1;

	/* The counter cannot overflow in practice; the worker takes the queue anyway. */
	(void)!write(q->efd, &one, sizeof(one));
}

void mn_postq_push(struct mn_postq *q, struct mn_obuf *ob)
{
	ob->next = NULL;
	pthread_mutex_lock(&q->mu);
	*q->tail = ob;
	q->tail = &ob->next;
	pthread_mutex_unlock(&q->mu);
	mn_postq_kick(q);
}

struct mn_obuf *mn_postq_take(struct mn_postq *q)
{
	struct mn_obuf *list;
	uint64_t v;

	(void)!read(q->efd, &v, sizeof(v));
	pthread_mutex_lock(&q->mu);
	list = q->head;
	q->head = NULL;
	q->tail = &q->head;
	pthread_mutex_unlock(&q->mu);
	return list;
}
