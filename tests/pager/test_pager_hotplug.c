// SPDX-License-Identifier: MIT
/*
 * Pager hotplug tests with the local backend: pager_remove_region() while
 * two fault threads serve another region under eviction pressure, with a
 * fetch in flight on the removed region, with dirty pages (write-back on
 * and off, checked on the backend), reuse of the freed slot;
 * pager_region_set_section() local -> remote -> local on an idle section,
 * -EBUSY on a busy one, discard without write-back, grant renewal while
 * the section is being faulted; and a file range punched behind the
 * pager's back (fallocate, no uffd event): clean pages come back from the
 * backend, dirty ones as zeros, and untouched punched pages stop counting
 * as resident.
 */
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PS   PAGER_PAGE_SIZE
#define SEC  (256u << 10)
#define SPP  (SEC / PS)
#define NSEC 8u
#define LEN  (NSEC * SEC)
#define NPG  (LEN / PS)

struct reg {
	int memfd, uffd, idx;
	uint64_t feat;
	uint8_t *mem;
	uint64_t tag;
	struct pager_section secs[NSEC];
	uint32_t ver[NPG];
};

static struct pager_backend *be;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t pid_of(const struct reg *g, uint64_t pg)
{
	return g->tag << 20 | pg;
}

static struct pager_section remote_sec(uint64_t memnode, uint32_t section)
{
	struct pager_section s = { .kind = PAGER_SEC_REMOTE };

	s.grant.memnode_id = memnode;
	s.grant.section = section;
	return s;
}

/* Write page `page` of backend section s with pattern (id, ver). */
static int be_put(const struct pager_section *s, uint32_t page, uint64_t id, uint32_t ver)
{
	static uint8_t buf[PS];
	struct proto_extent e = { page, 1 };
	void *conn = NULL;
	int r = be->ops->conn_open(be->priv, &conn);

	if (r < 0)
		return r;
	pat_fill(buf, id, ver);
	r = be->ops->write_submit(conn, s, &e, 1, buf);
	if (r >= 0)
		r = be->ops->write_wait(conn);
	be->ops->conn_close(conn);
	return r < 0 ? r : 0;
}

/* 0 if page `page` of backend section s holds (id, ver). */
static int be_check(const struct pager_section *s, uint32_t page, uint64_t id, uint32_t ver)
{
	static uint8_t buf[PS];
	void *conn = NULL;
	int r = be->ops->conn_open(be->priv, &conn);

	if (r < 0)
		return 1;
	r = be->ops->fetch(conn, s, page, 1, buf);
	be->ops->conn_close(conn);
	return r < 0 ? 1 : pat_check(buf, id, ver, true);
}

/* Backend content of every remote page of g = its ver[] (1 unless told). */
static int reg_fill(struct reg *g, uint32_t v)
{
	for (uint64_t pg = 0; pg < NPG; pg++) {
		const struct pager_section *s = &g->secs[pg / SPP];

		if (s->kind != PAGER_SEC_REMOTE) {
			g->ver[pg] = 0;
			continue;
		}
		g->ver[pg] = v;
		if (be_put(s, (uint32_t)(pg % SPP), pid_of(g, pg), v) < 0)
			return -EIO;
	}
	return 0;
}

/* memfd + mapping + uffd; sections remote on `memnode` unless local_mask bit. */
static int reg_open(struct reg *g, struct pager *p, uint64_t tag, uint64_t memnode,
		    unsigned local_mask)
{
	struct pager_region_config rc = { 0 };
	int r;

	memset(g, 0, sizeof(*g));
	g->memfd = g->uffd = g->idx = -1;
	g->tag = tag;
	for (unsigned i = 0; i < NSEC; i++) {
		g->secs[i] = remote_sec(memnode, i);
		if (local_mask & (1u << i))
			g->secs[i].kind = PAGER_SEC_LOCAL;
	}
	g->memfd = memfd_create("hotplug", MFD_CLOEXEC);
	if (g->memfd < 0 || ftruncate(g->memfd, LEN) < 0)
		return -errno;
	g->mem = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
	if (g->mem == MAP_FAILED) {
		g->mem = NULL;
		return -errno;
	}
	r = pager_uffd_open(PAGER_DIRTY_SYNC_WP, &g->uffd, &g->feat);
	if (r >= 0)
		r = pager_uffd_register(g->uffd, (uintptr_t)g->mem, LEN);
	if (r < 0)
		return r;
	rc.uffd = g->uffd;
	rc.uffd_features = g->feat;
	rc.file_fd = g->memfd;
	rc.base = (uintptr_t)g->mem;
	rc.length = LEN;
	rc.sections = g->secs;
	rc.pagemap_fd = -1;
	g->idx = pager_add_region(p, &rc);
	return g->idx < 0 ? g->idx : 0;
}

static void reg_close(struct reg *g)
{
	if (g->mem)
		munmap(g->mem, LEN);
	if (g->uffd >= 0)
		close(g->uffd);
	if (g->memfd >= 0)
		close(g->memfd);
	g->mem = NULL;
	g->uffd = g->memfd = -1;
}

static unsigned reg_verify(struct reg *g, uint64_t a, uint64_t b)
{
	unsigned bad = 0;

	for (uint64_t pg = a; pg < b; pg++)
		bad += pat_check(g->mem + pg * PS, pid_of(g, pg), g->ver[pg], true);
	return bad;
}

/* Does the memfd hold data anywhere in pages [a, b)? */
static bool file_has_data(struct reg *g, uint64_t a, uint64_t b)
{
	off_t d = lseek(g->memfd, (off_t)(a * PS), SEEK_DATA);

	return d >= 0 && (uint64_t)d < b * PS;
}

static struct pager *new_pager(unsigned threads, uint64_t budget)
{
	struct pager_config cfg = {
		.name = "hp", .backend = be, .section_size = SEC, .budget = budget,
		.fault_threads = threads, .fail_timeout_ms = 2000, .fail_mode = PAGER_FAIL_SIGBUS,
		.reconcile_ms = 200,
	};
	struct pager *p = NULL;

	if (pager_new(&cfg, &p) < 0)
		return NULL;
	return p;
}

static uint64_t resident(struct pager *p)
{
	struct pager_stats st;

	pager_stats(p, &st);
	return st.resident_pages;
}

/* ---- remove while another region is being faulted ------------------------- */

struct worker {
	struct reg *g;
	unsigned id, nthreads, iters;
	unsigned bad;
	_Atomic bool *stop, *pause;
	uint64_t rnd;
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Random reads and writes on the pages pg % nthreads == id (ver[] is ours). */
static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (unsigned i = 0; i < w->iters || !atomic_load(w->stop); i++) {
		uint64_t pg = xorshift(&w->rnd) % (NPG / w->nthreads) * w->nthreads + w->id;

		while (w->pause && atomic_load(w->pause) && !atomic_load(w->stop))
			usleep(1000);
		if (xorshift(&w->rnd) % 3 == 0) {
			w->g->ver[pg]++;
			pat_fill(w->g->mem + pg * PS, pid_of(w->g, pg), w->g->ver[pg]);
		} else {
			w->bad += pat_check(w->g->mem + pg * PS, pid_of(w->g, pg), w->g->ver[pg], false);
		}
	}
	return NULL;
}

struct toucher {
	const volatile uint8_t *addr;
	_Atomic bool done;
	uint8_t v;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	t->v = *t->addr;
	atomic_store(&t->done, true);
	return NULL;
}

static void test_remove_concurrent(void)
{
	struct pager *p = new_pager(2, LEN); /* half of the two regions */
	static struct reg a, b;
	struct worker w[2];
	pthread_t th[2];
	_Atomic bool stop = false, pause = false;
	bool abandoned = false;
	unsigned bad;
	int r;

	if (!ok(p != NULL, "pager with 2 fault threads"))
		return;
	r = reg_open(&a, p, 1, 1, 0);
	ok(r == 0 && a.idx == 0, "region A: %s (slot %d)", strerror(-r), a.idx);
	r = reg_open(&b, p, 2, 2, 0);
	ok(r == 0 && b.idx == 1, "region B: %s (slot %d)", strerror(-r), b.idx);
	ok(reg_fill(&a, 1) == 0 && reg_fill(&b, 1) == 0, "fill backend");
	ok(pager_start(p) == 0, "start");

	/* A: some resident pages, some dirty. */
	bad = reg_verify(&a, 0, NPG / 2);
	for (uint64_t pg = 0; pg < NPG / 2; pg += 7)
		pat_fill(a.mem + pg * PS, pid_of(&a, pg), ++a.ver[pg]);
	ok(bad == 0 && resident(p) > 0, "A half read, some pages written (resident %llu)",
	   (unsigned long long)resident(p));

	for (unsigned i = 0; i < 2; i++) {
		w[i] = (struct worker){ &b, i, 2, 20000, 0, &stop, &pause,
					0x9e3779b97f4a7c15ull * (i + 1) };
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	usleep(20000);

	/*
	 * A fetch in flight on A when it is removed: it finishes, the toucher
	 * is served. B's workers pause so that the fault seen is A's.
	 */
	atomic_store(&pause, true);
	usleep(50000);
	{
		struct toucher t = { .addr = a.mem + (NPG - 3) * PS };
		pthread_t tt;
		struct pager_stats st0, st;
		uint64_t t0 = now_ms();

		abandoned = false;
		/* No budget wait before the fetch: the remove must meet the fetch itself. */
		pager_set_budget(p, UINT64_MAX);
		pager_stats(p, &st0);
		pager_backend_local_set_delay(be, 100000);
		pthread_create(&tt, NULL, touch_main, &t);
		do {
			usleep(200);
			pager_stats(p, &st);
		} while (st.faults_missing == st0.faults_missing && now_ms() - t0 < 2000);
		usleep(20000);  /* the fetch (100 ms) is under way */
		r = pager_remove_region(p, a.idx, false);
		pager_backend_local_set_delay(be, 0);
		pager_set_budget(p, LEN);
		atomic_store(&pause, false);
		ok(r == 0, "remove A while a fetch on it is in flight: %s",
		   strerror(-r));
		/*
		 * Normally the fetch was under way and finishes: the toucher is
		 * served. If the fault thread had not reached the fetch yet (a
		 * loaded machine), the fetch is cancelled and the fault parked:
		 * it stays blocked until the caller unregisters or closes the
		 * uffd, after which it reads the punched file.
		 */
		t0 = now_ms();
		while (!atomic_load(&t.done) && now_ms() - t0 < 1000)
			usleep(1000);
		if (atomic_load(&t.done)) {
			ok(t.v == (uint8_t)pat_word(pid_of(&a, NPG - 3), a.ver[NPG - 3], 0),
			   "in-flight fault on A finished and was served the right data");
		} else {
			abandoned = true;
			close(a.uffd);
			a.uffd = -1;
			t0 = now_ms();
			while (!atomic_load(&t.done) && now_ms() - t0 < 3000)
				usleep(1000);
			ok(atomic_load(&t.done) && t.v == 0,
			   "fault on A abandoned before its fetch: released by closing the uffd, zeros");
		}
		if (atomic_load(&t.done))
			pthread_join(tt, NULL);
		else
			pthread_detach(tt);
		if (!atomic_load(&t.done))
			a.mem = NULL;   /* a thread is still blocked in it: keep the mapping */
	}
	ok(pager_remove_region(p, a.idx, false) == -ENOENT, "second remove: -ENOENT");
	/*
	 * An abandoned toucher read its page through a mapping with no uffd
	 * any more: that read allocated the page in the (punched) file.
	 */
	ok(abandoned ? !file_has_data(&a, 0, NPG - 3) && !file_has_data(&a, NPG - 2, NPG)
		     : !file_has_data(&a, 0, NPG),
	   "A's remote range punched");

	/* Reuse the slot while B is still being faulted. */
	{
		static struct reg c;

		r = reg_open(&c, p, 3, 3, 0);
		ok(r == 0 && c.idx == 0, "region C reuses slot %d: %s", c.idx, strerror(-r));
		ok(reg_fill(&c, 5) == 0 && reg_verify(&c, 0, NPG) == 0, "C served from its sections");
		for (uint64_t pg = 0; pg < NPG; pg += 5)
			pat_fill(c.mem + pg * PS, pid_of(&c, pg), ++c.ver[pg]);
		ok(pager_remove_region(p, c.idx, true) == 0,
		   "remove C with write-back while B is faulted by 2 threads");
		bad = 0;
		for (uint64_t pg = 0; pg < NPG; pg++)
			bad += be_check(&c.secs[pg / SPP], (uint32_t)(pg % SPP), pid_of(&c, pg), c.ver[pg]);
		ok(bad == 0, "C's writes on the backend (%u bad)", bad);
		reg_close(&c);
	}
	/* Add and remove repeatedly under the workers' faults and evictions. */
	{
		static struct reg d;
		unsigned fails = 0, rounds = 0;

		for (uint64_t t0 = now_ms(); now_ms() - t0 < 300; rounds++) {
			if (reg_open(&d, p, 4, 4, 0x1) < 0 || d.idx != 0) {
				fails++;
				reg_close(&d);
				break;
			}
			/* Backend sections of memnode 4 are never filled: zeros. */
			for (uint64_t pg = rounds % 7; pg < NPG; pg += 13) {
				fails += pat_check(d.mem + pg * PS, pid_of(&d, pg), 0, false);
				d.mem[pg * PS + 8] = 0;   /* a write: dirty, still zeros */
			}
			fails += pager_remove_region(p, d.idx, rounds & 1) != 0;
			reg_close(&d);
		}
		ok(rounds > 3 && fails == 0, "%u add/touch/remove rounds while B is faulted (%u failures)", rounds,
		   fails);
	}

	atomic_store(&stop, true);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ok(w[0].bad + w[1].bad == 0, "B: 2 threads, no mismatch (%u)", w[0].bad + w[1].bad);
	ok(reg_verify(&b, 0, NPG) == 0, "B intact");
	ok(pager_flush(p) == 0, "flush");
	bad = 0;
	for (uint64_t pg = 0; pg < NPG; pg++)
		bad += be_check(&b.secs[pg / SPP], (uint32_t)(pg % SPP), pid_of(&b, pg), b.ver[pg]);
	ok(bad == 0, "B's backend correct (%u bad)", bad);
	/* A's and C's pages no longer count: dropping everything reaches 0. */
	ok(pager_set_budget(p, 0) == 0 && pager_wait_budget(p, 10000) == 0 && resident(p) == 0,
	   "budget 0 reaches resident 0 (%llu)", (unsigned long long)resident(p));
	{
		struct pager_stats st;

		pager_stats(p, &st);
		ok(st.failed == 0 && st.regions_removed > 2, "not failed, %llu regions removed",
		   (unsigned long long)st.regions_removed);
	}
	pager_free(p);
	reg_close(&a);
	reg_close(&b);
}

/* ---- remove with dirty pages ----------------------------------------------- */

static void test_remove_dirty(bool writeback)
{
	struct pager *p = new_pager(1, UINT64_MAX);
	static struct reg g, keep;
	uint64_t before, after;
	unsigned bad = 0, written = 0;
	int r;

	if (!ok(p != NULL, "pager"))
		return;
	ok(reg_open(&keep, p, 10, 10, 0) == 0 && reg_open(&g, p, 11, 11, 0) == 0 && g.idx == 1,
	   "two regions");
	ok(reg_fill(&keep, 1) == 0 && reg_fill(&g, 1) == 0 && pager_start(p) == 0, "fill, start");
	ok(reg_verify(&keep, 0, NPG / 4) == 0 && reg_verify(&g, 0, NPG) == 0, "read");
	for (uint64_t pg = 0; pg < NPG; pg += 3) {
		pat_fill(g.mem + pg * PS, pid_of(&g, pg), 2);
		written++;
	}
	before = resident(p);
	r = pager_remove_region(p, g.idx, writeback);
	after = resident(p);
	ok(r == 0, "remove with %u dirty pages, writeback %d: %s", written, writeback, strerror(-r));
	ok(before - after == NPG, "resident %llu -> %llu (the region's %u pages dropped)",
	   (unsigned long long)before, (unsigned long long)after, NPG);
	for (uint64_t pg = 0; pg < NPG; pg++) {
		uint32_t want = writeback && pg % 3 == 0 ? 2 : 1;

		bad += be_check(&g.secs[pg / SPP], (uint32_t)(pg % SPP), pid_of(&g, pg), want);
	}
	ok(bad == 0, writeback ? "backend holds the writes" : "backend unchanged: writes discarded");
	{
		struct pager_stats st;

		pager_stats(p, &st);
		ok(st.pages_dropped == NPG, "%llu pages dropped", (unsigned long long)st.pages_dropped);
	}
	ok(reg_verify(&keep, 0, NPG) == 0, "the other region is served");
	pager_free(p);
	reg_close(&g);
	reg_close(&keep);
}

/* A fetch retrying against a failing backend is cancelled by the removal. */
static void test_remove_retrying(void)
{
	struct pager *p = new_pager(1, UINT64_MAX);
	static struct reg g;
	struct toucher t = { 0 };
	struct pager_stats st0, st;
	pthread_t tt;
	uint64_t t0, took;
	int r;

	if (!ok(p != NULL, "pager"))
		return;
	ok(reg_open(&g, p, 15, 15, 0) == 0 && reg_fill(&g, 1) == 0 && pager_start(p) == 0,
	   "region");
	pager_stats(p, &st0);
	pager_backend_local_set_error(be, -EIO);
	t.addr = g.mem + 5 * PS;
	pthread_create(&tt, NULL, touch_main, &t);
	t0 = now_ms();
	do {
		usleep(1000);
		pager_stats(p, &st);
	} while (st.errors == st0.errors && now_ms() - t0 < 2000);
	t0 = now_ms();
	r = pager_remove_region(p, g.idx, false);
	took = now_ms() - t0;
	pager_backend_local_set_error(be, 0);
	ok(r == 0 && took < 1000, "remove during fetch retries: %s in %llu ms (fail timeout 2000)",
	   strerror(-r), (unsigned long long)took);
	usleep(50000);
	pager_stats(p, &st);
	ok(!atomic_load(&t.done) && st.failed == 0, "fault parked, pager not failed");
	close(g.uffd);
	g.uffd = -1;
	t0 = now_ms();
	while (!atomic_load(&t.done) && now_ms() - t0 < 3000)
		usleep(1000);
	ok(atomic_load(&t.done) && t.v == 0, "closing the uffd releases it (reads the punched file)");
	if (atomic_load(&t.done)) {
		pthread_join(tt, NULL);
	} else {
		pthread_detach(tt);
		g.mem = NULL;
	}
	pager_free(p);
	reg_close(&g);
}

/* ---- set_section ---------------------------------------------------------- */

static void test_set_section(void)
{
	struct pager *p = new_pager(1, UINT64_MAX);
	static struct reg g;
	struct pager_section loc = { .kind = PAGER_SEC_LOCAL };
	struct pager_section rem = remote_sec(20, 7);
	const uint64_t s1 = 1 * SPP, s2 = 2 * SPP; /* sections 1 and 2 start local */
	unsigned bad = 0;
	int r;

	if (!ok(p != NULL, "pager"))
		return;
	ok(reg_open(&g, p, 12, 12, 0x6) == 0, "region, sections 1-2 local");
	ok(reg_fill(&g, 1) == 0 && pager_start(p) == 0, "fill, start");
	r = 0;
	for (uint64_t pg = 0; pg < SPP && r == 0; pg++)
		r = be_put(&rem, (uint32_t)pg, pid_of(&g, s1 + pg), 3);
	ok(r == 0, "fill the section to be plugged");

	/* Idle local -> remote. */
	r = pager_region_set_section(p, g.idx, 1, &rem, false);
	ok(r == 0, "idle section 1: local -> remote: %s", strerror(-r));
	for (uint64_t pg = s1; pg < s1 + SPP; pg++)
		g.ver[pg] = 3;
	ok(reg_verify(&g, s1, s1 + SPP) == 0, "section 1 reads the new remote section");
	pat_fill(g.mem + (s1 + 4) * PS, pid_of(&g, s1 + 4), g.ver[s1 + 4] = 4);
	ok(pager_flush(p) == 0 && be_check(&rem, 4, pid_of(&g, s1 + 4), 4) == 0,
	   "a write to it reaches the new section");

	/* Busy: -EBUSY, nothing changes. */
	ok(pager_region_set_section(p, g.idx, 1, &loc, false) == -EBUSY, "busy section: -EBUSY");
	ok(reg_verify(&g, s1, s1 + SPP) == 0, "still served after -EBUSY");
	ok(pager_region_set_section(p, g.idx, 8, &loc, false) == -ERANGE, "index 8: -ERANGE");
	ok(pager_region_set_section(p, 5, 1, &loc, false) == -ENOENT, "no region 5: -ENOENT");

	/* Discard: dirty page dropped without write-back; reads zeros as local. */
	pat_fill(g.mem + (s1 + 5) * PS, pid_of(&g, s1 + 5), 9);
	{
		uint64_t before = resident(p);

		r = pager_region_set_section(p, g.idx, 1, &loc, true);
		ok(r == 0 && before - resident(p) == SPP, "discard: remote -> local, %u pages dropped",
		   SPP);
	}
	ok(be_check(&rem, 5, pid_of(&g, s1 + 5), 3) == 0, "the discarded write was not written back");
	ok(!file_has_data(&g, s1, s1 + SPP), "section 1 punched");
	for (uint64_t pg = s1; pg < s1 + SPP; pg++)
		g.ver[pg] = 0;
	ok(reg_verify(&g, s1, s1 + SPP) == 0, "section 1 reads zeros (local)");

	/* A local section that was touched holds data: busy too. */
	ok(pager_region_set_section(p, g.idx, 1, &rem, false) == -EBUSY,
	   "touched local section: -EBUSY");
	ok(pager_region_set_section(p, g.idx, 1, &rem, true) == 0, "discard local -> remote");
	for (uint64_t pg = s1; pg < s1 + SPP; pg++)
		g.ver[pg] = pg == s1 + 4 ? 4 : 3;
	ok(reg_verify(&g, s1, s1 + SPP) == 0, "section 1 reads the remote section again");

	/* Idle section 2: local -> remote -> local, never touched. */
	ok(pager_region_set_section(p, g.idx, 2, &rem, false) == 0 &&
		   pager_region_set_section(p, g.idx, 2, &loc, false) == 0,
	   "idle section 2: local -> remote -> local");
	ok(reg_verify(&g, s2, s2 + SPP) == 0, "section 2 reads zeros");

	/* The other sections never noticed. */
	ok(reg_verify(&g, 3 * SPP, NPG) == 0 && reg_verify(&g, 0, SPP) == 0, "other sections intact");
	ok(pager_flush(p) == 0, "flush");
	for (uint64_t pg = 3 * SPP; pg < NPG; pg++)
		bad += be_check(&g.secs[pg / SPP], (uint32_t)(pg % SPP), pid_of(&g, pg), g.ver[pg]);
	ok(bad == 0, "backend of the other sections intact");
	{
		struct pager_stats st;

		pager_stats(p, &st);
		ok(st.failed == 0 && st.errors == 0, "no errors");
	}
	pager_free(p);
	reg_close(&g);
}

/* Renew the grant of a section (same section) while two threads fault on it. */
static void test_regrant_under_faults(void)
{
	struct pager *p = new_pager(2, LEN / 4);
	static struct reg g;
	struct worker w[2];
	pthread_t th[2];
	_Atomic bool stop = false;
	unsigned n = 0, errs = 0;
	uint64_t t0;

	if (!ok(p != NULL, "pager"))
		return;
	ok(reg_open(&g, p, 13, 13, 0) == 0 && reg_fill(&g, 1) == 0 && pager_start(p) == 0,
	   "region at 25%% budget");
	for (unsigned i = 0; i < 2; i++) {
		w[i] = (struct worker){ &g, i, 2, 5000, 0, &stop, NULL,
					0x2545f4914f6cdd1dull * (i + 3) };
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	t0 = now_ms();
	while (now_ms() - t0 < 500) {
		unsigned s = n % NSEC;
		struct pager_section ns = g.secs[s];

		ns.grant.expiry = ++n;
		errs += pager_region_set_section(p, g.idx, s, &ns, false) != 0;
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ok(errs == 0, "%u grant renewals during faults and eviction, %u errors", n, errs);
	ok(w[0].bad + w[1].bad == 0 && reg_verify(&g, 0, NPG) == 0, "no mismatch (%u)",
	   w[0].bad + w[1].bad);
	pager_free(p);
	reg_close(&g);
}

/* ---- punched behind the pager's back -------------------------------------- */

static void test_punch(void)
{
	struct pager *p = new_pager(1, UINT64_MAX);
	static struct reg g;
	const uint64_t x = 10, y = 11, w = 12, z0 = 3 * SPP, zn = 20;
	struct pager_stats st;
	uint64_t res, t0;
	unsigned bad;

	if (!ok(p != NULL, "pager"))
		return;
	ok(reg_open(&g, p, 14, 14, 0) == 0 && reg_fill(&g, 1) == 0 && pager_start(p) == 0,
	   "region");
	ok(reg_verify(&g, 0, NPG) == 0, "all read");
	pat_fill(g.mem + x * PS, pid_of(&g, x), ++g.ver[x]); /* dirty */
	res = resident(p);

	/* x dirty, y clean: punched; the next access faults MISSING. */
	ok(fallocate(g.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(x * PS), 2 * PS) == 0,
	   "fallocate(PUNCH_HOLE) pages %llu-%llu from the mapping's process",
	   (unsigned long long)x, (unsigned long long)y);
	ok(pat_check(g.mem + y * PS, pid_of(&g, y), 1, true) == 0,
	   "clean punched page comes back from the backend");
	g.ver[x] = 0;
	ok(pat_check(g.mem + x * PS, pid_of(&g, x), 0, true) == 0,
	   "dirty punched page reads zeros (what the punch left), not the backend's old copy");
	pager_stats(p, &st);
	ok(st.pages_punched == 2 && resident(p) == res, "2 punched pages seen, resident %llu",
	   (unsigned long long)resident(p));
	ok(pager_flush(p) == 0 && be_check(&g.secs[0], (uint32_t)x, 0, 0) == 0,
	   "flush writes the zeros back");

	/* Dirty, punched, not touched again: the flush alone sends the zeros. */
	pat_fill(g.mem + w * PS, pid_of(&g, w), ++g.ver[w]);
	ok(fallocate(g.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(w * PS), PS) == 0,
	   "punch dirty page %llu", (unsigned long long)w);
	g.ver[w] = 0;
	ok(pager_flush(p) == 0 && be_check(&g.secs[0], (uint32_t)w, 0, 0) == 0,
	   "a flush without an access in between writes back zeros, not the old data");

	/*
	 * Punched and never touched again: un-counted by the evictor's
	 * reconciliation, with page w (flushed but still counted).
	 */
	res = resident(p) - 1;
	ok(fallocate(g.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(z0 * PS),
		     (off_t)(zn * PS)) == 0, "punch %llu untouched pages", (unsigned long long)zn);
	t0 = now_ms();
	while (resident(p) != res - zn && now_ms() - t0 < 5000)
		usleep(10000);
	ok(resident(p) == res - zn, "resident %llu -> %llu within %llu ms", (unsigned long long)res,
	   (unsigned long long)resident(p), (unsigned long long)(now_ms() - t0));
	ok((bad = reg_verify(&g, 0, NPG)) == 0, "everything reads right afterwards (%u bad)", bad);
	/* The faulting thread runs on as soon as its page is in: the count follows (w too). */
	res++;
	t0 = now_ms();
	while (resident(p) != res && now_ms() - t0 < 2000)
		usleep(1000);
	ok(resident(p) == res, "re-fetched pages counted again (%llu)", (unsigned long long)resident(p));

	/* QEMU's discard: punch, then MADV_DONTNEED (a REMOVE event): zeros. */
	ok(fallocate(g.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(5 * SPP * PS),
		     SEC) == 0 && madvise(g.mem + 5 * SEC, SEC, MADV_DONTNEED) == 0,
	   "punch + MADV_DONTNEED a section");
	for (uint64_t pg = 5 * SPP; pg < 6 * SPP; pg++)
		g.ver[pg] = 0;
	ok(reg_verify(&g, 0, NPG) == 0, "it reads zeros, the rest intact");
	pager_stats(p, &st);
	ok(st.failed == 0 && st.errors == 0, "no errors");
	pager_free(p);
	reg_close(&g);
}

/* ---- evacuation: a local section becomes remote ----------------------------- */

static unsigned be_verify_sec(struct reg *g, const struct pager_section *s, uint64_t pg0)
{
	unsigned bad = 0;

	for (uint64_t pg = pg0; pg < pg0 + SPP; pg++)
		bad += be_check(s, (uint32_t)(pg - pg0), pid_of(g, pg), g->ver[pg]) != 0;
	return bad;
}

static void test_evacuate(void)
{
	struct pager *p = new_pager(1, UINT64_MAX);
	const struct pager_section tgt = remote_sec(17, 3);   /* fresh: zeros */
	const uint64_t pg0 = 2 * SPP, touched = SPP / 3;
	static struct reg g;
	struct pager_stats st;
	uint64_t n = 0;
	unsigned bad;

	if (!ok(p != NULL, "pager"))
		return;
	ok(reg_open(&g, p, 18, 18, 1u << 2) == 0 && reg_fill(&g, 1) == 0 && pager_start(p) == 0,
	   "region, section 2 local");
	ok(pager_section_evacuate(p, g.idx, 1, &tgt, NULL) == -EALREADY,
	   "a remote section cannot be evacuated (-EALREADY)");
	for (uint64_t pg = pg0; pg < pg0 + touched; pg++)
		pat_fill(g.mem + pg * PS, pid_of(&g, pg), g.ver[pg] = 5);
	/* Local faults install a cluster: a few untouched neighbours have data too. */
	ok(pager_section_evacuate(p, g.idx, 2, &tgt, &n) == 0 && n >= touched && n < SPP,
	   "local section evacuated: %llu pages with data to write back (%llu written)",
	   (unsigned long long)n, (unsigned long long)touched);
	g.secs[2] = tgt;
	ok((bad = reg_verify(&g, 0, NPG)) == 0, "the guest reads the same (%u bad)", bad);
	pager_stats(p, &st);
	ok(st.dirty_pages >= touched, "its pages are dirty (%llu)",
	   (unsigned long long)st.dirty_pages);
	ok(pager_flush(p) == 0 && (bad = be_verify_sec(&g, &tgt, pg0)) == 0,
	   "after a flush the memory node has the section (%u bad)", bad);

	/* A write after the switch is tracked like any other (WP fault, dirty). */
	pat_fill(g.mem + (pg0 + 7) * PS, pid_of(&g, pg0 + 7), ++g.ver[pg0 + 7]);
	pat_fill(g.mem + (pg0 + SPP - 1) * PS, pid_of(&g, pg0 + SPP - 1), g.ver[pg0 + SPP - 1] = 9);
	ok(pager_flush(p) == 0 && (bad = be_verify_sec(&g, &tgt, pg0)) == 0,
	   "later writes reach it too (%u bad)", bad);

	/* Evicted and fetched back from the memory node: still the same. */
	ok(pager_set_budget(p, 16 * PS) == 0 && pager_wait_budget(p, 5000) == 0,
	   "budget down to 16 pages");
	ok((bad = reg_verify(&g, 0, NPG)) == 0, "everything reads right from the memory node (%u bad)",
	   bad);
	pager_free(p);
	reg_close(&g);
}

/* ---- hot pages and prefetch (compute migration) ---------------------------- */

static void test_hot_prefetch(void)
{
	struct pager *p = new_pager(1, UINT64_MAX), *q = new_pager(1, 24 * PS);
	static struct reg g, h;
	struct pager_hot_run *runs = NULL;
	struct pager_stats st;
	size_t nruns = 0;
	uint64_t touched = 0, t0, faults;
	unsigned bad = 0;

	if (!ok(p != NULL && q != NULL, "pagers"))
		return;
	ok(reg_open(&g, p, 20, 20, 0) == 0 && reg_fill(&g, 1) == 0 && pager_start(p) == 0,
	   "source region");
	/* The source's guest reads pages 3..9 of section 1 and page 40 of section 2. */
	for (uint64_t pg = SPP + 3; pg < SPP + 10; pg++)
		bad += pat_check(g.mem + pg * PS, pid_of(&g, pg), 1, true);
	bad += pat_check(g.mem + (2 * SPP + 40) * PS, pid_of(&g, 2 * SPP + 40), 1, true);
	ok(bad == 0, "source reads");
	/* Each fault fetched its aligned 16-page cluster: pages 0-15 and 32-47. */
	ok(pager_hot_export(p, 1 << 20, &runs, &nruns) == 0 && nruns == 2, "hot runs: %zu",
	   nruns);
	for (size_t i = 0; i < nruns; i++) {
		touched += runs[i].count;
		diag("run %zu: section %u pages %u+%u", i, runs[i].sec.grant.section, runs[i].page,
		     runs[i].count);
	}
	ok(nruns == 2 && runs[0].sec.grant.section == 1 && runs[0].page == 0 &&
	   runs[0].count == 16 && runs[1].sec.grant.section == 2 && runs[1].page == 32 &&
	   runs[1].count == 16, "they are the clusters the faults fetched (%llu pages)",
	   (unsigned long long)touched);
	ok(pager_hot_export(p, 5, &runs, &nruns) == 0, "export with a limit");
	touched = 0;
	for (size_t i = 0; i < nruns; i++)
		touched += runs[i].count;
	ok(touched == 5, "at most max_pages (%llu)", (unsigned long long)touched);
	free(runs);
	runs = NULL;

	/* The destination: same sections, nothing resident; prefetch section 1's first 40 pages. */
	ok(reg_open(&h, q, 20, 20, 0) == 0 && pager_start(q) == 0, "destination region (budget 24 pages)");
	memcpy(h.ver, g.ver, sizeof(h.ver));   /* the same sections */
	ok(pager_prefetch(q, h.idx, 1, 0, 40) == 0, "queue 40 pages");
	ok(pager_prefetch(q, h.idx, 1, SPP - 1, 2) == -ERANGE, "beyond the section: -ERANGE");
	ok(pager_prefetch(q, 63, 1, 0, 1) == -ENOENT, "no such region: -ENOENT");
	t0 = now_ms();
	do {
		usleep(2000);
		pager_stats(q, &st);
	} while (st.pages_hot_prefetched < 24 && now_ms() - t0 < 5000);
	ok(st.pages_hot_prefetched == 24 && st.resident_pages == 24,
	   "prefetched %llu pages, resident %llu: never beyond the budget",
	   (unsigned long long)st.pages_hot_prefetched, (unsigned long long)st.resident_pages);
	faults = st.faults_missing;
	ok(faults == 0, "no fault was taken for them (%llu)", (unsigned long long)faults);
	ok(pat_check(h.mem + (SPP + 2) * PS, pid_of(&h, SPP + 2), 1, true) == 0,
	   "a prefetched page reads right");
	pager_stats(q, &st);
	ok(st.faults_missing == faults, "without a fault");
	ok((bad = reg_verify(&h, 0, NPG)) == 0, "everything reads right (%u bad)", bad);
	pager_free(p);
	pager_free(q);
	reg_close(&g);
	reg_close(&h);
}

int main(void)
{
	int r;

	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	r = pager_backend_local_new(SEC, &be);
	if (!ok(r == 0, "local backend"))
		return tap_done();
	test_remove_concurrent();
	test_remove_dirty(false);
	test_remove_dirty(true);
	test_remove_retrying();
	test_set_section();
	test_regrant_under_faults();
	test_punch();
	test_evacuate();
	test_hot_prefetch();
	pager_backend_free(be);
	return tap_done();
}
