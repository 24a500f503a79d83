// SPDX-License-Identifier: MIT
/*
 * The pager against a real disagg-memnode (functional): random reads and
 * writes at a 25% budget with verification, flush and read-back from the
 * memory node; then the memory node is killed while a thread faults: the
 * pager retries for fail_timeout_ms, then fails (stats, callback) and
 * signals the faulting thread (PAGER_FAIL_SIGBUS); the thread never reads
 * wrong data (in particular never a zero page instead of remote data).
 * Skipped (exit 77) without userfaultfd or without a disagg-memnode binary.
 */
#include "tap.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grant.h"
#include "mnadmin.h"
#include "mnclient.h"
#include "mnspawn.h"

#define PS PAGER_PAGE_SIZE
#define SEC (4u << 20)
#define LEN (8 * SEC)
#define NPG (LEN / PS)

static uint32_t ver[NPG];
static _Atomic int fail_calls, fail_err;
static __thread sigjmp_buf jb;
static __thread volatile int jb_armed;

static void on_fail(void *opaque, int err, uint64_t addr, uint32_t tid)
{
	fail_calls++;
	fail_err = err;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	if (jb_armed)
		siglongjmp(jb, 1);
	abort();
}

struct reader {
	struct tmap *m;
	uint64_t good, bad;
	int sigbus;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	jb_armed = 1;
	if (sigsetjmp(jb, 1)) {
		rd->sigbus = 1;
		return NULL;
	}
	for (uint64_t pg = 0; pg < NPG; pg++) {
		if (pat_check(rd->m->mem + pg * PS, pg, ver[pg], true))
			rd->bad++;
		else
			rd->good++;
	}
	return NULL;
}

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	struct pager_section secs[LEN / SEC];
	struct pager_config cfg = { .name = "mn", .budget = LEN / 4, .fail_timeout_ms = 1500,
				    .fail_mode = PAGER_FAIL_SIGBUS, .on_fail = on_fail };
	struct pager_backend *be = NULL;
	struct mnc_opts mo = { 0 };
	struct mnc *c = NULL;
	struct mnspawn mn;
	struct pager_stats st;
	struct tmap m;
	char exe[4096];
	uint64_t my_id = 4242, seed = 99, bad = 0;
	static uint8_t buf[PS];
	int r;

	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	if (mnspawn_find(argv[0], exe, sizeof(exe)) < 0)
		tap_skip_all("no disagg-memnode binary (set DISAGG_MEMNODE)");
	signal(SIGPIPE, SIG_IGN);
	r = mnspawn_start(&mn, exe, 2 * LEN, SEC, 9);
	if (!ok(r == 0, "memnode started at %s: %s", mn.addr, strerror(-r)))
		return tap_done();
	mo.addr = mn.addr;
	mo.key = &mn.key;
	mo.orch_key = mn.gkey;
	mo.node_id = my_id;
	r = mnc_connect(&mo, &c);
	ok(r == 0, "connect: %s", strerror(-r));
	for (unsigned i = 0; r == 0 && i < LEN / SEC; i++) {
		struct proto_section s;

		r = mnc_alloc(c, my_id, &s);
		if (r == 0)
			r = grant_mint(mn.gkey, mnc_info(c)->node_id, my_id, s.section, s.generation, 0,
				       PROTO_R_ALL, 0, &secs[i].grant);
		secs[i].kind = PAGER_SEC_REMOTE;
		secs[i].nrep = 0;           /* not replicated */
		snprintf(secs[i].addr, sizeof(secs[i].addr), "%s", mn.addr);
	}
	mnc_close(c);
	ok(r == 0, "sections allocated, grants minted");
	r = pager_backend_memnode_new(&mn.key, my_id, 2000, 0, &be);
	if (r == 0)
		r = tmap_setup_secs(&m, LEN, SEC, &cfg, secs, be, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0, "pager on the memnode backend: %s", strerror(-r))) {
		mnspawn_stop(&mn, true);
		return tap_done();
	}
	for (uint64_t pg = 0; pg < NPG; pg++)
		ver[pg] = 1;
	ok(tmap_fill_backend(&m, ver) == 0, "fill the memory node");

	for (unsigned i = 0; i < 30000; i++) {
		uint64_t pg = xs(&seed) % NPG;

		if (xs(&seed) & 1) {
			ver[pg]++;
			pat_fill(m.mem + pg * PS, pg, ver[pg]);
		} else {
			bad += pat_check(m.mem + pg * PS, pg, ver[pg], false);
		}
	}
	ok(bad == 0, "random r/w at 25%% budget: %llu mismatches", (unsigned long long)bad);
	r = pager_flush(m.p);
	ok(r == 0, "flush: %s", strerror(-r));
	bad = 0;
	for (uint64_t pg = 0; pg < NPG; pg++)
		if (tmap_backend_read(&m, pg, buf) < 0 || pat_check(buf, pg, ver[pg], true))
			bad++;
	ok(bad == 0, "memory node holds every page after flush: %llu bad", (unsigned long long)bad);
	pager_stats(m.p, &st);
	ok(st.errors == 0 && st.pages_evicted > 0, "no errors, %llu evicted",
	   (unsigned long long)st.pages_evicted);

	/* Kill the memory node with nothing resident, then fault. */
	ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 10000) == 0, "drop all");
	ok(pager_set_budget(m.p, LEN) == 0, "budget back");
	mnspawn_stop(&mn, true);
	{
		struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
		struct reader rd = { .m = &m };
		pthread_t th;

		sigaction(SIGBUS, &sa, NULL);
		pthread_create(&th, NULL, reader_main, &rd);
		pthread_join(th, NULL);
		ok(rd.sigbus == 1, "faulting thread got SIGBUS after the memory node died");
		ok(rd.bad == 0, "no wrong data was served (%llu good pages, %llu bad)",
		   (unsigned long long)rd.good, (unsigned long long)rd.bad);
	}
	pager_stats(m.p, &st);
	ok(st.failed < 0 && fail_calls > 0, "pager failed (%s), callback called %d time(s)",
	   strerror(-st.failed), (int)fail_calls);
	ok(st.errors > 0, "errors counted: %llu", (unsigned long long)st.errors);
	tmap_teardown(&m);
	pager_backend_free(be);
	return tap_done();
}
