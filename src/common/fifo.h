/* SPDX-License-Identifier: MIT */
/*
 * A first-in first-out queue of fixed-size elements, copied in and out,
 * that grows (doubling) up to a cap the owner sets (fifo.c). The memory
 * node client keeps the recalls a node sent on a recall channel in one
 * until the holder takes them (mnclient.h, mnc_dir_next_recall).
 */
#ifndef DISAGG_FIFO_H
#define DISAGG_FIFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fifo {
	uint8_t *buf;
	size_t esize;
	size_t head, len, cap, max;   /* in elements */
};

/* An empty queue of `esize`-byte elements, at most `max` of them. Allocates nothing yet. */
void fifo_init(struct fifo *f, size_t esize, size_t max);
void fifo_free(struct fifo *f);      /* back to empty; accepts a zeroed struct */
/* Copy e in at the tail: 0, -E2BIG (max elements queued) or -ENOMEM. */
int fifo_push(struct fifo *f, const void *e);
/* Copy the head out into ret and drop it; false when empty. */
bool fifo_pop(struct fifo *f, void *ret);

#endif /* DISAGG_FIFO_H */
