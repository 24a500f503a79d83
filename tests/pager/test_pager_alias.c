// SPDX-License-Identifier: MIT
/*
 * Aliases (alias.h), local backend: a second mapping of the region's file
 * in this process, registered with its own uffd, as a vhost-user back end
 * maps guest RAM. Through it, an unfetched remote page reads as its data,
 * never zeros; a write through it is dirty, written back and survives
 * eviction; a local section reads zeros and keeps what is written; writers
 * through both mappings at once under a small budget with the cleaner on
 * lose nothing. The lookup by file, the refusals, and removal (also after
 * the region went away) are checked too.
 */
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PS PAGER_PAGE_SIZE
#define SEC (1u << 20)
#define NSEC 8u
#define LEN (NSEC * SEC)
#define NPG (LEN / PS)
#define LOCAL_SEC 3u          /* section 3 is local */

static uint32_t ver[NPG];

struct alias {
	uint8_t *mem;
	int uffd;
	int64_t id;
};

static int alias_open(struct tmap *m, struct alias *a, uint64_t pg0, uint64_t n)
{
	uint64_t feat;
	int region, r;
	uint64_t rpg;

	a->uffd = -1;
	a->id = 0;
	a->mem = mmap(NULL, n * PS, PROT_READ | PROT_WRITE, MAP_SHARED, m->memfd,
		      (off_t)(pg0 * PS));
	if (a->mem == MAP_FAILED) {
		a->mem = NULL;
		return -errno;
	}
	r = pager_region_of_file(m->p, m->memfd, pg0 * PS, n * PS, &region, &rpg);
	if (r < 0)
		return r;
	r = pager_uffd_open(PAGER_DIRTY_SYNC_WP, &a->uffd, &feat);
	if (r == 0)
		r = pager_uffd_register(a->uffd, (uintptr_t)a->mem, n * PS);
	if (r < 0)
		return r;
	a->id = pager_alias_add(m->p, region, rpg, n, (uintptr_t)a->mem, a->uffd);
	return a->id < 0 ? (int)a->id : 0;
}

static void alias_close(struct tmap *m, struct alias *a, uint64_t n)
{
	if (a->id > 0)
		(void)pager_alias_remove(m->p, a->id);
	if (a->mem)
		munmap(a->mem, n * PS);
	if (a->uffd >= 0)
		close(a->uffd);
	memset(a, 0, sizeof(*a));
}

static int setup(struct tmap *m, uint64_t budget_pages, int delay_ms)
{
	struct pager_config cfg = { .name = "alias", .fault_threads = 1,
				    .budget = budget_pages == UINT64_MAX ? UINT64_MAX
									 : budget_pages * PS,
				    .writeback_delay_ms = delay_ms };
	int r = tmap_setup(m, LEN, SEC, &cfg, 1u << LOCAL_SEC, NULL, PAGER_DIRTY_SYNC_WP);

	if (r < 0)
		return r;
	for (uint64_t pg = 0; pg < NPG; pg++)
		ver[pg] = tmap_remote(m, pg) ? 1 : 0;
	return tmap_fill_backend(m, ver);
}

/* Pages [pg0, pg0 + n), mem pointing at pg0, that differ from ver[]. */
static unsigned bad_pages(const uint8_t *mem, uint64_t pg0, uint64_t n)
{
	unsigned bad = 0;

	for (uint64_t i = 0; i < n; i++)
		bad += pat_check(mem + i * PS, pg0 + i, ver[pg0 + i], true);
	return bad;
}

static unsigned backend_bad(struct tmap *m)
{
	return tmap_backend_bad(m, ver, 0, NPG);
}

static void test_read_write(void)
{
	struct pager_stats st;
	struct tmap m;
	struct alias a;
	int r;

	r = setup(&m, UINT64_MAX, -1);
	if (!ok(r == 0, "setup: %s", strerror(-r)))
		return;
	r = alias_open(&m, &a, 0, NPG);
	ok(r == 0, "alias over the whole region: %s", strerror(-r));
	if (r < 0)
		goto out;
	/* Nothing fetched yet: every remote page through the alias is its data. */
	ok(bad_pages(a.mem, 0, NPG) == 0, "unfetched pages read through the alias are their data");
	pager_stats(m.p, &st);
	ok(st.pages_fetched > 0, "they were fetched (%llu pages)",
	   (unsigned long long)st.pages_fetched);
	ok(bad_pages(m.mem, 0, NPG) == 0, "the region's mapping sees the same pages");

	/* Writes through the alias only: dirty, written back by a flush. */
	for (uint64_t pg = 0; pg < NPG; pg += 3) {
		ver[pg]++;
		pat_fill(a.mem + pg * PS, pg, ver[pg]);
	}
	pager_stats(m.p, &st);
	ok(st.dirty_pages >= NPG / 3 - SEC / PS / 3 - 1, "writes through the alias are dirty (%llu)",
	   (unsigned long long)st.dirty_pages);
	r = pager_flush(m.p);
	ok(r == 0 && backend_bad(&m) == 0, "flushed: the backend holds what the alias wrote");
	ok(bad_pages(m.mem, 0, NPG) == 0, "the region's mapping reads what the alias wrote");

	/* Written back, so read-only again in both: a second write traps and is dirty again. */
	ver[5]++;
	pat_fill(a.mem + 5 * PS, 5, ver[5]);
	/* The writer is woken by the un-protect, just before the page is marked. */
	for (uint64_t t0 = tap_mono_ms(); tap_mono_ms() - t0 < 2000; usleep(1000)) {
		pager_stats(m.p, &st);
		if (st.dirty_pages)
			break;
	}
	ok(st.dirty_pages == 1, "a write after the flush is dirty again (%llu)",
	   (unsigned long long)st.dirty_pages);
	r = pager_flush(m.p);
	ok(r == 0 && backend_bad(&m) == 0, "and written back");

	/* The local section: zeros, and what is written there stays. */
	{
		uint64_t pg = LOCAL_SEC * (SEC / PS) + 7;

		ok(bad_pages(a.mem + pg * PS, pg, 1) == 0, "a local page reads zeros through the alias");
		ver[pg] = 9;
		pat_fill(a.mem + pg * PS, pg, ver[pg]);
		ok(bad_pages(m.mem + pg * PS, pg, 1) == 0, "and what the alias writes there is in the region");
	}
out:
	alias_close(&m, &a, NPG);
	tmap_teardown(&m);
}

/* Writes through the alias under a small budget: eviction never drops one. */
static void test_evict(void)
{
	struct pager_stats st;
	struct tmap m;
	struct alias a;
	int r;

	r = setup(&m, NPG / 8, -1);
	if (!ok(r == 0, "setup with a budget of 1/8: %s", strerror(-r)))
		return;
	r = alias_open(&m, &a, 0, NPG);
	if (!ok(r == 0, "alias: %s", strerror(-r)))
		goto out;
	for (int round = 0; round < 2; round++)
		for (uint64_t pg = 0; pg < NPG; pg++) {
			if (!tmap_remote(&m, pg))
				continue;
			ver[pg]++;
			pat_fill(a.mem + pg * PS, pg, ver[pg]);
		}
	pager_stats(m.p, &st);
	ok(st.pages_evicted > 0, "pages were evicted meanwhile (%llu)",
	   (unsigned long long)st.pages_evicted);
	ok(bad_pages(a.mem, 0, NPG) == 0, "every page reads back through the alias");
	ok(bad_pages(m.mem, 0, NPG) == 0, "and through the region's mapping");
	r = pager_flush(m.p);
	ok(r == 0 && backend_bad(&m) == 0, "and the backend has them after a flush");
out:
	alias_close(&m, &a, NPG);
	tmap_teardown(&m);
}

struct writer {
	uint8_t *mem;
	uint64_t pg0, n, stride, off;   /* pages pg0 + off + k * stride */
	struct tmap *m;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (int round = 0; round < 3; round++)
		for (uint64_t pg = w->off; pg < w->n; pg += w->stride) {
			if (!tmap_remote(w->m, w->pg0 + pg))
				continue;
			ver[w->pg0 + pg]++;
			pat_fill(w->mem + pg * PS, w->pg0 + pg, ver[w->pg0 + pg]);
		}
	return NULL;
}

/* A part of the region, a small budget, the cleaner on, writers on both mappings. */
static void test_concurrent(void)
{
	uint64_t pg0 = SEC / PS, n = 4 * SEC / PS;   /* sections 1-4 (3 is local) */
	struct writer wa, wb;
	pthread_t ta, tb;
	struct tmap m;
	struct alias a;
	int r;

	r = setup(&m, NPG / 6, 20);
	if (!ok(r == 0, "setup with a budget of 1/6 and the cleaner at 20 ms: %s", strerror(-r)))
		return;
	r = alias_open(&m, &a, pg0, n);
	if (!ok(r == 0, "alias of sections 1-4: %s", strerror(-r)))
		goto out;
	wa = (struct writer){ a.mem, pg0, n, 2, 0, &m };
	wb = (struct writer){ m.mem + pg0 * PS, pg0, n, 2, 1, &m };
	pthread_create(&ta, NULL, writer_main, &wa);
	pthread_create(&tb, NULL, writer_main, &wb);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	ok(bad_pages(m.mem, 0, NPG) == 0, "both writers' pages read back in the region");
	ok(bad_pages(a.mem, pg0, n) == 0, "and through the alias");
	r = pager_flush(m.p);
	ok(r == 0 && backend_bad(&m) == 0, "and are in the backend after a flush");
out:
	alias_close(&m, &a, n);
	tmap_teardown(&m);
}

static void test_refusals(void)
{
	struct tmap m;
	struct alias a;
	int region, r, other;
	uint64_t pg;

	r = setup(&m, UINT64_MAX, -1);
	if (!ok(r == 0, "setup: %s", strerror(-r)))
		return;
	r = pager_region_of_file(m.p, m.memfd, 2 * SEC, SEC, &region, &pg);
	ok(r == 0 && region == 0 && pg == 2 * SEC / PS, "the region of a file range");
	ok(pager_region_of_file(m.p, m.memfd, LEN - PS, 2 * PS, &region, &pg) == -ENOENT,
	   "a range past the region: -ENOENT");
	ok(pager_region_of_file(m.p, m.memfd, 100, PS, &region, &pg) == -EINVAL,
	   "an unaligned offset: -EINVAL");
	other = memfd_create("other", MFD_CLOEXEC);
	ok(pager_region_of_file(m.p, other, 0, PS, &region, &pg) == -ENOENT,
	   "another file: -ENOENT");
	close(other);
	ok(pager_alias_add(m.p, 0, NPG - 1, 2, 0x10000, 0) == -ERANGE, "past the region: -ERANGE");
	ok(pager_alias_add(m.p, 5, 0, 1, 0x10000, 0) == -ENOENT, "no such region: -ENOENT");
	ok(pager_alias_remove(m.p, (int64_t)99 << 32) == -ENOENT, "no such alias: -ENOENT");
	ok(pager_alias_remove(m.p, -3) == -EINVAL, "a bad id: -EINVAL");
	r = alias_open(&m, &a, 0, 4);
	ok(r == 0, "an alias of 4 pages");
	ok(bad_pages(a.mem, 0, 4) == 0, "reads its data");
	ok(pager_alias_remove(m.p, a.id) == 0, "removed");
	ok(pager_alias_remove(m.p, a.id) == -ENOENT, "removed twice: -ENOENT");
	a.id = 0;
	alias_close(&m, &a, 4);
	r = alias_open(&m, &a, 0, 4);
	ok(r == 0 && pager_remove_region(m.p, 0, false) == 0, "a region removed with its alias");
	ok(pager_alias_remove(m.p, a.id) == -ENOENT, "the alias went with it: -ENOENT");
	a.id = 0;
	alias_close(&m, &a, 4);
	tmap_teardown(&m);
}

int main(void)
{
	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	test_read_write();
	test_evict();
	test_concurrent();
	test_refusals();
	return tap_done();
}
