// SPDX-License-Identifier: MIT
/*
 * Pager unit tests with the local backend: faults serve the backend's data,
 * local sections read zeros, writes reach the backend on pager_flush(),
 * eviction under a small budget loses nothing, REMOVE events (MADV_DONTNEED,
 * MADV_REMOVE) give zeros and no stale write-back, an EEXIST race (a page
 * installed behind the pager's back) is survived, and the WP_ASYNC mode
 * finds dirty pages with PAGEMAP_SCAN.
 */
#include "tap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/userfaultfd.h>

#define PS PAGER_PAGE_SIZE
#define SEC (1u << 20)
#define LEN (8u * SEC)
#define NPG (LEN / PS)

static uint32_t ver[NPG];

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Verify every page through the mapping against ver[] (local pages: zeros unless written). */
static unsigned verify_mapping(struct tmap *m, bool full)
{
	unsigned bad = 0;

	for (uint64_t pg = 0; pg < NPG; pg++)
		bad += pat_check(m->mem + pg * PS, pg, ver[pg], full);
	return bad;
}

static unsigned verify_backend(struct tmap *m)
{
	static uint8_t buf[PS];
	unsigned bad = 0;

	for (uint64_t pg = 0; pg < NPG; pg++) {
		if (!tmap_remote(m, pg))
			continue;
		if (tmap_backend_read(m, pg, buf) < 0 || pat_check(buf, pg, ver[pg], true)) {
			if (bad++ < 3) {
				int found = -1;
				for (uint32_t v = 0; v <= ver[pg] + 2; v++)
					if (!pat_check(buf, pg, v, true))
						found = (int)v;
				diag("backend page %llu wrong (ver %u, has %d, mapping ok %d)",
				     (unsigned long long)pg, ver[pg], found,
				     !pat_check(m->mem + pg * PS, pg, ver[pg], true));
			}
		}
	}
	return bad;
}

static void test_sync(void)
{
	struct pager_config cfg = { .name = "t", .budget = UINT64_MAX };
	struct pager_stats st;
	struct tmap m;
	unsigned bad;
	int r;

	/* Section 2 is local. */
	r = tmap_setup(&m, LEN, SEC, &cfg, 1u << 2, NULL, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0, "setup: %s", strerror(-r)))
		return;
	for (uint64_t pg = 0; pg < NPG; pg++)
		ver[pg] = tmap_remote(&m, pg) ? 1 : 0;
	ok(tmap_fill_backend(&m, ver) == 0, "fill backend");
	ok(verify_mapping(&m, true) == 0, "every page reads the backend's data, local reads zeros");
	pager_stats(m.p, &st);
	diag("zero %llu prefetched %llu", (unsigned long long)st.pages_zero, (unsigned long long)st.pages_prefetched);
	ok(st.faults_missing > 0 && st.pages_fetched == NPG - SEC / PS && st.faults_local > 0,
	   "faults %llu fetched %llu local %llu", (unsigned long long)st.faults_missing,
	   (unsigned long long)st.pages_fetched, (unsigned long long)st.faults_local);
	ok(st.mode == PAGER_DIRTY_SYNC_WP, "mode %s", pager_mode_name(st.mode));

	/* Writes: WP faults mark dirty; flush writes back. */
	for (int i = 0; i < 500; i++) {
		uint64_t pg = rnd() % NPG;
		ver[pg]++;
		pat_fill(m.mem + pg * PS, pg, ver[pg]);
	}
	r = pager_flush(m.p);
	ok(r == 0, "flush: %s", strerror(-r));
	ok((bad = verify_backend(&m)) == 0, "backend holds every write after flush (%u bad)", bad);
	pager_stats(m.p, &st);
	ok(st.faults_wp > 0 && st.pages_written_back > 0, "wp faults %llu written back %llu",
	   (unsigned long long)st.faults_wp, (unsigned long long)st.pages_written_back);
	{
		uint64_t before = st.pages_written_back;
		ok(pager_flush(m.p) == 0, "second flush");
		pager_stats(m.p, &st);
		ok(st.pages_written_back == before, "second flush writes nothing");
	}

	/* Budget 25%: random reads and writes, then drop everything. */
	ok(pager_set_budget(m.p, LEN / 4) == 0, "budget 25%%");
	/*
	 * Every page is resident after the flush: the evictor brings them
	 * under the new budget by itself. Waited for, or on a loaded machine
	 * the loop below (all hits, milliseconds) may end before it ran.
	 */
	ok(pager_wait_budget(m.p, 10000) == 0, "resident within the budget");
	bad = 0;
	uint64_t maxres = 0;
	for (int i = 0; i < 20000; i++) {
		uint64_t pg = rnd() % NPG;
		if (i % 500 == 0 && i >= 2000) {
			pager_stats(m.p, &st);
			maxres = st.resident_pages > maxres ? st.resident_pages : maxres;
		}
		if (rnd() & 1) {
			ver[pg]++;
			pat_fill(m.mem + pg * PS, pg, ver[pg]);
		} else {
			bad += pat_check(m.mem + pg * PS, pg, ver[pg], false);
		}
	}
	ok(bad == 0, "random r/w at 25%% budget: %u mismatches", bad);
	pager_stats(m.p, &st);
	ok(st.pages_evicted > 0 && maxres <= NPG / 4 + 300,
	   "evicted %llu, max resident %llu pages (budget %u)", (unsigned long long)st.pages_evicted,
	   (unsigned long long)maxres, NPG / 4);
	ok(pager_flush(m.p) == 0 && verify_backend(&m) == 0, "backend correct after flush");
	ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 10000) == 0, "drop all");
	pager_stats(m.p, &st);
	ok(st.resident_pages == 0, "resident %llu", (unsigned long long)st.resident_pages);
	ok((bad = verify_mapping(&m, true)) == 0, "all data back after dropping (%u bad)", bad);
	ok(pager_set_budget(m.p, UINT64_MAX) == 0, "unlimited budget");

	/* REMOVE: dirty pages, evicted pages and clean pages all read zeros afterwards. */
	{
		uint64_t a = 3 * SEC / PS + 10;   /* remote section 3 */

		for (uint64_t pg = a; pg < a + 8; pg++) {
			ver[pg]++;
			pat_fill(m.mem + pg * PS, pg, ver[pg]);
		}
		ok(madvise(m.mem + a * PS, 8 * PS, MADV_DONTNEED) == 0, "MADV_DONTNEED");
		for (uint64_t pg = a; pg < a + 8; pg++)
			ver[pg] = 0;
		ok(verify_mapping(&m, true) == 0, "range reads zeros after DONTNEED, rest intact");
		ok(pager_flush(m.p) == 0, "flush after remove");
		ok(verify_backend(&m) == 0, "zeros written back, no stale data");
		ok(madvise(m.mem + 5 * SEC, SEC, MADV_REMOVE) == 0, "MADV_REMOVE a whole section");
		for (uint64_t pg = 5 * SEC / PS; pg < 6 * SEC / PS; pg++)
			ver[pg] = 0;
		ok(verify_mapping(&m, false) == 0, "removed section reads zeros");
		pat_fill(m.mem + 5 * SEC + 7 * PS, 5 * SEC / PS + 7, ++ver[5 * SEC / PS + 7]);
		ok(pager_flush(m.p) == 0 && verify_backend(&m) == 0,
		   "write after remove written back, the rest zeros");
		pager_stats(m.p, &st);
		ok(st.remove_events >= 2, "remove events %llu", (unsigned long long)st.remove_events);
	}

	/* EEXIST: install a page behind the pager's back, then fault its neighbour. */
	{
		uint64_t x = 6 * SEC / PS + 33, y = x + 1;
		static uint8_t page[PS];
		struct uffdio_copy c = { .dst = (uintptr_t)(m.mem + x * PS),
					 .src = (uintptr_t)page, .len = PS };
		uint64_t before;

		ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 10000) == 0,
		   "drop all again");
		pager_stats(m.p, &st);
		before = st.eexist;
		ver[x] += 7;
		pat_fill(page, x, ver[x]);
		ok(ioctl(m.uffd, UFFDIO_COPY, &c) == 0, "foreign UFFDIO_COPY");
		ok(pager_set_budget(m.p, UINT64_MAX) == 0, "unlimited");
		ok(pat_check(m.mem + y * PS, y, ver[y], true) == 0, "neighbour served");
		ok(pat_check(m.mem + x * PS, x, ver[x], true) == 0, "foreign page kept");
		pager_stats(m.p, &st);
		ok(st.eexist > before, "EEXIST seen (%llu)", (unsigned long long)(st.eexist - before));
		ok(pager_flush(m.p) == 0 && verify_backend(&m) == 0, "foreign page written back");
	}

	/* Local sections keep their data (never evicted). */
	{
		uint64_t pg = 2 * SEC / PS + 5;

		pat_fill(m.mem + pg * PS, pg, ++ver[pg]);
		ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 10000) == 0, "drop");
		ok(pat_check(m.mem + pg * PS, pg, ver[pg], true) == 0, "local page kept");
	}

	{
		struct strbuf sb;

		strbuf_init(&sb);
		pager_render_metrics(m.p, &sb, "vm=\"t\"");
		ok(sb.buf && strstr(sb.buf, "disagg_pager_faults_total{vm=\"t\"}") &&
			   strstr(sb.buf, "mode=\"sync_wp\"") &&
			   strstr(sb.buf, "disagg_pager_fault_seconds_bucket"),
		   "metrics render");
		ok(sb.buf && strstr(sb.buf, "disagg_pager_space_wait_seconds_bucket{vm=\"t\"") &&
			   strstr(sb.buf, "disagg_pager_busy_wait_seconds_count{vm=\"t\"}"),
		   "metrics: the space and busy wait histograms");
		strbuf_free(&sb);
	}
	pager_stats(m.p, &st);
	ok(st.failed == 0 && st.errors == 0, "no errors");
	tmap_teardown(&m);
}

static void test_async(void)
{
	struct pager_config cfg = { .name = "a", .budget = UINT64_MAX };
	struct pager_stats st;
	struct tmap m;
	uint64_t before;
	int r;

	r = tmap_setup(&m, LEN, SEC, &cfg, 0, NULL, PAGER_DIRTY_ASYNC_WP);
	if (r == -EOPNOTSUPP) {
		ok(1, "# SKIP kernel lacks UFFD_FEATURE_WP_ASYNC");
		tmap_teardown(&m);
		return;
	}
	if (!ok(r == 0, "async setup: %s", strerror(-r)))
		return;
	for (uint64_t pg = 0; pg < NPG; pg++)
		ver[pg] = 1;
	ok(tmap_fill_backend(&m, ver) == 0, "fill");
	ok(verify_mapping(&m, false) == 0, "async: reads");
	for (int i = 0; i < 300; i++) {
		uint64_t pg = rnd() % NPG;
		ver[pg]++;
		pat_fill(m.mem + pg * PS, pg, ver[pg]);
	}
	pager_stats(m.p, &st);
	ok(st.mode == PAGER_DIRTY_ASYNC_WP && st.faults_wp == 0, "async: no WP fault messages");
	ok(pager_flush(m.p) == 0 && verify_backend(&m) == 0, "async: flush writes back");
	pager_stats(m.p, &st);
	before = st.pages_written_back;
	ok(pager_flush(m.p) == 0, "async: second flush");
	pager_stats(m.p, &st);
	ok(st.pages_written_back == before, "async: nothing written twice (%llu)",
	   (unsigned long long)(st.pages_written_back - before));
	ok(pager_set_budget(m.p, LEN / 2) == -EOPNOTSUPP, "async: eviction refused");
	tmap_teardown(&m);
}

int main(void)
{
	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	test_sync();
	test_async();
	return tap_done();
}
