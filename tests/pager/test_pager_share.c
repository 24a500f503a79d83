// SPDX-License-Identifier: MIT
/*
 * Shared regions (share.h) with two pagers over one local backend, as two
 * VMs on two compute nodes over one memory node: A holds the region and
 * writes; B reads what was last written back; B's write waits until B
 * acquires; A's release writes back everything and makes A's writes wait;
 * B's acquire drops B's stale pages, and B then reads A's release. Also:
 * invalidate on a writable region is refused, release of a private region
 * is refused, and a sealed pager (slot key) sends a shared region's pages
 * in clear (every VM that maps it has its own key) while its private
 * pages stay sealed. And a region moving to other sections (share_move.h):
 * A writes back ahead, both pagers park (what A changed since written
 * back, every cached page dropped,
 * A's write and B's read wait), the sections are copied, both switch and
 * unpark: the waiting accesses go on, on the new sections only.
 */
#include "tap.h"
#include "crypt.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PS  PAGER_PAGE_SIZE
#define SEC (256u << 10)
#define LEN (2 * SEC)
#define NPG (LEN / PS)

struct writer {
	uint8_t *addr;
	uint64_t value;
	atomic_bool done;
	pthread_t th;
};

static void *write_main(void *arg)
{
	struct writer *w = arg;

	*(volatile uint64_t *)w->addr = w->value;
	atomic_store(&w->done, true);
	return NULL;
}

static void write_start(struct writer *w, uint8_t *addr, uint64_t value)
{
	w->addr = addr;
	w->value = value;
	atomic_store(&w->done, false);
	if (pthread_create(&w->th, NULL, write_main, w) != 0)
		abort();
}

/* Did the write complete within ms? */
static bool write_done_within(struct writer *w, unsigned ms)
{
	for (unsigned i = 0; i < ms / 10 && !atomic_load(&w->done); i++)
		usleep(10000);
	return atomic_load(&w->done);
}

static uint64_t stat_of(struct pager *p, size_t off)
{
	struct pager_stats st;

	pager_stats(p, &st);
	return *(uint64_t *)((char *)&st + off);
}
#define STAT(p, f) stat_of((p), offsetof(struct pager_stats, f))

static bool pages_are(struct tmap *m, uint64_t a, uint64_t b, uint32_t ver)
{
	unsigned bad = 0;

	for (uint64_t pg = a; pg < b; pg++)
		bad += pat_check(m->mem + pg * PS, pg, ver, true);
	return bad == 0;
}

static void test_exclusive(struct pager_backend *be)
{
	struct pager_config cfg = { .budget = UINT64_MAX, .writeback_delay_ms = -1,
				    .fail_timeout_ms = 2000 };
	struct tmap a, b;
	struct writer wa, wb;
	uint64_t n = 0;
	uint8_t page[PS];
	int r;

	tmap_shared = true;
	tmap_readonly = false;
	r = tmap_setup(&a, LEN, SEC, &cfg, 0, be, PAGER_DIRTY_SYNC_WP);
	tmap_readonly = true;
	if (r == 0)
		r = tmap_setup(&b, LEN, SEC, &cfg, 0, be, PAGER_DIRTY_SYNC_WP);
	tmap_shared = tmap_readonly = false;
	if (!ok(r == 0, "two pagers map one shared region, A writable, B read-only (%d)", r))
		return;
	ok(tmap_fill_backend(&a, NULL) == 0, "region filled at version 1");
	ok(pager_shared_writable(a.p, 0) && !pager_shared_writable(b.p, 0),
	   "A holds the region, B does not");

	/* A writes half the region; nothing is written back yet. */
	for (uint64_t pg = 0; pg < NPG / 2; pg++)
		pat_fill(a.mem + pg * PS, pg, 2);
	ok(pages_are(&b, 0, NPG, 1), "B reads version 1 everywhere (A has not released)");

	/* B's write waits. */
	write_start(&wb, b.mem + 5 * PS + 64, 0xb0b);
	ok(!write_done_within(&wb, 300), "B's write to a region it does not hold waits");
	ok(STAT(b.p, shared_writes_waited) >= 1, "counted in shared_writes_waited");
	ok(pager_shared_invalidate(a.p, 0, &n) == -EBUSY, "invalidate of a held region: -EBUSY");

	/* A releases: everything A wrote is on the backend, A's next write waits. */
	r = pager_shared_release(a.p, 0, &n);
	ok(r == 0 && n >= NPG / 2, "A's release wrote back %llu pages (%d)", (unsigned long long)n, r);
	ok(tmap_backend_read(&a, 3, page) == 0 && pat_check(page, 3, 2, true) == 0,
	   "the backend holds A's version 2 after the release");
	ok(!pager_shared_writable(a.p, 0), "A no longer holds it");
	write_start(&wa, a.mem + 7 * PS, 0xa0a);
	ok(!write_done_within(&wa, 300), "A's write after its release waits");
	ok(pages_are(&a, 0, NPG / 2, 2), "A still reads what it wrote");

	/* B acquires: its stale copies go, the waiting write completes on the fresh page. */
	r = pager_shared_acquire(b.p, 0, &n);
	ok(r == 0 && n >= 1, "B acquired: %llu stale pages dropped (%d)", (unsigned long long)n, r);
	ok(write_done_within(&wb, 5000), "B's write that waited went on");
	pthread_join(wb.th, NULL);
	ok(*(uint64_t *)(b.mem + 5 * PS + 64) == 0xb0b, "B's write is there");
	ok(pages_are(&b, 6, NPG / 2, 2), "B reads A's release (version 2)");
	ok(pages_are(&b, NPG / 2, NPG, 1), "and version 1 beyond what A wrote");

	/* B releases; A acquires: A's waiting write goes on, and A sees B's write. */
	ok(pager_shared_release(b.p, 0, &n) == 0 && n >= 1, "B's release wrote back %llu pages",
	   (unsigned long long)n);
	ok(!write_done_within(&wa, 100), "A's write still waits while A does not hold it");
	r = pager_shared_acquire(a.p, 0, &n);
	ok(r == 0, "A acquired again (%llu dropped)", (unsigned long long)n);
	ok(write_done_within(&wa, 5000), "A's write that waited went on");
	pthread_join(wa.th, NULL);
	ok(*(uint64_t *)(a.mem + 5 * PS + 64) == 0xb0b, "A reads B's write after acquiring");
	ok(pager_shared_acquire(a.p, 0, &n) == 0 && n == 0, "acquire by the holder: no-op");
	ok(STAT(b.p, shared_pages_dropped) >= 1, "shared_pages_dropped counted");
	tmap_teardown(&b);
	tmap_teardown(&a);
}

/*
 * A sequential writer's window makes pages writable ahead of it, and
 * those count as written: in a shared region that window stays a cluster
 * (16 pages), so a release writes back at most a cluster more than the
 * guest wrote. 20 pages written from page 0 made the window grow to 48
 * before, and the release wrote back 48.
 */
static void write_ahead_case(struct pager_backend *be, bool read_first)
{
	struct pager_config cfg = { .budget = UINT64_MAX, .writeback_delay_ms = -1,
				    .fail_timeout_ms = 2000 };
	uint32_t ver = read_first ? 4 : 3;
	struct tmap a;
	uint64_t n = 0, wp0;
	int r;

	tmap_shared = true;
	tmap_readonly = false;
	r = tmap_setup(&a, LEN, SEC, &cfg, 0, be, PAGER_DIRTY_SYNC_WP);
	tmap_shared = false;
	if (!ok(r == 0, "a shared region, writable (%d)", r))
		return;
	ok(tmap_fill_backend(&a, NULL) == 0, "region filled at version 1");
	if (read_first)
		ok(pages_are(&a, 0, NPG, 1), "every page read first: resident, write-protected");
	wp0 = STAT(a.p, faults_wp);
	for (uint64_t pg = 0; pg < 20; pg++)
		pat_fill(a.mem + pg * PS, pg, ver);
	if (read_first)
		ok(STAT(a.p, faults_wp) > wp0, "the writes took write-protect faults");
	r = pager_shared_release(a.p, 0, &n);
	ok(r == 0 && n >= 20 && n < 20 + 16, "20 %s pages written in a row: the release wrote "
	   "back %llu (at most a cluster more) (%d)", read_first ? "resident" : "missing",
	   (unsigned long long)n, r);
	ok(pages_are(&a, 0, 20, ver) && pages_are(&a, 20, NPG, 1), "the pages read as written");
	tmap_teardown(&a);
}

/*
 * Written while missing (the MISSING path, serve.c), and written after
 * every page was read (resident and write-protected: the write-protect
 * path, serve_wp.c). Either window must not double past a cluster.
 */
static void test_write_ahead(struct pager_backend *be)
{
	write_ahead_case(be, false);
	write_ahead_case(be, true);
}

struct reader {
	const volatile uint64_t *addr;
	uint64_t value;
	atomic_bool done;
	pthread_t th;
};

static void *read_main(void *arg)
{
	struct reader *rd = arg;

	rd->value = *rd->addr;
	atomic_store(&rd->done, true);
	return NULL;
}

/* Page `page` of backend section s. */
static int be_page(struct pager_backend *be, const struct pager_section *s, uint32_t page,
		   void *buf)
{
	void *conn = NULL;
	int r = be->ops->conn_open(be->priv, &conn);

	if (r < 0)
		return r;
	r = be->ops->fetch(conn, s, page, 1, buf);
	be->ops->conn_close(conn);
	return r < 0 ? r : 0;
}

/* A section of m's region on the backend: copied from `from` to `to`. */
static int be_copy(struct tmap *m, const struct pager_section *from,
		   const struct pager_section *to)
{
	const struct pager_backend_ops *ops = m->be->ops;
	struct proto_extent e = { 0, SEC / PS };
	static uint8_t buf[SEC];
	void *conn = NULL;
	int r = ops->conn_open(m->be->priv, &conn);

	if (r < 0)
		return r;
	r = ops->fetch(conn, from, 0, SEC / PS, buf);
	if (r >= 0)
		r = ops->write_submit(conn, to, &e, 1, buf);
	if (r >= 0)
		r = ops->write_wait(conn);
	ops->conn_close(conn);
	return r < 0 ? r : 0;
}

static void test_move(struct pager_backend *be)
{
	struct pager_config cfg = { .budget = UINT64_MAX, .writeback_delay_ms = -1,
				    .fail_timeout_ms = 2000 };
	struct pager_section old[LEN / SEC], nw[LEN / SEC];
	uint8_t junk[PS];
	struct reader rb = { 0 };
	struct tmap a, b;
	struct writer wa;
	uint64_t fl = 0, dr = 0, fb = 0, db = 0;
	int r;

	tmap_shared = true;
	r = tmap_setup(&a, LEN, SEC, &cfg, 0, be, PAGER_DIRTY_SYNC_WP);
	tmap_readonly = true;
	if (r == 0)
		r = tmap_setup(&b, LEN, SEC, &cfg, 0, be, PAGER_DIRTY_SYNC_WP);
	tmap_shared = tmap_readonly = false;
	if (!ok(r == 0, "move: two pagers map one shared region (%d)", r))
		return;
	ok(tmap_fill_backend(&a, NULL) == 0 && pages_are(&b, 0, NPG, 1), "B caches version 1");
	for (uint64_t pg = 0; pg < NPG / 2; pg++)
		pat_fill(a.mem + pg * PS, pg, 2);
	for (unsigned k = 0; k < LEN / SEC; k++) {
		old[k] = a.secs[k];
		nw[k] = tap_remote(7, 40 + k);
	}
	ok(pager_shared_switch(a.p, 0, nw, LEN / SEC) == -ENOTCONN,
	   "switch of a region that is not parked: -ENOTCONN");
	r = pager_shared_writeback(a.p, 0, &fl);
	ok(r == 0 && fl >= NPG / 2, "A wrote back %llu pages ahead, unparked", (unsigned long long)fl);
	pat_fill(a.mem + 5 * PS, 5, 2);              /* A writes on meanwhile */
	r = pager_shared_park(a.p, 0, &fl, &dr);
	ok(r == 0 && fl >= 1 && fl < NPG / 2 && dr >= NPG / 2,
	   "A parked: %llu written back (what changed since), %llu dropped",
	   (unsigned long long)fl, (unsigned long long)dr);
	r = pager_shared_park(b.p, 0, &fb, &db);
	ok(r == 0 && fb == 0 && db >= NPG / 2, "B parked: %llu dropped", (unsigned long long)db);
	write_start(&wa, a.mem + 3 * PS + 8, 0xa11);
	rb.addr = (const volatile uint64_t *)(b.mem + 3 * PS + 8);
	if (pthread_create(&rb.th, NULL, read_main, &rb) != 0)
		abort();
	usleep(300000);
	ok(!atomic_load(&wa.done) && !atomic_load(&rb.done),
	   "A's write and B's read wait while parked");
	ok(pager_shared_switch(a.p, 0, nw, 1) == -EINVAL, "switch with too few sections: -EINVAL");
	for (unsigned k = 0; k < LEN / SEC; k++)
		ok(be_copy(&a, &old[k], &nw[k]) == 0, "section %u copied", k);
	ok(pager_shared_switch(a.p, 0, nw, LEN / SEC) == 0 &&
	   pager_shared_switch(b.p, 0, nw, LEN / SEC) == 0, "both switched");
	/* The old sections are garbage now: nobody may read them any more. */
	memset(junk, 0xee, sizeof(junk));
	for (uint32_t pg = 0; pg < SEC / PS; pg++) {
		void *conn = NULL;
		struct proto_extent e = { pg, 1 };

		if (be->ops->conn_open(be->priv, &conn) == 0) {
			(void)be->ops->write_submit(conn, &old[0], &e, 1, junk);
			(void)be->ops->write_wait(conn);
			be->ops->conn_close(conn);
		}
	}
	ok(pager_shared_unpark(a.p, 0) == 1 && pager_shared_unpark(b.p, 0) == 1, "both unparked");
	ok(pager_shared_unpark(a.p, 0) == 0, "unpark of a region not parked: 0");
	ok(write_done_within(&wa, 5000), "A's write went on");
	pthread_join(wa.th, NULL);
	for (unsigned i = 0; i < 500 && !atomic_load(&rb.done); i++)
		usleep(10000);
	ok(atomic_load(&rb.done), "B's read went on");
	pthread_join(rb.th, NULL);
	pat_fill(junk, 3, 2);
	ok(rb.value == *(uint64_t *)(junk + 8), "B's read that waited got A's version 2 from the "
	   "new section");
	ok(pages_are(&b, 4, NPG / 2, 2) && pages_are(&b, NPG / 2, NPG, 1),
	   "B reads A's writes and version 1 from the new sections");
	ok(pager_flush(a.p) == 0 && be_page(be, &nw[0], 3, junk) == 0 &&
	   *(uint64_t *)(junk + 8) == 0xa11, "A's write after the move reaches the new section");
	tmap_teardown(&b);
	tmap_teardown(&a);
}

static void test_refusals(struct pager_backend *be)
{
	struct tmap m;
	uint64_t n;

	if (!ok(tmap_setup(&m, LEN, SEC, NULL, 0, be, PAGER_DIRTY_SYNC_WP) == 0, "private region"))
		return;
	ok(pager_shared_release(m.p, 0, &n) == -EINVAL, "release of a private region: -EINVAL");
	ok(pager_shared_acquire(m.p, 0, &n) == -EINVAL, "acquire of a private region: -EINVAL");
	ok(pager_shared_release(m.p, 5, &n) == -ENOENT, "no such region: -ENOENT");
	ok(pager_shared_release(m.p, -1, &n) == -EINVAL, "bad index: -EINVAL");
	tmap_teardown(&m);
}

/* A sealed pager: a shared region's pages leave in clear, its private pages sealed. */
static void test_sealed_pager(struct pager_backend *be)
{
	uint8_t key[PAGER_KEY_BYTES], page[PS];
	struct pager_crypt *c = NULL;
	struct tmap sh, pv;
	uint64_t n;
	int r;

	memset(key, 0x5a, sizeof(key));
	r = pager_crypt_new(key, NULL, 4 * NPG, &c);
	if (!ok(r == 0, "slot key (%d)", r))
		return;
	struct pager_config cfg = { .budget = UINT64_MAX, .writeback_delay_ms = -1,
				    .crypt = c };
	tmap_shared = true;
	r = tmap_setup(&sh, LEN, SEC, &cfg, 0, be, PAGER_DIRTY_SYNC_WP);
	tmap_shared = false;
	if (!ok(r == 0, "a sealed pager maps a shared region (%d)", r)) {
		pager_crypt_free(c);
		return;
	}
	ok(tmap_fill_backend(&sh, NULL) == 0 && pages_are(&sh, 0, 4, 1),
	   "clear pages fetched into a sealed pager's shared region");
	pat_fill(sh.mem, 0, 3);
	ok(pager_shared_release(sh.p, 0, &n) == 0 && n >= 1, "released");
	ok(tmap_backend_read(&sh, 0, page) == 0 && pat_check(page, 0, 3, true) == 0,
	   "the memory node got the shared page in clear");
	tmap_teardown(&sh);

	r = tmap_setup(&pv, LEN, SEC, &cfg, 0, be, PAGER_DIRTY_SYNC_WP);
	if (ok(r == 0, "the same sealed pager config, private region")) {
		pat_fill(pv.mem, 0, 4);
		ok(pager_flush(pv.p) == 0, "flushed");
		ok(tmap_backend_read(&pv, 0, page) == 0 && pat_check(page, 0, 4, true) != 0,
		   "a private page leaves sealed");
		tmap_teardown(&pv);
	}
	pager_crypt_free(c);
}

int main(void)
{
	struct pager_backend *be = NULL;

	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	if (!ok(pager_backend_local_new(SEC, &be) == 0, "local backend"))
		return tap_done();
	test_exclusive(be);
	test_write_ahead(be);
	test_refusals(be);
	test_move(be);
	test_sealed_pager(be);
	pager_backend_free(be);
	return tap_done();
}
