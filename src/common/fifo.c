// SPDX-License-Identifier: MIT
/*
 * A growing FIFO of fixed-size elements. See fifo.h. The elements live in
 * one ring buffer; growing copies them, oldest first, to the start of a
 * buffer twice the size.
 */
#include "fifo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void fifo_init(struct fifo *f, size_t esize, size_t max)
{
	*f = (struct fifo){ .esize = esize, .max = max };
}

void fifo_free(struct fifo *f)
{
	free(f->buf);
	f->buf = NULL;
	f->head = f->len = f->cap = 0;
}

static int fifo_grow(struct fifo *f)
{
	size_t cap = f->cap ? f->cap * 2 : 16, first;
	uint8_t *b;

	if (cap > f->max)
		cap = f->max;
	if (cap <= f->cap)
		return -E2BIG;
	b = calloc(cap, f->esize);
	if (!b)
		return -ENOMEM;
	first = f->cap - f->head < f->len ? f->cap - f->head : f->len;
	if (f->len) {
		memcpy(b, f->buf + f->head * f->esize, first * f->esize);
		memcpy(b + first * f->esize, f->buf, (f->len - first) * f->esize);
	}
	free(f->buf);
	f->buf = b;
	f->head = 0;
	f->cap = cap;
	return 0;
}

int fifo_push(struct fifo *f, const void *e)
{
	if (f->len == f->cap) {
		int r = fifo_grow(f);

		if (r < 0)
			return r;
	}
	memcpy(f->buf + ((f->head + f->len) % f->cap) * f->esize, e, f->esize);
	f->len++;
	return 0;
}

bool fifo_pop(struct fifo *f, void *ret)
{
	if (!f->len)
		return false;
	memcpy(ret, f->buf + f->head * f->esize, f->esize);
	f->head = (f->head + 1) % f->cap;
	f->len--;
	return true;
}
