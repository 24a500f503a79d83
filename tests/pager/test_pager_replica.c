// SPDX-License-Identifier: MIT
/*
 * Replicated sections against real memory nodes (functional): three
 * disagg-memnode processes A, B, C on one cluster key. Section R of the
 * mapping has two replicas (position 0 on A, position 1 on B); section U
 * is an unreplicated one on C. At a 25% budget (eviction running):
 *   1. every page written is written back to both A and B (read there
 *      with mnclient);
 *   2. B is SIGKILLed while two threads write and evict: nothing is lost,
 *      on_replica is called once (R, position 1, node B), replicas_out is
 *      1, and no write waits long (the longest is reported, < 2 s);
 *   3. repair: the out position 1 migrates to a new section on C (COPY
 *      from A, the live replica) while the writers run; afterwards C holds
 *      every page of R and no replica is out;
 *   4. failover: with every page evicted, A (position 0) is SIGKILLed: the
 *      faults are served from position 1 (the repaired replica on C),
 *      replica_failovers > 0, on_replica reports position 0;
 *   5. pager_replica_drop of the only in-replica is refused (-EBUSY), of
 *      the out one is 0, of an unknown one -ENOENT;
 *   6. position 0 is repaired onto a fourth node D (COPY from C), D is
 *      stopped (SIGSTOP): the faults give up on it after
 *      replica_timeout_ms and are served from C.
 * Skipped (exit 77) without userfaultfd or without a disagg-memnode binary.
 */
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
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

#define PS    PAGER_PAGE_SIZE
#define SEC   (2u << 20)
#define SPP   (SEC / PS)
#define NSEC  2u
#define LEN   (NSEC * SEC)
#define NPG   (LEN / PS)
#define R     0u                  /* the replicated section */
#define MY_ID 4343u

static _Atomic uint32_t ver[NPG];
static struct tmap m;
static struct auth_key key;
static struct grant_key *gkey;

/* What on_replica reported. */
static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int region;
	unsigned index, replica;
	uint64_t memnode;
	int err;
} cb[16];
static unsigned ncb;

static void on_replica(void *opaque, int region, unsigned index, unsigned replica,
		       const struct pager_section *view, int err)
{
	(void)opaque;
	pthread_mutex_lock(&cb_lock);
	if (ncb < 16)
		cb[ncb] = (typeof(cb[0])){ region, index, replica, view->grant.memnode_id, err };
	ncb++;
	pthread_mutex_unlock(&cb_lock);
}

static unsigned cb_count(void)
{
	unsigned n;

	pthread_mutex_lock(&cb_lock);
	n = ncb;
	pthread_mutex_unlock(&cb_lock);
	return n;
}

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

/* A section on n: the compute grant (rw) and, if asked, a write grant for `writer`. */
static int alloc_section(const struct mnspawn *n, struct pager_section *ret, uint64_t writer,
			 struct proto_grant *ret_wgrant)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	struct proto_section s;
	int r = mn_connect(n, &c);

	memset(ret, 0, sizeof(*ret));
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
	snprintf(ret->addr, sizeof(ret->addr), "%s", n->addr);
	return 0;
}

/* Pages of section R on node n (grant g) that differ from ver[]; SPP if unreadable. */
static unsigned node_mismatches(const struct mnspawn *n, const struct proto_grant *g)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	uint8_t *buf = malloc(SEC);
	unsigned bad = 0;

	if (!buf || mn_connect(n, &c) < 0 || mnc_read_range(c, g, 0, SPP, buf) < 0) {
		free(buf);
		return SPP;
	}
	for (uint32_t i = 0; i < SPP; i++)
		bad += pat_check(buf + (size_t)i * PS, R * SPP + i, ver[R * SPP + i], true);
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

static bool drop_cache(void)
{
	return pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 20000) == 0 &&
	       pager_set_budget(m.p, LEN / 4) == 0;
}

/* ---- writers ------------------------------------------------------------------- */

struct writer {
	unsigned id;
	_Atomic bool *stop;
	uint64_t seed, writes, max_us;
};

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Mostly section R; each thread its own pages (even/odd). The longest write is kept. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;

	while (!atomic_load(w->stop)) {
		uint64_t x = xs(&w->seed), pg, t0;
		uint32_t v;

		pg = x % 4 ? R * SPP + (x >> 8) % SPP : (x >> 8) % NPG;
		pg = (pg & ~1ull) | w->id;
		v = ver[pg] + 1;
		t0 = mono_us();
		pat_fill(m.mem + pg * PS, pg, v);
		t0 = mono_us() - t0;
		w->max_us = t0 > w->max_us ? t0 : w->max_us;
		ver[pg] = v;
		if (++w->writes % 32 == 0)
			usleep(100);
	}
	return NULL;
}

struct writers {
	struct writer w[2];
	pthread_t th[2];
	_Atomic bool stop;
};

static void writers_start(struct writers *ws, uint64_t seed)
{
	ws->stop = false;
	for (unsigned i = 0; i < 2; i++) {
		ws->w[i] = (struct writer){ .id = i, .stop = &ws->stop, .seed = seed + i * 77 };
		pthread_create(&ws->th[i], NULL, writer_main, &ws->w[i]);
	}
}

/* Stop them; the longest write in us. */
static uint64_t writers_stop(struct writers *ws, const char *what)
{
	uint64_t mx = 0;

	ws->stop = true;
	for (unsigned i = 0; i < 2; i++) {
		pthread_join(ws->th[i], NULL);
		mx = ws->w[i].max_us > mx ? ws->w[i].max_us : mx;
	}
	diag("%s: %llu + %llu writes, longest %.1f ms", what, (unsigned long long)ws->w[0].writes,
	     (unsigned long long)ws->w[1].writes, (double)mx / 1000);
	return mx;
}

static void kill_node(struct mnspawn *n)
{
	kill(n->pid, SIGKILL);
	waitpid(n->pid, NULL, 0);
	n->pid = -1;
}

static struct pager_section view_of(const struct pager_section *s, unsigned k)
{
	struct pager_section v = { .kind = PAGER_SEC_REMOTE };

	snprintf(v.addr, sizeof(v.addr), "%s", k ? s->more[k - 1].addr : s->addr);
	v.grant = k ? s->more[k - 1].grant : s->grant;
	return v;
}

/* ---- the phases ------------------------------------------------------------------- */

/*
 * Repair: migrate the out replica `from` of R (expected at position
 * `want`) to a new section on c, COPY from node a (its section `live`).
 */
static int repair(struct mnspawn *a, struct mnspawn *c, const struct pager_section *live,
		  const struct pager_section *from, unsigned want, struct pager_section *ret_to)
{
	struct pager_memmig_result res = { 0 };
	struct proto_copy_rep rep = { 0 };
	_cleanup_mnc_ struct mnc *mc = NULL;
	struct proto_grant wgrant;
	struct writers ws;
	int region = -1, r;
	unsigned index = 99, pos = 99;

	r = alloc_section(c, ret_to, a->node_id, &wgrant);
	if (!ok(r == 0, "repair: a section on %s: %s", c->addr, strerror(-r)))
		return r;
	r = pager_section_find_replica(m.p, from, &region, &index, &pos);
	ok(r == 0 && region == 0 && index == R && pos == want,
	   "the out replica is found: region %d section %u position %u (%s)", region, index, pos,
	   strerror(-r));
	writers_start(&ws, 999);
	usleep(50000);
	r = pager_section_migrate_begin_replica(m.p, region, index, pos, ret_to);
	ok(r == 0, "repair: begin on the out position: %s", strerror(-r));
	usleep(30000);
	r = mn_connect(a, &mc);
	if (r == 0)
		r = mnc_copy(mc, &live->grant, &wgrant, c->addr, &rep);
	ok(r == 0, "repair: COPY %s -> %s: %s (%llu pages)", a->addr, c->addr, strerror(-r),
	   (unsigned long long)rep.pages);
	usleep(30000);
	r = pager_section_migrate_commit_replica(m.p, region, index, pos, &res);
	usleep(50000);
	writers_stop(&ws, "repair");
	ok(r == 0, "repair: commit: %s (%llu re-sent, pause %llu us)", strerror(-r),
	   (unsigned long long)res.pages_resent, (unsigned long long)res.pause_ns / 1000);
	return r;
}

int main(int argc, char **argv)
{
	struct pager_config cfg = { .name = "replica", .budget = LEN / 4, .fault_threads = 1,
				    .fail_timeout_ms = 3000, .on_replica = on_replica,
				    .replica_timeout_ms = 500 };
	struct pager_section secs[NSEC], bview, aview, to, to2, unknown;
	struct pager_backend *be = NULL;
	struct mnspawn a, b, c, d = { .pid = -1 };
	struct pager_stats st;
	struct pager_replica_out outs[4];
	struct writers ws;
	char exe[4096];
	uint64_t t0, mx;
	int r, n;

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
	if (r == 0)
		r = mnspawn_start_keyed(&c, exe, 4 * LEN, SEC, 13, &a);
	if (!ok(r == 0, "memnodes B at %s, C at %s: %s", b.addr, c.addr, strerror(-r))) {
		mnspawn_stop(&a, true);
		return tap_done();
	}
	/* R: position 0 on A, position 1 on B. U: on C, unreplicated. */
	r = alloc_section(&a, &secs[R], 0, NULL);
	if (r == 0)
		r = alloc_section(&b, &bview, 0, NULL);
	if (r == 0)
		r = alloc_section(&c, &secs[1 - R], 0, NULL);
	ok(r == 0, "sections allocated");
	secs[R].nrep = 2;
	snprintf(secs[R].more[0].addr, sizeof(secs[R].more[0].addr), "%s", bview.addr);
	secs[R].more[0].grant = bview.grant;
	aview = view_of(&secs[R], 0);
	r = pager_backend_memnode_new(&key, MY_ID, 2000, 0, &be);
	if (r == 0)
		r = tmap_setup_secs(&m, LEN, SEC, &cfg, secs, be, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0, "pager with a replicated section at a 25%% budget: %s", strerror(-r)))
		goto out;

	/* 1. Every page written goes to both replicas. */
	for (uint64_t pg = 0; pg < NPG; pg++) {
		ver[pg] = 1;
		pat_fill(m.mem + pg * PS, pg, 1);
	}
	ok(pager_flush(m.p) == 0 && drop_cache(), "written, flushed, cache dropped");
	ok(map_mismatches() == 0, "every page reads back");
	ok(node_mismatches(&a, &secs[R].grant) == 0, "A (position 0) holds every page of R");
	ok(node_mismatches(&b, &bview.grant) == 0, "B (position 1) holds every page of R");
	pager_stats(m.p, &st);
	ok(st.replica_pages_written >= SPP && st.replicas_out == 0 && st.errors == 0,
	   "replica_pages_written %llu >= %u, none out, no errors (%llu)",
	   (unsigned long long)st.replica_pages_written, SPP, (unsigned long long)st.errors);

	/* 2. B dies while pages are written and evicted. */
	writers_start(&ws, 1234);
	usleep(300000);
	kill_node(&b);
	usleep(1500000);
	mx = writers_stop(&ws, "B killed");
	ok(mx < 2000000, "no write waited 2 s with B dead (longest %.1f ms)", (double)mx / 1000);
	ok(pager_flush(m.p) == 0, "flush with B dead");
	ok(drop_cache() && map_mismatches() == 0, "every page reads back with B dead");
	ok(node_mismatches(&a, &secs[R].grant) == 0, "A holds every page of R");
	for (t0 = mono_us(); cb_count() < 1 && mono_us() - t0 < 2000000;)
		usleep(10000);
	pager_stats(m.p, &st);
	ok(cb_count() == 1 && cb[0].region == 0 && cb[0].index == R && cb[0].replica == 1 &&
	   cb[0].memnode == b.node_id && cb[0].err < 0,
	   "on_replica once: region %d section %u position %u memnode %llu (%s)", cb[0].region,
	   cb[0].index, cb[0].replica, (unsigned long long)cb[0].memnode, strerror(-cb[0].err));
	ok(st.replicas_out == 1 && st.failed == 0 && st.nodes_down == 0,
	   "replicas_out %llu == 1, pager not failed, no node down",
	   (unsigned long long)st.replicas_out);
	n = pager_replicas_out(m.p, outs, 4);
	ok(n == 1 && outs[0].replica == 1 && outs[0].view.grant.memnode_id == b.node_id &&
	   outs[0].view.nrep == 0, "pager_replicas_out lists B's replica");

	/* 3. Repair: the out position moves to C, COPY from A. */
	if (repair(&a, &c, &secs[R], &bview, 1, &to) == 0) {
		pager_stats(m.p, &st);
		ok(st.replicas_out == 0 && st.memmig_committed == 1,
		   "no replica out after the repair (%llu)", (unsigned long long)st.replicas_out);
		ok(pager_flush(m.p) == 0 && node_mismatches(&c, &to.grant) == 0,
		   "C holds every page of R");
		ok(node_mismatches(&a, &secs[R].grant) == 0, "A holds every page of R");
	}

	/* 4. Failover: every page evicted, A (position 0) dies; R is served from C. */
	ok(drop_cache(), "cache dropped");
	kill_node(&a);
	t0 = mono_us();
	ok(map_mismatches() == 0, "with A and B dead every page reads back (from C) in %llu ms",
	   (unsigned long long)(mono_us() - t0) / 1000);
	pager_stats(m.p, &st);
	ok(st.replica_failovers > 0 && st.replicas_out == 1 && st.failed == 0,
	   "replica_failovers %llu > 0, replicas_out %llu",
	   (unsigned long long)st.replica_failovers, (unsigned long long)st.replicas_out);
	for (t0 = mono_us(); cb_count() < 2 && mono_us() - t0 < 2000000;)
		usleep(10000);
	ok(cb_count() == 2 && cb[1].replica == 0 && cb[1].memnode == a.node_id,
	   "on_replica: position 0 (memnode %llu) out", (unsigned long long)cb[1].memnode);

	/* 5. The control plane's drop. */
	r = pager_replica_drop(m.p, &to);
	ok(r == -EBUSY, "dropping the only in-replica is refused: %s", strerror(-r));
	r = pager_replica_drop(m.p, &aview);
	ok(r == 0, "dropping an out replica: %s", strerror(-r));
	unknown = to;
	unknown.grant.section += 1000;
	r = pager_replica_drop(m.p, &unknown);
	ok(r == -ENOENT, "dropping an unknown replica: %s", strerror(-r));
	ok(map_mismatches() == 0, "every page still reads back");

	/*
	 * 6. A stalled replica: position 0 is repaired onto a new node D
	 * (COPY from C), then D is stopped (SIGSTOP) with every page evicted:
	 * the first fetch gives up on it after replica_timeout_ms and the
	 * faults are served from C.
	 */
	r = mnspawn_start_keyed(&d, exe, 4 * LEN, SEC, 14, &a);
	if (ok(r == 0, "memnode D at %s", d.addr) &&
	    repair(&c, &d, &to, &aview, 0, &to2) == 0) {
		pager_stats(m.p, &st);
		ok(st.replicas_out == 0 && pager_flush(m.p) == 0 && drop_cache() &&
		   node_mismatches(&d, &to2.grant) == 0, "D holds every page of R, none out");
		kill(d.pid, SIGSTOP);
		t0 = mono_us();
		ok(map_mismatches() == 0, "with D stalled every page reads back (from C)");
		mx = mono_us() - t0;
		ok(mx < 1500000, "in %llu ms < 1.5 s (replica_timeout_ms %d, backend timeout 2 s)",
		   (unsigned long long)mx / 1000, cfg.replica_timeout_ms);
		pager_stats(m.p, &st);
		ok(st.replica_failovers >= 2 && st.replicas_out == 1,
		   "replica_failovers %llu, replicas_out %llu",
		   (unsigned long long)st.replica_failovers, (unsigned long long)st.replicas_out);
		for (t0 = mono_us(); cb_count() < 3 && mono_us() - t0 < 2000000;)
			usleep(10000);
		ok(cb_count() == 3 && cb[2].replica == 0 && cb[2].memnode == d.node_id &&
		   cb[2].err == -ETIMEDOUT, "on_replica: position 0 (memnode %llu) out: %s",
		   (unsigned long long)cb[2].memnode, strerror(-cb[2].err));
		kill(d.pid, SIGCONT);
	}
	tmap_teardown(&m);
out:
	pager_backend_free(be);
	if (d.pid != -1 || d.keypath[0])
		mnspawn_stop(&d, true);
	mnspawn_stop(&c, true);
	mnspawn_stop(&b, true);
	mnspawn_stop(&a, true);   /* last: its grant key is the others' */
	return tap_done();
}
