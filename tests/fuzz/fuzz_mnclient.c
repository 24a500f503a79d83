// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the memory-node client's receive path (mnconn.c,
 * mnclient.c, mnhello.c): the handshake replies, then reply headers
 * matched to requests by id, payloads into staging or straight into the
 * caller's buffers, the lone-READ speculation, error replies, the recalls
 * a node sends on a recall channel (taken between replies, kept for
 * mnc_dir_next_recall) and every way of breaking the connection.
 *
 * The target plays the memory node on one end of a socketpair, from a
 * thread; the client connects over the other end with mnc_connect_fd().
 * Input layout:
 *   flags (1)        bit 0: sign the HELLO reply with the right MAC (else
 *                    the input's MAC is sent and the client must refuse it)
 *   HELLO reply      sizeof(struct proto_hello_rep) bytes, wire order
 *   AUTH status (1)  the status of the AUTH reply
 *   nops (1), then nops operations of OP_SIZE bytes each: what the client
 *                    is asked to do (see run_op)
 *   the rest         the node's byte stream after AUTH, written while the
 *                    client's requests are read and dropped, then closed
 * Request ids are predictable (sequence << 16 | slot), so seeds carry
 * replies that match (gen_corpus.py).
 *
 * Completions are checked: a status is 0 or -errno, a length never larger
 * than the buffer given; ASan checks that payloads land inside buffers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "fuzz_util.h"
#include "grant.h"
#include "log.h"
#include "mnadmin.h"
#include "mnclient.h"
#include "wire.h"

#define NODE_ID 7
#define CLIENT_ID 42
#define OP_SIZE 8
#define MAX_OPS 32
#define MAX_EXT 3
#define MAX_EXT_PAGES 8

static const struct auth_key fuzz_key = { .bytes = "fuzz-key-fuzz-key-fuzz-key-0123" };
static struct grant_key *fuzz_gkey;     /* mints the grants the client presents */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_LVL_ERROR);
	return 0;
}

/* ---- the node's side ------------------------------------------------------ */

struct node {
	int fd;
	bool sign;
	uint32_t auth_status;
	struct proto_hello_rep hello;     /* wire order */
	const uint8_t *stream;
	size_t len;
};

static int node_read(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t k = read(fd, p, len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EPIPE;
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

static void node_reply(int fd, uint16_t op, uint64_t id, uint32_t status, const void *p,
		       size_t len)
{
	uint8_t buf[PROTO_HDR_SIZE + sizeof(struct proto_hello_rep)];
	struct proto_hdr h = {
		.magic = PROTO_MAGIC,
		.version = PROTO_VERSION,
		.opcode = op,
		.flags = PROTO_F_REPLY,
		.len = (uint32_t)len,
		.req_id = id,
		.status = status,
	};

	wire_hdr_encode(&h, buf);
	if (len)
		memcpy(buf + PROTO_HDR_SIZE, p, len);
	(void)!send(fd, buf, PROTO_HDR_SIZE + len, MSG_NOSIGNAL);
}

/* Write the stream while dropping requests; close; drain until the client closes. */
static void node_stream(struct node *n)
{
	static __thread uint8_t sink[1 << 16];
	const uint8_t *s = n->stream;
	size_t left = n->len;
	bool shut = false;

	for (;;) {
		struct pollfd pfd = { .fd = n->fd, .events = POLLIN | (shut ? 0 : POLLOUT) };
		ssize_t k;

		if (!shut && !left) {
			shutdown(n->fd, SHUT_WR);
			shut = true;
		}
		if (fz_poll(&pfd, 1, -1) < 0)
			return;
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			k = recv(n->fd, sink, sizeof(sink), MSG_DONTWAIT);
			if (k == 0 || (k < 0 && errno != EAGAIN))
				return;
		}
		if (!shut && (pfd.revents & POLLOUT)) {
			k = send(n->fd, s, left, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k > 0) {
				s += k;
				left -= (size_t)k;
			} else if (k < 0 && errno != EAGAIN) {
				left = 0;
			}
		}
	}
}

static void *node_main(void *arg)
{
	struct node *n = arg;
	uint8_t req[PROTO_HDR_SIZE + sizeof(struct proto_hello_req)];
	struct proto_hello_req hq;
	struct proto_hello_rep rep = n->hello;
	struct proto_hdr h;

	if (node_read(n->fd, req, sizeof(req)) < 0)
		return NULL;
	CHECK(wire_hdr_decode(req, PROTO_HDR_SIZE, &h) == 0 && h.opcode == PROTO_OP_HELLO);
	memcpy(&hq, req + PROTO_HDR_SIZE, sizeof(hq));
	wire_hello_req_swap(&hq);
	if (n->sign) {
		struct proto_hello_rep host = rep;

		wire_hello_rep_swap(&host);
		CHECK(auth_hello_mac(&fuzz_key, true, hq.nonce, host.nonce, hq.node_id,
				     host.node_id, rep.mac) == 0);
	}
	node_reply(n->fd, PROTO_OP_HELLO, h.req_id, PROTO_ST_OK, &rep, sizeof(rep));
	/* AUTH comes only if the client accepted the HELLO reply. */
	if (node_read(n->fd, req, PROTO_HDR_SIZE + sizeof(struct proto_auth_req)) < 0)
		return NULL;
	CHECK(wire_hdr_decode(req, PROTO_HDR_SIZE, &h) == 0 && h.opcode == PROTO_OP_AUTH);
	node_reply(n->fd, PROTO_OP_AUTH, h.req_id, n->auth_status, NULL, 0);
	node_stream(n);
	return NULL;
}

/* ---- the client's side ---------------------------------------------------- */

struct pending {
	void *buf;
	size_t cap;
	bool done;
};

static void on_done(void *opaque, int status, size_t len)
{
	struct pending *p = opaque;

	CHECK(!p->done);
	CHECK(status <= 0 && status > -4096);
	CHECK(len <= p->cap && (status == 0 || len == 0));
	p->done = true;
}

static void grant_for(uint32_t section, struct proto_grant *ret)
{
	if (!fuzz_gkey)
		CHECK(grant_key_generate(&fuzz_gkey) == 0);
	CHECK(grant_mint(fuzz_gkey, NODE_ID, CLIENT_ID, section, 1, 0, PROTO_R_ALL, 0, ret) == 0);
}

/* An extent vector from two input bytes; returns the page total. */
static uint32_t extents(uint8_t a, uint32_t d, struct proto_extent *ext, uint32_t *ret_n)
{
	uint32_t n = a % MAX_EXT + 1, total = 0;

	for (uint32_t i = 0; i < n; i++) {
		ext[i].page = d + i * 64;
		ext[i].count = (uint32_t)((a >> 2) + i) % MAX_EXT_PAGES + 1;
		total += ext[i].count;
	}
	*ret_n = n;
	return total;
}

/* One operation: kind, then three parameter bytes and a 32-bit value. */
static void run_op(struct mnc *c, const uint8_t *op, struct pending *pend)
{
	uint8_t kind = op[0], a = op[1], b = op[2];
	uint32_t d, next, pages;
	struct proto_extent ext[MAX_EXT];
	struct proto_grant g;
	uint64_t old;
	int r = 0;

	memcpy(&d, op + 4, 4);
	d = le32toh(d);
	grant_for(b, &g);
	switch (kind % 21) {
	case 0:
		r = mnc_ping(c);
		break;
	case 1: {
		struct proto_section s;

		r = mnc_alloc(c, d, &s);
		break;
	}
	case 2:
		r = mnc_free(c, a, b, d);
		break;
	case 3: {
		struct proto_section ents[64];
		uint32_t count = 0, nx = 0, max = d % 65;

		r = mnc_list(c, a, max, ents, &count, &nx);
		CHECK(r < 0 || count <= max);
		break;
	}
	case 4:
	case 5:
	case 6:
	case 7: {
		bool write = kind % 2, async = kind % 16 < 6;

		pages = extents(a, d % 4096, ext, &next);
		pend->cap = (size_t)pages * PROTO_PAGE_SIZE;
		pend->buf = calloc(1, pend->cap);
		CHECK(pend->buf);
		if (async && write)
			r = mnc_write_async(c, &g, ext, next, pend->buf, on_done, pend);
		else if (async)
			r = mnc_read_async(c, &g, ext, next, pend->buf, on_done, pend);
		else if (write)
			r = mnc_write(c, &g, ext, next, pend->buf);
		else
			r = mnc_read(c, &g, ext, next, pend->buf);
		if (r < 0 || !async)
			pend->done = true;
		break;
	}
	case 8:
	case 9:
		pend->cap = (size_t)(a % 16 + 1) * PROTO_PAGE_SIZE;
		pend->buf = calloc(1, pend->cap);
		CHECK(pend->buf);
		pend->done = true;
		r = kind % 2 ? mnc_write_range(c, &g, d % 4096, a % 16 + 1, pend->buf)
			     : mnc_read_range(c, &g, d % 4096, a % 16 + 1, pend->buf);
		break;
	case 10:
		r = mnc_cas(c, &g, (uint64_t)d * 8, a, b, &old);
		break;
	case 11:
		r = mnc_fadd(c, &g, (uint64_t)d * 8, a, &old);
		break;
	case 12: {
		struct proto_copy_rep rep;

		struct proto_grant src;

		grant_for(a, &src);
		(void)b;
		r = mnc_copy(c, &src, &g, "127.0.0.1:1", &rep);
		break;
	}
	case 13: {
		struct proto_stats_rep st;

		r = mnc_stats(c, &st);
		break;
	}
	case 14: {
		uint32_t epoch;

		r = mnc_fence(c, &g, &epoch);
		break;
	}
	case 15:
		r = a % 2 ? mnc_poll(c, 0) : mnc_drain(c);
		break;
	case 16:
		r = mnc_dir_attach(c, &g, (uint16_t)(a % 3));
		break;
	case 17:
	case 18: {
		bool had = kind % 21 == 17;

		pend->cap = PROTO_PAGE_SIZE;
		pend->buf = calloc(1, pend->cap);
		CHECK(pend->buf);
		pend->done = true;
		r = kind % 21 == 17 ? mnc_dir_read(c, &g, (uint16_t)(a % 3), d % 512, pend->buf,
						   d & 1 ? &had : NULL)
				    : mnc_dir_write(c, &g, (uint16_t)(a % 3), d % 512, pend->buf, &had);
		break;
	}
	case 19: {
		struct mnc_recall rc;

		r = mnc_dir_next_recall(c, a % 2 ? 0 : 5, &rc);
		CHECK(r < 0 || rc.mode == MNC_RECALL_DOWNGRADE || rc.mode == MNC_RECALL_INVALIDATE);
		if (r == -ETIMEDOUT)
			r = 0;
		break;
	}
	case 20: {
		static const uint8_t page[PROTO_PAGE_SIZE];

		r = mnc_dir_recall_ack(c, d, a % 2 ? page : NULL);
		break;
	}
	}
	CHECK(r > -4096);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct pending pend[MAX_OPS] = { 0 };
	struct mnc_opts o = { .key = &fuzz_key, .node_id = CLIENT_ID, .timeout_ms = 1000 };
	struct node n = { .sign = fz_u8(&in) & 1 };
	int fds0 = test_open_fds(), sv[2];
	uint8_t ops[MAX_OPS * OP_SIZE];
	struct mnc *c = NULL;
	pthread_t t;
	unsigned nops;
	int r;

	fz_bytes(&in, &n.hello, sizeof(n.hello));
	n.auth_status = fz_u8(&in);
	nops = fz_u8(&in) % (MAX_OPS + 1);
	fz_bytes(&in, ops, (size_t)nops * OP_SIZE);
	n.stream = in.p;
	n.len = in.n;
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	n.fd = sv[1];
	CHECK(pthread_create(&t, NULL, node_main, &n) == 0);
	r = mnc_connect_fd(&o, sv[0], &c);
	if (r == 0) {
		const struct mnc_info *info = mnc_info(c);

		CHECK(info->max_pages >= 1 && info->max_pages <= PROTO_MAX_PAGES);
		CHECK(info->max_inflight >= 1 && info->max_inflight <= PROTO_MAX_INFLIGHT);
		for (unsigned i = 0; i < nops; i++)
			run_op(c, ops + i * OP_SIZE, &pend[i]);
		mnc_close(c);
	}
	pthread_join(t, NULL);
	close(sv[1]);
	for (unsigned i = 0; i < nops; i++) {
		CHECK(r < 0 || pend[i].done || !pend[i].buf);
		free(pend[i].buf);
	}
	CHECK(test_open_fds() == fds0);
	return 0;
}
