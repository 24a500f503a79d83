// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for everything that parses bytes from a peer: the frame
 * header, READ/WRITE payloads, the fixed-size payload structs, the
 * directory's frames (DIR_READ/WRITE requests, DIR_RECALL, DIR_RECALL_ACK
 * with or without its page), and grants in wire and hex form.
 *
 * The first input byte picks what the rest is fed to (see enum mode); the
 * header decoder sees every input. After a successful decode the target
 * checks the decoder's promises (extents inside the section, page totals
 * within the limits, data exactly where and as long as it should be) and
 * traps if one is broken, so logic bugs count as crashes too.
 *
 * Seed inputs: tests/fuzz/corpus/frame/ (made by gen_corpus.py).
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "grant.h"
#include "wire.h"
#include "wirediff.h"

enum mode {
	MODE_FRAME,      /* header + payload, dispatched by opcode */
	MODE_IO_READ,    /* le32 section_pages, le32 max_pages, READ payload */
	MODE_IO_WRITE,   /* same, WRITE payload */
	MODE_FIXED,      /* one byte struct selector, then the payload */
	MODE_GRANT_HEX,  /* grant as text */
	MODE_GRANT_RAW,  /* grant in wire form */
	MODE_MAX,
};

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

static struct grant_key *fuzz_key;   /* made once, in memory */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static void io_check(const uint8_t *p, size_t len, bool write, uint32_t spages, uint32_t maxp)
{
	struct wire_io io;
	uint64_t total = 0;
	volatile uint8_t sink = 0;

	if (wire_io_decode(p, len, write, spages, maxp, &io) < 0)
		return;
	CHECK(io.nextents >= 1 && io.nextents <= PROTO_MAX_EXTENTS);
	CHECK(io.extents == p + sizeof(struct proto_io_req));
	for (uint32_t i = 0; i < io.nextents; i++) {
		struct proto_extent e = wire_io_extent(&io, i);

		CHECK(e.count >= 1);
		CHECK((uint64_t)e.page + e.count <= spages);
		total += e.count;
	}
	CHECK(total == io.npages && total <= maxp && total <= PROTO_MAX_PAGES);
	if (write) {
		size_t off = wire_io_size(io.nextents, 0);

		CHECK(io.data == p + off);
		CHECK(len == off + (size_t)io.npages * PROTO_PAGE_SIZE);
		/* Touch the first and last data byte: ASan checks they are ours. */
		if (io.npages) {
			sink ^= io.data[0];
			sink ^= io.data[(size_t)io.npages * PROTO_PAGE_SIZE - 1];
		}
	} else {
		CHECK(io.data == NULL);
		CHECK(len == wire_io_size(io.nextents, 0));
	}
	(void)sink;
}

static void grant_check(const struct proto_grant *g)
{
	char hex[GRANT_HEX_LEN + 1];
	struct proto_grant back;
	int r;

	if (!fuzz_key && grant_key_generate(&fuzz_key) < 0)
		abort();
	r = grant_verify(fuzz_key, g, g->memnode_id, g->holder_id, PROTO_R_READ, 1);
	CHECK(r == 0 || r == -EKEYREJECTED || r == -EKEYEXPIRED || r == -EPERM);
	grant_to_hex(g, hex);
	CHECK(strlen(hex) == GRANT_HEX_LEN);
	CHECK(grant_from_hex(hex, &back) == 0);
	CHECK(memcmp(&back, g, sizeof(back)) == 0);
}

/* A fixed-size payload of struct kind `sel`, decoded and swapped. */
static void fixed_check(unsigned sel, const uint8_t *p, size_t len)
{
	union {
		struct proto_hello_req hello_req;
		struct proto_hello_rep hello_rep;
		struct proto_auth_req auth_req;
		struct proto_alloc_req alloc_req;
		struct proto_section section;
		struct proto_free_req free_req;
		struct proto_list_req list_req;
		struct proto_list_rep list_rep;
		struct proto_atomic_req atomic_req;
		struct proto_atomic_rep atomic_rep;
		struct proto_copy_req copy_req;
		struct proto_copy_rep copy_rep;
		struct proto_stats_rep stats_rep;
		struct proto_grant grant;
		struct proto_extent extent;
		struct proto_fence_rep fence_rep;
		struct proto_dir_write_rep dir_write_rep;
	} u;
	static const size_t sizes[] = {
		sizeof(u.hello_req), sizeof(u.hello_rep), sizeof(u.auth_req),
		sizeof(u.alloc_req), sizeof(u.section), sizeof(u.free_req),
		sizeof(u.list_req), sizeof(u.list_rep), sizeof(u.atomic_req),
		sizeof(u.atomic_rep), sizeof(u.copy_req), sizeof(u.copy_rep),
		sizeof(u.stats_rep), sizeof(u.grant), sizeof(u.extent),
		sizeof(u.fence_rep), sizeof(u.dir_write_rep),
	};

	sel %= sizeof(sizes) / sizeof(sizes[0]);
	if (wire_fixed(p, len, &u, sizes[sel]) < 0) {
		CHECK(len != sizes[sel]);
		return;
	}
	CHECK(len == sizes[sel]);
	switch (sel) {
	case 0: wire_hello_req_swap(&u.hello_req); break;
	case 1: wire_hello_rep_swap(&u.hello_rep); break;
	case 2: break;
	case 3: wire_alloc_req_swap(&u.alloc_req); break;
	case 4: wire_section_swap(&u.section); break;
	case 5: wire_free_req_swap(&u.free_req); break;
	case 6: wire_list_req_swap(&u.list_req); break;
	case 7: wire_list_rep_swap(&u.list_rep); break;
	case 8:
		wire_atomic_req_swap(&u.atomic_req);
		grant_check(&u.atomic_req.grant);
		break;
	case 9: wire_u64_swap(&u.atomic_rep.old); break;
	case 10:
		wire_copy_req_swap(&u.copy_req);
		grant_check(&u.copy_req.src_grant);
		grant_check(&u.copy_req.dst_grant);
		/* The address must be treated as NUL-padded, not NUL-terminated. */
		CHECK(strnlen(u.copy_req.addr, sizeof(u.copy_req.addr)) <= PROTO_MAX_ADDR);
		break;
	case 11: wire_copy_rep_swap(&u.copy_rep); break;
	case 12: wire_stats_rep_swap(&u.stats_rep); break;
	case 13:
		wire_grant_swap(&u.grant);
		grant_check(&u.grant);
		break;
	case 14: wire_extent_swap(&u.extent); break;
	case 15: wire_fence_rep_swap(&u.fence_rep); break;
	case 16: wire_dir_write_rep_swap(&u.dir_write_rep); break;
	}
}

/* The directory's frames that carry more than a grant. */
static void dir_check(uint16_t op, const uint8_t *p, size_t len)
{
	struct proto_dir_req req;
	struct proto_dir_recall rc;
	struct proto_dir_ack ack;
	const uint8_t *page = NULL;
	volatile uint8_t sink = 0;

	if (op == PROTO_OP_DIR_READ || op == PROTO_OP_DIR_WRITE) {
		if (wire_dir_req_decode(p, len, &req) < 0)
			return;
		CHECK(len == sizeof(req) && !(req.flags & ~(uint32_t)PROTO_DIR_REQ_TAKE));
		grant_check(&req.grant);
	} else if (op == PROTO_OP_DIR_RECALL) {
		if (wire_dir_recall_decode(p, len, &rc) < 0)
			return;
		CHECK(len == sizeof(rc));
		CHECK(rc.mode == PROTO_DIR_DOWNGRADE || rc.mode == PROTO_DIR_INVALIDATE);
	} else if (op == PROTO_OP_DIR_RECLAIM) {
		uint32_t version = 1;
		bool v, done;

		if (wire_dir_reclaim_decode(p, len, &req, &version, &page) < 0)
			return;
		v = req.flags & PROTO_DIR_REQ_VERSION;
		done = req.flags & PROTO_DIR_REQ_DONE;
		CHECK(!v || (req.flags & PROTO_DIR_REQ_RECALLED));
		CHECK(!done || !(req.flags & PROTO_DIR_REQ_RECALLED));
		CHECK(v || version == 0);
		CHECK(len == sizeof(req) + (v ? sizeof(struct proto_dir_version) : 0) +
			     (done ? 0 : PROTO_PAGE_SIZE));
		CHECK(done ? page == NULL : page == p + len - PROTO_PAGE_SIZE);
		if (page) {
			sink ^= page[0];
			sink ^= page[PROTO_PAGE_SIZE - 1];
		}
		grant_check(&req.grant);
	} else if (op == PROTO_OP_DIR_RECALL_ACK) {
		if (wire_dir_ack_decode(p, len, &ack, &page) < 0)
			return;
		CHECK(ack.rsvd == 0 && !(ack.flags & ~(uint32_t)(PROTO_DIR_DIRTY | PROTO_DIR_QUIET)));
		if (ack.flags & PROTO_DIR_DIRTY) {
			CHECK(page == p + sizeof(ack) && len == sizeof(ack) + PROTO_PAGE_SIZE);
			sink ^= page[0];
			sink ^= page[PROTO_PAGE_SIZE - 1];
		} else {
			CHECK(page == NULL && len == sizeof(ack));
		}
	}
	(void)sink;
}

/*
 * WRITE_DIFF: what decodes applies inside an 8-page section, changes only
 * the bytes it counts, and encoding each page's result against the old
 * content gives a diff that decodes again.
 */
static void diff_check(const uint8_t *p, size_t len)
{
	static uint8_t sec[8 * PROTO_PAGE_SIZE], old[8 * PROTO_PAGE_SIZE];
	static uint8_t out[sizeof(struct proto_diff_req) + WIRE_DIFF_PAGE_MAX];
	struct wire_diff d, back;
	uint64_t changed = 0, moved = 0;
	size_t head;

	if (wire_diff_decode(p, len, 8, PROTO_MAX_PAGES, &d) < 0)
		return;
	CHECK(d.npages >= 1 && d.npages <= PROTO_MAX_PAGES);
	head = sizeof(struct proto_diff_req) + (d.once.stream ? sizeof(struct proto_diff_once) : 0);
	CHECK(d.body == p + head && d.len == len - head);
	CHECK(!d.once.stream || (d.once.batch && d.once.frame < PROTO_DIFF_ONCE_FRAMES));
	memset(sec, 0xa5, sizeof(sec));
	memcpy(old, sec, sizeof(sec));
	wire_diff_apply(&d, sec);
	for (size_t i = 0; i < sizeof(sec); i++)
		moved += sec[i] != old[i];
	CHECK(moved <= d.bytes);
	for (uint32_t pg = 0; pg < 8; pg++) {
		size_t n = wire_diff_page_encode(pg, old + (size_t)pg * PROTO_PAGE_SIZE,
						 sec + (size_t)pg * PROTO_PAGE_SIZE,
						 out + sizeof(struct proto_diff_req), &changed);

		if (!n)
			continue;
		memset(out, 0, sizeof(struct proto_diff_req));
		((uint32_t *)(void *)out)[26] = htole32(1);   /* npages, after the 104-byte grant */
		CHECK(wire_diff_decode(out, sizeof(struct proto_diff_req) + n, 8, 1, &back) == 0);
		CHECK(back.bytes == changed && changed >= 1 && changed <= PROTO_PAGE_SIZE);
	}
}

/* What a server does with a frame: header, then the payload by opcode. */
static void frame_check(const uint8_t *p, size_t size)
{
	struct proto_hdr h;
	size_t len;
	bool reply;

	if (wire_hdr_decode(p, size, &h) < 0)
		return;
	CHECK(h.magic == PROTO_MAGIC && h.opcode > 0 && h.opcode < PROTO_OP_MAX);
	CHECK(h.len <= PROTO_MAX_PAYLOAD && h.rsvd == 0);
	reply = h.flags & PROTO_F_REPLY;
	CHECK(reply ? h.status < PROTO_ST_MAX : h.status == 0);
	CHECK(proto_op_name(h.opcode) != NULL && proto_status_str(h.status) != NULL);
	CHECK(proto_errno_to_status(proto_status_to_errno(h.status)) == h.status);
	/* Only the bytes the header announces (and that exist) are payload. */
	len = size - PROTO_HDR_SIZE < h.len ? size - PROTO_HDR_SIZE : h.len;
	p += PROTO_HDR_SIZE;
	switch (h.opcode) {
	case PROTO_OP_HELLO: fixed_check(reply ? 1 : 0, p, len); break;
	case PROTO_OP_AUTH: fixed_check(2, p, len); break;
	case PROTO_OP_SECTION_ALLOC: fixed_check(reply ? 4 : 3, p, len); break;
	case PROTO_OP_SECTION_FREE: fixed_check(5, p, len); break;
	case PROTO_OP_SECTION_LIST:
		if (reply)
			fixed_check(7, p, len < 8 ? len : 8);
		else
			fixed_check(6, p, len);
		break;
	case PROTO_OP_READ:
	case PROTO_OP_WRITE:
		if (!reply)
			io_check(p, len, h.opcode == PROTO_OP_WRITE, 32768, PROTO_MAX_PAGES);
		break;
	case PROTO_OP_CAS:
	case PROTO_OP_FADD: fixed_check(reply ? 9 : 8, p, len); break;
	case PROTO_OP_COPY: fixed_check(reply ? 11 : 10, p, len); break;
	case PROTO_OP_STATS:
		if (reply)
			fixed_check(12, p, len);
		break;
	case PROTO_OP_FENCE: fixed_check(reply ? 15 : 13, p, len); break;
	case PROTO_OP_DIR_ATTACH:
	case PROTO_OP_DIR_DETACH:
		if (!reply)
			fixed_check(13, p, len);
		break;
	case PROTO_OP_DIR_WRITE:
		if (reply)
			fixed_check(16, p, len < 8 ? len : 8);
		else
			dir_check(h.opcode, p, len);
		break;
	case PROTO_OP_WRITE_DIFF:
		if (!reply)
			diff_check(p, len);
		break;
	case PROTO_OP_DIR_READ:
	case PROTO_OP_DIR_RECALL:
	case PROTO_OP_DIR_RECALL_ACK:
	case PROTO_OP_DIR_RECLAIM:
		if (!reply)
			dir_check(h.opcode, p, len);
		break;
	default: break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_hdr h;
	const uint8_t *p;
	size_t n;

	/* The header decoder sees every input, whatever the mode. */
	(void)wire_hdr_decode(data, size, &h);
	if (size < 1)
		return 0;
	p = data + 1;
	n = size - 1;
	switch (data[0] % MODE_MAX) {
	case MODE_FRAME:
		frame_check(p, n);
		break;
	case MODE_IO_READ:
	case MODE_IO_WRITE:
		if (n >= 8)
			io_check(p + 8, n - 8, data[0] % MODE_MAX == MODE_IO_WRITE, get_le32(p),
				 get_le32(p + 4));
		break;
	case MODE_FIXED:
		if (n >= 1)
			fixed_check(p[0], p + 1, n - 1);
		break;
	case MODE_GRANT_HEX: {
		char *s = malloc(n + 1);
		struct proto_grant g;

		if (!s)
			return 0;
		memcpy(s, p, n);
		s[n] = '\0';
		if (grant_from_hex(s, &g) == 0) {
			CHECK(strlen(s) == GRANT_HEX_LEN);
			grant_check(&g);
		}
		free(s);
		break;
	}
	case MODE_GRANT_RAW: {
		struct proto_grant g;

		if (n >= sizeof(g)) {
			memcpy(&g, p, sizeof(g));
			wire_grant_swap(&g);
			grant_check(&g);
		}
		break;
	}
	}
	return 0;
}
