// SPDX-License-Identifier: MIT
/*
 * Replicated sections with the local backend (its per-node error
 * injection stands in for memory nodes that fail). Section 0 has two
 * replicas (nodes 1, 2), section 1 three (nodes 1, 2, 3):
 *   - a write-back reaches every replica;
 *   - a replica whose writes fail for a transport reason is taken out
 *     (on_replica once, replicas_out) and never written again, even when
 *     its node answers again;
 *   - a replica that refuses a write for another reason (EACCES) fails the
 *     batch and is not taken out;
 *   - a fetch fails over from a failing position 0 (replica_failovers);
 *   - with one replica left in, its node failing parks the fault, the
 *     health thread probes that replica (not position 0) and the fault is
 *     served when it answers;
 *   - pager_replica_drop, pager_section_find_replica, a renewed grant
 *     (the out replicas stay out; another replica set is refused) and a
 *     shared region with a replicated section (refused).
 */
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PS   PAGER_PAGE_SIZE
#define SEC  (1u << 20)
#define SPP  (SEC / PS)
#define NSEC 2u
#define LEN  (NSEC * SEC)
#define NPG  (LEN / PS)

static struct tmap m;
static struct pager_backend *be;
static uint32_t ver[NPG];

static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	unsigned index, replica;
	uint64_t memnode;
	int err;
} cb[16];
static unsigned ncb;

static void on_replica(void *opaque, int region, unsigned index, unsigned replica,
		       const struct pager_section *view, int err)
{
	(void)opaque;
	(void)region;
	pthread_mutex_lock(&cb_lock);
	if (ncb < 16)
		cb[ncb] = (typeof(cb[0])){ index, replica, view->grant.memnode_id, err };
	ncb++;
	pthread_mutex_unlock(&cb_lock);
}

/* Wait up to 2 s for n reports. */
static unsigned wait_cb(unsigned n)
{
	unsigned got;

	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&cb_lock);
		got = ncb;
		pthread_mutex_unlock(&cb_lock);
		if (got >= n)
			break;
		usleep(10000);
	}
	return got;
}

/* Pages of section sec on node `node` (section sec there) that are not ver[]. */
static unsigned node_bad(uint64_t node, unsigned sec)
{
	const struct pager_backend_ops *ops = be->ops;
	struct pager_section v = tap_remote(node, sec);
	uint8_t *buf = malloc(SEC);
	void *conn = NULL;
	unsigned bad = 0;

	if (!buf || ops->conn_open(be->priv, &conn) < 0 || ops->fetch(conn, &v, 0, SPP, buf) < 0)
		bad = SPP;
	else
		for (uint32_t i = 0; i < SPP; i++)
			bad += pat_check(buf + (size_t)i * PS, sec * SPP + i, ver[sec * SPP + i],
					 true);
	if (conn)
		ops->conn_close(conn);
	free(buf);
	return bad;
}

static void write_section(unsigned sec)
{
	for (uint32_t i = 0; i < SPP; i++) {
		uint64_t pg = sec * SPP + i;

		ver[pg]++;
		pat_fill(m.mem + pg * PS, pg, ver[pg]);
	}
}

static unsigned map_bad(void)
{
	unsigned bad = 0;

	for (uint64_t pg = 0; pg < NPG; pg++)
		bad += pat_check(m.mem + pg * PS, pg, ver[pg], true);
	return bad;
}

static bool drop_cache(void)
{
	return pager_set_budget(m.p, 0) == 0 && pager_wait_budget(m.p, 10000) == 0 &&
	       pager_set_budget(m.p, LEN / 4) == 0;
}

static void add_replica(struct pager_section *s, uint64_t node, unsigned sec)
{
	struct pager_section v = tap_remote(node, sec);

	if (!s->nrep)
		s->nrep = 1;
	snprintf(s->more[s->nrep - 1].addr, sizeof(s->more[0].addr), "%s", v.addr);
	s->more[s->nrep - 1].grant = v.grant;
	s->nrep++;
}

static _Atomic bool reader_done;

static void *reader_main(void *arg)
{
	(void)arg;
	/* Section 0's pages, through the mapping (a fault that parks). */
	(void)!pat_check(m.mem, 0, ver[0], true);
	atomic_store(&reader_done, true);
	return NULL;
}

int main(void)
{
	struct pager_config cfg = { .name = "replica-local", .budget = LEN / 4,
				    .fail_timeout_ms = 500, .probe_ms = 20,
				    .on_replica = on_replica };
	struct pager_section secs[NSEC], v, renew;
	struct pager_stats st;
	pthread_t th;
	unsigned idx, pos;
	int r, region;

	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	secs[0] = tap_remote(1, 0);
	add_replica(&secs[0], 2, 0);
	secs[1] = tap_remote(1, 1);
	add_replica(&secs[1], 2, 1);
	add_replica(&secs[1], 3, 1);
	r = pager_backend_local_new(SEC, &be);
	if (r == 0)
		r = tmap_setup_secs(&m, LEN, SEC, &cfg, secs, be, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0, "pager with replicated sections (2 and 3 replicas): %s", strerror(-r)))
		return tap_done();

	/* Every replica gets the write-backs. */
	write_section(0);
	write_section(1);
	ok(pager_flush(m.p) == 0, "flush");
	ok(node_bad(1, 0) == 0 && node_bad(2, 0) == 0, "section 0 on nodes 1 and 2");
	ok(node_bad(1, 1) == 0 && node_bad(2, 1) == 0 && node_bad(3, 1) == 0,
	   "section 1 on nodes 1, 2 and 3");
	pager_stats(m.p, &st);
	ok(st.replica_pages_written == 3 * SPP, "replica_pages_written %llu == %u",
	   (unsigned long long)st.replica_pages_written, 3 * SPP);

	/* Node 3 fails (reset): its replica of section 1 goes out; the batch is written. */
	pager_backend_local_set_node_error(be, 3, -ECONNRESET);
	write_section(1);
	ok(pager_flush(m.p) == 0, "flush with node 3 failing");
	ok(node_bad(1, 1) == 0 && node_bad(2, 1) == 0, "section 1 on nodes 1 and 2");
	ok(wait_cb(1) == 1 && cb[0].index == 1 && cb[0].replica == 2 && cb[0].memnode == 3 &&
	   cb[0].err == -ECONNRESET, "on_replica: section 1 position 2 (node 3) out");
	pager_stats(m.p, &st);
	ok(st.replicas_out == 1 && st.errors == 0, "replicas_out 1, no error counted (%llu)",
	   (unsigned long long)st.errors);
	pager_backend_local_set_node_error(be, 3, 0);
	write_section(1);
	r = pager_flush(m.p);
	ok(r == 0 && node_bad(2, 1) == 0, "flush with node 3 answering: %s", strerror(-r));
	ok(node_bad(3, 1) == SPP, "node 3 is never written again (stale: %u of %u pages old)",
	   node_bad(3, 1), SPP);
	ok(wait_cb(2) == 1, "on_replica was called once");

	/* A refusal that is no transport error fails the batch; nothing is taken out. */
	ok(pager_set_budget(m.p, LEN) == 0, "no eviction while node 2 refuses");
	pager_backend_local_set_node_error(be, 2, -EACCES);
	write_section(0);
	r = pager_flush(m.p);
	ok(r == -EACCES, "a replica refusing (EACCES) fails the flush: %s", strerror(-r));
	pager_stats(m.p, &st);
	ok(st.replicas_out == 1, "and takes nothing out (replicas_out %llu)",
	   (unsigned long long)st.replicas_out);
	pager_backend_local_set_node_error(be, 2, 0);
	ok(pager_flush(m.p) == 0 && node_bad(1, 0) == 0 && node_bad(2, 0) == 0,
	   "once it accepts, both replicas of section 0 have it");
	ok(pager_set_budget(m.p, LEN / 4) == 0, "budget back");

	/* Fetch failover: position 0 (node 1) refuses connections. */
	ok(drop_cache(), "cache dropped");
	pager_backend_local_set_node_error(be, 1, -ECONNREFUSED);
	ok(map_bad() == 0, "every page reads back with node 1 failing");
	pager_stats(m.p, &st);
	ok(st.replica_failovers >= 2 && st.replicas_out == 3 && st.nodes_down == 0,
	   "replica_failovers %llu >= 2, replicas_out %llu == 3, no node down",
	   (unsigned long long)st.replica_failovers, (unsigned long long)st.replicas_out);
	ok(wait_cb(3) == 3 && cb[1].replica == 0 && cb[1].memnode == 1 && cb[2].replica == 0 &&
	   cb[2].memnode == 1, "on_replica: position 0 (node 1) of both sections");

	/* The last in-replica (node 2) fails: the fault parks; node 2 is probed, not node 1. */
	ok(drop_cache(), "cache dropped");
	pager_backend_local_set_node_error(be, 2, -ECONNREFUSED);
	atomic_store(&reader_done, false);
	pthread_create(&th, NULL, reader_main, NULL);
	usleep(1000000);
	pager_stats(m.p, &st);
	ok(!atomic_load(&reader_done) && st.nodes_down == 1 && st.faults_parked > 0 &&
	   st.replicas_out == 3, "the fault parks, node down (%llu), replicas_out still 3",
	   (unsigned long long)st.nodes_down);
	pager_backend_local_set_node_error(be, 2, 0);
	for (int i = 0; i < 300 && !atomic_load(&reader_done); i++)
		usleep(10000);
	ok(atomic_load(&reader_done), "node 2 answers (node 1 still fails): the fault is served");
	if (atomic_load(&reader_done))
		pthread_join(th, NULL);
	pager_stats(m.p, &st);
	ok(st.nodes_down == 0 && st.node_up_events == 1, "node 2 up again");
	ok(map_bad() == 0, "every page reads back");

	/* The control plane. */
	v = tap_remote(2, 1);
	r = pager_section_find_replica(m.p, &v, &region, &idx, &pos);
	ok(r == 0 && region == 0 && idx == 1 && pos == 1, "node 2's replica of section 1: %d/%u/%u",
	   region, idx, pos);
	ok(pager_section_find(m.p, &v, &region, &idx) == -ENOENT,
	   "pager_section_find matches position 0 only");
	ok(pager_replica_drop(m.p, &v) == -EBUSY, "the only in-replica cannot be dropped");
	v = tap_remote(3, 1);
	ok(pager_replica_drop(m.p, &v) == 0, "an out replica: dropped already (0)");
	v = tap_remote(9, 1);
	ok(pager_replica_drop(m.p, &v) == -ENOENT, "an unknown replica: -ENOENT");
	renew = secs[1];
	renew.grant.expiry = 12345;
	ok(pager_region_set_section(m.p, 0, 1, &renew, false) == 0, "renewed grants: same section");
	pager_stats(m.p, &st);
	ok(st.replicas_out == 3, "the out replicas stay out (%llu)",
	   (unsigned long long)st.replicas_out);
	renew.more[1].grant.section = 77;
	ok(pager_region_set_section(m.p, 0, 1, &renew, false) == -EINVAL,
	   "another replica set on the same section is refused");
	{
		struct pager_region_config rc = { .uffd = m.uffd, .file_fd = m.memfd,
						  .base = (uint64_t)(uintptr_t)m.mem, .length = SEC,
						  .sections = secs, .pagemap_fd = -1,
						  .shared = true };

		ok(pager_add_region(m.p, &rc) == -EOPNOTSUPP,
		   "a shared region with a replicated section is refused");
	}
	tmap_teardown(&m);
	pager_backend_free(be);
	return tap_done();
}
