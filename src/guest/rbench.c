// SPDX-License-Identifier: MIT
/*
 * Shared-region benchmark jobs (rbench.h) for bench/shared: a page handed
 * back and forth between two guests, first reads of pages, and read
 * bandwidth of a region against the guest's own memory.
 */
#include "rbench.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rjob.h"

#define PINGPONG_WORD 8192
#define PINGPONG_NAP_US 20   /* WAIT=nap: the waiter's sleep between two looks */

/* Rounds whose duration is kept for the percentiles (the first ones of a longer run). */
#define PINGPONG_SAMPLES 100000u

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The percentile q (0-100) of n sorted round times in tenths of a microsecond, in us. */
static double pct_us(const uint32_t *v, uint64_t n, unsigned q)
{
	return n ? (double)v[(n - 1) * q / 100] / 10.0 : 0.0;
}

static void pingpong_run(struct rjob *j)
{
	uint64_t *w = rmap_word(&j->map, PINGPONG_WORD);
	uint64_t role = j->arg[0], iters = j->arg[1], t0 = 0, prev = 0, n = 0, slow = 0;
	uint32_t *lat = calloc(MIN_U64(iters, PINGPONG_SAMPLES), sizeof(*lat));
	bool nap = j->arg[2];

	if (!lat)
		return rjob_result(j, "error reason=nomem");
	for (uint64_t k = 0; k < iters; k++) {
		uint64_t want = 2 * k + role, spins = 0, deadline = 0, now;

		while (__atomic_load_n(w, __ATOMIC_ACQUIRE) != want)
			if ((nap && usleep(PINGPONG_NAP_US) < 0) || rjob_spin(&spins, &deadline)) {
				free(lat);
				return rjob_result(j, "error reason=partner_timeout k=%" PRIu64
						   " word=%" PRIu64, k, __atomic_load_n(w, __ATOMIC_RELAXED));
			}
		now = guest_now_ns();
		if (k == 0)
			t0 = now;    /* from the first hand-over on */
		else if (n < PINGPONG_SAMPLES)   /* one round: this write since our last */
			lat[n++] = (uint32_t)MIN_U64((now - prev) / 100, UINT32_MAX);
		slow += k && now - prev >= 1000000;
		prev = now;
		__atomic_store_n(w, want + 1, __ATOMIC_RELEASE);
		atomic_store_explicit(&j->progress, k + 1, memory_order_relaxed);
	}
	qsort(lat, n, sizeof(*lat), cmp_u32);
	rjob_result(j, "ok rtt_us=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f "
		    "over_1ms=%" PRIu64 " ms=%llu",
		    iters > 1 ? (double)(guest_now_ns() - t0) / 1000.0 / (double)(iters - 1) : 0.0,
		    pct_us(lat, n, 50), pct_us(lat, n, 90), pct_us(lat, n, 99), pct_us(lat, n, 100),
		    slow, guest_ms_since(j->t0));
	free(lat);
}

static void cmd_rpingpong(char **av, int ac)
{
	uint64_t role, iters;
	bool nap = ac == 5 && !strcmp(av[4], "nap");
	struct rjob *j;

	if ((ac != 4 && ac != 5) || (ac == 5 && !nap && strcmp(av[4], "spin")) ||
	    guest_parse_u64(av[2], 0, 1, &role) < 0 ||
	    guest_parse_u64(av[3], 2, 100000000ull, &iters) < 0)
		return guest_reply("ERR usage: RPINGPONG REGION ROLE(0|1) ITERS(2..) [spin|nap]");
	if (!(j = rjob_claim()) || rmap_open(av[1], &j->map) < 0)
		return;
	if (j->map.bytes < PINGPONG_WORD + 8) {
		rmap_close(&j->map);
		return guest_reply("ERR region too small");
	}
	j->arg[0] = role;
	j->arg[1] = iters;
	j->arg[2] = nap;
	rjob_launch(j, "pingpong", pingpong_run);
}

static void touch_run(struct rjob *j)
{
	uint64_t first = j->arg[0], n = j->arg[1], sum = 0, t0 = guest_now_ns();

	for (uint64_t pg = first; pg < first + n; pg++) {
		sum += __atomic_load_n(rmap_word(&j->map, pg * 4096), __ATOMIC_RELAXED);
		atomic_store_explicit(&j->progress, pg - first + 1, memory_order_relaxed);
	}
	rjob_result(j, "ok us_per_page=%.1f sum=%" PRIu64 " ms=%llu",
		    (double)(guest_now_ns() - t0) / 1000.0 / (double)n, sum, guest_ms_since(j->t0));
}

static void cmd_rtouch(char **av, int ac)
{
	uint64_t first, n;
	struct rjob *j;

	if (ac != 4 || guest_parse_u64(av[2], 0, UINT64_MAX / 8192, &first) < 0 ||
	    guest_parse_u64(av[3], 1, 1u << 26, &n) < 0)
		return guest_reply("ERR usage: RTOUCH REGION FIRST PAGES");
	if (!(j = rjob_claim()) || rmap_open(av[1], &j->map) < 0)
		return;
	if ((first + n) * 4096 > j->map.bytes) {
		rmap_close(&j->map);
		return guest_reply("ERR pages beyond region");
	}
	j->arg[0] = first;
	j->arg[1] = n;
	rjob_launch(j, "touch", touch_run);
}

struct reader {
	const uint64_t *mem;
	uint64_t words, rounds, sum;
	pthread_t th;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	for (uint64_t k = 0; k < r->rounds; k++)
		for (uint64_t i = 0; i < r->words; i++)
			r->sum += ((const volatile uint64_t *)r->mem)[i];
	return NULL;
}

/* Read mem (bytes) with n threads, rounds times each: the nanoseconds it took. */
static uint64_t read_all(const uint8_t *mem, uint64_t bytes, unsigned n, uint64_t rounds)
{
	struct reader rs[8];
	uint64_t t0 = guest_now_ns();

	for (unsigned i = 0; i < n; i++) {
		rs[i] = (struct reader){ .mem = (const uint64_t *)(const void *)mem,
					 .words = bytes / 8, .rounds = rounds };
		if (pthread_create(&rs[i].th, NULL, reader_main, &rs[i]) != 0)
			rs[i].rounds = 0, reader_main(&rs[i]);
	}
	for (unsigned i = 0; i < n; i++)
		if (rs[i].rounds)
			pthread_join(rs[i].th, NULL);
	return guest_now_ns() - t0;
}

static void readbw_run(struct rjob *j)
{
	uint64_t bytes = j->arg[0] << 20, rounds = j->arg[1], ns;
	unsigned threads = (unsigned)j->arg[2];
	uint8_t *mem = j->map.mem, *own = NULL;

	if (!mem) {
		own = malloc(bytes);
		if (!own)
			return rjob_result(j, "error reason=no_memory");
		memset(own, 1, bytes);
		mem = own;
	}
	(void)read_all(mem, bytes, threads, 1);            /* warm up: faults, copies */
	ns = read_all(mem, bytes, threads, rounds);
	free(own);
	rjob_result(j, "ok MBps=%.0f ms=%llu",
		    (double)bytes * (double)rounds * threads / 1048576.0 / ((double)ns / 1e9),
		    guest_ms_since(j->t0));
}

static void cmd_rreadbw(char **av, int ac)
{
	uint64_t mb, rounds, threads;
	struct rjob *j;

	if (ac != 5 || guest_parse_u64(av[2], 1, 1024, &mb) < 0 ||
	    guest_parse_u64(av[3], 1, 100000, &rounds) < 0 ||
	    guest_parse_u64(av[4], 1, 8, &threads) < 0)
		return guest_reply("ERR usage: RREADBW REGION|ram MB ROUNDS THREADS(1..8)");
	if (!(j = rjob_claim()))
		return;
	if (strcmp(av[1], "ram") != 0) {
		if (rmap_open(av[1], &j->map) < 0)
			return;
		if ((mb << 20) > j->map.bytes) {
			rmap_close(&j->map);
			return guest_reply("ERR MB beyond region");
		}
	}
	j->arg[0] = mb;
	j->arg[1] = rounds;
	j->arg[2] = threads;
	rjob_launch(j, "readbw", readbw_run);
}

const struct guest_cmd rbench_cmds[] = {
	{ "RPINGPONG", cmd_rpingpong },
	{ "RTOUCH", cmd_rtouch },
	{ "RREADBW", cmd_rreadbw },
	{ NULL, NULL },
};
