// SPDX-License-Identifier: MIT
/*
 * Unit test of the frame codec (src/common/wire.c): header round trips,
 * every way a hostile header can be wrong, READ/WRITE payload validation
 * (truncation, extent counts, ranges near UINT32_MAX, page totals, data
 * length), fixed-size payloads, the coherence directory's frames and the
 * status <-> errno mapping. Failed decodes must leave the output untouched.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "macro.h"
#include "tap.h"
#include "wire.h"

#define SECTION_PAGES 32768u /* 128 MiB */

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static struct proto_hdr mkhdr(uint16_t op, uint32_t flags, uint32_t len, uint32_t status)
{
	return (struct proto_hdr){
		.magic = PROTO_MAGIC,
		.version = PROTO_VERSION,
		.opcode = op,
		.flags = flags,
		.len = len,
		.req_id = 0x0102030405060708ull,
		.status = status,
	};
}

/* Encode h, apply a patch at `off` (width 2 or 4; width 0 = none), decode. */
static int hdr_try(struct proto_hdr h, size_t off, int width, uint32_t val)
{
	uint8_t buf[PROTO_HDR_SIZE];
	struct proto_hdr out;
	int r;

	wire_hdr_encode(&h, buf);
	if (width == 4)
		put32(buf + off, val);
	else if (width == 2)
		put16(buf + off, (uint16_t)val);
	memset(&out, 0xa5, sizeof(out));
	r = wire_hdr_decode(buf, sizeof(buf), &out);
	if (r < 0) {
		uint8_t pat[sizeof(out)];

		memset(pat, 0xa5, sizeof(pat));
		if (memcmp(&out, pat, sizeof(out)) != 0)
			return -9999; /* output touched on failure */
	}
	return r;
}

/* An I/O request payload: grant, nextents, the extents, npages_data pages. */
static uint8_t *mkio(uint32_t nextents, const struct proto_extent *ext, uint32_t data_pages,
		     size_t *ret_len)
{
	size_t len = wire_io_size(nextents, data_pages);
	uint8_t *p = calloc(1, len ? len : 1);
	struct proto_io_req req = {
		.grant = { .memnode_id = 7, .holder_id = 9, .section = 3, .generation = 4,
			   .rights = PROTO_R_ALL, .expiry = 0 },
		.nextents = nextents,
	};

	wire_grant_swap(&req.grant);
	req.nextents = htole32(req.nextents);
	memcpy(p, &req, sizeof(req));
	for (uint32_t i = 0; i < nextents; i++) {
		struct proto_extent e = ext[i];

		wire_extent_swap(&e);
		memcpy(p + sizeof(req) + i * sizeof(e), &e, sizeof(e));
	}
	for (size_t i = wire_io_size(nextents, 0); i < len; i++)
		p[i] = (uint8_t)i;
	*ret_len = len;
	return p;
}

static int io_try(const uint8_t *p, size_t len, bool write, uint32_t spages, uint32_t maxp,
		  struct wire_io *ret)
{
	struct wire_io io;
	int r;

	memset(&io, 0x5a, sizeof(io));
	r = wire_io_decode(p, len, write, spages, maxp, &io);
	if (r < 0) {
		uint8_t pat[sizeof(io)];

		memset(pat, 0x5a, sizeof(pat));
		if (memcmp(&io, pat, sizeof(io)) != 0)
			return -9999;
	} else if (ret) {
		*ret = io;
	}
	return r;
}

/* Build and decode in one go. */
static int io_case(uint32_t n, const struct proto_extent *ext, uint32_t data_pages, bool write,
		   uint32_t spages, uint32_t maxp)
{
	size_t len;
	_cleanup_free_ uint8_t *p = mkio(n, ext, data_pages, &len);

	return io_try(p, len, write, spages, maxp, NULL);
}

static void test_header(void)
{
	uint8_t buf[PROTO_HDR_SIZE];
	struct proto_hdr in, out;
	bool all = true;

	/* Round trips over every opcode, request and reply. */
	for (uint16_t op = 1; op < PROTO_OP_MAX; op++) {
		for (int rep = 0; rep < 2; rep++) {
			in = mkhdr(op, rep ? PROTO_F_REPLY : 0, op * 1000u,
				   rep ? op % PROTO_ST_MAX : 0);
			in.req_id = ~(uint64_t)op << 7;
			wire_hdr_encode(&in, buf);
			memset(&out, 0, sizeof(out));
			if (wire_hdr_decode(buf, sizeof(buf), &out) != 0 ||
			    memcmp(&in, &out, sizeof(in)) != 0)
				all = false;
		}
	}
	ok(all, "header round trip for every opcode, request and reply");

	in = mkhdr(PROTO_OP_PING, 0, 0, 0);
	wire_hdr_encode(&in, buf);
	ok(buf[0] == 'D' && buf[1] == 'S' && buf[2] == 'G' && buf[3] == '1', "magic is \"DSG1\" on the wire");
	ok(buf[16] == 0x08 && buf[23] == 0x01, "req_id little-endian");
	in.rsvd = 77;
	wire_hdr_encode(&in, buf);
	is(wire_hdr_decode(buf, sizeof(buf), &out), 0, "encode zeroes rsvd");
	is(wire_hdr_decode(buf, sizeof(buf) + 100, &out), 0, "longer buffer is fine");

	for (size_t n = 0; n < PROTO_HDR_SIZE; n += 31)
		is(wire_hdr_decode(buf, n, &out), -EBADMSG, "truncated header (%zu bytes)", n);

	is(hdr_try(mkhdr(PROTO_OP_WRITE, 0, PROTO_MAX_PAYLOAD, 0), 0, 0, 0), 0,
	   "len == PROTO_MAX_PAYLOAD accepted");
	is(hdr_try(mkhdr(PROTO_OP_WRITE, 0, PROTO_MAX_PAYLOAD + 1, 0), 0, 0, 0), -E2BIG,
	   "len over PROTO_MAX_PAYLOAD");
	is(hdr_try(mkhdr(PROTO_OP_READ, PROTO_F_REPLY, UINT32_MAX, 0), 0, 0, 0), -E2BIG,
	   "reply len UINT32_MAX");
	is(hdr_try(mkhdr(PROTO_OP_PING, 0, 0, 0), 0, 4, 0x31475345), -EBADMSG, "bad magic");
	is(hdr_try(mkhdr(PROTO_OP_PING, 0, 0, 0), 0, 4, be32toh(PROTO_MAGIC)), -EBADMSG,
	   "byte-swapped magic");
	is(hdr_try(mkhdr(PROTO_OP_PING, 0, 0, 0), 4, 2, PROTO_VERSION + 1), -EPROTONOSUPPORT,
	   "unknown version on PING");
	is(hdr_try(mkhdr(PROTO_OP_PING, 0, 0, 0), 4, 2, 1), -EPROTONOSUPPORT,
	   "version 1 (HMAC grants) on PING");
	is(hdr_try(mkhdr(PROTO_OP_READ, PROTO_F_REPLY, 0, 0), 4, 2, 0), -EPROTONOSUPPORT,
	   "version 0 on a reply");
	is(hdr_try(mkhdr(PROTO_OP_HELLO, 0, 48, 0), 4, 2, 9), 0, "HELLO may carry any version");
	is(hdr_try(mkhdr(PROTO_OP_HELLO, 0, 0, 0), 6, 2, 0), -EBADMSG, "opcode 0");
	is(hdr_try(mkhdr(PROTO_OP_HELLO, 0, 0, 0), 6, 2, PROTO_OP_MAX), -EBADMSG,
	   "opcode PROTO_OP_MAX");
	is(hdr_try(mkhdr(PROTO_OP_HELLO, 0, 0, 0), 6, 2, 0xffff), -EBADMSG, "opcode 0xffff");
	is(hdr_try(mkhdr(PROTO_OP_PING, 0, 0, 0), 8, 4, 2), -EBADMSG, "unknown flag bit 1");
	is(hdr_try(mkhdr(PROTO_OP_PING, 0, 0, 0), 8, 4, 0x80000001u), -EBADMSG,
	   "unknown flag bit 31 with REPLY");
	is(hdr_try(mkhdr(PROTO_OP_PING, 0, 0, 0), 28, 4, 1), -EBADMSG, "nonzero rsvd");
	is(hdr_try(mkhdr(PROTO_OP_PING, 0, 0, 0), 28, 4, 0x80000000u), -EBADMSG,
	   "rsvd high bit");
	is(hdr_try(mkhdr(PROTO_OP_PING, 0, 0, PROTO_ST_BADMSG), 0, 0, 0), -EBADMSG,
	   "status set in a request");
	is(hdr_try(mkhdr(PROTO_OP_PING, PROTO_F_REPLY, 0, PROTO_ST_INTERNAL), 0, 0, 0), 0,
	   "last known status in a reply");
	is(hdr_try(mkhdr(PROTO_OP_PING, PROTO_F_REPLY, 0, PROTO_ST_MAX), 0, 0, 0), -EBADMSG,
	   "unknown status in a reply is malformed");
}

static void test_io(void)
{
	struct proto_extent ext[PROTO_MAX_EXTENTS + 1];
	struct wire_io io = { 0 };
	size_t len;
	uint8_t *p;

	/* Valid READ. */
	ext[0] = (struct proto_extent){ 0, 2 };
	ext[1] = (struct proto_extent){ 10, 3 };
	p = mkio(2, ext, 0, &len);
	is(io_try(p, len, false, SECTION_PAGES, PROTO_MAX_PAGES, &io), 0, "valid READ");
	is(io.nextents, 2, "  nextents");
	is(io.npages, 5, "  npages");
	ok(io.data == NULL, "  no data");
	ok(io.grant.memnode_id == 7 && io.grant.holder_id == 9 && io.grant.section == 3 &&
	   io.grant.generation == 4 && io.grant.rights == PROTO_R_ALL, "  grant in host order");
	ok(wire_io_extent(&io, 1).page == 10 && wire_io_extent(&io, 1).count == 3, "  extent 1");
	is(io_try(p, len, true, SECTION_PAGES, PROTO_MAX_PAGES, NULL), -EBADMSG,
	   "READ payload decoded as WRITE (no data)");
	for (size_t n = 0; n < len; n += 7)
		if (io_try(p, n, false, SECTION_PAGES, PROTO_MAX_PAGES, NULL) != -EBADMSG)
			break;
		else if (n + 7 >= len)
			ok(1, "every truncation of a READ payload is -EBADMSG");
	free(p);

	/* READ with trailing bytes. */
	p = mkio(2, ext, 1, &len);
	is(io_try(p, len, false, SECTION_PAGES, PROTO_MAX_PAGES, NULL), -EBADMSG,
	   "READ with trailing bytes");
	is(io_try(p, sizeof(struct proto_io_req) + 16 + 1, false, SECTION_PAGES, PROTO_MAX_PAGES,
		  NULL), -EBADMSG, "READ with one trailing byte");
	free(p);

	/* Valid WRITE. */
	p = mkio(2, ext, 5, &len);
	is(io_try(p, len, true, SECTION_PAGES, PROTO_MAX_PAGES, &io), 0, "valid WRITE");
	ok(io.data == p + wire_io_size(2, 0), "  data after the extents");
	is(io_try(p, len - 1, true, SECTION_PAGES, PROTO_MAX_PAGES, NULL), -EBADMSG,
	   "WRITE data one byte short");
	is(io_try(p, len - PROTO_PAGE_SIZE, true, SECTION_PAGES, PROTO_MAX_PAGES, NULL), -EBADMSG,
	   "WRITE data one page short");
	free(p);
	p = mkio(2, ext, 6, &len);
	is(io_try(p, len, true, SECTION_PAGES, PROTO_MAX_PAGES, NULL), -EBADMSG,
	   "WRITE data one page too many");
	free(p);

	/* Reserved fields. */
	p = mkio(2, ext, 0, &len);
	p[offsetof(struct proto_io_req, rsvd)] = 1;
	is(io_try(p, len, false, SECTION_PAGES, PROTO_MAX_PAGES, NULL), -EBADMSG, "io rsvd set");
	p[offsetof(struct proto_io_req, rsvd)] = 0;
	put32(p + 28, 0x80000001u); /* grant.epoch: any value, the memory node judges it */
	is(io_try(p, len, false, SECTION_PAGES, PROTO_MAX_PAGES, &io), 0, "grant epoch carried");
	is(io.grant.epoch, 0x80000001u, "  decoded in host order");
	free(p);

	/* Extent counts. */
	is(io_case(0, ext, 0, false, SECTION_PAGES, PROTO_MAX_PAGES), -EBADMSG, "nextents 0");
	for (int i = 0; i <= PROTO_MAX_EXTENTS; i++)
		ext[i] = (struct proto_extent){ (uint32_t)i, 1 };
	is(io_case(PROTO_MAX_EXTENTS, ext, 0, false, SECTION_PAGES, PROTO_MAX_PAGES), 0,
	   "PROTO_MAX_EXTENTS extents accepted");
	is(io_case(PROTO_MAX_EXTENTS + 1, ext, 0, false, SECTION_PAGES, 1000), -E2BIG,
	   "nextents over PROTO_MAX_EXTENTS");
	p = mkio(1, ext, 0, &len);
	put32(p + offsetof(struct proto_io_req, nextents), UINT32_MAX);
	is(io_try(p, len, false, SECTION_PAGES, PROTO_MAX_PAGES, NULL), -E2BIG,
	   "nextents UINT32_MAX");
	put32(p + offsetof(struct proto_io_req, nextents), 2);
	is(io_try(p, len, false, SECTION_PAGES, PROTO_MAX_PAGES, NULL), -EBADMSG,
	   "nextents past the payload end");
	free(p);

	ext[0] = (struct proto_extent){ 5, 0 };
	is(io_case(1, ext, 0, false, SECTION_PAGES, PROTO_MAX_PAGES), -EBADMSG, "extent count 0");

	/* Ranges. */
	ext[0] = (struct proto_extent){ SECTION_PAGES - 1, 1 };
	is(io_case(1, ext, 0, false, SECTION_PAGES, PROTO_MAX_PAGES), 0, "last page of the section");
	ext[0] = (struct proto_extent){ SECTION_PAGES - 1, 2 };
	is(io_case(1, ext, 0, false, SECTION_PAGES, PROTO_MAX_PAGES), -ERANGE,
	   "extent past the section end");
	ext[0] = (struct proto_extent){ SECTION_PAGES, 1 };
	is(io_case(1, ext, 0, false, SECTION_PAGES, PROTO_MAX_PAGES), -ERANGE,
	   "extent starting at the section end");
	ext[0] = (struct proto_extent){ UINT32_MAX, 1 };
	is(io_case(1, ext, 0, false, UINT32_MAX, PROTO_MAX_PAGES), -ERANGE,
	   "page UINT32_MAX + 1 does not wrap to 0");
	ext[0] = (struct proto_extent){ UINT32_MAX - 1, 2 };
	is(io_case(1, ext, 0, false, UINT32_MAX, PROTO_MAX_PAGES), -ERANGE,
	   "page + count == 2^32 does not wrap");
	ext[0] = (struct proto_extent){ UINT32_MAX, UINT32_MAX };
	is(io_case(1, ext, 0, false, UINT32_MAX, PROTO_MAX_PAGES), -ERANGE,
	   "page and count both UINT32_MAX");
	ext[0] = (struct proto_extent){ 0, UINT32_MAX };
	is(io_case(1, ext, 0, false, UINT32_MAX, UINT32_MAX), -E2BIG,
	   "in range, but UINT32_MAX pages");
	ext[0] = (struct proto_extent){ 1, 1 };
	ext[1] = (struct proto_extent){ 0, UINT32_MAX };
	is(io_case(2, ext, 0, false, UINT32_MAX, UINT32_MAX), -E2BIG,
	   "page total cannot wrap back under the limit");
	is(io_case(1, ext, 0, false, 0, PROTO_MAX_PAGES), -ERANGE, "zero-page section");

	/* Page totals. */
	ext[0] = (struct proto_extent){ 0, 3 };
	ext[1] = (struct proto_extent){ 100, 2 };
	is(io_case(2, ext, 0, false, SECTION_PAGES, 5), 0, "total == max_pages accepted");
	is(io_case(2, ext, 0, false, SECTION_PAGES, 4), -E2BIG, "total over max_pages");
	ext[0] = (struct proto_extent){ 0, PROTO_MAX_PAGES };
	is(io_case(1, ext, PROTO_MAX_PAGES, true, SECTION_PAGES, UINT32_MAX), 0,
	   "full-size WRITE accepted");
	ok(wire_io_size(PROTO_MAX_EXTENTS, PROTO_MAX_PAGES) <= PROTO_MAX_PAYLOAD,
	   "a full WRITE fits in PROTO_MAX_PAYLOAD");
	ext[0] = (struct proto_extent){ 0, PROTO_MAX_PAGES + 1 };
	is(io_case(1, ext, 0, false, SECTION_PAGES, UINT32_MAX), -E2BIG,
	   "over PROTO_MAX_PAGES even if max_pages allows it");
	for (int i = 0; i < 200; i++)
		ext[i] = (struct proto_extent){ (uint32_t)i * 2, 2 };
	is(io_case(200, ext, 0, false, SECTION_PAGES, PROTO_MAX_PAGES), -E2BIG,
	   "many small extents over the page limit");
}

static void test_fixed_and_status(void)
{
	struct proto_grant g = { .memnode_id = 1, .holder_id = 2, .section = 3, .generation = 4,
				 .rights = 1, .epoch = 6, .expiry = 5 }, g2 = g, out;
	struct proto_stats_rep st = { .node_id = 1, .requests = 2 }, st2 = st;
	bool round = true;

	is(wire_fixed(&g, sizeof(g), &out, sizeof(out)), 0, "wire_fixed exact size");
	ok(memcmp(&g, &out, sizeof(g)) == 0, "  copied");
	is(wire_fixed(&g, sizeof(g) - 1, &out, sizeof(out)), -EBADMSG, "wire_fixed short");
	is(wire_fixed(&g, sizeof(g) + 1, &out, sizeof(out)), -EBADMSG, "wire_fixed long");
	is(wire_fixed(&g, 0, &out, 0), 0, "wire_fixed empty");
	wire_grant_swap(&g2);
	wire_grant_swap(&g2);
	wire_stats_rep_swap(&st2);
	wire_stats_rep_swap(&st2);
	ok(memcmp(&g, &g2, sizeof(g)) == 0 && memcmp(&st, &st2, sizeof(st)) == 0,
	   "swap twice is the identity");

	for (uint32_t s = 0; s < PROTO_ST_MAX; s++) {
		int e = proto_status_to_errno(s);

		if ((s == 0) != (e == 0) || e > 0 || proto_errno_to_status(e) != s ||
		    proto_errno_to_status(-e) != s || !proto_status_str(s)[0] ||
		    strcmp(proto_status_str(s), "unknown status") == 0)
			round = false;
	}
	ok(round, "every status maps to an errno and back (either sign)");
	is(proto_status_to_errno(PROTO_ST_MAX), -EPROTO, "unknown status -> -EPROTO");
	is(proto_status_to_errno(UINT32_MAX), -EPROTO, "status UINT32_MAX -> -EPROTO");
	is(proto_status_to_errno(PROTO_ST_GRANT), -EKEYREJECTED, "GRANT -> -EKEYREJECTED");
	is(proto_status_to_errno(PROTO_ST_FENCED), -EKEYREVOKED, "FENCED -> -EKEYREVOKED");
	is(proto_errno_to_status(-ESTALE), PROTO_ST_STALE, "-ESTALE stays STALE, not FENCED");
	is(strcmp(proto_op_name(PROTO_OP_FENCE), "fence"), 0, "FENCE is named");
	is(proto_status_to_errno(PROTO_ST_RIGHTS), -EPERM, "RIGHTS -> -EPERM");
	is(proto_errno_to_status(-EKEYEXPIRED), PROTO_ST_GRANT, "-EKEYEXPIRED -> GRANT");
	is(proto_errno_to_status(-EINVAL), PROTO_ST_BADMSG, "-EINVAL -> BADMSG");
	is(proto_errno_to_status(-EPROTO), PROTO_ST_BADMSG, "-EPROTO -> BADMSG");
	is(proto_errno_to_status(-EXDEV), PROTO_ST_INTERNAL, "unmapped errno -> INTERNAL");
	is(proto_errno_to_status(0), PROTO_ST_OK, "0 -> OK");
	is_str(proto_status_str(PROTO_ST_MAX), "unknown status", "unknown status string");
	is_str(proto_op_name(PROTO_OP_WRITE), "write", "op name");
	is_str(proto_op_name(PROTO_OP_MAX), "unknown", "unknown op name");
	is_str(proto_op_name(UINT32_MAX), "unknown", "op UINT32_MAX name");
}

/* DIR_READ/DIR_WRITE requests, DIR_RECALL and DIR_RECALL_ACK. */
static void test_dir(void)
{
	uint8_t buf[sizeof(struct proto_dir_ack) + PROTO_PAGE_SIZE + 1] = { 0 };
	struct proto_dir_req rq = { .page = 0xdeadbeef }, rqo;
	struct proto_dir_recall rc = { .seq = 9, .section = 3, .generation = 4, .page = 5,
				       .mode = PROTO_DIR_INVALIDATE, .grants = 6 }, rco;
	struct proto_dir_ack a = { .seq = 77 }, ao;
	const uint8_t *page = (const uint8_t *)1;

	rq.grant.section = 7;
	wire_dir_req_swap(&rq);
	is(wire_dir_req_decode(&rq, sizeof(rq), &rqo), 0, "DIR_READ/WRITE request decodes");
	ok(rqo.page == 0xdeadbeef && rqo.grant.section == 7, "  page and grant in host order");
	memset(&rqo, 0xab, sizeof(rqo));
	is(wire_dir_req_decode(&rq, sizeof(rq) - 1, &rqo), -EBADMSG, "request short");
	is(wire_dir_req_decode(&rq, sizeof(rq) + 1, &rqo), -EBADMSG, "request long");
	rq.flags = htole16(PROTO_DIR_REQ_TAKE);
	rq.tag = htole16(0x1234);
	is(wire_dir_req_decode(&rq, sizeof(rq), &rqo), 0, "request with REQ_TAKE decodes");
	ok(rqo.flags == PROTO_DIR_REQ_TAKE && rqo.tag == 0x1234, "  its flag and holder tag");
	memset(&rqo, 0xab, sizeof(rqo));
	rq.flags = htole16(2);
	is(wire_dir_req_decode(&rq, sizeof(rq), &rqo), -EBADMSG, "request with an unknown flag");
	ok(rqo.page == 0xabababab, "  failed decodes leave the output alone");

	{
		struct {
			struct proto_grant g;
			struct proto_dir_who w;
		} at = { .w = { .tag = htole16(7) } };
		struct proto_grant go;
		uint16_t tag = 99;

		at.g.section = htole32(5);
		is(wire_dir_who_decode(&at, sizeof(at.g), &go, &tag), 0, "DIR_ATTACH: a grant alone");
		ok(tag == 0 && go.section == 5, "  tag 0, the grant in host order");
		is(wire_dir_who_decode(&at, sizeof(at), &go, &tag), 0, "DIR_ATTACH: grant and tag");
		ok(tag == 7, "  tag 7");
		is(wire_dir_who_decode(&at, sizeof(at) - 1, &go, &tag), -EBADMSG, "  short tag part");
		is(wire_dir_who_decode(&at, sizeof(at) + 1, &go, &tag), -EBADMSG, "  long");
		at.w.rsvd = htole16(1);
		is(wire_dir_who_decode(&at, sizeof(at), &go, &tag), -EBADMSG, "  rsvd != 0");
		at.w.rsvd = 0;
		at.w.rsvd2 = htole32(1);
		is(wire_dir_who_decode(&at, sizeof(at), &go, &tag), -EBADMSG, "  rsvd2 != 0");
	}

	wire_dir_recall_swap(&rc);
	is(wire_dir_recall_decode(&rc, sizeof(rc), &rco), 0, "DIR_RECALL decodes");
	ok(rco.seq == 9 && rco.section == 3 && rco.generation == 4 && rco.page == 5 &&
	   rco.mode == PROTO_DIR_INVALIDATE && rco.grants == 6, "  every field");
	is(wire_dir_recall_decode(&rc, sizeof(rc) - 1, &rco), -EBADMSG, "recall short");
	for (uint32_t m = 0; m < 4; m++) {
		rc.mode = htole32(m);
		is(wire_dir_recall_decode(&rc, sizeof(rc), &rco),
		   m == PROTO_DIR_DOWNGRADE || m == PROTO_DIR_INVALIDATE ? 0 : -EBADMSG,
		   "recall mode %u", m);
	}
	rc.mode = htole32(PROTO_DIR_DOWNGRADE);
	rc.version = htole32(0xfffffffe);
	is(wire_dir_recall_decode(&rc, sizeof(rc), &rco), 0, "recall with a page version");
	ok(rco.version == 0xfffffffe, "  the version");

	wire_dir_ack_swap(&a);
	memcpy(buf, &a, sizeof(a));
	is(wire_dir_ack_decode(buf, sizeof(a), &ao, &page), 0, "clean DIR_RECALL_ACK decodes");
	ok(ao.seq == 77 && page == NULL, "  no page");
	is(wire_dir_ack_decode(buf, sizeof(a) + PROTO_PAGE_SIZE, &ao, &page), -EBADMSG,
	   "a page without DIRTY");
	is(wire_dir_ack_decode(buf, sizeof(a) - 1, &ao, &page), -EBADMSG, "ack short");
	put32(buf + 8, PROTO_DIR_DIRTY);
	is(wire_dir_ack_decode(buf, sizeof(a) + PROTO_PAGE_SIZE, &ao, &page), 0,
	   "dirty DIR_RECALL_ACK decodes");
	ok(page == buf + sizeof(a) && ao.flags == PROTO_DIR_DIRTY, "  the page follows it");
	page = NULL;
	is(wire_dir_ack_decode(buf, sizeof(a), &ao, &page), -EBADMSG, "DIRTY without the page");
	is(wire_dir_ack_decode(buf, sizeof(a) + PROTO_PAGE_SIZE + 1, &ao, &page), -EBADMSG,
	   "DIRTY with more than a page");
	ok(page == NULL, "  failed decodes leave the page pointer alone");
	put32(buf + 8, PROTO_DIR_DIRTY | PROTO_DIR_QUIET);
	ok(wire_dir_ack_decode(buf, sizeof(a) + PROTO_PAGE_SIZE, &ao, &page) == 0 &&
	   ao.flags == (PROTO_DIR_DIRTY | PROTO_DIR_QUIET), "a quiet dirty DIR_RECALL_ACK decodes");
	put32(buf + 8, PROTO_DIR_DIRTY | 4);
	is(wire_dir_ack_decode(buf, sizeof(a) + PROTO_PAGE_SIZE, &ao, &page), -EBADMSG,
	   "an unknown ack flag");
	put32(buf + 8, 0);
	put32(buf + 12, 1);
	is(wire_dir_ack_decode(buf, sizeof(a), &ao, &page), -EBADMSG, "ack rsvd != 0");

	is(proto_status_to_errno(PROTO_ST_DIR_DETACHED), -EUNATCH, "DIR_DETACHED -> -EUNATCH");
	is(proto_status_to_errno(PROTO_ST_DIR_FULL), -EUSERS, "DIR_FULL -> -EUSERS");
	is_str(proto_op_name(PROTO_OP_DIR_RECALL_ACK), "dir_recall_ack", "DIR_RECALL_ACK is named");
}

/* DIR_RECLAIM: DONE, a page, a recall answer's page with and without its version. */
static void test_dir_reclaim(void)
{
	static uint8_t buf[sizeof(struct proto_dir_req) + sizeof(struct proto_dir_version) +
			   PROTO_PAGE_SIZE + 1];
	const size_t rq = sizeof(struct proto_dir_req), vs = sizeof(struct proto_dir_version);
	struct proto_dir_req r;
	const uint8_t *page;
	uint32_t v = 7;

	memset(buf, 0, sizeof(buf));
	put32(buf + offsetof(struct proto_dir_req, page), 42);
	put16(buf + offsetof(struct proto_dir_req, flags), PROTO_DIR_REQ_DONE);
	ok(wire_dir_reclaim_decode(buf, rq, &r, &v, &page) == 0 && !page && v == 0 &&
	   r.page == 42, "DONE decodes: no page, version 0");
	is(wire_dir_reclaim_decode(buf, rq + PROTO_PAGE_SIZE, &r, &v, &page), -EBADMSG,
	   "DONE with a page");
	put16(buf + offsetof(struct proto_dir_req, flags), 0);
	ok(wire_dir_reclaim_decode(buf, rq + PROTO_PAGE_SIZE, &r, &v, &page) == 0 &&
	   page == buf + rq, "an owner's page decodes");
	is(wire_dir_reclaim_decode(buf, rq, &r, &v, &page), -EBADMSG, "a page missing");
	put16(buf + offsetof(struct proto_dir_req, flags),
	      PROTO_DIR_REQ_RECALLED | PROTO_DIR_REQ_VERSION);
	put32(buf + rq, 0x80000001);
	ok(wire_dir_reclaim_decode(buf, rq + vs + PROTO_PAGE_SIZE, &r, &v, &page) == 0 &&
	   v == 0x80000001 && page == buf + rq + vs, "a recall answer with its version decodes");
	is(wire_dir_reclaim_decode(buf, rq + PROTO_PAGE_SIZE, &r, &v, &page), -EBADMSG,
	   "VERSION without the version");
	is(wire_dir_reclaim_decode(buf, rq + vs + PROTO_PAGE_SIZE + 1, &r, &v, &page), -EBADMSG,
	   "VERSION with a byte more");
	put32(buf + rq + 4, 1);
	is(wire_dir_reclaim_decode(buf, rq + vs + PROTO_PAGE_SIZE, &r, &v, &page), -EBADMSG,
	   "version rsvd != 0");
	put32(buf + rq + 4, 0);
	put16(buf + offsetof(struct proto_dir_req, flags), PROTO_DIR_REQ_VERSION);
	is(wire_dir_reclaim_decode(buf, rq + vs + PROTO_PAGE_SIZE, &r, &v, &page), -EBADMSG,
	   "VERSION without RECALLED");
	put16(buf + offsetof(struct proto_dir_req, flags), PROTO_DIR_REQ_DONE | PROTO_DIR_REQ_VERSION);
	is(wire_dir_reclaim_decode(buf, rq + vs, &r, &v, &page), -EBADMSG, "VERSION with DONE");
	put16(buf + offsetof(struct proto_dir_req, flags), 16);
	is(wire_dir_reclaim_decode(buf, rq + PROTO_PAGE_SIZE, &r, &v, &page), -EBADMSG,
	   "an unknown flag");
}

int main(void)
{
	test_header();
	test_io();
	test_fixed_and_status();
	test_dir();
	test_dir_reclaim();
	done_testing();
	return tap_exit();
}
