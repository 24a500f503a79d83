// SPDX-License-Identifier: MIT
/*
 * Memory migration against real memory nodes (functional): two (then
 * three) disagg-memnode processes sharing a cluster key. Two threads write
 * patterns into a mapping at a 25% budget (eviction running) while one
 * section moves A -> B with the real COPY (memnode A streams the section
 * to B), then back B -> A; after each commit the old section is FREED on
 * its memory node, as the orchestrator does, so any read of it would fail
 * (STALE). Then every page is checked on the target node and, after the
 * cache is dropped, through the mapping; at the end memory node A is killed
 * and the section that lives on B still reads back.
 * A third memory node C is killed during a migration's window: the
 * write-backs go on (to the source only), commit answers -EREMOTEIO and
 * nothing is lost.
 * Reports the commit pauses ("memmig_max_pause_ms"); the target is 10 ms.
 * Skipped (exit 77) without userfaultfd or without a disagg-memnode binary.
 */
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "grant.h"
#include "mnadmin.h"
#include "mnclient.h"
#include "mnspawn.h"

#define PS   PAGER_PAGE_SIZE
#define SEC  (4u << 20)
#define SPP  (SEC / PS)
#define NSEC 4u
#define LEN  (NSEC * SEC)
#define NPG  (LEN / PS)
#define MIG  1u
#define MY_ID 4242u

extern char **environ;

static _Atomic uint32_t ver[NPG];
static struct tmap m;
static struct auth_key key;
static struct grant_key *gkey;     /* node A's: the test acts as the orchestrator */

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int mn_connect(const struct mnspawn *n, struct mnc **ret)
{
	struct mnc_opts o = { .addr = n->addr, .key = &key, .orch_key = gkey, .node_id = MY_ID,
			      .timeout_ms = 5000 };

	return mnc_connect(&o, ret);
}

/* Allocate a section on n; the compute grant (rw) and a grant for `writer` (w). */
static int alloc_section(const struct mnspawn *n, struct pager_section *ret, uint64_t writer,
			 struct proto_grant *ret_wgrant, struct proto_section *ret_sec)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	struct proto_section s;
	int r = mn_connect(n, &c);

	if (r == 0)
		r = mnc_alloc(c, MY_ID, &s);
	if (r == 0)
		r = grant_mint(gkey, n->node_id, MY_ID, s.section, s.generation, 0, PROTO_R_ALL, 0,
			       &ret->grant);
	if (r == 0 && ret_wgrant)
		r = grant_mint(gkey, n->node_id, writer, s.section, s.generation, 0, PROTO_R_WRITE, 0,
			       ret_wgrant);
	if (r < 0)
		return r;
	ret->kind = PAGER_SEC_REMOTE;
	ret->nrep = 0;                 /* not replicated */
	snprintf(ret->addr, sizeof(ret->addr), "%s", n->addr);
	if (ret_sec)
		*ret_sec = s;
	return 0;
}

static int free_section(const struct mnspawn *n, const struct pager_section *s)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	int r = mn_connect(n, &c);

	return r < 0 ? r : mnc_free(c, s->grant.section, s->grant.generation, s->grant.epoch);
}

/* Pages of section MIG on node n (section s) that differ from ver[]. */
static unsigned node_mismatches(const struct mnspawn *n, const struct pager_section *s)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	uint8_t *buf = malloc(SEC);
	unsigned bad = 0;

	if (!buf || mn_connect(n, &c) < 0 || mnc_read_range(c, &s->grant, 0, SPP, buf) < 0) {
		free(buf);
		return SPP;
	}
	for (uint32_t i = 0; i < SPP; i++)
		bad += pat_check(buf + (size_t)i * PS, MIG * SPP + i, ver[MIG * SPP + i], true);
	free(buf);
	return bad;
}

static unsigned map_mismatches(void)
{
	unsigned bad = 0;

	for (uint64_t pg = 0; pg < NPG; pg++)
		bad += pat_check(m.mem + pg * PS, pg, ver[pg], true);
	return bad;
}

/* ---- writers ----------------------------------------------------------------- */

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
		uint64_t x = xs(&w->seed), pg;

		pg = x % 3 ? MIG * SPP + (x >> 8) % SPP : (x >> 8) % NPG;
		pg = (pg & ~1ull) | w->id;
		{
			uint32_t v = ver[pg] + 1;

			pat_fill(m.mem + pg * PS, pg, v);
			ver[pg] = v;
		}
		if (++w->writes % 32 == 0)
			usleep(100);
	}
	return NULL;
}

/*
 * One migration of section MIG from (src node, src section) to a new
 * section on dst, with the writers running. On success *cur becomes the
 * new section (the old one is freed). Returns the commit's result code.
 */
static int migrate(const char *what, const struct mnspawn *src, struct mnspawn *dst,
		   struct pager_section *cur, struct pager_memmig_result *res, bool kill_dst)
{
	struct pager_section to;
	struct proto_grant wgrant;
	struct proto_copy_rep rep = { 0 };
	_cleanup_mnc_ struct mnc *c = NULL;
	struct writer w[2];
	pthread_t th[2];
	_Atomic bool stop = false;
	int r;

	r = alloc_section(dst, &to, src->node_id, &wgrant, NULL);
	if (!ok(r == 0, "%s: target section allocated: %s", what, strerror(-r)))
		return r;
	for (unsigned i = 0; i < 2; i++) {
		w[i] = (struct writer){ .id = i, .stop = &stop, .seed = 1234 + i * 77 };
		pthread_create(&th[i], NULL, writer_main, &w[i]);
	}
	usleep(50000);
	r = pager_section_migrate_begin(m.p, 0, MIG, &to);
	ok(r == 0, "%s: begin: %s", what, strerror(-r));
	if (kill_dst) {
		uint64_t t0;

		usleep(50000);
		kill(dst->pid, SIGKILL);
		waitpid(dst->pid, NULL, 0);
		dst->pid = -1;
		usleep(50000);
		t0 = mono_us();
		r = pager_flush(m.p);
		ok(r == 0, "%s: flush with the target dead succeeds: %s", what, strerror(-r));
		ok(mono_us() - t0 < 3000000, "%s: in %llu ms", what,
		   (unsigned long long)((mono_us() - t0) / 1000));
	} else {
		usleep(30000);
		r = mn_connect(src, &c);
		if (r == 0)
			r = mnc_copy(c, &cur->grant, &wgrant, dst->addr, &rep);
		ok(r == 0, "%s: COPY %s -> %s: %s (%llu pages, %llu us)", what, src->addr, dst->addr,
		   strerror(-r), (unsigned long long)rep.pages, (unsigned long long)rep.usec);
		usleep(30000);
	}
	r = pager_section_migrate_commit(m.p, 0, MIG, res);
	usleep(50000);                   /* writes on the new section, eviction running */
	stop = true;
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	diag("%s: %llu + %llu writes", what, (unsigned long long)w[0].writes,
	     (unsigned long long)w[1].writes);
	if (r == 0) {
		int f = free_section(src, cur);

		ok(f == 0, "%s: old section freed on %s: %s", what, src->addr, strerror(-f));
		*cur = to;
	}
	return r;
}

int main(int argc, char **argv)
{
	struct pager_config cfg = { .name = "memmig", .budget = LEN / 4, .fault_threads = 1,
				    .fail_timeout_ms = 2000 };
	struct pager_section secs[NSEC], cur;
	struct pager_memmig_result res;
	struct pager_backend *be = NULL;
	struct mnspawn a, b, cn;
	struct pager_stats st;
	uint64_t max_pause = 0;
	char exe[4096];
	int r;

	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	if (mnspawn_find(argv[0], exe, sizeof(exe)) < 0)
		tap_skip_all("no disagg-memnode binary (set DISAGG_MEMNODE)");
	signal(SIGPIPE, SIG_IGN);
	r = mnspawn_start(&a, exe, 4 * LEN, SEC, 11);
	if (!ok(r == 0, "memnode A at %s: %s", a.addr, strerror(-r)))
		return tap_done();
	key = a.key;
	gkey = a.gkey;
	r = mnspawn_start_keyed(&b, exe, 4 * LEN, SEC, 12, &a);
	if (!ok(r == 0, "memnode B at %s: %s", b.addr, strerror(-r))) {
		mnspawn_stop(&a, true);
		return tap_done();
	}
	/* Section MIG on A, the others on B. */
	for (unsigned i = 0; i < NSEC && r == 0; i++)
		r = alloc_section(i == MIG ? &a : &b, &secs[i], 0, NULL, NULL);
	ok(r == 0, "sections allocated");
	r = pager_backend_memnode_new(&key, MY_ID, 2000, 0, &be);
	if (r == 0)
		r = tmap_setup_secs(&m, LEN, SEC, &cfg, secs, be, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0, "pager on the memnode backend at a 25%% budget: %s", strerror(-r)))
		goto out;
	for (uint64_t pg = 0; pg < NPG; pg++)
		ver[pg] = 1;
	ok(tmap_fill_backend(&m, NULL) == 0, "memory nodes filled");
	cur = secs[MIG];

	for (unsigned round = 0; round < 2; round++) {
		char what[32];
		const struct mnspawn *src = round ? &b : &a;
		struct mnspawn *dst = round ? &a : &b;

		snprintf(what, sizeof(what), "%s", round ? "B -> A" : "A -> B");
		r = migrate(what, src, dst, &cur, &res, false);
		if (!ok(r == 0, "%s: commit: %s", what, strerror(-r)))
			break;
		diag("%s: %llu pages dual, %llu re-sent, pause %llu us, commit %llu us", what,
		     (unsigned long long)res.pages_dual, (unsigned long long)res.pages_resent,
		     (unsigned long long)res.pause_ns / 1000,
		     (unsigned long long)res.total_ns / 1000);
		max_pause = res.pause_ns > max_pause ? res.pause_ns : max_pause;
		ok(pager_flush(m.p) == 0, "%s: flush", what);
		ok(node_mismatches(dst, &cur) == 0, "%s: the target node holds every page", what);
		ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 20000) == 0 &&
		   pager_set_budget(m.p, LEN / 4) == 0, "%s: cache dropped", what);
		ok(map_mismatches() == 0, "%s: every page reads back through the mapping", what);
	}
	pager_stats(m.p, &st);
	ok(st.pages_evicted > 0 && st.errors == 0 && st.failed == 0,
	   "eviction ran (%llu pages), no errors (%llu, failed %d)",
	   (unsigned long long)st.pages_evicted, (unsigned long long)st.errors, st.failed);

	/* A third node dies in the window: abort semantics, nothing lost. */
	r = mnspawn_start_keyed(&cn, exe, 4 * LEN, SEC, 13, &a);
	if (ok(r == 0, "memnode C at %s", cn.addr)) {
		r = migrate("A -> C (C dies)", &a, &cn, &cur, &res, true);
		ok(r == -EREMOTEIO, "commit after the target died: %s", strerror(-r));
		pager_stats(m.p, &st);
		ok(st.memmig_failed == 1 && st.memmig_active == 0 && st.failed == 0,
		   "migration failed, pager fine (last error %s)", strerror(-st.memmig_last_err));
		ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 20000) == 0 &&
		   pager_set_budget(m.p, LEN / 4) == 0 && map_mismatches() == 0,
		   "every page still reads back from A");
		mnspawn_stop(&cn, true);
	}

	/* Move it to B for good and kill A: nothing needs A any more. */
	r = migrate("A -> B again", &a, &b, &cur, &res, false);
	ok(r == 0, "A -> B again: commit: %s", strerror(-r));
	max_pause = res.pause_ns > max_pause ? res.pause_ns : max_pause;
	ok(pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 20000) == 0 &&
	   pager_set_budget(m.p, LEN / 4) == 0, "cache dropped");
	mnspawn_stop(&a, true);
	ok(map_mismatches() == 0, "with A dead every page reads back from B");
	pager_stats(m.p, &st);
	ok(st.failed == 0 && st.memmig_committed == 3, "3 committed, pager not failed");
	diag("memmig_max_pause_ms %.3f", (double)max_pause / 1e6);
	ok(max_pause <= 10ull * 1000 * 1000, "longest commit pause %.3f ms <= 10 ms",
	   (double)max_pause / 1e6);
	tmap_teardown(&m);
out:
	pager_backend_free(be);
	mnspawn_stop(&b, true);
	mnspawn_stop(&a, true);
	return tap_done();
}
