// SPDX-License-Identifier: MIT
/*
 * Dirty-page count and background write-back (the cleaner), local backend:
 * the count is exact after writes, flush, eviction, REMOVE and region
 * removal; a flush with nothing dirty writes nothing; the cleaner writes
 * back an idle mapping's dirty pages after writeback_delay_ms (not before)
 * and leaves them resident; with the cleaner off nothing is written; a
 * page rewritten soon after each write-back waits longer for the next one,
 * and its cluster becomes writable on one fault; a region whose rewrites
 * mostly come soon makes every rewritten page wait longer too (not a
 * page written for the first time), until it stops; a sequential writer over
 * written-back pages takes a fault per window, not per page; and concurrent writers
 * with the cleaner active lose nothing.
 */
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PS PAGER_PAGE_SIZE
#define SEC (1u << 20)
#define LEN (8u * SEC)
#define NPG (LEN / PS)
#define SPP (SEC / PS)

static uint32_t ver[NPG];

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct pager_stats stats(struct tmap *m)
{
	struct pager_stats st;

	pager_stats(m->p, &st);
	return st;
}

/* Wait (up to 2 s) for the dirty count to reach n: REMOVE is handled asynchronously. */
static uint64_t dirty_settle(struct tmap *m, uint64_t n)
{
	uint64_t t0 = ms_now(), d;

	while ((d = stats(m).dirty_pages) != n && ms_now() - t0 < 2000)
		usleep(1000);
	return d;
}

static void write_page(struct tmap *m, uint64_t pg)
{
	pat_fill(m->mem + pg * PS, pg, ++ver[pg]);
}

/*
 * Read [a, b) first, then write it, last page first: WP faults only, and
 * none of them sequential, so exactly b - a pages become dirty (a write
 * fault on an absent page may install a whole sequential window writable,
 * and dirty, and so may a WP fault of a writer going forward).
 */
static void read_write(struct tmap *m, uint64_t a, uint64_t b)
{
	for (uint64_t pg = a; pg < b; pg++)
		(void)pat_check(m->mem + pg * PS, pg, ver[pg], false);
	for (uint64_t pg = b; pg > a; pg--)
		write_page(m, pg - 1);
}

/* Pages of [a, b) whose backend copy differs from ver[]. */
static unsigned backend_bad(struct tmap *m, uint64_t a, uint64_t b)
{
	return tmap_backend_bad(m, ver, a, b);
}

static unsigned mapping_bad(struct tmap *m)
{
	unsigned bad = 0;

	for (uint64_t pg = 0; pg < NPG; pg++)
		bad += pat_check(m->mem + pg * PS, pg, ver[pg], true);
	return bad;
}

static int setup(struct tmap *m, int delay_ms, unsigned threads)
{
	struct pager_config cfg = { .name = "c", .budget = UINT64_MAX, .fault_threads = threads,
				    .writeback_delay_ms = delay_ms };
	int r;

	/* Section 2 is local. */
	r = tmap_setup(m, LEN, SEC, &cfg, 1u << 2, NULL, PAGER_DIRTY_SYNC_WP);
	if (r < 0)
		return r;
	for (uint64_t pg = 0; pg < NPG; pg++)
		ver[pg] = tmap_remote(m, pg) ? 1 : 0;
	return tmap_fill_backend(m, ver);
}

/* ---- the count ------------------------------------------------------------- */

static void test_count(void)
{
	struct tmap m;
	struct pager_stats st;
	uint64_t wb;
	int r;

	r = setup(&m, -1, 1);
	if (!ok(r == 0, "setup (cleaner off): %s", strerror(-r)))
		return;
	ok(stats(&m).dirty_pages == 0, "nothing dirty at first");
	r = pager_flush(m.p);
	st = stats(&m);
	ok(r == 0 && st.pages_written_back == 0, "flush with nothing dirty writes nothing");

	/* 100 written pages (WP faults), 100 more only read. */
	read_write(&m, 0, 100);
	for (uint64_t pg = 100; pg < 200; pg++)
		(void)pat_check(m.mem + pg * PS, pg, ver[pg], false);
	ok(dirty_settle(&m, 100) == 100, "100 written pages dirty (%llu)",
	   (unsigned long long)stats(&m).dirty_pages);
	/* Write faults on absent pages, far apart (no sequential window): 10 more. */
	for (uint64_t i = 0; i < 10; i++)
		write_page(&m, SPP + i * (SPP / 10));
	ok(dirty_settle(&m, 110) == 110, "10 write faults on absent pages: 110 dirty (%llu)",
	   (unsigned long long)stats(&m).dirty_pages);
	for (uint64_t pg = 0; pg < 100; pg++)
		write_page(&m, pg);
	/* Local section: no page state, not counted. */
	for (uint64_t pg = 2 * SPP; pg < 2 * SPP + 10; pg++)
		write_page(&m, pg);
	ok(dirty_settle(&m, 110) == 110, "rewrites and local writes do not count (%llu)",
	   (unsigned long long)stats(&m).dirty_pages);

	r = pager_flush(m.p);
	st = stats(&m);
	ok(r == 0 && st.dirty_pages == 0, "flush: 0 dirty (%llu)", (unsigned long long)st.dirty_pages);
	ok(backend_bad(&m, 0, NPG) == 0, "backend holds the writes");
	ok(st.pages_written_back == 110, "110 pages written back (%llu)",
	   (unsigned long long)st.pages_written_back);
	wb = st.pages_written_back;
	ok(pager_flush(m.p) == 0 && stats(&m).pages_written_back == wb, "second flush writes nothing");

	/* WP faults: resident clean pages become dirty again. */
	for (uint64_t pg = 0; pg < 200; pg += 2)
		write_page(&m, pg);
	ok(dirty_settle(&m, 100) == 100, "WP faults: 100 dirty (%llu)",
	   (unsigned long long)stats(&m).dirty_pages);

	/*
	 * REMOVE [150, 250): 25 dirty pages stay counted (they become
	 * discarded: zeros to write back), 25 clean resident ones and 50
	 * absent ones become discarded too.
	 */
	r = madvise(m.mem + 150 * PS, 100 * PS, MADV_REMOVE);
	for (uint64_t pg = 150; pg < 250; pg++)
		ver[pg] = 0;
	ok(r == 0, "MADV_REMOVE");
	ok(dirty_settle(&m, 175) == 175, "after REMOVE: 75 dirty + 100 discarded (%llu)",
	   (unsigned long long)stats(&m).dirty_pages);
	r = pager_flush(m.p);
	ok(r == 0 && stats(&m).dirty_pages == 0, "flush: 0 dirty");
	ok(backend_bad(&m, 0, NPG) == 0, "backend: writes and zeros of the removed range");

	/* Eviction writes back the dirty pages it evicts. */
	read_write(&m, 3 * SPP, 3 * SPP + 300);
	ok(dirty_settle(&m, 300) == 300, "300 dirty (%llu)", (unsigned long long)stats(&m).dirty_pages);
	ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 10000) == 0, "drop the cache");
	st = stats(&m);
	ok(st.resident_pages == 0 && st.dirty_pages == 0, "evicted: resident %llu dirty %llu",
	   (unsigned long long)st.resident_pages, (unsigned long long)st.dirty_pages);
	ok(pager_set_budget(m.p, UINT64_MAX) == 0 && mapping_bad(&m) == 0,
	   "every page reads back right");

	/* Half-evicted: some dirty pages evicted, the rest still counted. */
	read_write(&m, 4 * SPP, 4 * SPP + 200);
	ok(dirty_settle(&m, 200) == 200, "200 dirty");
	ok(pager_set_budget(m.p, (NPG / 2) * PS) == 0 && pager_wait_budget(m.p, 10000) == 0,
	   "budget 50%%");
	st = stats(&m);
	ok(st.dirty_pages <= 200, "dirty %llu <= 200", (unsigned long long)st.dirty_pages);
	ok(pager_set_budget(m.p, UINT64_MAX) == 0 && pager_flush(m.p) == 0 &&
	   stats(&m).dirty_pages == 0 && backend_bad(&m, 0, NPG) == 0, "flush: 0 dirty, backend right");

	/* Removing the region without write-back discards its dirty pages. */
	read_write(&m, 0, 50);
	ok(dirty_settle(&m, 50) == 50, "50 dirty");
	{
		struct strbuf sb;

		strbuf_init(&sb);
		pager_render_metrics(m.p, &sb, "");
		ok(sb.buf && strstr(sb.buf, "\ndisagg_pager_dirty_pages 50\n") != NULL,
		   "metrics: disagg_pager_dirty_pages 50");
		strbuf_free(&sb);
	}
	r = pager_remove_region(m.p, 0, false);
	ok(r == 0 && stats(&m).dirty_pages == 0, "region removed: 0 dirty (%llu)",
	   (unsigned long long)stats(&m).dirty_pages);
	ok(pager_flush(m.p) == 0, "flush with no region");
	tmap_teardown(&m);
}

/* ---- the cleaner ------------------------------------------------------------ */

#define DELAY 250

static void test_cleaner(void)
{
	struct tmap m;
	struct pager_stats st0, st;
	uint64_t t0, t;
	unsigned bad;
	int r;

	r = setup(&m, DELAY, 1);
	if (!ok(r == 0, "setup (cleaner %d ms): %s", DELAY, strerror(-r)))
		return;
	/* 300 WP faults on resident clean pages and 100 first-touch writes. */
	for (uint64_t pg = 0; pg < 300; pg++)
		(void)pat_check(m.mem + pg * PS, pg, ver[pg], false);
	t0 = ms_now();
	for (uint64_t pg = 0; pg < 300; pg++)
		write_page(&m, pg);
	for (uint64_t pg = 4 * SPP; pg < 4 * SPP + 100; pg++)
		write_page(&m, pg);
	usleep(20000);
	st0 = stats(&m);
	/* A first-touch sequential write installs (and dirties) the whole window. */
	ok(st0.dirty_pages >= 400, "%llu dirty", (unsigned long long)st0.dirty_pages);
	usleep(DELAY / 2 * 1000);
	st = stats(&m);
	if (ms_now() - t0 < DELAY)
		ok(st.pages_cleaned == 0 && st.dirty_pages == st0.dirty_pages,
		   "nothing written back before the delay (cleaned %llu)",
		   (unsigned long long)st.pages_cleaned);
	else
		ok(1, "# SKIP too slow to check the delay");

	/* Poll the backend (no flush): every write must arrive within ~2 x delay. */
	do {
		usleep(10000);
		bad = backend_bad(&m, 0, 300) + backend_bad(&m, 4 * SPP, 4 * SPP + 100);
		t = ms_now() - t0;
	} while (bad && t < 10 * DELAY);
	ok(bad == 0, "the cleaner wrote back every dirty page, without a flush (%u left)", bad);
	diag("written back after %llu ms (delay %d ms)", (unsigned long long)t, DELAY);
	ok(t <= 2 * DELAY + 150, "within ~2 x delay (%llu ms)", (unsigned long long)t);
	st = stats(&m);
	ok(st.dirty_pages == 0 && st.pages_cleaned == st0.dirty_pages,
	   "0 dirty, every dirty page cleaned (%llu, %llu)",
	   (unsigned long long)st.dirty_pages, (unsigned long long)st.pages_cleaned);
	ok(st.pages_written_back == st.pages_cleaned, "all by the cleaner");
	ok(st.resident_pages == st0.resident_pages && st.pages_evicted == 0 &&
	   st.pages_fetched == st0.pages_fetched,
	   "the pages stay resident (resident %llu, evicted %llu)",
	   (unsigned long long)st.resident_pages, (unsigned long long)st.pages_evicted);
	bad = 0;
	for (uint64_t pg = 0; pg < 300; pg++)
		bad += pat_check(m.mem + pg * PS, pg, ver[pg], true);
	for (uint64_t pg = 4 * SPP; pg < 4 * SPP + 100; pg++)
		bad += pat_check(m.mem + pg * PS, pg, ver[pg], true);
	ok(bad == 0 && stats(&m).pages_fetched == st0.pages_fetched,
	   "the written pages read right without a fetch");

	/* A cleaned page is write-protected again: the next write is a WP fault. */
	st0 = stats(&m);
	write_page(&m, 7);
	ok(dirty_settle(&m, 1) == 1 && stats(&m).faults_wp == st0.faults_wp + 1,
	   "re-dirtied: one WP fault, 1 dirty");
	ok(pager_flush(m.p) == 0 && backend_bad(&m, 0, NPG) == 0, "flush");
	tmap_teardown(&m);

	/* Off: nothing is written back by itself. */
	r = setup(&m, -1, 1);
	if (!ok(r == 0, "setup (cleaner off): %s", strerror(-r)))
		return;
	read_write(&m, 0, 300);
	usleep(1200 * 1000);
	st = stats(&m);
	ok(st.dirty_pages == 300 && st.pages_cleaned == 0 && st.pages_written_back == 0,
	   "cleaner off: 300 still dirty after 1.2 s, nothing written back");
	ok(backend_bad(&m, 0, 300) == 300, "backend still has the old data");
	ok(pager_flush(m.p) == 0 && backend_bad(&m, 0, NPG) == 0, "flush");
	tmap_teardown(&m);
}

/* ---- a guest that keeps rewriting its memory ------------------------------------ */

#define RW_PAGES 64u       /* 4 clusters of 16 pages */
#define SEQ_PAGES 256u
#define SCATTER(i) ((i) * 7 % RW_PAGES)   /* page i of an order with no two in a row */

/* Wait (up to 20 x DELAY) until nothing is dirty; the ms it took. */
static uint64_t wait_clean(struct tmap *m)
{
	uint64_t t0 = ms_now();

	while (stats(m).dirty_pages && ms_now() - t0 < 20 * DELAY)
		usleep(5000);
	return ms_now() - t0;
}

static void test_rewriter(void)
{
	struct tmap m;
	struct pager_stats st0, st;
	uint64_t t0, t;
	unsigned bad;
	int r;

	r = setup(&m, DELAY, 1);
	if (!ok(r == 0, "setup (cleaner %d ms): %s", DELAY, strerror(-r)))
		return;
	read_write(&m, 0, RW_PAGES);
	t = wait_clean(&m);
	ok(stats(&m).dirty_pages == 0, "written once: cleaned after %llu ms",
	   (unsigned long long)t);

	/*
	 * Written again at once, in an order that is never sequential: one
	 * WP fault per page (no history yet).
	 */
	st0 = stats(&m);
	t0 = ms_now();
	for (uint64_t i = 0; i < RW_PAGES; i++)
		write_page(&m, SCATTER(i));
	(void)dirty_settle(&m, RW_PAGES);   /* the fault thread counts after the wake-up */
	st = stats(&m);
	ok(st.faults_wp - st0.faults_wp == RW_PAGES && st.pages_unprotected == st0.pages_unprotected &&
	   st.dirty_pages == RW_PAGES, "first rewrite: %llu WP faults, %llu dirty",
	   (unsigned long long)(st.faults_wp - st0.faults_wp), (unsigned long long)st.dirty_pages);

	/*
	 * Rewritten within its delay of its write-back: the next one waits
	 * four times as long (two levels up).
	 */
	usleep(DELAY * 3 / 2 * 1000);
	st = stats(&m);
	if (ms_now() - t0 < 2 * DELAY)
		ok(st.dirty_pages == RW_PAGES, "not written back after 1.5 x delay (%llu dirty)",
		   (unsigned long long)st.dirty_pages);
	else
		ok(1, "# SKIP too slow to check the longer delay");
	(void)wait_clean(&m);
	t = ms_now() - t0;
	ok(stats(&m).dirty_pages == 0, "written back after %llu ms (delay %d ms)",
	   (unsigned long long)t, DELAY);
	ok(backend_bad(&m, 0, RW_PAGES) == 0, "backend right");

	/* And its cluster comes back writable on one fault. */
	st0 = stats(&m);
	for (uint64_t i = 0; i < RW_PAGES; i++)
		write_page(&m, SCATTER(i));
	(void)dirty_settle(&m, RW_PAGES);
	st = stats(&m);
	ok(st.faults_wp - st0.faults_wp == RW_PAGES / 16 &&
	   st.pages_unprotected - st0.pages_unprotected == RW_PAGES - RW_PAGES / 16,
	   "third rewrite: %llu WP faults, %llu pages unprotected with them",
	   (unsigned long long)(st.faults_wp - st0.faults_wp),
	   (unsigned long long)(st.pages_unprotected - st0.pages_unprotected));
	ok(st.dirty_pages == RW_PAGES, "%llu dirty", (unsigned long long)st.dirty_pages);
	bad = 0;
	for (uint64_t pg = 0; pg < RW_PAGES; pg++)
		bad += pat_check(m.mem + pg * PS, pg, ver[pg], true);
	ok(bad == 0, "the mapping reads right (%u bad)", bad);

	/* A page written once stays exact: its neighbours are not made dirty. */
	read_write(&m, 128, 128 + 16);
	(void)wait_clean(&m);
	st0 = stats(&m);
	write_page(&m, 128 + 3);
	(void)dirty_settle(&m, 1);
	st = stats(&m);
	ok(st.dirty_pages == 1 && st.faults_wp - st0.faults_wp == 1 &&
	   st.pages_unprotected == st0.pages_unprotected,
	   "written once before: one WP fault, 1 dirty (%llu)", (unsigned long long)st.dirty_pages);
	ok(pager_flush(m.p) == 0 && backend_bad(&m, 0, NPG) == 0, "flush: backend right");

	/*
	 * A sequential writer over pages written back (write-protected): the
	 * window ahead of it doubles with each fault, from a cluster on.
	 */
	read_write(&m, SPP, SPP + SEQ_PAGES);
	(void)wait_clean(&m);
	st0 = stats(&m);
	for (uint64_t pg = SPP; pg < SPP + SEQ_PAGES; pg++)
		write_page(&m, pg);
	t0 = ms_now();   /* the fault thread counts after the wake-up */
	while ((st = stats(&m)).dirty_pages < SEQ_PAGES && ms_now() - t0 < 2000)
		usleep(1000);
	ok(st.faults_wp - st0.faults_wp <= 8,
	   "sequential rewrite of %u pages: %llu WP faults (1, then windows of 16, 32, ...)",
	   SEQ_PAGES, (unsigned long long)(st.faults_wp - st0.faults_wp));
	ok(st.dirty_pages >= SEQ_PAGES && st.dirty_pages <= SEQ_PAGES + 256,
	   "%llu dirty: the pages written, and at most one window past them",
	   (unsigned long long)st.dirty_pages);
	ok(mapping_bad(&m) == 0, "the mapping reads right");
	ok(pager_flush(m.p) == 0 && backend_bad(&m, 0, NPG) == 0, "flush: backend right");
	tmap_teardown(&m);
}

/* ---- the region's floor ------------------------------------------------------- */

/*
 * A guest's allocator gives a program other physical pages each run: once
 * most rewrites of written-back pages come within their delay, every page
 * of the region that is written again waits longer too (cache.h,
 * hist_floor), while a page written for the first time does not; the
 * floor goes down once nothing is rewritten for a while (clean.c).
 */
#define FLOOR_PAGES 256u   /* HIST_FLOOR_SAMPLES: one decision */
#define FLOOR_DECAY_MS (8u * 2u * DELAY)   /* HIST_SOON x the delay of floor 1 */

/* Write [a, b) once (no history): the ms until it is written back. */
static uint64_t clean_ms(struct tmap *m, uint64_t a, uint64_t b)
{
	read_write(m, a, b);
	return wait_clean(m);
}

static void test_floor(void)
{
	struct tmap m;
	uint64_t t0, t_old, t, left = 0;
	bool between = false;
	unsigned floor;
	int r;

	r = setup(&m, DELAY, 1);
	if (!ok(r == 0, "setup (cleaner %d ms): %s", DELAY, strerror(-r)))
		return;
	t = clean_ms(&m, 3 * SPP, 3 * SPP + 16);
	ok(stats(&m).cleaner_floor == 0, "no rewrites: floor 0 (16 pages cleaned after %llu ms)",
	   (unsigned long long)t);
	read_write(&m, 5 * SPP, 5 * SPP + 16);      /* written back long before their rewrite */
	(void)wait_clean(&m);
	t_old = ms_now();

	/* Section 0 written, written back, and all of it written again at once. */
	read_write(&m, 0, FLOOR_PAGES);
	(void)wait_clean(&m);
	t0 = ms_now();
	for (uint64_t i = 0; i < FLOOR_PAGES; i++)
		write_page(&m, i * 7 % FLOOR_PAGES);
	(void)dirty_settle(&m, FLOOR_PAGES);
	floor = stats(&m).cleaner_floor;
	ok(floor == 1, "%u rewrites within their delay: floor %u", FLOOR_PAGES, floor);
	(void)wait_clean(&m);

	/*
	 * Under floor 1, at the same moment: 16 pages written again long
	 * after their write-back (their own level stays 0) wait for twice
	 * the delay, 16 pages written for the first time for the delay. So
	 * the count passes through 16 (the first-time pages written back,
	 * the rewritten ones not yet) on its way to 0.
	 */
	while (ms_now() - t_old < 8 * DELAY + DELAY)   /* past HIST_SOON x the delay */
		usleep(20000);
	for (uint64_t pg = 5 * SPP; pg < 5 * SPP + 16; pg++)
		write_page(&m, pg);
	read_write(&m, 6 * SPP, 6 * SPP + 16);
	t = ms_now();
	while (ms_now() - t < 20 * DELAY && (left = stats(&m).dirty_pages) != 0) {
		between |= left == 16;
		usleep(5000);
	}
	if (ms_now() - t0 < FLOOR_DECAY_MS)
		ok(between && left == 0,
		   "floor 1: first writes written back before the rewrites (16 of 32 left on the way, "
		   "all after %llu ms)", (unsigned long long)(ms_now() - t));
	else
		ok(1, "# SKIP too slow to see the floor before it decays");

	/* Nothing rewritten for HIST_SOON times that delay: the floor goes. */
	while (ms_now() - t0 < FLOOR_DECAY_MS + DELAY)
		usleep(50000);
	t = clean_ms(&m, 7 * SPP, 7 * SPP + 16);
	floor = stats(&m).cleaner_floor;
	ok(floor == 0, "after %llu ms without rewrites: floor %u (16 pages cleaned after %llu ms)",
	   (unsigned long long)(ms_now() - t0), floor, (unsigned long long)t);
	ok(pager_flush(m.p) == 0 && backend_bad(&m, 0, NPG) == 0, "flush: backend right");
	ok(mapping_bad(&m) == 0, "the mapping reads right");
	tmap_teardown(&m);
}

/* ---- writers with the cleaner active ----------------------------------------- */

#define NW 4

struct writer {
	struct tmap *m;
	unsigned id;
	uint64_t seed;
	_Atomic bool *stop;
	unsigned bad, writes;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	while (!atomic_load(w->stop)) {
		uint64_t pg;

		w->seed ^= w->seed << 13;
		w->seed ^= w->seed >> 7;
		w->seed ^= w->seed << 17;
		/* Each writer owns the pages pg % NW == id; hot set: the first 2 sections. */
		pg = (w->seed >> 8) % (w->seed & 1 ? NPG : 2 * SPP);
		pg = pg - pg % NW + w->id;
		if (pg >= NPG)
			continue;
		if (w->seed & 6) {
			write_page(w->m, pg);
			w->writes++;
		} else {
			w->bad += pat_check(w->m->mem + pg * PS, pg, ver[pg], true);
		}
		if ((w->writes & 255) == 0)
			usleep(200);   /* let pages age: the cleaner must meet writes */
	}
	return NULL;
}

static void test_writers(void)
{
	struct tmap m;
	struct writer w[NW];
	pthread_t th[NW];
	_Atomic bool stop = false;
	struct pager_stats st;
	unsigned bad = 0, writes = 0;
	int r;

	r = setup(&m, 20, 2);
	if (!ok(r == 0, "setup (cleaner 20 ms, 2 fault threads): %s", strerror(-r)))
		return;
	for (unsigned i = 0; i < NW; i++) {
		w[i] = (struct writer){ &m, i, 0x9e3779b97f4a7c15ull * (i + 1), &stop, 0, 0 };
		pthread_create(&th[i], NULL, writer_main, &w[i]);
	}
	usleep(2500 * 1000);
	atomic_store(&stop, true);
	for (unsigned i = 0; i < NW; i++) {
		pthread_join(th[i], NULL);
		bad += w[i].bad;
		writes += w[i].writes;
	}
	st = stats(&m);
	diag("%u writes, %llu WP faults, %llu pages cleaned", writes,
	     (unsigned long long)st.faults_wp, (unsigned long long)st.pages_cleaned);
	ok(bad == 0, "writers read their own writes (%u bad)", bad);
	ok(st.pages_cleaned > 0 && st.faults_wp > 0, "the cleaner ran during the writes");
	r = pager_flush(m.p);
	ok(r == 0 && stats(&m).dirty_pages == 0, "flush: 0 dirty");
	ok((bad = backend_bad(&m, 0, NPG)) == 0, "backend: every byte right after flush (%u bad)", bad);
	ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 10000) == 0 &&
	   stats(&m).resident_pages == 0, "drop the cache");
	ok(pager_set_budget(m.p, UINT64_MAX) == 0 && (bad = mapping_bad(&m)) == 0,
	   "mapping: every byte right after dropping the cache (%u bad)", bad);
	tmap_teardown(&m);
}

int main(void)
{
	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	test_count();
	test_cleaner();
	test_rewriter();
	test_floor();
	test_writers();
	return tap_done();
}
