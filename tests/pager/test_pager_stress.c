// SPDX-License-Identifier: MIT
/*
 * Pager integrity under pressure (local backend):
 *  - random page writes over 1 GiB with a 10% budget; every byte verified
 *    after pager_flush() (straight from the backend) and again through the
 *    mapping after every local page was dropped (budget 0);
 *  - 4 threads faulting the same pages and different pages at once, with
 *    writes, under a 25% budget, served by 1 and by 2 fault threads.
 * PAGER_STRESS_MIB overrides the 1 GiB (e.g. for a quick run).
 */
#include "tap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "net.h"

#define PS PAGER_PAGE_SIZE

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Cheap full-page check: ver 0 pages must be all zeros. */
static int page_ok(const uint8_t *p, uint64_t pg, uint32_t ver)
{
	static const uint8_t zero[PS];

	if (!ver)
		return memcmp(p, zero, PS) == 0;
	return pat_check(p, pg, ver, true) == 0;
}

static void test_1g(void)
{
	const char *env = getenv("PAGER_STRESS_MIB");
	size_t len = (size_t)(env ? strtoul(env, NULL, 0) : 1024) << 20, sec = 16u << 20;
	uint64_t npg = len / PS, seed = 12345, bad = 0, nwrites = npg / 3;
	struct pager_config cfg = { .name = "stress", .budget = len / 10 };
	struct pager_stats st;
	uint32_t *ver = calloc(npg, sizeof(*ver));
	static uint8_t buf[PS];
	struct tmap m;
	uint64_t t0 = now_ns();
	int r;

	r = tmap_setup(&m, len, sec, &cfg, 0, NULL, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0 && ver, "1 GiB setup (budget 10%%): %s", strerror(-r)))
		return;
	/* The backend starts zeroed (version 0 everywhere). */
	for (uint64_t i = 0; i < nwrites; i++) {
		uint64_t pg = xs(&seed) % npg;

		ver[pg]++;
		pat_fill(m.mem + pg * PS, pg, ver[pg]);
		if ((i & 7) == 0) {
			uint64_t q = xs(&seed) % npg;
			bad += !page_ok(m.mem + q * PS, q, ver[q]);
		}
	}
	pager_stats(m.p, &st);
	ok(bad == 0, "%llu random page writes, interleaved reads: %llu mismatches",
	   (unsigned long long)nwrites, (unsigned long long)bad);
	ok(st.pages_evicted > 0 && st.resident_pages <= npg / 10 + 1024,
	   "evicted %llu, resident %llu (budget %llu pages)", (unsigned long long)st.pages_evicted,
	   (unsigned long long)st.resident_pages, (unsigned long long)(npg / 10));
	r = pager_flush(m.p);
	ok(r == 0, "flush: %s", strerror(-r));
	bad = 0;
	for (uint64_t pg = 0; pg < npg; pg++)
		if (tmap_backend_read(&m, pg, buf) < 0 || !page_ok(buf, pg, ver[pg]))
			bad++;
	ok(bad == 0, "every byte on the backend after flush: %llu bad pages", (unsigned long long)bad);
	r = pager_set_budget(m.p, 0);
	if (r == 0)
		r = pager_wait_budget(m.p, 30000);
	pager_stats(m.p, &st);
	ok(r == 0 && st.resident_pages == 0, "dropped every local page (%llu resident)",
	   (unsigned long long)st.resident_pages);
	ok(pager_set_budget(m.p, len / 10) == 0, "budget 10%% again");
	bad = 0;
	for (uint64_t pg = 0; pg < npg; pg++)
		bad += !page_ok(m.mem + pg * PS, pg, ver[pg]);
	ok(bad == 0, "every byte through the mapping after the drop: %llu bad pages",
	   (unsigned long long)bad);
	pager_stats(m.p, &st);
	ok(st.errors == 0 && st.failed == 0, "no errors (%.1f s)", (double)(now_ns() - t0) / 1e9);
	tmap_teardown(&m);
	free(ver);
}

/* ---- 4 threads ------------------------------------------------------------- */

#define NT 4
#define TLEN (64u << 20)
#define TNPG (TLEN / PS)

struct tctx {
	struct tmap *m;
	unsigned id;
	uint32_t *ver;       /* shared; page pg is written only by thread pg % (NT+1) */
	pthread_barrier_t *bar;
	uint64_t bad;
};

static void *worker(void *arg)
{
	struct tctx *t = arg;
	uint64_t seed = 777 + t->id;

	pthread_barrier_wait(t->bar);
	/* Phase 1: everyone reads the same pages, in the same order (same faults). */
	for (uint64_t pg = 0; pg < TNPG; pg += 3)
		if (pg % (NT + 1) == NT)
			t->bad += pat_check(t->m->mem + pg * PS, pg, t->ver[pg], false);
	pthread_barrier_wait(t->bar);
	/* Phase 2: shared read-only pages and this thread's own pages, read and written. */
	for (unsigned i = 0; i < 40000; i++) {
		uint64_t pg = xs(&seed) % TNPG;
		unsigned owner = (unsigned)(pg % (NT + 1));

		if (owner == NT) {
			t->bad += pat_check(t->m->mem + pg * PS, pg, 1, false);
		} else if (owner == t->id) {
			if (xs(&seed) & 1) {
				uint32_t v = t->ver[pg] + 1;
				pat_fill(t->m->mem + pg * PS, pg, v);
				t->ver[pg] = v;
			} else {
				t->bad += pat_check(t->m->mem + pg * PS, pg, t->ver[pg], false);
			}
		}
	}
	return NULL;
}

static void test_threads(unsigned fault_threads)
{
	struct pager_config cfg = { .name = "threads", .budget = TLEN / 4,
				    .fault_threads = fault_threads };
	uint32_t *ver = calloc(TNPG, sizeof(*ver));
	pthread_barrier_t bar;
	pthread_t th[NT];
	struct tctx tc[NT];
	struct pager_stats st;
	struct tmap m;
	uint64_t bad = 0;
	int r;

	r = tmap_setup(&m, TLEN, 4u << 20, &cfg, 0, NULL, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0, "threads setup: %s", strerror(-r)))
		return;
	for (uint64_t pg = 0; pg < TNPG; pg++)
		ver[pg] = 1;
	ok(tmap_fill_backend(&m, ver) == 0, "fill");
	pthread_barrier_init(&bar, NULL, NT);
	for (unsigned i = 0; i < NT; i++) {
		tc[i] = (struct tctx){ &m, i, ver, &bar, 0 };
		pthread_create(&th[i], NULL, worker, &tc[i]);
	}
	for (unsigned i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		bad += tc[i].bad;
	}
	ok(bad == 0, "4 threads, same and different pages, %u fault thread(s): %llu mismatches",
	   fault_threads, (unsigned long long)bad);
	r = pager_flush(m.p);
	ok(r == 0, "flush");
	bad = 0;
	{
		static uint8_t buf[PS];
		for (uint64_t pg = 0; pg < TNPG; pg++)
			if (tmap_backend_read(&m, pg, buf) < 0 || pat_check(buf, pg, ver[pg], true))
				bad++;
	}
	ok(bad == 0, "backend matches after flush: %llu bad", (unsigned long long)bad);
	pager_stats(m.p, &st);
	ok(st.errors == 0, "no errors (faults %llu, evicted %llu)", (unsigned long long)st.faults,
	   (unsigned long long)st.pages_evicted);
	pthread_barrier_destroy(&bar);
	tmap_teardown(&m);
	free(ver);
}

int main(void)
{
	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	test_threads(1);
	test_threads(2);
	test_1g();
	return tap_done();
}
