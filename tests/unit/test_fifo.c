// SPDX-License-Identifier: MIT
/*
 * Unit test of the growing FIFO (src/common/fifo.c): order kept across
 * growth while the ring has wrapped, the cap (-E2BIG, and nothing lost),
 * empty pops, and reuse after fifo_free.
 */
#include <errno.h>
#include <stdint.h>

#include "fifo.h"
#include "tap.h"

struct elem {
	uint64_t a;
	uint32_t b;
};

int main(void)
{
	struct fifo f;
	struct elem e;
	uint64_t next_in = 0, next_out = 0;
	bool order = true;
	int r = 0;

	fifo_init(&f, sizeof(struct elem), 100);
	ok(!fifo_pop(&f, &e), "an empty queue pops nothing");
	/* Push 3, pop 2, many times: the ring wraps and grows while it holds some. */
	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < 3; i++, next_in++)
			r |= fifo_push(&f, &(struct elem){ next_in, (uint32_t)next_in * 3 });
		for (int i = 0; i < 2; i++, next_out++)
			order &= fifo_pop(&f, &e) && e.a == next_out && e.b == (uint32_t)next_out * 3;
	}
	is(r, 0, "40 rounds of 3 pushes and 2 pops");
	ok(order, "  each pop is the oldest, also across growth");
	is((int)f.len, 40, "  40 left");
	while (f.len < 100)
		r |= fifo_push(&f, &(struct elem){ next_in++, 0 });
	is(r, 0, "filled to the cap");
	is(fifo_push(&f, &(struct elem){ 999, 0 }), -E2BIG, "one more: -E2BIG");
	is((int)f.len, 100, "  nothing lost, nothing added");
	ok(fifo_pop(&f, &e) && e.a == next_out, "  the oldest is still first");
	fifo_free(&f);
	ok(f.len == 0 && !fifo_pop(&f, &e), "freed: empty");
	is(fifo_push(&f, &(struct elem){ 5, 6 }), 0, "usable again after fifo_free");
	ok(fifo_pop(&f, &e) && e.a == 5 && e.b == 6, "  and in order");
	fifo_free(&f);
	done_testing();
	return tap_exit();
}
