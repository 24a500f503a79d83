// SPDX-License-Identifier: MIT
/*
 * WRITE_DIFF frames (wirediff.h): a page's diff against its twin encodes
 * exactly the changed bytes (nothing for an unchanged page, one run for a
 * whole page, 2048 runs when every other byte changed), decodes, and
 * applies onto the twin to give the page back; the decoder refuses every
 * malformed request with the documented errno.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "wirediff.h"

#define PS PROTO_PAGE_SIZE
#define REQ sizeof(struct proto_diff_req)

static uint8_t frame[REQ + 2 * WIRE_DIFF_PAGE_MAX];

/* Encode page `pg` (twin -> now) as a one-page request: its length, 0 if no change. */
static size_t one(uint32_t pg, const uint8_t *twin, const uint8_t *now, uint64_t *changed)
{
	struct proto_grant g = { .section = 3 };
	size_t n = wire_diff_page_encode(pg, twin, now, frame + REQ, changed);

	wire_diff_req_encode(&g, 1, NULL, frame);
	return n ? REQ + n : 0;
}

/* Decode and apply onto a copy of twin (page `pg` of an 8-page section): equal to now? */
static bool round_trip(uint32_t pg, const uint8_t *twin, const uint8_t *now, size_t len)
{
	static uint8_t sec[8 * PS];
	struct wire_diff d;

	if (wire_diff_decode(frame, len, 8, PROTO_MAX_PAGES, &d) < 0 || d.npages != 1 ||
	    d.grant.section != 3)
		return false;
	memcpy(sec + (size_t)pg * PS, twin, PS);
	wire_diff_apply(&d, sec);
	return memcmp(sec + (size_t)pg * PS, now, PS) == 0;
}

static void put16(size_t off, uint16_t v)
{
	v = htole16(v);
	memcpy(frame + off, &v, 2);
}

/* PROTO_DIFF_ONCE: the ids between the header and the pages, checked. */
static void test_once(uint8_t *twin, uint8_t *now)
{
	static uint8_t f[REQ + sizeof(struct proto_diff_once) + WIRE_DIFF_PAGE_MAX];
	struct proto_grant g = { .section = 3 };
	struct proto_diff_once id = { .stream = 0x1122334455667788ull, .batch = 9, .frame = 255 };
	struct proto_diff_once saved;
	uint8_t page[PS];
	struct wire_diff d;
	size_t head, n, len;
	uint32_t pg = 0;

	memset(twin, 0, PS);
	memset(now, 0, PS);
	now[7] = 0x77;
	head = wire_diff_req_encode(&g, 1, &id, f);
	n = wire_diff_page_encode(5, twin, now, f + head, NULL);
	len = head + n;
	is((long)head, (long)(REQ + sizeof(struct proto_diff_once)), "the ids follow the header");
	ok(wire_diff_decode(f, len, 8, 256, &d) == 0 && d.once.stream == id.stream &&
		   d.once.batch == 9 && d.once.frame == 255 && d.len == n && d.bytes == 1,
	   "a frame with its ids decodes to them");
	ok(wire_diff_decode(f, len - sizeof(struct proto_diff_once), 8, 256, &d) == -EBADMSG,
	   "the flag without room for the ids");
	ok(wire_diff_decode(f, REQ + 8, 8, 256, &d) == -EBADMSG, "ids cut short");
	memcpy(&saved, f + REQ, sizeof(saved));
	f[REQ + 16] = 0;   /* frame 255 -> 0 is fine; make it 256 */
	f[REQ + 17] = 1;
	ok(wire_diff_decode(f, len, 8, 256, &d) == -EBADMSG, "a frame index past 255");
	memcpy(f + REQ, &saved, sizeof(saved));
	f[REQ + 20] = 1;
	ok(wire_diff_decode(f, len, 8, 256, &d) == -EBADMSG, "the ids' rsvd set");
	memcpy(f + REQ, &saved, sizeof(saved));
	memset(f + REQ, 0, 8);
	ok(wire_diff_decode(f, len, 8, 256, &d) == -EBADMSG, "stream 0");
	memcpy(f + REQ, &saved, sizeof(saved));
	memset(f + REQ + 8, 0, 8);
	ok(wire_diff_decode(f, len, 8, 256, &d) == -EBADMSG, "batch 0");
	memcpy(f + REQ, &saved, sizeof(saved));
	ok(wire_diff_decode(f, len, 8, 256, &d) == 0, "as it was, it decodes");

	/* The body alone: checked and applied a page at a time. */
	ok(wire_diff_body_check(f + head, n, 1, 8, NULL) == 0 &&
		   wire_diff_body_check(f + head, n, 1, 5, NULL) == -ERANGE &&
		   wire_diff_body_check(f + head, n - 1, 1, 8, NULL) == -EBADMSG,
	   "a body checks alone (page 5 outside 5 pages: -ERANGE; a byte short: -EBADMSG)");
	memset(page, 0xaa, PS);
	ok(wire_diff_page_apply(f + head, page, &pg) == n && pg == 5 && page[7] == 0x77 &&
		   page[6] == 0xaa && page[8] == 0xaa,
	   "a page diff applies its runs only, and gives its page and length");
}

int main(void)
{
	uint8_t *twin = calloc(1, PS), *now = calloc(1, PS);
	uint64_t changed = 0;
	struct wire_diff d;
	size_t len;

	is((long)one(2, twin, now, &changed), 0, "an unchanged page encodes nothing");

	for (unsigned i = 0; i < PS; i += 2)
		now[i] = (uint8_t)(i / 2 % 255 + 1);
	len = one(2, twin, now, &changed);
	is((long)len, (long)(REQ + 8 + 2048 * 4 + 2048), "every other byte: 2048 runs of one byte");
	is((long)changed, 2048, "  2048 bytes changed");
	ok(round_trip(2, twin, now, len), "  applied onto the twin it gives the page");

	memset(now, 0x5a, PS);
	memset(now + 100, 0, 10);                 /* equal to the twin: not in the diff */
	len = one(7, twin, now, &changed);
	is((long)len, (long)(REQ + 8 + 2 * 4 + PS - 10), "two runs around an unchanged gap");
	ok(round_trip(7, twin, now, len), "  applied, it gives the page");

	len = one(1, NULL, now, &changed);
	is((long)len, (long)(REQ + 8 + 4 + PS), "no twin: the whole page, one run");
	is((long)changed, PS, "  4096 bytes");
	ok(round_trip(1, twin, now, len), "  applied, it gives the page");

	/* Refusals, each on a valid one-byte diff of page 0 made bad. */
	memset(now, 0, PS);
	now[5] = 1;
	len = one(0, twin, now, &changed);
	is(wire_diff_decode(frame, len, 8, 256, &d), 0, "a one-byte diff decodes");
	is(wire_diff_decode(frame, len - 1, 8, 256, &d), -EBADMSG, "a byte short");
	is(wire_diff_decode(frame, len + 1, 8, 256, &d), -EBADMSG, "a byte left over");
	is(wire_diff_decode(frame, REQ - 1, 8, 256, &d), -EBADMSG, "no whole header");
	is(wire_diff_decode(frame, len, 0, 256, &d), -ERANGE, "page outside the section");
	is(wire_diff_decode(frame, len, 8, 0, &d), -E2BIG, "more pages than max_pages");
	put16(REQ + 8 + 2, 0);
	is(wire_diff_decode(frame, len, 8, 256, &d), -EBADMSG, "an empty run");
	put16(REQ + 8 + 2, 1);
	put16(REQ + 8, PS);
	is(wire_diff_decode(frame, len, 8, 256, &d), -EBADMSG, "a run past the page");
	put16(REQ + 8, 5);
	put16(REQ + 4, 0);
	is(wire_diff_decode(frame, len, 8, 256, &d), -EBADMSG, "no run");
	put16(REQ + 4, PROTO_MAX_DIFF_RUNS + 1);
	is(wire_diff_decode(frame, len, 8, 256, &d), -E2BIG, "too many runs");
	put16(REQ + 4, 1);
	put16(REQ + 6, 1);
	is(wire_diff_decode(frame, len, 8, 256, &d), -EBADMSG, "the page's rsvd set");
	put16(REQ + 6, 0);
	frame[108] = 2;
	is(wire_diff_decode(frame, len, 8, 256, &d), -EBADMSG, "an unknown flag");
	frame[108] = 0;
	frame[104] = 0;
	is(wire_diff_decode(frame, len, 8, 256, &d), -EBADMSG, "no page");
	frame[104] = 1;

	/* Two runs out of order, then overlapping. */
	memset(now, 0, PS);
	now[10] = 1;
	now[20] = 2;
	len = one(0, twin, now, &changed);
	is(wire_diff_decode(frame, len, 8, 256, &d), 0, "two runs decode");
	put16(REQ + 8, 30);                        /* the first run after the second */
	is(wire_diff_decode(frame, len, 8, 256, &d), -EBADMSG, "runs out of order");
	put16(REQ + 8, 20);                        /* the same offset twice */
	is(wire_diff_decode(frame, len, 8, 256, &d), -EBADMSG, "overlapping runs");
	test_once(twin, now);
	free(twin);
	free(now);
	done_testing();
	return tap_exit();
}
