// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the device node's connection (src/devnode/conn.c:
 * framing, pipelining, large payloads, the depth bound, error replies and
 * closing) and the handlers behind it (ops.c), HELLO and AUTH included,
 * down to real volumes and a real io_uring ring.
 *
 * A store in a temporary directory (on /dev/shm when it exists) holds a
 * volume "v" of 1 MiB. Each input gets a fresh node (depth 4) on that
 * store and one connection over a socketpair, started with
 * dn_conn_start() as if it had been accepted; the input is written as a
 * byte stream while the replies are read and dropped, then the stream is
 * closed and the node torn down. Afterwards every volume but "v" is
 * deleted, "v" made again if the stream deleted it and given its size
 * back, so inputs do not pile up files.
 *
 * The first input byte is a set of flags:
 *   bit 0    the target performs HELLO and AUTH first, as the orchestrator
 *            (a fuzzer cannot compute the challenge-response itself), so
 *            the stream runs with the capability for VOL_* and REVOKE (its
 *            list kept in memory only); without it the stream must begin
 *            with its own HELLO;
 *   bit 1    every BLK_OPEN's grant is signed with the grant key, for this
 *            node, this peer and the key of "v", so the stream gets past
 *            the grant to a handle and the ring.
 * The rest is the stream.
 *
 * Seed inputs: tests/fuzz/corpus/devnode/ (made by gen_corpus.py).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "ops.h"
#include "fuzz_fabric.h"
#include "log.h"
#include "wireblk.h"

#define NODE_ID 9
#define PEER_ID 42

enum {
	F_HANDSHAKE = 1u << 0,
	F_SIGN = 1u << 1,
};

static const struct auth_key fuzz_key = { .bytes = "fuzz-key-fuzz-key-fuzz-key-0123" };
static struct grant_key *fuzz_gkey;
static struct dn_volumes *fuzz_vols;
static uint64_t v_key;

static void make_v(void)
{
	struct dn_volume_info info;

	if (dn_volume_stat(fuzz_vols, "v", &info) < 0) {
		CHECK(dn_volume_create(fuzz_vols, "v", 1u << 20) == 0);
		CHECK(dn_volume_stat(fuzz_vols, "v", &info) == 0);
	}
	v_key = info.key;
}

static char fuzz_dir[64];

/* At exit: the store and its directory go (libFuzzer ends with exit()). */
static void store_remove(void)
{
	struct dn_volume_info *v = NULL;
	size_t nv = 0;

	if (dn_volume_list(fuzz_vols, &v, &nv) == 0)
		for (size_t i = 0; i < nv; i++)
			(void)dn_volume_delete(fuzz_vols, v[i].name);
	free(v);
	dn_volumes_close(fuzz_vols);
	(void)rmdir(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *dir = fuzz_dir;

	log_set_level(LOG_LVL_ERROR);
	CHECK(grant_key_generate(&fuzz_gkey) == 0);
	snprintf(dir, sizeof(fuzz_dir), "%s/fuzz-devnode-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	CHECK(mkdtemp(dir));
	CHECK(dn_volumes_open(dir, &fuzz_vols) == 0);
	make_v();
	atexit(store_remove);
	return 0;
}

/* Sign BLK_OPEN grants for "v" (in place, wire order), as the orchestrator would. */
static void prepare_stream(uint8_t *s, size_t n)
{
	size_t pos = 0;

	while (n - pos >= PROTO_HDR_SIZE) {
		uint8_t *p = s + pos + PROTO_HDR_SIZE;
		struct proto_grant g;
		uint32_t len;
		uint16_t op;

		memcpy(&len, s + pos + offsetof(struct proto_hdr, len), sizeof(len));
		memcpy(&op, s + pos + offsetof(struct proto_hdr, opcode), sizeof(op));
		len = le32toh(len);
		op = le16toh(op);
		if (len > n - pos - PROTO_HDR_SIZE)
			break;
		if (op == PROTO_OP_BLK_OPEN && len >= sizeof(g)) {
			memcpy(&g, p, sizeof(g));
			wire_grant_swap(&g);
			if (grant_mint(fuzz_gkey, NODE_ID, PEER_ID, (uint32_t)v_key,
				       (uint32_t)(v_key >> 32), 0, g.rights, g.expiry, &g) == 0) {
				wire_grant_swap(&g);
				memcpy(p, &g, sizeof(g));
			}
		}
		pos += PROTO_HDR_SIZE + len;
	}
}

static struct dn_node *node_new(void)
{
	struct dn_node *n = calloc(1, sizeof(*n));

	CHECK(n);
	n->node_id = NODE_ID;
	n->dispatch = dn_dispatch;
	n->key = fuzz_key;
	n->grant_key = fuzz_gkey;
	n->vols = fuzz_vols;
	CHECK(dn_fences_new(&n->fences) == 0);
	n->limits = (struct dn_limits){ .depth = 4, .max_conns = 4, .handshake_ms = 5000 };
	pthread_mutex_init(&n->mu, NULL);
	CHECK(revlist_init(&n->revoked, NULL) == 0);
	return n;
}

static void node_free(struct dn_node *n)
{
	dn_conn_stop_all(n);
	CHECK(atomic_load(&n->stats.conns_open) == 0);
	dn_fences_free(n->fences);
	revlist_destroy(&n->revoked);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

/* Everything the stream made goes; "v" stays (or comes back). */
static void store_reset(void)
{
	struct dn_volume_info *v = NULL;
	size_t nv = 0;

	CHECK(dn_volume_list(fuzz_vols, &v, &nv) == 0);
	for (size_t i = 0; i < nv; i++)
		if (strcmp(v[i].name, "v") != 0)
			CHECK(dn_volume_delete(fuzz_vols, v[i].name) == 0);
	free(v);
	make_v();
	(void)dn_volume_resize(fuzz_vols, "v", 1u << 20, true);   /* as it was */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds0 = test_open_fds(), sv[2];
	unsigned flags = size ? data[0] : 0;
	struct dn_node *n;
	uint8_t *s = NULL;
	size_t len = size ? size - 1 : 0;

	if (len) {
		s = malloc(len);
		CHECK(s);
		memcpy(s, data + 1, len);
		if (flags & F_SIGN)
			prepare_stream(s, len);
	}
	n = node_new();
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(dn_conn_start(n, sv[1]) == 0);
	if (flags & F_HANDSHAKE)
		fz_handshake(sv[0], &fuzz_key, fuzz_gkey, PROTO_FEAT_BLK | PROTO_FEAT_REVOKE, PEER_ID,
			     NODE_ID);
	fz_pump(sv[0], s, len);
	close(sv[0]);
	node_free(n);
	free(s);
	store_reset();
	CHECK(test_open_fds() == fds0);
	return 0;
}
