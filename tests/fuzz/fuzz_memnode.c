// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the memory node's connection state machine: the
 * framing in server.c (buffering, pipelining, large payloads, backpressure,
 * error replies and closing) and the handlers behind it, HELLO and AUTH
 * included.
 *
 * Each input gets a fresh node (an anonymous pool of two small sections
 * whose generations start at 0, so the first allocation is generation 1;
 * one worker thread) and one connection to it over a socketpair, handed to
 * the worker with mn_server_adopt() as if it had been accepted. The input
 * is written to the connection as a byte stream while the replies are read
 * and dropped; then the stream is closed and the node torn down, so no
 * state survives from one input to the next.
 *
 * The first input byte is a set of flags:
 *   bit 0    the target performs HELLO and AUTH itself first (with the
 *            features in bits 1..5: atomics, copy, fence, and revoke and
 *            the directory, which so go with bits 4 and 5), as the
 *            orchestrator (AUTH carries the grant key's proof), so the
 *            stream runs authenticated with the capability for ALLOC,
 *            LIST, COPY and FREE; a fuzzer cannot compute the
 *            challenge-response itself.
 *            Without it the stream must begin with its own HELLO.
 *   bit 4    every grant in the stream's frames is signed with the grant
 *            key, so page I/O, atomics, FENCE and the directory's requests
 *            get past the grant check to the section table and the pool;
 *   bit 5    with bit 4: each grant is first made out to this node and
 *            this peer (its memnode and holder ids replaced);
 *   bit 6    a rival holder (node 43, its own connection) allocates section
 *            0 (generation 1) before the stream runs, attaches to its
 *            directory and owns its pages 0..3, so that the stream's
 *            DIR_READ and DIR_WRITE of them send it recalls;
 *   bit 7    the rival answers its recalls (with the page, for even pages);
 *            without it, it never does and the lease (10 ms here) drops it.
 * The rest is the stream. A COPY's target address is replaced by one that
 * refuses connections at once (127.0.0.1 port 0): the copy thread runs and
 * fails without reaching any other process.
 *
 * Seed inputs: tests/fuzz/corpus/memnode/ (made by gen_corpus.py).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "fuzz_fabric.h"
#include "grant.h"
#include "grantcache.h"
#include "log.h"
#include "memnode.h"
#include "once.h"
#include "wire.h"

#define NODE_ID 7
#define PEER_ID 42
#define RIVAL_ID 43
#define RIVAL_PAGES 4
#define LEASE_MS 10

_Static_assert(sizeof(struct proto_dir_req) <= 256, "fz_send_frame takes the rival's DIR_WRITE");

enum {
	F_HANDSHAKE = 1u << 0,
	F_FEAT_SHIFT = 1,
	F_SIGN = 1u << 4,
	F_ADDRESSED = 1u << 5,
	F_RIVAL = 1u << 6,
	F_RIVAL_ANSWERS = 1u << 7,
};

static const struct auth_key fuzz_key = { .bytes = "fuzz-key-fuzz-key-fuzz-key-0123" };
static struct grant_key *fuzz_gkey;     /* the orchestrator's, made once */
static const char copy_addr[] = "127.0.0.1:0";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_LVL_ERROR);
	CHECK(grant_key_generate(&fuzz_gkey) == 0);
	return 0;
}

static struct mn_node *node_new(void)
{
	struct mn_pool_opts po = {
		.backing = MN_BACK_ANON,
		.size = 2 * MN_MIN_SECTION_SIZE,
		.section_size = MN_MIN_SECTION_SIZE,
		.node_id = NODE_ID,
	};
	struct mn_node *n = calloc(1, sizeof(*n));
	char err[256];

	CHECK(n);
	n->node_id = NODE_ID;
	n->key = fuzz_key;
	n->grant_key = fuzz_gkey;
	n->limits = (struct mn_limits){ .max_conns = 4, .max_per_addr = 4, .max_unauth = 4,
					.max_unauth_per_addr = 4, .handshake_ms = 5000 };
	n->listen_fd = -1;
	CHECK(mn_admit_new(&n->limits, &n->admit) == 0);
	CHECK(mn_grant_cache_new(4, &n->gcache) == 0);
	pthread_mutex_init(&n->copy_mu, NULL);
	CHECK(revlist_init(&n->revoked, NULL) == 0);     /* REVOKE keeps its list in memory */
	CHECK(mn_pool_open(&po, &n->pool, err, sizeof(err)) == 0);
	CHECK(mn_table_init(&n->table, n->pool) == 0);
	CHECK(mn_once_open(NULL, n->table.nsections, &n->once) == 0);
	/* Generations from 0, not a random base: inputs replay, seeds' grants match. */
	for (uint32_t i = 0; i < n->table.nsections; i++)
		n->table.secs[i].generation = 0;
	CHECK(mn_dir_new(&mn_dir_node_ops, &n->table, n->pool->nsections, n->pool->section_pages,
			 LEASE_MS, LEASE_MS, NULL, &n->dir) == 0);
	CHECK(mn_server_start(n, -1, 1) == 0);
	return n;
}

static void node_free(struct mn_node *n)
{
	atomic_store(&n->stopping, true);
	mn_copy_join_all(n);
	mn_dir_stop(n->dir);
	mn_server_stop(n);
	mn_dir_free(n->dir);
	mn_once_free(n->once);
	mn_table_destroy(&n->table);
	mn_pool_close(n->pool);
	pthread_mutex_destroy(&n->copy_mu);
	CHECK(atomic_load(&n->stats.connections) == 0);
	mn_grant_cache_free(n->gcache);
	mn_admit_free(n->admit);
	revlist_destroy(&n->revoked);
	free(n);
}

/* Sign one grant in place (wire order), as the orchestrator would mint it. */
static void sign_grant(uint8_t *p, bool addressed)
{
	struct proto_grant g;

	memcpy(&g, p, sizeof(g));
	wire_grant_swap(&g);
	if (addressed) {
		g.memnode_id = NODE_ID;
		g.holder_id = PEER_ID;
	}
	/* Rights the minting refuses (none, unknown bits) stay unsigned. */
	if (grant_mint(fuzz_gkey, g.memnode_id, g.holder_id, g.section, g.generation, g.epoch,
		       g.rights, g.expiry, &g) < 0)
		return;
	wire_grant_swap(&g);
	memcpy(p, &g, sizeof(g));
}

/* Walk the frames of the stream: sign grants, defuse COPY addresses. */
static void prepare_stream(uint8_t *s, size_t n, unsigned flags)
{
	size_t pos = 0;

	while (n - pos >= PROTO_HDR_SIZE) {
		uint8_t *p = s + pos + PROTO_HDR_SIZE;
		uint32_t len;
		uint16_t op;

		memcpy(&len, s + pos + offsetof(struct proto_hdr, len), sizeof(len));
		memcpy(&op, s + pos + offsetof(struct proto_hdr, opcode), sizeof(op));
		len = le32toh(len);
		op = le16toh(op);
		if (len > n - pos - PROTO_HDR_SIZE)
			break;
		if ((flags & F_SIGN) && len >= sizeof(struct proto_grant) &&
		    (op == PROTO_OP_READ || op == PROTO_OP_WRITE || op == PROTO_OP_CAS ||
		     op == PROTO_OP_FADD || op == PROTO_OP_FENCE || op == PROTO_OP_COPY ||
		     op == PROTO_OP_DIR_ATTACH || op == PROTO_OP_DIR_DETACH ||
		     op == PROTO_OP_DIR_READ || op == PROTO_OP_DIR_WRITE ||
		     op == PROTO_OP_WRITE_DIFF || op == PROTO_OP_DIR_RECLAIM ||
		     (op == PROTO_OP_SECTION_FREE && len == sizeof(struct proto_grant))))
			sign_grant(p, flags & F_ADDRESSED);
		if ((flags & F_SIGN) && op == PROTO_OP_COPY && len == sizeof(struct proto_copy_req))
			sign_grant(p + offsetof(struct proto_copy_req, dst_grant), false);
		if (op == PROTO_OP_COPY && len == sizeof(struct proto_copy_req)) {
			char *addr = (char *)p + offsetof(struct proto_copy_req, addr);

			if (addr[0] && memchr(addr, '\0', PROTO_MAX_ADDR)) {
				memset(addr, 0, PROTO_MAX_ADDR);
				memcpy(addr, copy_addr, sizeof(copy_addr));
			}
		}
		pos += PROTO_HDR_SIZE + len;
	}
}

/* ---- the rival holder -------------------------------------------------------------- */

/* Read exactly len bytes, or false (EOF, error, or nothing for a while). */
static bool rival_read(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t k;

		if (fz_poll(&pfd, 1, FZ_IO_TIMEOUT_MS) != 1)
			return false;
		k = read(fd, p, len);
		if (k < 0 && errno == EAGAIN)
			continue;
		if (k <= 0)
			return false;
		p += k;
		len -= (size_t)k;
	}
	return true;
}

/* One request of the rival's, answered OK (its payload dropped). */
static void rival_call(int fd, uint16_t op, uint64_t id, const void *p, size_t len)
{
	static uint8_t sink[PROTO_PAGE_SIZE + 64];
	uint8_t hb[PROTO_HDR_SIZE];
	struct proto_hdr h;

	fz_send_frame(fd, op, id, p, len);
	CHECK(rival_read(fd, hb, sizeof(hb)));
	CHECK(wire_hdr_decode(hb, sizeof(hb), &h) == 0);
	CHECK(h.status == PROTO_ST_OK && h.req_id == id && h.len <= sizeof(sink));
	CHECK(rival_read(fd, sink, h.len));
}

struct rival {
	int fd;
	bool answers;
	pthread_t thread;
};

/* Answer (or not) every recall until the connection ends. */
static void *rival_main(void *arg)
{
	struct rival *rv = arg;
	uint8_t ack[sizeof(struct proto_dir_ack) + PROTO_PAGE_SIZE];
	uint8_t hb[PROTO_HDR_SIZE], payload[PROTO_PAGE_SIZE + 64];
	uint64_t id = 100;
	struct proto_hdr h;

	memset(ack, 0x5a, sizeof(ack));
	while (rival_read(rv->fd, hb, sizeof(hb)) && wire_hdr_decode(hb, sizeof(hb), &h) == 0 &&
	       h.len <= sizeof(payload) && rival_read(rv->fd, payload, h.len)) {
		struct proto_dir_recall rc;
		struct proto_dir_ack a = { 0 };
		size_t len = sizeof(a);

		if ((h.flags & PROTO_F_REPLY) || !rv->answers ||
		    wire_dir_recall_decode(payload, h.len, &rc) < 0)
			continue;
		a.seq = rc.seq;
		if (rc.page % 2 == 0) {
			a.flags = PROTO_DIR_DIRTY;
			len += PROTO_PAGE_SIZE;
		}
		wire_dir_ack_swap(&a);
		memcpy(ack, &a, sizeof(a));
		/* The node may have closed meanwhile: a failed write ends the rival. */
		struct proto_hdr ah = { .magic = PROTO_MAGIC, .version = PROTO_VERSION,
					.opcode = PROTO_OP_DIR_RECALL_ACK, .len = (uint32_t)len,
					.req_id = id++ };
		uint8_t frame[PROTO_HDR_SIZE + sizeof(ack)];

		wire_hdr_encode(&ah, frame);
		memcpy(frame + PROTO_HDR_SIZE, ack, len);
		if (send(rv->fd, frame, PROTO_HDR_SIZE + len, MSG_NOSIGNAL) != (ssize_t)(PROTO_HDR_SIZE + len))
			break;
	}
	return NULL;
}

/* Node RIVAL_ID: section 0, attached, owner of its first pages; then its thread. */
static void rival_start(struct mn_node *n, struct rival *rv, bool answers)
{
	struct proto_alloc_req aq = { .owner_id = RIVAL_ID };
	struct proto_grant g;
	int sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(mn_server_adopt(n, sv[1]) == 0);
	rv->fd = sv[0];
	rv->answers = answers;
	fz_handshake(rv->fd, &fuzz_key, fuzz_gkey, PROTO_FEAT_ALL, RIVAL_ID, NODE_ID);
	wire_alloc_req_swap(&aq);
	rival_call(rv->fd, PROTO_OP_SECTION_ALLOC, 3, &aq, sizeof(aq));
	CHECK(grant_mint(fuzz_gkey, NODE_ID, RIVAL_ID, 0, 1, 0, PROTO_R_READ | PROTO_R_WRITE, 0,
			 &g) == 0);
	wire_grant_swap(&g);
	rival_call(rv->fd, PROTO_OP_DIR_ATTACH, 4, &g, sizeof(g));
	for (uint32_t p = 0; p < RIVAL_PAGES; p++) {
		struct proto_dir_req req = { .grant = g, .page = htole32(p) };

		rival_call(rv->fd, PROTO_OP_DIR_WRITE, 5 + p, &req, sizeof(req));
	}
	CHECK(pthread_create(&rv->thread, NULL, rival_main, rv) == 0);
}

static void rival_stop(struct rival *rv)
{
	shutdown(rv->fd, SHUT_RDWR);
	pthread_join(rv->thread, NULL);
	close(rv->fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds0 = test_open_fds(), sv[2];
	unsigned flags = size ? data[0] : 0;
	struct rival rv;
	struct mn_node *n;
	uint8_t *s = NULL;
	size_t len = size ? size - 1 : 0;

	if (len) {
		s = malloc(len);
		CHECK(s);
		memcpy(s, data + 1, len);
		prepare_stream(s, len, flags);
	}
	n = node_new();
	if (flags & F_RIVAL)
		rival_start(n, &rv, flags & F_RIVAL_ANSWERS);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(mn_server_adopt(n, sv[1]) == 0);
	if (flags & F_HANDSHAKE)
		/* WRITE_DIFF (ONCE too), DIR_RECLAIM, page versions: with F_SIGN (beyond the flag byte). */
		fz_handshake(sv[0], &fuzz_key, fuzz_gkey,
			     ((flags >> F_FEAT_SHIFT) & PROTO_FEAT_ALL) |
				     (flags & F_SIGN ? PROTO_FEAT_DIFF | PROTO_FEAT_DIR_RECLAIM |
							       PROTO_FEAT_DIR_VERSION |
							       PROTO_FEAT_DIFF_ONCE : 0),
			     PEER_ID, NODE_ID);
	fz_pump(sv[0], s, len);
	close(sv[0]);
	if (flags & F_RIVAL)
		rival_stop(&rv);
	node_free(n);
	free(s);
	CHECK(test_open_fds() == fds0);
	return 0;
}
