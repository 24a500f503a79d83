// SPDX-License-Identifier: MIT
/*
 * A memory node that stops answering, with the local backend (two memory
 * node ids of one backend, and a local section):
 *   - a fault on the failing node is parked: its thread stays blocked, the
 *     node is reported down (stats and on_node), nothing is sticky;
 *   - meanwhile faults on the other node and on the local section are
 *     served;
 *   - when the node answers again the parked fault completes with the
 *     right data, the node is reported up, and the pager is not failed;
 *   - the same twice in a row (recovery is not a one-off);
 *   - a flush that meets a page kept BUSY by a slow fetch waits for it
 *     instead of skipping it (a discarded page's zeros reach the node);
 *   - a cluster COPY that fails half-way (the tmpfs is full) keeps the
 *     pages it did install as resident and dirty: a write to one of them
 *     completes and is written back (it used to loop on WP faults).
 */
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#define PS   PAGER_PAGE_SIZE
#define SEC  (1u << 20)
#define SPP  (SEC / PS)
#define NSEC 3u
#define LEN  (NSEC * SEC)
#define NPG  (LEN / PS)
#define NODE_A 1u                /* section 0: the node that fails */
#define NODE_B 2u                /* section 1 */
                                 /* section 2: local */

static struct tmap m;
static uint32_t ver[NPG];

static _Atomic int downs, ups;
static _Atomic uint64_t last_down_node;

static void on_node(void *opaque, uint64_t id, const char *addr, bool down, int err)
{
	(void)opaque;
	(void)addr;
	(void)err;
	if (down) {
		atomic_fetch_add(&downs, 1);
		atomic_store(&last_down_node, id);
	} else {
		atomic_fetch_add(&ups, 1);
	}
}

struct toucher {
	uint64_t pg;
	_Atomic bool done;
	int bad;
	bool write;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	if (t->write)
		m.mem[t->pg * PS] ^= 0;   /* a write fault that keeps the content */
	t->bad = pat_check(m.mem + t->pg * PS, t->pg, ver[t->pg], true);
	atomic_store(&t->done, true);
	return NULL;
}

static bool wait_for(_Atomic bool *flag, unsigned ms)
{
	uint64_t end = tap_mono_ms() + ms;

	while (!atomic_load(flag) && tap_mono_ms() < end)
		usleep(1000);
	return atomic_load(flag);
}

static bool map_all_ok(void)
{
	unsigned bad = 0;

	for (uint64_t pg = 0; pg < NPG; pg++)
		bad += pat_check(m.mem + pg * PS, pg, ver[pg], true);
	return bad == 0;
}

static void outage_round(unsigned round, uint64_t pg_a)
{
	struct toucher t = { .pg = pg_a };
	struct pager_stats st;
	pthread_t th;
	uint64_t t0;
	int d0 = atomic_load(&downs), u0 = atomic_load(&ups);

	pager_backend_local_set_node_error(m.be, NODE_A, -ETIMEDOUT);
	pthread_create(&th, NULL, touch_main, &t);
	t0 = tap_mono_ms();
	while (atomic_load(&downs) == d0 && tap_mono_ms() - t0 < 5000)
		usleep(1000);
	pager_stats(m.p, &st);
	ok(atomic_load(&downs) == d0 + 1 && atomic_load(&last_down_node) == NODE_A,
	   "round %u: node A reported down once", round);
	ok(st.nodes_down == 1 && st.failed == -ETIMEDOUT, "round %u: stats: %llu down, failed %d",
	   round, (unsigned long long)st.nodes_down, st.failed);
	ok(!atomic_load(&t.done), "round %u: the fault on node A is parked", round);

	/* Node B and the local section are served while A is down. */
	{
		unsigned bad = 0;

		for (uint64_t pg = SPP + round * 64; pg < SPP + round * 64 + 64; pg++)
			bad += pat_check(m.mem + pg * PS, pg, ver[pg], true);
		for (uint64_t pg = 2 * SPP + round * 64; pg < 2 * SPP + round * 64 + 64; pg++)
			bad += pat_check(m.mem + pg * PS, pg, 0, true);
		ok(bad == 0, "round %u: node B and local pages served meanwhile (%u bad)", round,
		   bad);
	}
	usleep(300000);
	ok(!atomic_load(&t.done), "round %u: still parked while A fails", round);
	pager_stats(m.p, &st);
	ok(st.faults_parked >= 1, "round %u: parked faults counted (%llu)", round,
	   (unsigned long long)st.faults_parked);

	pager_backend_local_set_node_error(m.be, NODE_A, 0);
	ok(wait_for(&t.done, 5000), "round %u: the parked fault completes once A answers", round);
	pthread_join(th, NULL);
	ok(t.bad == 0, "round %u: with the right data", round);
	t0 = tap_mono_ms();   /* the callback comes right after the wake */
	while (atomic_load(&ups) == u0 && tap_mono_ms() - t0 < 2000)
		usleep(1000);
	pager_stats(m.p, &st);
	ok(atomic_load(&ups) == u0 + 1 && st.nodes_down == 0 && st.failed == 0,
	   "round %u: node A reported up; pager not failed (%d)", round, st.failed);
}

static void test_outage(void)
{
	struct pager_config cfg = {
		.name = "outage", .budget = UINT64_MAX, .fail_timeout_ms = 300, .probe_ms = 50,
		.on_node = on_node,
	};
	struct pager_section secs[NSEC] = { tap_remote(NODE_A, 0), tap_remote(NODE_B, 1),
					    { .kind = PAGER_SEC_LOCAL } };
	int r;

	r = tmap_setup_secs(&m, LEN, SEC, &cfg, secs, NULL, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0, "setup: %s", strerror(-r)))
		return;
	for (uint64_t pg = 0; pg < NPG; pg++)
		ver[pg] = pg < 2 * SPP ? 3 : 0;
	ok(tmap_fill_backend(&m, ver) == 0, "backend filled");
	outage_round(0, 7);
	outage_round(1, 100);
	ok(map_all_ok(), "every page reads back right afterwards");
	tmap_teardown(&m);
}

/* ---- a flush waits for a page kept BUSY by a slow fetch --------------------- */

static void test_flush_waits_busy(void)
{
	struct pager_config cfg = { .name = "busy", .budget = UINT64_MAX, .fail_timeout_ms = 5000 };
	struct pager_section secs[NSEC] = { tap_remote(NODE_A, 0), tap_remote(NODE_B, 1),
					    { .kind = PAGER_SEC_LOCAL } };
	struct toucher t = { .pg = 17 };
	static uint8_t buf[PS];
	pthread_t th;
	int r;

	r = tmap_setup_secs(&m, LEN, SEC, &cfg, secs, NULL, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0, "setup: %s", strerror(-r)))
		return;
	for (uint64_t pg = 0; pg < NPG; pg++)
		ver[pg] = pg < 2 * SPP ? 5 : 0;
	ok(tmap_fill_backend(&m, ver) == 0, "backend filled");
	/* Page 16 is discarded (zeros): its truth must reach the node at a flush. */
	ok(madvise(m.mem + 16 * PS, PS, MADV_REMOVE) == 0, "page 16 discarded");
	ver[16] = 0;
	usleep(20000);   /* the REMOVE event is read */
	/* A fault on page 17 claims its cluster (16 too) and fetches slowly. */
	pager_backend_local_set_delay(m.be, 3000000);
	pthread_create(&th, NULL, touch_main, &t);
	usleep(200000);
	r = pager_flush(m.p);
	pager_backend_local_set_delay(m.be, 0);
	ok(r == 0, "flush: %s", strerror(-r));
	ok(tmap_backend_read(&m, 16, buf) == 0 && pat_check(buf, 16, 0, true) == 0,
	   "the discarded page's zeros reached the node");
	ok(wait_for(&t.done, 8000) && t.bad == 0, "the slow fault completed");
	pthread_join(th, NULL);
	tmap_teardown(&m);
}

/* ---- a partial COPY (tmpfs full) ----------------------------------------- */

struct writer {
	uint64_t pg;
	_Atomic bool done;
};

static void *write_main(void *arg)
{
	struct writer *w = arg;

	pat_fill(m.mem + w->pg * PS, w->pg, 9);
	atomic_store(&w->done, true);
	return NULL;
}

static void test_partial_copy(void)
{
	struct pager_config cfg = { .name = "partial", .budget = UINT64_MAX };
	struct pager_section secs[1] = { tap_remote(NODE_A, 0) };
	char dir[] = "/tmp/pager-partial-XXXXXX";
	struct writer w = { .pg = 3 };
	static uint8_t buf[PS];
	pthread_t th;
	int r;

	if (!mkdtemp(dir) || mount("none", dir, "tmpfs", 0, "size=96k") < 0) {
		skip("partial copy: cannot mount a small tmpfs (%s)", strerror(errno));
		if (dir[0])
			rmdir(dir);
		return;
	}
	tmap_dir = dir;
	r = tmap_setup_secs(&m, SEC, SEC, &cfg, secs, NULL, PAGER_DIRTY_SYNC_WP);
	tmap_dir = NULL;
	if (ok(r == 0, "partial copy: setup: %s", strerror(-r))) {
		for (uint64_t pg = 0; pg < SPP; pg++)
			ver[pg] = 4;
		ok(tmap_fill_backend(&m, ver) == 0, "partial copy: backend filled");
		/* 24 pages fit: a cluster of 16 at page 96, then 8 of the cluster at 0. */
		ok(pat_check(m.mem + 100 * PS, 100, 4, true) == 0, "partial copy: page 100 read");
		ok(pat_check(m.mem, 0, 4, true) == 0, "partial copy: page 0 read (its COPY failed half-way)");
		pthread_create(&th, NULL, write_main, &w);
		ok(wait_for(&w.done, 3000), "partial copy: a write to page 3 (installed) completes");
		if (atomic_load(&w.done)) {
			pthread_join(th, NULL);
			ver[3] = 9;
			ok(pager_flush(m.p) == 0 && tmap_backend_read(&m, 3, buf) == 0 &&
				   pat_check(buf, 3, 9, true) == 0,
			   "partial copy: the write reached the node at a flush");
		}
		if (atomic_load(&w.done))
			tmap_teardown(&m);
		else
			diag("partial copy: writer stuck; the mapping is leaked");
	}
	(void)umount2(dir, MNT_DETACH);
	rmdir(dir);
}

int main(void)
{
	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	test_outage();
	test_flush_waits_busy();
	test_partial_copy();
	return tap_done();
}
