// SPDX-License-Identifier: MIT
/*
 * Unit test of the device node's frames (src/common/wireblk.c): volume
 * names, BLK_OPEN, the BLK_* I/O requests, FLUSH/CLOSE and the VOL_*
 * requests, each accepted when right and refused in every way it can be
 * wrong (names, alignment, lengths, 64-bit overflow, reserved fields,
 * flags, sizes, a source where none belongs); failed decodes leave the
 * request untouched. Then the byte-order swaps (little-endian on the
 * wire, a round trip is the identity), a grant's volume key, and the names
 * and statuses of the new opcodes.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tap.h"
#include "wire.h"
#include "wireblk.h"

#define POISON 0x5a
#define UNTOUCHED (-9999)     /* a decoder wrote its output although it failed */

static const char NAME63[] = "a23456789012345678901234567890123456789012345678901234567890123";
static const char NAME64[] = "a234567890123456789012345678901234567890123456789012345678901234";

/* "disk", NULs, and a 'z' in the field's last byte. */
static const char LAST_GARBAGE[PROTO_VOL_NAME_SIZE] = { 'd', 'i', 's', 'k', [63] = 'z' };

static bool poisoned(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != POISON)
			return false;
	return true;
}

/* A name field holding exactly `n` bytes of `raw` (garbage after a NUL allowed). */
static void field_raw(char field[PROTO_VOL_NAME_SIZE], const char *raw, size_t n)
{
	memset(field, 0, PROTO_VOL_NAME_SIZE);
	memcpy(field, raw, MIN(n, (size_t)PROTO_VOL_NAME_SIZE));
}

static void field_str(char field[PROTO_VOL_NAME_SIZE], const char *s)
{
	field_raw(field, s, strlen(s));
}

static struct proto_grant mkgrant(void)
{
	struct proto_grant g = {
		.memnode_id = 0x0102030405060708ull, .holder_id = 9, .section = 0x11223344,
		.generation = 0x55667788, .rights = PROTO_R_READ | PROTO_R_WRITE, .expiry = 77,
	};

	memset(g.sig, 0xab, sizeof(g.sig));
	return g;
}

/* The bad names every decoder must refuse: (bytes, length). */
static const struct {
	const char *what, *raw;
	size_t n;
} bad_names[] = {
	{ "empty", "", 0 },
	{ "64 chars (no NUL)", NAME64, 64 },
	{ "uppercase", "Disk", 4 },
	{ "uppercase inside", "diSk", 4 },
	{ "leading '-'", "-disk", 5 },
	{ "leading '_'", "_disk", 5 },
	{ "a dot", "disk.img", 8 },
	{ "a slash", "a/b", 3 },
	{ "a space", "a b", 3 },
	{ "non-ASCII", "d\xc3\xa9", 3 },
	{ "garbage after NUL", "disk\0x", 6 },
	{ "garbage at the last byte", LAST_GARBAGE, PROTO_VOL_NAME_SIZE },
};

/* ---- names ---------------------------------------------------------------- */

static void test_names(void)
{
	static const char *const good[] = { "a", "0", "disk0", "vm-1_root", "9-x", NAME63 };
	char field[PROTO_VOL_NAME_SIZE], out[PROTO_VOL_NAME_SIZE];
	bool all = true;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		field_str(field, good[i]);
		memset(out, POISON, sizeof(out));
		if (wire_vol_name(field, out) != 0 || strcmp(out, good[i]) != 0 ||
		    memcmp(out, field, sizeof(field)) != 0)
			all = false;
	}
	ok(all, "good names decode to themselves, NUL-padded");
	for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
		int r;

		field_raw(field, bad_names[i].raw, bad_names[i].n);
		memset(out, POISON, sizeof(out));
		r = wire_vol_name(field, out);
		is(r == 0 || poisoned(out, sizeof(out)) ? r : UNTOUCHED, -EBADMSG,
		   "name refused: %s", bad_names[i].what);
	}

	memset(field, POISON, sizeof(field));
	is(wire_vol_name_put(field, "disk"), 0, "put a name");
	ok(memcmp(field, "disk", 4) == 0 &&
	   !memcmp(field + 4, (char[PROTO_VOL_NAME_SIZE - 4]){ 0 }, PROTO_VOL_NAME_SIZE - 4),
	   "put: NUL-padded to the end of the field");
	is(wire_vol_name_put(field, NAME63), 0, "put a 63-character name");
	is(wire_vol_name(field, out), 0, "...which decodes");
	memset(field, POISON, sizeof(field));
	is(wire_vol_name_put(field, NAME64), -EINVAL, "put a 64-character name: -EINVAL");
	ok(poisoned(field, sizeof(field)), "...field untouched");
	is(wire_vol_name_put(field, ""), 0, "put the empty name: an empty field");
	is(wire_vol_name(field, out), -EBADMSG, "...which no decoder takes");
}

/* ---- BLK_OPEN ------------------------------------------------------------- */

/* A BLK_OPEN payload (wire order) with the name field `raw`/`n`. */
static struct proto_blk_open_req mkopen(const char *raw, size_t n, uint32_t flags, uint32_t rsvd)
{
	struct proto_blk_open_req m = { .grant = mkgrant(), .flags = flags, .rsvd = rsvd };

	field_raw(m.name, raw, n);
	wire_blk_open_req_swap(&m);
	return m;
}

static int open_try(const void *p, size_t len, struct proto_blk_open_req *ret,
		    char ret_name[PROTO_VOL_NAME_SIZE])
{
	struct proto_blk_open_req m;
	char name[PROTO_VOL_NAME_SIZE];
	int r;

	memset(&m, POISON, sizeof(m));
	memset(name, POISON, sizeof(name));
	r = wire_blk_open_decode(p, len, &m, name);
	if (r < 0)
		return poisoned(&m, sizeof(m)) && poisoned(name, sizeof(name)) ? r : UNTOUCHED;
	if (ret)
		*ret = m;
	if (ret_name)
		memcpy(ret_name, name, sizeof(name));
	return r;
}

static void test_open(void)
{
	struct proto_blk_open_req m = mkopen("disk0", 5, 0, 0), out;
	struct proto_grant g = mkgrant();
	char name[PROTO_VOL_NAME_SIZE];
	uint8_t big[sizeof(m) + 1] = { 0 };

	is(open_try(&m, sizeof(m), &out, name), 0, "BLK_OPEN accepted");
	ok(memcmp(&out.grant, &g, sizeof(g)) == 0, "...grant in host order");
	is_str(name, "disk0", "...name");
	is(out.flags, 0, "...flags");
	m = mkopen("disk0", 5, PROTO_BLK_RDONLY, 0);
	is(open_try(&m, sizeof(m), &out, NULL), 0, "BLK_OPEN read-only accepted");
	is(out.flags, PROTO_BLK_RDONLY, "...flags RDONLY");
	m = mkopen(NAME63, 63, 0, 0);
	is(open_try(&m, sizeof(m), NULL, NULL), 0, "BLK_OPEN of a 63-character name");

	m = mkopen("disk0", 5, 0, 0);
	is(open_try(&m, sizeof(m) - 1, NULL, NULL), -EBADMSG, "BLK_OPEN one byte short");
	memcpy(big, &m, sizeof(m));
	is(open_try(big, sizeof(big), NULL, NULL), -EBADMSG, "BLK_OPEN one byte long");
	is(open_try(&m, 0, NULL, NULL), -EBADMSG, "BLK_OPEN empty");
	m = mkopen("disk0", 5, 0, 1);
	is(open_try(&m, sizeof(m), NULL, NULL), -EBADMSG, "BLK_OPEN rsvd nonzero");
	m = mkopen("disk0", 5, PROTO_BLK_TAKEOVER, 0);
	is(open_try(&m, sizeof(m), NULL, NULL), 0, "BLK_OPEN flag TAKEOVER");
	m = mkopen("disk0", 5, 4, 0);
	is(open_try(&m, sizeof(m), NULL, NULL), -EBADMSG, "BLK_OPEN unknown flag bit 2");
	m = mkopen("disk0", 5, PROTO_BLK_RDONLY | 0x80000000u, 0);
	is(open_try(&m, sizeof(m), NULL, NULL), -EBADMSG, "BLK_OPEN unknown flag bit 31");
	for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
		m = mkopen(bad_names[i].raw, bad_names[i].n, 0, 0);
		is(open_try(&m, sizeof(m), NULL, NULL), -EBADMSG, "BLK_OPEN name refused: %s",
		   bad_names[i].what);
	}
}

/* ---- BLK_READ, BLK_WRITE, BLK_DISCARD, BLK_WRITE_ZEROES ------------------- */

static const uint16_t io_ops[] = {
	PROTO_OP_BLK_READ, PROTO_OP_BLK_WRITE, PROTO_OP_BLK_DISCARD, PROTO_OP_BLK_WRITE_ZEROES,
};

/*
 * Decode an I/O request (handle 3, offset, len) followed by `extra` bytes
 * (for a WRITE, normally len). *ret_data_off: where the data starts in the
 * payload, -1 for none.
 */
static int io_try(uint16_t op, uint64_t offset, uint32_t len, size_t extra,
		  struct proto_blk_io *ret, long *ret_data_off)
{
	struct proto_blk_io m = { .handle = 3, .len = len, .offset = offset }, out;
	const uint8_t *data = (const uint8_t *)&m;  /* poison: not NULL, not in the payload */
	_cleanup_free_ uint8_t *p = calloc(1, sizeof(m) + extra);
	int r;

	if (!p)
		return -ENOMEM;
	wire_blk_io_swap(&m);
	memcpy(p, &m, sizeof(m));
	memset(&out, POISON, sizeof(out));
	r = wire_blk_io_decode(op, p, sizeof(m) + extra, &out, &data);
	if (r < 0)
		return poisoned(&out, sizeof(out)) && data == (const uint8_t *)&m ? r : UNTOUCHED;
	if (ret)
		*ret = out;
	if (ret_data_off)
		*ret_data_off = data ? (long)(data - p) : -1;
	return r;
}

#define IO(op, offset, len, extra) io_try(op, offset, len, extra, NULL, NULL)

static void test_io(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(io_ops); i++) {
		uint16_t op = io_ops[i];
		bool write = op == PROTO_OP_BLK_WRITE;
		bool moves = write || op == PROTO_OP_BLK_READ;
		const char *n = proto_op_name(op);
		const uint8_t *data = NULL;
		uint8_t zero[sizeof(struct proto_blk_io)] = { 0 };
		struct proto_blk_io out;
		long off = -2;

		is(io_try(op, 4096, 8192, write ? 8192 : 0, &out, &off), 0, "%s accepted", n);
		ok(out.handle == 3 && out.offset == 4096 && out.len == 8192, "%s: fields", n);
		is(off, write ? (long)sizeof(struct proto_blk_io) : -1, "%s: %s", n,
		   write ? "the data right after the request" : "no data");
		is(IO(op, 0, PROTO_BLK_SECTOR, write ? PROTO_BLK_SECTOR : 0), 0,
		   "%s of one sector at 0", n);
		is(IO(op, 100, 512, write ? 512 : 0), -EBADMSG, "%s unaligned offset", n);
		is(IO(op, 512, 513, write ? 513 : 0), -EBADMSG, "%s unaligned len", n);
		is(IO(op, 512, 0, 0), -EBADMSG, "%s len 0", n);
		memset(&out, POISON, sizeof(out));
		is(wire_blk_io_decode(op, zero, sizeof(zero) - 1, &out, &data), -EBADMSG,
		   "%s truncated request", n);
		ok(poisoned(&out, sizeof(out)), "...untouched");
		is(IO(op, UINT64_MAX - 1023, 512, write ? 512 : 0), 0, "%s ending at 2^64 - 512", n);
		is(IO(op, UINT64_MAX - 511, 512, write ? 512 : 0), -ERANGE,
		   "%s offset + len overflows", n);
		is(IO(op, UINT64_MAX - 511, 1u << 20, write ? 1u << 20 : 0), -ERANGE,
		   "%s offset + len overflows (1 MiB)", n);
		is(IO(op, 0, PROTO_BLK_MAX_IO, write ? PROTO_BLK_MAX_IO : 0), 0,
		   "%s of PROTO_BLK_MAX_IO", n);
		is(IO(op, 0, PROTO_BLK_MAX_IO + 512, write ? PROTO_BLK_MAX_IO + 512 : 0),
		   moves ? -E2BIG : 0, "%s over PROTO_BLK_MAX_IO: %s", n,
		   moves ? "-E2BIG" : "no limit");
		if (moves)
			is(IO(op, 0, 0xfffffe00u, 0), -E2BIG, "%s of almost 4 GiB", n);
		else
			is(IO(op, 1ull << 40, 0xfffffe00u, 0), 0, "%s of almost 4 GiB", n);
		if (write) {
			is(IO(op, 0, 1024, 512), -EBADMSG, "%s with less data than len", n);
			is(IO(op, 0, 1024, 1536), -EBADMSG, "%s with more data than len", n);
			is(IO(op, 0, 1024, 0), -EBADMSG, "%s without data", n);
		} else {
			is(IO(op, 0, 1024, 512), -EBADMSG, "%s with bytes after the request", n);
			is(IO(op, 0, 1024, 1024), -EBADMSG, "%s with len bytes of data", n);
		}
	}
	is(IO(PROTO_OP_BLK_OPEN, 0, 512, 0), -EINVAL, "blk_open is no I/O op");
	is(IO(PROTO_OP_BLK_FLUSH, 0, 512, 0), -EINVAL, "blk_flush is no I/O op");
	is(IO(PROTO_OP_READ, 0, 512, 0), -EINVAL, "the memory node's READ is no BLK op");
	is(IO(PROTO_OP_VOL_CREATE, 0, 512, 0), -EINVAL, "vol_create is no I/O op");
}

/* ---- BLK_FLUSH, BLK_CLOSE ------------------------------------------------- */

static int handle_try(uint32_t handle, uint32_t rsvd, size_t len, struct proto_blk_handle *ret)
{
	struct proto_blk_handle m = { .handle = handle, .rsvd = rsvd }, out;
	uint8_t p[sizeof(m) + 1] = { 0 };
	int r;

	wire_blk_handle_swap(&m);
	memcpy(p, &m, sizeof(m));
	memset(&out, POISON, sizeof(out));
	r = wire_blk_handle_decode(p, len, &out);
	if (r < 0)
		return poisoned(&out, sizeof(out)) ? r : UNTOUCHED;
	if (ret)
		*ret = out;
	return r;
}

static void test_handle(void)
{
	struct proto_blk_handle out;

	is(handle_try(0xdeadbeef, 0, sizeof(out), &out), 0, "handle request accepted");
	is(out.handle, 0xdeadbeef, "...handle");
	is(handle_try(1, 1, sizeof(out), NULL), -EBADMSG, "handle request rsvd nonzero");
	is(handle_try(1, 0x80000000u, sizeof(out), NULL), -EBADMSG, "handle request rsvd bit 31");
	is(handle_try(1, 0, sizeof(out) - 1, NULL), -EBADMSG, "handle request short");
	is(handle_try(1, 0, sizeof(out) + 1, NULL), -EBADMSG, "handle request long");
	is(handle_try(1, 0, 0, NULL), -EBADMSG, "handle request empty");
}

/* ---- VOL_* ------------------------------------------------------------------ */

static const uint16_t vol_ops[] = {
	PROTO_OP_VOL_CREATE, PROTO_OP_VOL_DELETE, PROTO_OP_VOL_RESIZE, PROTO_OP_VOL_CLONE,
	PROTO_OP_VOL_STAT,
};

struct volreq {
	const char *name, *src;      /* src NULL: all NUL */
	size_t name_n;               /* 0: strlen(name) */
	uint64_t size;
	uint32_t flags, rsvd;
};

static int vol_try(uint16_t op, const struct volreq *q, size_t len, struct proto_vol_req *ret,
		   char ret_src[PROTO_VOL_NAME_SIZE])
{
	struct proto_vol_req m = { .size = q->size, .flags = q->flags, .rsvd = q->rsvd }, out;
	char name[PROTO_VOL_NAME_SIZE], src[PROTO_VOL_NAME_SIZE];
	uint8_t p[sizeof(m) + 1] = { 0 };
	int r;

	field_raw(m.name, q->name, q->name_n ? q->name_n : strlen(q->name));
	if (q->src)
		field_str(m.src, q->src);
	wire_vol_req_swap(&m);
	memcpy(p, &m, sizeof(m));
	memset(&out, POISON, sizeof(out));
	memset(src, POISON, sizeof(src));
	r = wire_vol_req_decode(op, p, len, &out, name, src);
	if (r < 0)
		/* *ret stays untouched (the names may have been written). */
		return poisoned(&out, sizeof(out)) ? r : UNTOUCHED;
	if (ret)
		*ret = out;
	if (ret_src)
		memcpy(ret_src, src, sizeof(src));
	return strcmp(name, q->name) == 0 ? r : -1000;
}

/* Decode with the right length. */
#define VOL(op, ...) vol_try(op, &(struct volreq){ __VA_ARGS__ }, sizeof(struct proto_vol_req), \
			     NULL, NULL)

static void test_vol(void)
{
	const uint64_t G = 1ull << 30;
	struct proto_vol_req out;
	char src[PROTO_VOL_NAME_SIZE];

	is(vol_try(PROTO_OP_VOL_CREATE, &(struct volreq){ .name = "disk0", .size = 10 * G },
		   sizeof(out), &out, src), 0, "VOL_CREATE accepted");
	ok(out.size == 10 * G && out.flags == 0, "...size in host order");
	ok(!memcmp(src, (char[PROTO_VOL_NAME_SIZE]){ 0 }, sizeof(src)), "...src all NUL");
	is(VOL(PROTO_OP_VOL_CREATE, .name = "disk0", .size = 512), 0, "VOL_CREATE of one sector");
	is(VOL(PROTO_OP_VOL_CREATE, .name = "disk0", .size = 0), -EBADMSG, "VOL_CREATE size 0");
	is(VOL(PROTO_OP_VOL_CREATE, .name = "disk0", .size = G + 1), -EBADMSG,
	   "VOL_CREATE size not a multiple of a sector");
	is(VOL(PROTO_OP_VOL_RESIZE, .name = "disk0", .size = 2 * G), 0, "VOL_RESIZE accepted");
	is(vol_try(PROTO_OP_VOL_RESIZE, &(struct volreq){ .name = "disk0", .size = G,
		   .flags = PROTO_VOL_SHRINK }, sizeof(out), &out, NULL), 0,
	   "VOL_RESIZE with SHRINK accepted");
	is(out.flags, PROTO_VOL_SHRINK, "...flags");
	is(VOL(PROTO_OP_VOL_RESIZE, .name = "disk0", .size = 0, .flags = PROTO_VOL_SHRINK), 0,
	   "VOL_RESIZE to 0 with SHRINK accepted");
	is(VOL(PROTO_OP_VOL_RESIZE, .name = "disk0", .size = 1000), -EBADMSG,
	   "VOL_RESIZE size not a multiple of a sector");
	is(VOL(PROTO_OP_VOL_RESIZE, .name = "disk0", .size = G, .flags = 2), -EBADMSG,
	   "VOL_RESIZE unknown flag");
	is(vol_try(PROTO_OP_VOL_CLONE, &(struct volreq){ .name = "copy", .src = "base" },
		   sizeof(out), NULL, src), 0, "VOL_CLONE accepted");
	is_str(src, "base", "...src");
	is(VOL(PROTO_OP_VOL_CLONE, .name = "copy", .src = ""), -EBADMSG, "VOL_CLONE without src");
	is(VOL(PROTO_OP_VOL_CLONE, .name = "copy", .src = "Base"), -EBADMSG, "VOL_CLONE bad src");
	is(VOL(PROTO_OP_VOL_CLONE, .name = "copy", .src = "-base"), -EBADMSG,
	   "VOL_CLONE src with a leading '-'");
	is(VOL(PROTO_OP_VOL_DELETE, .name = "disk0"), 0, "VOL_DELETE accepted");
	is(VOL(PROTO_OP_VOL_STAT, .name = "disk0"), 0, "VOL_STAT accepted");

	for (size_t i = 0; i < ARRAY_SIZE(vol_ops); i++) {
		uint16_t op = vol_ops[i];
		const char *n = proto_op_name(op);
		const char *s = op == PROTO_OP_VOL_CLONE ? "base" : NULL;
		uint64_t size = op == PROTO_OP_VOL_CREATE || op == PROTO_OP_VOL_RESIZE ? G : 0;
		struct volreq q = { .name = "disk0", .src = s, .size = size };

		is(vol_try(op, &q, sizeof(out), NULL, NULL), 0, "%s: the base case", n);
		is(vol_try(op, &q, sizeof(out) - 1, NULL, NULL), -EBADMSG, "%s one byte short", n);
		is(vol_try(op, &q, sizeof(out) + 1, NULL, NULL), -EBADMSG, "%s one byte long", n);
		is(VOL(op, .name = "disk0", .src = s, .size = size, .rsvd = 1), -EBADMSG,
		   "%s rsvd nonzero", n);
		is(VOL(op, .name = "disk0", .src = s, .size = size, .flags = 4), -EBADMSG,
		   "%s unknown flag", n);
		if (op != PROTO_OP_VOL_RESIZE)
			is(VOL(op, .name = "disk0", .src = s, .size = size, .flags = PROTO_VOL_SHRINK),
			   -EBADMSG, "%s with SHRINK", n);
		if (!size)
			is(VOL(op, .name = "disk0", .src = s, .size = 512), -EBADMSG,
			   "%s with a size", n);
		if (!s)
			is(VOL(op, .name = "disk0", .src = "base", .size = size), -EBADMSG,
			   "%s with a src", n);
		for (size_t j = 0; j < ARRAY_SIZE(bad_names); j++) {
			struct volreq b = { .name = bad_names[j].raw, .name_n = bad_names[j].n,
					    .src = s, .size = size };
			int r;

			/* The empty name: name_n 0 means strlen, which is 0 too. */
			r = vol_try(op, &b, sizeof(out), NULL, NULL);
			is(r, -EBADMSG, "%s name refused: %s", n, bad_names[j].what);
		}
	}
	is(VOL(PROTO_OP_VOL_LIST, .name = "disk0"), -EINVAL, "vol_list is no VOL_* name op");
	is(VOL(PROTO_OP_BLK_OPEN, .name = "disk0"), -EINVAL, "blk_open is no VOL_* op");
	is(VOL(PROTO_OP_BLK_CLOSE, .name = "disk0"), -EINVAL, "blk_close is no VOL_* op");
}

/* ---- byte order -------------------------------------------------------------- */

/* The `width` bytes at p + off hold v little-endian. */
static bool le_at(const void *p, size_t off, int width, uint64_t v)
{
	const uint8_t *b = (const uint8_t *)p + off;

	for (int i = 0; i < width; i++, v >>= 8)
		if (b[i] != (uint8_t)v)
			return false;
	return true;
}

#define ROUND_TRIP(type, swap, init, checks, what)                                 \
	do {                                                                       \
		type m_ = init, w_ = m_;                                           \
		swap(&w_);                                                         \
		ok(checks, "%s: little-endian on the wire", what);                 \
		swap(&w_);                                                         \
		ok(!memcmp(&m_, &w_, sizeof(m_)), "%s: a round trip is the identity", what); \
	} while (0)

static void test_swaps(void)
{
	struct proto_grant g = mkgrant();
	struct proto_blk_open_req oq = { .grant = g, .flags = 0x01020304, .rsvd = 0x05060708 };

	memcpy(oq.name, "disk", 4);
	ROUND_TRIP(struct proto_blk_open_req, wire_blk_open_req_swap, oq,
		   le_at(&w_, 0, 8, g.memnode_id) && le_at(&w_, 16, 4, g.section) &&
		   le_at(&w_, 20, 4, g.generation) && le_at(&w_, 32, 8, g.expiry) &&
		   le_at(&w_, 168, 4, 0x01020304) && le_at(&w_, 172, 4, 0x05060708) &&
		   !memcmp(w_.name, "disk", 5) && w_.grant.sig[0] == 0xab, "blk_open_req");
	ROUND_TRIP(struct proto_blk_open_rep, wire_blk_open_rep_swap,
		   ((struct proto_blk_open_rep){ 0x01020304, 0x05060708, 0x1112131415161718ull }),
		   le_at(&w_, 0, 4, 0x01020304) && le_at(&w_, 4, 4, 0x05060708) &&
		   le_at(&w_, 8, 8, 0x1112131415161718ull), "blk_open_rep");
	ROUND_TRIP(struct proto_blk_io, wire_blk_io_swap,
		   ((struct proto_blk_io){ 0x01020304, 0x05060708, 0x1112131415161718ull }),
		   le_at(&w_, 0, 4, 0x01020304) && le_at(&w_, 4, 4, 0x05060708) &&
		   le_at(&w_, 8, 8, 0x1112131415161718ull), "blk_io");
	ROUND_TRIP(struct proto_blk_handle, wire_blk_handle_swap,
		   ((struct proto_blk_handle){ 0x01020304, 0x05060708 }),
		   le_at(&w_, 0, 4, 0x01020304) && le_at(&w_, 4, 4, 0x05060708), "blk_handle");

	struct proto_vol_req vq = { .size = 0x1112131415161718ull, .flags = 0x01020304,
				    .rsvd = 0x05060708 };
	memcpy(vq.name, "disk", 4);
	memcpy(vq.src, "base", 4);
	ROUND_TRIP(struct proto_vol_req, wire_vol_req_swap, vq,
		   le_at(&w_, 64, 8, 0x1112131415161718ull) && le_at(&w_, 72, 4, 0x01020304) &&
		   le_at(&w_, 76, 4, 0x05060708) && !memcmp(w_.name, "disk", 5) &&
		   !memcmp(w_.src, "base", 5), "vol_req");

	struct proto_volume v = { .size = 0x1112131415161718ull, .allocated = 0x2122232425262728ull,
				  .key = 0x3132333435363738ull, .users = 0x01020304,
				  .flags = 0x05060708 };
	memcpy(v.name, "disk", 4);
	ROUND_TRIP(struct proto_volume, wire_volume_swap, v,
		   le_at(&w_, 64, 8, 0x1112131415161718ull) &&
		   le_at(&w_, 72, 8, 0x2122232425262728ull) &&
		   le_at(&w_, 80, 8, 0x3132333435363738ull) && le_at(&w_, 88, 4, 0x01020304) &&
		   le_at(&w_, 92, 4, 0x05060708) && !memcmp(w_.name, "disk", 5), "volume");

	is(wire_vol_key_of_grant(&g), 0x5566778811223344ull,
	   "a grant's volume key: generation high, section low");
	g.section = UINT32_MAX;
	g.generation = 0;
	is(wire_vol_key_of_grant(&g), 0xffffffffull, "...no sign extension");
}

/* ---- names of opcodes and statuses ----------------------------------------- */

static void test_names_of_values(void)
{
	static const struct {
		uint32_t op;
		const char *name;
	} ops[] = {
		{ PROTO_OP_BLK_OPEN, "blk_open" }, { PROTO_OP_BLK_READ, "blk_read" },
		{ PROTO_OP_BLK_WRITE, "blk_write" }, { PROTO_OP_BLK_FLUSH, "blk_flush" },
		{ PROTO_OP_BLK_DISCARD, "blk_discard" },
		{ PROTO_OP_BLK_WRITE_ZEROES, "blk_write_zeroes" },
		{ PROTO_OP_BLK_CLOSE, "blk_close" }, { PROTO_OP_VOL_CREATE, "vol_create" },
		{ PROTO_OP_VOL_DELETE, "vol_delete" }, { PROTO_OP_VOL_RESIZE, "vol_resize" },
		{ PROTO_OP_VOL_CLONE, "vol_clone" }, { PROTO_OP_VOL_STAT, "vol_stat" },
		{ PROTO_OP_VOL_LIST, "vol_list" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		is_str(proto_op_name(ops[i].op), ops[i].name, "opcode %u is %s", ops[i].op,
		       ops[i].name);
	is_str(proto_op_name(PROTO_OP_MAX), "unknown", "PROTO_OP_MAX is unknown");
	is(PROTO_OP_VOL_LIST + 1, PROTO_OP_MAX, "vol_list is the last opcode");
	is_str(proto_status_str(PROTO_ST_EXIST), "the name is taken", "status EXIST's text");
	is(proto_status_to_errno(PROTO_ST_EXIST), -EEXIST, "EXIST is -EEXIST");
	is(proto_errno_to_status(-EEXIST), PROTO_ST_EXIST, "-EEXIST is EXIST");
	is_str(proto_status_str(PROTO_ST_MAX), "unknown status", "PROTO_ST_MAX is unknown");
	is(proto_status_to_errno(PROTO_ST_MAX), -EPROTO, "PROTO_ST_MAX maps to -EPROTO");
	ok(!(PROTO_FEAT_ALL & PROTO_FEAT_BLK), "PROTO_FEAT_BLK is not a memory node's feature");
	is(PROTO_BLK_MAX_IO, 1 << 20, "PROTO_BLK_MAX_IO is 1 MiB");
}

int main(void)
{
	test_names();
	test_open();
	test_io();
	test_handle();
	test_vol();
	test_swaps();
	test_names_of_values();
	done_testing();
	return tap_exit();
}
