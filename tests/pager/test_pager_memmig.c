// SPDX-License-Identifier: MIT
/*
 * Memory migration of a section (pager_section_migrate_*) with the local
 * backend: two "memory nodes" are two memory-node ids of the same local
 * backend, and the test plays the COPY itself (reads the source section,
 * writes the target).
 *
 *   - dual write: during the window a flush writes to both nodes;
 *   - the COPY race: the "COPY" writes an older page to the target after a
 *     dual write; commit re-sends it and the target ends up exact;
 *   - commit while two threads write the section (and others) under a
 *     small budget, with eviction running and the COPY racing the writes;
 *   - abort: dual writing stops, the section stays on the source;
 *   - the target failing mid-window: write-backs still succeed (source
 *     only), commit answers -EREMOTEIO, the section stays on the source;
 *   - hotplug interplay: set_section -EBUSY, remove_region drops it.
 * After each commit every byte is verified: the cache is dropped, the
 * source node is made to fail, and every page is read back from the target
 * (through the mapping and straight from the backend).
 */
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PS   PAGER_PAGE_SIZE
#define SEC  (1u << 20)
#define SPP  (SEC / PS)
#define NSEC 4u
#define LEN  (NSEC * SEC)
#define NPG  (LEN / PS)
#define MIG  1u                 /* the section that moves */

#define NODE_OTHER 3u           /* where the other sections live */
#define NODE_A     1u
#define NODE_B     2u

static _Atomic uint32_t ver[NPG];
static struct tmap m;
static struct pager_section secs[NSEC];

static int be_io(const struct pager_section *s, uint32_t page, uint32_t n, void *buf, bool write)
{
	const struct pager_backend_ops *ops = m.be->ops;
	struct proto_extent e = { page, n };
	void *conn = NULL;
	int r = ops->conn_open(m.be->priv, &conn);

	if (r < 0)
		return r;
	if (write) {
		r = ops->write_submit(conn, s, &e, 1, buf);
		if (r >= 0)
			r = ops->write_wait(conn);
	} else {
		r = ops->fetch(conn, s, page, n, buf);
	}
	ops->conn_close(conn);
	return r < 0 ? r : 0;
}

/* Pages of backend section s (section MIG of the mapping) that differ from ver[]. */
static unsigned be_mismatches(const struct pager_section *s)
{
	static uint8_t buf[SEC];
	unsigned bad = 0;

	if (be_io(s, 0, SPP, buf, false) < 0)
		return SPP;
	for (uint32_t i = 0; i < SPP; i++) {
		uint64_t pg = MIG * SPP + i;

		bad += pat_check(buf + (size_t)i * PS, pg, ver[pg], true);
	}
	return bad;
}

/* Every page of the mapping against ver[] (faults as needed). */
static unsigned map_mismatches(void)
{
	unsigned bad = 0;

	for (uint64_t pg = 0; pg < NPG; pg++)
		bad += pat_check(m.mem + pg * PS, pg, ver[pg], true);
	return bad;
}

/* The COPY: source section to target, page by page; `stale` pages get their old copy. */
static int play_copy(const struct pager_section *a, const struct pager_section *b,
		     const uint8_t *old, const bool *stale, unsigned delay_us)
{
	static uint8_t buf[PS];

	for (uint32_t i = 0; i < SPP; i++) {
		int r;

		if (stale && stale[i])
			memcpy(buf, old + (size_t)i * PS, PS);
		else if ((r = be_io(a, i, 1, buf, false)) < 0)
			return r;
		if ((r = be_io(b, i, 1, buf, true)) < 0)
			return r;
		if (delay_us && i % 8 == 7)
			usleep(delay_us);         /* a slow COPY: the writers overtake it */
	}
	return 0;
}

static int reset_mapping(const struct pager_config *cfg)
{
	int r;

	if (m.p)
		tmap_teardown(&m);
	for (unsigned i = 0; i < NSEC; i++)
		secs[i] = i == MIG ? tap_remote(NODE_A, 7) : tap_remote(NODE_OTHER, i);
	r = tmap_setup_secs(&m, LEN, SEC, cfg, secs, NULL, PAGER_DIRTY_SYNC_WP);
	if (r < 0)
		return r;
	for (uint64_t pg = 0; pg < NPG; pg++)
		ver[pg] = 1;
	return tmap_fill_backend(&m, NULL);
}

/* Drop every resident page, then read the whole mapping with the source node failing. */
static void verify_on_target(const char *what, const struct pager_section *b)
{
	struct pager_stats st;

	ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 20000) == 0,
	   "%s: cache dropped (dirty pages written back)", what);
	pager_stats(m.p, &st);
	ok(st.resident_pages == 0, "%s: nothing resident (%llu)", what,
	   (unsigned long long)st.resident_pages);
	ok(be_mismatches(b) == 0, "%s: target section exact on the backend", what);
	pager_backend_local_set_node_error(m.be, NODE_A, -EIO);
	ok(pager_set_budget(m.p, UINT64_MAX) == 0, "%s: budget back", what);
	ok(map_mismatches() == 0, "%s: every page reads back right, source node failing", what);
	pager_stats(m.p, &st);
	ok(st.failed == 0, "%s: pager not failed (%d)", what, st.failed);
	pager_backend_local_set_node_error(m.be, 0, 0);
}

/* ---- 1: dual write, the COPY race, commit ---------------------------------- */

static void test_race(void)
{
	struct pager_config cfg = { .name = "race", .budget = UINT64_MAX, .fail_timeout_ms = 300 };
	struct pager_section a, b = tap_remote(NODE_B, 9);
	struct pager_memmig_result res = { 0 };
	static uint8_t old[SEC], buf[PS];
	static bool stale[SPP];
	struct pager_stats st;
	int region = -1, r;
	unsigned idx = 99;

	ok(reset_mapping(&cfg) == 0, "race: mapping set up");
	a = secs[MIG];
	ok(pager_section_find(m.p, &a, &region, &idx) == 0 && region == 0 && idx == MIG,
	   "section found: region %d index %u", region, idx);
	ok(pager_section_migrate_begin(m.p, 0, MIG, &a) == -EINVAL, "begin to itself: -EINVAL");
	ok(be_io(&a, 0, SPP, old, false) == 0, "old content of the source kept");
	r = pager_section_migrate_begin(m.p, 0, MIG, &b);
	ok(r == 0, "begin: %s", strerror(-r));
	ok(pager_section_migrate_begin(m.p, 0, MIG, &b) == -EBUSY, "second begin: -EBUSY");

	/* Dual write: pages 0..31 of the section get version 2 and are flushed. */
	for (uint32_t i = 0; i < 32; i++) {
		uint64_t pg = MIG * SPP + i;

		ver[pg] = 2;
		pat_fill(m.mem + pg * PS, pg, 2);
	}
	ok(pager_flush(m.p) == 0, "flush during the window");
	{
		unsigned bad_a = 0, bad_b = 0;

		for (uint32_t i = 0; i < 32; i++) {
			uint64_t pg = MIG * SPP + i;

			bad_a += be_io(&a, i, 1, buf, false) < 0 || pat_check(buf, pg, 2, true);
			bad_b += be_io(&b, i, 1, buf, false) < 0 || pat_check(buf, pg, 2, true);
		}
		ok(bad_a == 0 && bad_b == 0, "dual write: both nodes have the new pages (%u, %u bad)",
		   bad_a, bad_b);
	}
	pager_stats(m.p, &st);
	/* A sequential writer gets the rest of its window writable (and dirty) too. */
	ok(st.memmig_pages_dual >= 32 && st.memmig_active == 1, "%llu pages written to both",
	   (unsigned long long)st.memmig_pages_dual);
	ok(pager_region_set_section(m.p, 0, MIG, &b, false) == -EBUSY,
	   "set_section of a migrating section: -EBUSY");

	/* The COPY read pages 0..7 before the dual write: it writes their old copy last. */
	for (uint32_t i = 0; i < 8; i++)
		stale[i] = true;
	ok(play_copy(&a, &b, old, stale, 0) == 0, "COPY played, 8 pages stale on the target");
	ok(be_io(&b, 3, 1, buf, false) == 0 && pat_check(buf, MIG * SPP + 3, 1, true) == 0,
	   "the target really holds an old page now");

	r = pager_section_migrate_commit(m.p, 0, MIG, &res);
	ok(r == 0, "commit: %s", strerror(-r));
	diag("commit: %llu pages re-sent, pause %llu us, %llu us in all, %u rounds",
	     (unsigned long long)res.pages_resent, (unsigned long long)res.pause_ns / 1000,
	     (unsigned long long)res.total_ns / 1000, res.rounds);
	ok(res.pages_resent == st.memmig_pages_dual && res.pages_dual == st.memmig_pages_dual,
	   "the %llu pages written back in the window were re-sent",
	   (unsigned long long)st.memmig_pages_dual);
	ok(be_mismatches(&b) == 0, "the target is exact after commit");
	ok(pager_section_migrate_commit(m.p, 0, MIG, &res) == -ENOENT, "second commit: -ENOENT");
	ok(pager_section_find(m.p, &b, &region, &idx) == 0 && idx == MIG &&
	   pager_section_find(m.p, &a, &region, &idx) == -ENOENT, "the section is the target now");
	pager_stats(m.p, &st);
	ok(st.memmig_committed == 1 && st.memmig_active == 0 &&
	   st.memmig_pages_resent == res.pages_resent, "stats: committed, none active");
	ok(st.memmig_pause.count == 1, "pause histogram has the commit");

	/* Writes after the switch go to the target only. */
	for (uint32_t i = 100; i < 110; i++) {
		uint64_t pg = MIG * SPP + i;

		ver[pg] = 3;
		pat_fill(m.mem + pg * PS, pg, 3);
	}
	ok(pager_flush(m.p) == 0, "flush after the switch");
	ok(be_io(&a, 100, 1, buf, false) == 0 && pat_check(buf, MIG * SPP + 100, 1, true) == 0,
	   "the source no longer gets write-backs");
	verify_on_target("race", &b);
}

/* ---- 2: commit under writers, small budget ----------------------------------- */

struct writer {
	unsigned id;
	_Atomic bool *stop;
	uint64_t seed, writes;
};

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	while (!atomic_load(w->stop)) {
		/* Two in three writes hit the migrating section. */
		uint64_t x = xs(&w->seed), pg;

		if (x % 3)
			pg = MIG * SPP + (x >> 8) % SPP;
		else
			pg = (x >> 8) % NPG;
		pg = (pg & ~1ull) | w->id;          /* each writer owns its pages */
		{
			uint32_t v = ver[pg] + 1;

			pat_fill(m.mem + pg * PS, pg, v);
			ver[pg] = v;
		}
		w->writes++;
		if (w->writes % 64 == 0)
			usleep(50);
	}
	return NULL;
}

static void test_writers(void)
{
	struct pager_config cfg = { .name = "writers", .budget = LEN / 8, .fault_threads = 2,
				    .fail_timeout_ms = 300, .evict_batch = 32 };
	struct pager_section a, b = tap_remote(NODE_B, 11);
	struct pager_memmig_result res = { 0 };
	struct writer w[2];
	pthread_t th[2];
	_Atomic bool stop = false;
	struct pager_stats st;
	uint64_t max_pause = 0;
	int r;

	ok(reset_mapping(&cfg) == 0, "writers: mapping set up at a 1/8 budget");
	for (unsigned round = 0; round < 3; round++) {
		a = secs[MIG];
		if (round) {
			/* Migrate back and forth: A -> B -> A' -> B' ... */
			ok(pager_section_find(m.p, &b, &(int){ 0 }, &(unsigned){ 0 }) == 0,
			   "round %u: starts on the last target", round);
			a = b;
			b = tap_remote(round % 2 ? NODE_A : NODE_B, 20 + round);
		}
		stop = false;
		for (unsigned i = 0; i < 2; i++) {
			w[i] = (struct writer){ .id = i, .stop = &stop, .seed = 77 + i + round * 7 };
			pthread_create(&th[i], NULL, writer_main, &w[i]);
		}
		usleep(20000);
		r = pager_section_migrate_begin(m.p, 0, MIG, &b);
		ok(r == 0, "round %u: begin: %s", round, strerror(-r));
		/* The COPY runs while the writers write and the evictor writes back. */
		r = play_copy(&a, &b, NULL, NULL, 2000);
		ok(r == 0, "round %u: COPY: %s", round, strerror(-r));
		r = pager_section_migrate_commit(m.p, 0, MIG, &res);
		ok(r == 0, "round %u: commit under writers: %s", round, strerror(-r));
		diag("round %u: %llu pages dual, %llu re-sent, pause %llu us, commit %llu us",
		     round, (unsigned long long)res.pages_dual, (unsigned long long)res.pages_resent,
		     (unsigned long long)res.pause_ns / 1000, (unsigned long long)res.total_ns / 1000);
		max_pause = res.pause_ns > max_pause ? res.pause_ns : max_pause;
		usleep(20000);                 /* writes after the switch, still evicting */
		stop = true;
		for (unsigned i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		diag("round %u: %llu + %llu writes", round, (unsigned long long)w[0].writes,
		     (unsigned long long)w[1].writes);
		/* The old source must not be needed any more: fail it while checking. */
		pager_backend_local_set_node_error(m.be, a.grant.memnode_id, -EIO);
		{
			unsigned bad = 0;

			for (uint32_t i = 0; i < SPP; i++) {
				uint64_t pg = MIG * SPP + i;

				bad += pat_check(m.mem + pg * PS, pg, ver[pg], true);
			}
			ok(bad == 0, "round %u: the section reads right with the old source failing",
			   round);
		}
		pager_backend_local_set_node_error(m.be, 0, 0);
	}
	pager_stats(m.p, &st);
	ok(st.pages_evicted > 0 && st.memmig_pages_dual > 0, "eviction ran (%llu evicted, %llu dual)",
	   (unsigned long long)st.pages_evicted, (unsigned long long)st.memmig_pages_dual);
	ok(st.memmig_committed == 3, "three migrations committed");
	ok(max_pause < 50ull * 1000 * 1000, "longest pause %llu us",
	   (unsigned long long)max_pause / 1000);
	verify_on_target("writers", &b);
}

/* ---- 3: abort; 4: the target fails mid-window; 5: hotplug ------------------- */

static void test_abort_and_failure(void)
{
	struct pager_config cfg = { .name = "abort", .budget = UINT64_MAX, .fail_timeout_ms = 300 };
	struct pager_section a, b = tap_remote(NODE_B, 5);
	struct pager_memmig_result res = { 0 };
	static uint8_t buf[PS];
	struct pager_stats st;
	uint64_t t0;
	int r;

	ok(reset_mapping(&cfg) == 0, "abort: mapping set up");
	a = secs[MIG];
	ok(pager_section_migrate_abort(m.p, 0, MIG) == -ENOENT, "abort without migration: -ENOENT");
	ok(pager_section_migrate_begin(m.p, 0, 0, &(struct pager_section){ .kind = PAGER_SEC_LOCAL }) ==
		   -EINVAL, "begin to a local section: -EINVAL");
	ok(pager_section_migrate_begin(m.p, 0, MIG, &b) == 0, "begin");
	ver[MIG * SPP] = 2;
	pat_fill(m.mem + MIG * SPP * PS, MIG * SPP, 2);
	ok(pager_flush(m.p) == 0, "dual write");
	ok(pager_section_migrate_abort(m.p, 0, MIG) == 0, "abort");
	ver[MIG * SPP + 1] = 2;
	pat_fill(m.mem + (MIG * SPP + 1) * PS, MIG * SPP + 1, 2);
	ok(pager_flush(m.p) == 0, "flush after abort");
	ok(be_io(&b, 1, 1, buf, false) == 0 && pat_check(buf, 0, 0, true) == 0,
	   "after abort the target gets nothing");
	ok(pager_section_migrate_commit(m.p, 0, MIG, &res) == -ENOENT, "commit after abort: -ENOENT");
	pager_stats(m.p, &st);
	ok(st.memmig_aborted == 1 && st.memmig_active == 0, "stats: aborted");
	ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 20000) == 0 &&
	   pager_set_budget(m.p, UINT64_MAX) == 0 && map_mismatches() == 0,
	   "after abort the data is on the source");

	/* The target fails in the window. */
	b = tap_remote(NODE_B, 6);
	ok(pager_section_migrate_begin(m.p, 0, MIG, &b) == 0, "begin again");
	pager_backend_local_set_node_error(m.be, NODE_B, -ECONNREFUSED);
	for (uint32_t i = 0; i < 64; i++) {
		uint64_t pg = MIG * SPP + i;

		ver[pg] = 5;
		pat_fill(m.mem + pg * PS, pg, 5);
	}
	t0 = tap_mono_ms();
	r = pager_flush(m.p);
	ok(r == 0, "a write-back with the target down succeeds: %s", strerror(-r));
	ok(tap_mono_ms() - t0 < 1000, "and does not wait (%llu ms)", (unsigned long long)(tap_mono_ms() - t0));
	pager_stats(m.p, &st);
	ok(st.memmig_last_err == -ECONNREFUSED && st.errors == 0, "last error %d recorded, no pager errors",
	   st.memmig_last_err);
	pager_backend_local_set_node_error(m.be, 0, 0);
	r = pager_section_migrate_commit(m.p, 0, MIG, &res);
	ok(r == -EREMOTEIO, "commit answers -EREMOTEIO: %s", strerror(-r));
	pager_stats(m.p, &st);
	ok(st.memmig_failed == 1 && st.memmig_active == 0, "stats: failed, none active");
	ok(pager_section_find(m.p, &a, &(int){ 0 }, &(unsigned){ 0 }) == 0,
	   "the section stays on the source");
	ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 20000) == 0 &&
	   pager_set_budget(m.p, UINT64_MAX) == 0 && map_mismatches() == 0,
	   "no data lost: everything reads back from the source");

	/* Commit fails while re-sending (target dies after the COPY). */
	b = tap_remote(NODE_B, 8);
	ok(pager_section_migrate_begin(m.p, 0, MIG, &b) == 0, "begin (target dies at commit)");
	ver[MIG * SPP + 9] = 6;
	pat_fill(m.mem + (MIG * SPP + 9) * PS, MIG * SPP + 9, 6);
	ok(pager_flush(m.p) == 0 && play_copy(&a, &b, NULL, NULL, 0) == 0, "dual write and COPY");
	pager_backend_local_set_node_error(m.be, NODE_B, -EPIPE);
	ok(pager_section_migrate_commit(m.p, 0, MIG, &res) == -EREMOTEIO,
	   "commit with the target down: -EREMOTEIO");
	pager_backend_local_set_node_error(m.be, 0, 0);
	ok(pager_section_find(m.p, &a, &(int){ 0 }, &(unsigned){ 0 }) == 0 && map_mismatches() == 0,
	   "still on the source, data intact");

	/* A region removed while its section migrates. */
	ok(pager_section_migrate_begin(m.p, 0, MIG, &b) == 0, "begin (then remove the region)");
	ok(pager_remove_region(m.p, 0, true) == 0, "remove_region with a migration in progress");
	ok(pager_section_migrate_commit(m.p, 0, MIG, &res) == -ENOENT, "commit after removal: -ENOENT");
	pager_stats(m.p, &st);
	ok(st.memmig_active == 0, "no migration left");
	tmap_teardown(&m);
}

int main(void)
{
	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	test_race();
	test_writers();
	test_abort_and_failure();
	if (m.p)
		tmap_teardown(&m);
	return tap_done();
}
