/* SPDX-License-Identifier: MIT */
/*
 * What the device benchmarks (blkbench.c, dnbench.c) share: a xorshift
 * source of block numbers and the median of a set of latencies.
 */
#ifndef DISAGG_BENCH_DEVICES_UTIL_H
#define DISAGG_BENCH_DEVICES_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* The next pseudo-random number in [0, n) of the sequence at *state. */
static inline uint64_t bench_next(uint64_t *state, uint64_t n)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state % n;
}

static int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median of v[0..n) (ns), in µs; v is sorted. */
static inline double bench_median_us(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), bench_cmp_u64);
	return (double)v[n / 2] / 1000.0;
}

#endif
