// SPDX-License-Identifier: MIT
/*
 * Shared regions in mode release (release.h) against a real memory node:
 * two pagers, as two compute nodes (node ids 101 and 102), map one
 * section with read-write grants. A writes the even bytes and B the odd
 * bytes of the same 64 pages; neither sees the other's before a release
 * and an acquire (the cleaner, though due, sends nothing of a release
 * region); both release (diffs: half of each page each), the memory node
 * holds the union, both acquire and read it. A page written and not
 * released keeps its content through an acquire. The RELEASE and ACQUIRE
 * control pages: a store waits until the VM did the work, lands at once
 * when there is nothing to do, and traps again once there is. A malformed
 * WRITE_DIFF changes nothing. Two stores to RELEASE at once (two vCPUs):
 * a write made after the first one's release began waits for a release
 * that carries it.
 * Skipped (exit 77) without userfaultfd or a disagg-memnode binary.
 */
#include "tap.h"

#include <pthread.h>
#include <sys/mman.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "grant.h"
#include "mnadmin.h"
#include "mnclient.h"
#include "mndiff.h"
#include "mntap.h"
#include "wirediff.h"

#define PS    PAGER_PAGE_SIZE
#define SEC   (4u << 20)
#define NPG   (SEC / PS)
#define NW    64                     /* pages both write */
#define RELEASE_PG (NPG - 2)
#define ACQUIRE_PG (NPG - 1)

struct holder {
	uint64_t id;
	struct pager_section sec;
	struct pager_backend *be;
	struct tmap m;
	atomic_int asked;             /* the last enum pager_ctl + 1 a guest store asked for */
};

static void on_control(void *opaque, int region, enum pager_ctl op)
{
	struct holder *h = opaque;

	(void)region;
	atomic_store(&h->asked, (int)op + 1);
}

static int holder_start(struct holder *h, const struct mnspawn *mn, uint64_t id,
			const struct proto_section *s, int writeback_delay_ms, uint64_t budget)
{
	struct pager_config cfg = { .name = "release", .budget = budget,
				    .fail_timeout_ms = 3000, .on_control = on_control,
				    .opaque = h, .writeback_delay_ms = writeback_delay_ms };

	memset(h, 0, sizeof(*h));
	h->id = id;
	tmap_release = true;
	return mntap_map(mn, id, s, SEC, &cfg, &h->sec, &h->be, &h->m);
}

static void holder_stop(struct holder *h)
{
	tmap_teardown(&h->m);
	pager_backend_free(h->be);
}

static uint8_t byte_of(uint64_t pg, unsigned i)
{
	return (uint8_t)(((pg * 131 + i * 7) & 0xff) | 1);   /* never 0: a write is a change */
}

/* Write the bytes of pages [0, NW) at offsets of parity `odd`. */
static void write_half(uint8_t *mem, bool odd)
{
	for (uint64_t pg = 0; pg < NW; pg++)
		for (unsigned i = odd; i < PS; i += 2)
			((volatile uint8_t *)mem)[pg * PS + i] = byte_of(pg, i);
}

/* Pages [0, NW) hold: the even bytes (want & 1), the odd ones (want & 2), zeros elsewhere. */
static bool pages_hold(const uint8_t *mem, unsigned want)
{
	for (uint64_t pg = 0; pg < NW; pg++)
		for (unsigned i = 0; i < PS; i++) {
			uint8_t v = ((const volatile uint8_t *)mem)[pg * PS + i];
			bool set = want & (i % 2 ? 2 : 1);

			if (v != (set ? byte_of(pg, i) : 0))
				return false;
		}
	return true;
}

struct storer {
	volatile uint64_t *addr;
	volatile uint8_t *data;       /* written first, if set (a vCPU's write, then its release) */
	uint8_t val;
	atomic_bool done;
	pthread_t th;
};

static void *store_main(void *arg)
{
	struct storer *s = arg;

	if (s->data)
		*s->data = s->val;
	*s->addr = 1;
	atomic_store(&s->done, true);
	return NULL;
}

/* Store to a control page from a thread: did it land within ms? (joined if so) */
static bool store_lands(struct storer *s, uint8_t *mem, uint64_t pg, unsigned ms)
{
	s->addr = (volatile uint64_t *)(mem + pg * PS);
	atomic_store(&s->done, false);
	if (pthread_create(&s->th, NULL, store_main, s) != 0)
		abort();
	for (unsigned i = 0; i < ms / 5 && !atomic_load(&s->done); i++)
		usleep(5000);
	if (atomic_load(&s->done))
		pthread_join(s->th, NULL);
	return atomic_load(&s->done);
}

/* Did the store that waited land within ms? Joined if so. */
static bool landed_within(struct storer *s, unsigned ms)
{
	for (unsigned i = 0; i < ms / 5 && !atomic_load(&s->done); i++)
		usleep(5000);
	if (atomic_load(&s->done))
		pthread_join(s->th, NULL);
	return atomic_load(&s->done);
}

/* Did the store that waited land (within 2 s)? Joined if so. */
static bool landed(struct storer *s)
{
	return landed_within(s, 2000);
}

static uint8_t node_byte(struct mnc *m, const struct holder *h, uint64_t pg, unsigned i);

/* The memory node's open connections (STATS), or -1. */
static int64_t connections(struct mnc *c)
{
	struct proto_stats_rep st;

	return mnc_stats(c, &st) == 0 ? (int64_t)st.connections : -1;
}

static bool asked_for(struct holder *h, enum pager_ctl op, unsigned ms)
{
	for (unsigned i = 0; i < ms / 5 && atomic_load(&h->asked) != (int)op + 1; i++)
		usleep(5000);
	return atomic_exchange(&h->asked, 0) == (int)op + 1;
}

static void test_control_pages(struct holder *a)
{
	struct storer s = { 0 };
	uint64_t n, bytes;

	atomic_store(&a->asked, 0);
	a->m.mem[200 * PS] = 0x42;   /* dirty: a release has work */
	ok(!store_lands(&s, a->m.mem, RELEASE_PG, 300), "a store to RELEASE waits");
	ok(asked_for(a, PAGER_CTL_RELEASE, 2000), "the pager asked the VM to release");
	ok(pager_release_publish(a->m.p, 0, &n, &bytes) == 0 && n == 1 && bytes == 1,
	   "the VM released: 1 page, 1 byte (%llu, %llu)", (unsigned long long)n,
	   (unsigned long long)bytes);
	ok(landed(&s), "then the store landed");
	ok(store_lands(&s, a->m.mem, RELEASE_PG, 2000) && !atomic_load(&a->asked),
	   "nothing written since: the next store to RELEASE lands at once");
	a->m.mem[201 * PS] = 0x43;
	ok(!store_lands(&s, a->m.mem, RELEASE_PG, 300), "a write since: RELEASE traps again");
	ok(asked_for(a, PAGER_CTL_RELEASE, 2000) &&
	   pager_release_publish(a->m.p, 0, &n, &bytes) == 0 && n == 1, "released");
	ok(landed(&s), "and it landed");

	ok(!store_lands(&s, a->m.mem, ACQUIRE_PG, 300), "a store to ACQUIRE waits (pages cached)");
	ok(asked_for(a, PAGER_CTL_ACQUIRE, 2000), "the pager asked the VM to acquire");
	ok(pager_release_acquire(a->m.p, 0, &n) == 0 && n >= 2, "acquired: %llu pages dropped",
	   (unsigned long long)n);
	ok(landed(&s), "then the store landed");
	ok(store_lands(&s, a->m.mem, ACQUIRE_PG, 2000) && !atomic_load(&a->asked),
	   "nothing cached since: the next store to ACQUIRE lands at once");
	ok(a->m.mem[200 * PS] == 0x42 && a->m.mem[201 * PS] == 0x43, "A reads its releases back");
	ok(!store_lands(&s, a->m.mem, ACQUIRE_PG, 300), "a page fetched since: ACQUIRE traps again");
	ok(asked_for(a, PAGER_CTL_ACQUIRE, 2000) && pager_release_acquire(a->m.p, 0, &n) == 0,
	   "acquired");
	ok(landed(&s), "and it landed");
}

/*
 * Two vCPUs of one guest release at once ("two vCPUs" in docs/sharing.md). vCPU 1 wrote page TS_PG and
 * stores to RELEASE; while that release is on the way (its frames sent,
 * their acknowledgement not yet seen), vCPU 2 writes page TS_PG + 1 and
 * stores to RELEASE too. vCPU 2's write came after the release claimed its
 * pages, so that release does not carry it, and vCPU 2's store must not
 * land on it: both stores wait for a second release, which does.
 */
#define TS_PG 202
static const struct pager_backend_ops *ts_real;
static struct pager_backend_ops ts_ops;
static struct holder *ts_holder;
static struct storer ts_second;
static bool ts_trapped;

static int ts_write_wait(void *conn)
{
	struct holder *h = ts_holder;
	struct storer *s = &ts_second;

	if (h) {
		ts_holder = NULL;
		atomic_store(&h->asked, 0);
		s->data = (volatile uint8_t *)h->m.mem + (TS_PG + 1) * PS;
		s->val = 0x62;
		ts_trapped = !store_lands(s, h->m.mem, RELEASE_PG, 300) &&
			     asked_for(h, PAGER_CTL_RELEASE, 2000);
		s->data = NULL;
	}
	return ts_real->write_wait(conn);
}

static void test_two_stores(struct holder *a, const struct mnspawn *mn)
{
	struct mnc_opts mo = { .addr = mn->addr, .key = &mn->key, .node_id = a->id };
	struct storer first = { 0 };
	struct mnc *m = NULL;
	uint64_t n, bytes;

	atomic_store(&a->asked, 0);
	first.data = (volatile uint8_t *)a->m.mem + TS_PG * PS;
	first.val = 0x61;
	ok(!store_lands(&first, a->m.mem, RELEASE_PG, 300) &&
		   asked_for(a, PAGER_CTL_RELEASE, 2000),
	   "vCPU 1 wrote a page and its store to RELEASE waits");
	ts_real = a->be->ops;
	ts_ops = *ts_real;
	ts_ops.write_wait = ts_write_wait;
	ts_holder = a;
	a->be->ops = &ts_ops;
	ok(pager_release_publish(a->m.p, 0, &n, &bytes) == 0 && n == 1,
	   "the release publishes vCPU 1's page (%llu)", (unsigned long long)n);
	a->be->ops = ts_real;
	ok(ts_trapped, "meanwhile vCPU 2 wrote another page and its store to RELEASE trapped");
	ok(!landed_within(&ts_second, 300), "vCPU 2's store does not land on that release");
	ok(asked_for(a, PAGER_CTL_RELEASE, 2000), "the pager asked the VM to release again");
	ok(mnc_connect(&mo, &m) == 0 && node_byte(m, a, TS_PG, 0) == 0x61 &&
		   node_byte(m, a, TS_PG + 1, 0) == 0,
	   "the node has vCPU 1's byte, not yet vCPU 2's");
	ok(pager_release_publish(a->m.p, 0, &n, &bytes) == 0 && n == 1 && bytes == 1,
	   "the second release publishes vCPU 2's page (%llu pages, %llu bytes)",
	   (unsigned long long)n, (unsigned long long)bytes);
	ok(landed(&ts_second) && landed(&first), "then both stores landed");
	ok(node_byte(m, a, TS_PG + 1, 0) == 0x62, "and the node has vCPU 2's byte");
	mnc_close(m);
}

/* Bad WRITE_DIFF frames at the memory node: refused, and the page is unchanged. */
static void test_bad_frames(const struct mnspawn *mn, const struct holder *a)
{
	struct mnc_opts mo = { .addr = mn->addr, .key = &mn->key, .node_id = a->id };
	uint8_t body[64], page[PS];
	struct proto_extent e = { 300, 1 };
	struct mnc *c = NULL;
	int r;

	if (!ok(mnc_connect(&mo, &c) == 0, "a client of node %llu", (unsigned long long)a->id))
		return;
	/* page 300, one run past the page: offset 4090, length 10 */
	memcpy(body, (uint32_t[]){ htole32(300) }, 4);
	memcpy(body + 4, (uint16_t[]){ htole16(1), 0 }, 4);
	memcpy(body + 8, (uint16_t[]){ htole16(4090), htole16(10) }, 4);
	memset(body + 12, 0x77, 10);
	r = mnc_write_diff(c, &a->sec.grant, 1, NULL, body, 22);
	ok(r == -EBADMSG, "a run past the page: -EBADMSG (%s)", strerror(-r));
	mnc_close(c);
	c = NULL;
	ok(mnc_connect(&mo, &c) == 0, "connected again (the node closed the bad connection)");
	/* a valid one-byte diff, then the same with a zero-length run */
	memcpy(body + 8, (uint16_t[]){ htole16(5), htole16(1) }, 4);
	r = mnc_write_diff(c, &a->sec.grant, 1, NULL, body, 13);
	ok(r == 0, "a one-byte diff applies (%s)", strerror(-r));
	ok(mnc_read(c, &a->sec.grant, &e, 1, page) == 0 && page[5] == 0x77 && page[4] == 0 &&
	   page[6] == 0, "exactly that byte changed");
	mnc_close(c);
}

/*
 * A pager with a budget of 64 pages writes one byte in each of 600 pages:
 * dirty pages cannot be written back whole, so the evictor publishes
 * their diffs (an early release) and evicts them; the resident set stays
 * within budget.h's hard bound, and after the release every byte is on
 * the node.  600 pages is well past that bound, so the early release
 * must have happened however the threads were scheduled.
 */
#define SB_FIRST 400
#define SB_END   1000                /* below RELEASE_PG and ACQUIRE_PG */
/*
 * budget.h's hard limit, budget + max(2 batches, a window and a cluster),
 * is checked before a fault; the fault then adds up to one cluster.
 */
#define SB_HARD  (64 + 256 + 16 + 16)
static void test_small_budget(const struct mnspawn *mn, const struct proto_section *s)
{
	struct mnc_opts mo = { .addr = mn->addr, .key = &mn->key, .node_id = 103 };
	static uint8_t page[PS];
	struct pager_stats st;
	struct holder c;
	struct mnc *m = NULL;
	uint64_t n, bytes, bad = 0;
	struct proto_extent e;

	if (!ok(holder_start(&c, mn, 103, s, -1, 64 * PS) == 0, "a third pager, budget 64 pages"))
		return;
	for (uint64_t pg = SB_FIRST; pg < SB_END; pg++)
		c.m.mem[pg * PS + 7] = 0x5c;
	pager_stats(c.m.p, &st);
	/* every page that left was published first; at most max_resident stayed */
	ok(st.release_pages_published + st.max_resident_pages >= SB_END - SB_FIRST &&
	   st.max_resident_pages <= SB_HARD,
	   "the evictor published %llu pages early; at most %llu resident",
	   (unsigned long long)st.release_pages_published,
	   (unsigned long long)st.max_resident_pages);
	ok(pager_release_publish(c.m.p, 0, &n, &bytes) == 0, "the release publishes the rest (%llu)",
	   (unsigned long long)n);
	ok(mnc_connect(&mo, &m) == 0, "a client of node 103");
	for (uint64_t pg = SB_FIRST; m && pg < SB_END; pg++) {
		e = (struct proto_extent){ (uint32_t)pg, 1 };
		bad += mnc_read(m, &c.sec.grant, &e, 1, page) != 0 || page[7] != 0x5c ||
		       page[6] != 0 || page[8] != 0;
	}
	ok(m && bad == 0, "all %u bytes on the memory node, and nothing else (%llu bad)", SB_END - SB_FIRST,
	   (unsigned long long)bad);
	pager_stats(c.m.p, &st);
	ok(st.pages_written_back == 0 && st.failed == 0, "no page sent whole, no failure");
	mnc_close(m);
	holder_stop(&c);
}

/*
 * The twins outlive the pager (an agent restart): A writes two pages of a
 * release region with a twins' file and dies unreleased; B changes
 * another byte of one of them and releases; a new pager over A's uffd,
 * file and twins adopts the region and releases: only A's bytes go out
 * (as diffs against the twins), so B's byte stays.
 */
#define TW_PG 1010                   /* pages TW_PG, TW_PG + 1: past SB_END, below the control pages */

static uint8_t node_byte(struct mnc *m, const struct holder *h, uint64_t pg, unsigned i)
{
	static uint8_t page[PS];
	struct proto_extent e = { (uint32_t)pg, 1 };

	return m && mnc_read(m, &h->sec.grant, &e, 1, page) == 0 ? page[i] : 0xee;
}

static void test_twins_survive(const struct mnspawn *mn, const struct proto_section *s)
{
	struct mnc_opts mo = { .addr = mn->addr, .key = &mn->key, .node_id = 104 };
	struct pager_region_config rc = { 0 };
	struct pager_config cfg;
	struct pager_stats st;
	struct holder a, b;
	struct mnc *m = NULL;
	struct pager *p2 = NULL;
	uint64_t n, bytes, pages = 0;
	int tf = memfd_create("twins", MFD_CLOEXEC), region, r;

	tmap_twin_fd = tf;
	r = holder_start(&a, mn, 104, s, -1, UINT64_MAX);
	tmap_twin_fd = 0;
	if (!ok(tf > 0 && r == 0 && holder_start(&b, mn, 105, s, -1, UINT64_MAX) == 0,
		"two more pagers, the first with a twins' file"))
		return;
	b.m.mem[TW_PG * PS + 1] = 0xb1;
	ok(pager_release_publish(b.m.p, 0, &n, &bytes) == 0 && bytes == 1, "B released a byte");
	a.m.mem[TW_PG * PS] = 0xa0;
	a.m.mem[(TW_PG + 1) * PS + 5] = 0xa5;
	ok(((volatile uint8_t *)a.m.mem)[(TW_PG + 3) * PS + 1] == 0,
	   "A read a third page (cached, clean)");
	ok(lseek(tf, TW_PG * PS, SEEK_DATA) == TW_PG * PS &&
		   lseek(tf, (TW_PG + 2) * PS, SEEK_DATA) >= SEC,
	   "A wrote two pages: their twins are in the file");

	/* A's agent dies: its pager goes, unreleased; the mapping, uffd and files stay. */
	pager_free(a.m.p);
	a.m.p = NULL;
	b.m.mem[TW_PG * PS + 2] = 0xb2;
	ok(pager_release_publish(b.m.p, 0, &n, &bytes) == 0 && bytes == 1,
	   "meanwhile B released another byte of the same page");

	cfg = (struct pager_config){ .name = "release2", .budget = UINT64_MAX,
				     .fail_timeout_ms = 3000, .on_control = on_control,
				     .opaque = &a, .backend = a.be, .section_size = SEC };
	rc.uffd = a.m.uffd;
	rc.uffd_features = a.m.features;
	rc.file_fd = a.m.memfd;
	rc.base = (uintptr_t)a.m.mem;
	rc.length = SEC;
	rc.sections = &a.sec;
	rc.pagemap_fd = -1;
	rc.shared = rc.release = rc.control = true;
	rc.twin_fd = tf;
	r = pager_new(&cfg, &p2);
	region = r < 0 ? r : pager_add_region(p2, &rc);
	r = region < 0 ? region : pager_start(p2);
	if (r == 0)
		r = pager_adopt_region(p2, region, &pages);
	ok(r == 0 && pages == 2, "a new pager adopted A's region: %llu pages kept: %s",
	   (unsigned long long)pages, strerror(-r));
	pager_stats(p2, &st);
	ok(st.dirty_pages == 2 && st.resident_pages == 2 &&
		   lseek(a.m.memfd, (TW_PG + 3) * PS, SEEK_DATA) != (TW_PG + 3) * PS,
	   "it kept the two pages with a twin, dirty, and dropped the clean one (%llu dirty, "
	   "%llu resident)", (unsigned long long)st.dirty_pages,
	   (unsigned long long)st.resident_pages);
	ok(pager_release_publish(p2, region, &n, &bytes) == 0 && n == 2 && bytes == 2,
	   "its release publishes A's two bytes as diffs (%llu pages, %llu bytes)",
	   (unsigned long long)n, (unsigned long long)bytes);
	ok(lseek(tf, 0, SEEK_DATA) >= SEC, "the twins are gone from the file (the journal follows them)");
	ok(mnc_connect(&mo, &m) == 0 && node_byte(m, &a, TW_PG, 0) == 0xa0 &&
		   node_byte(m, &a, TW_PG, 1) == 0xb1 && node_byte(m, &a, TW_PG, 2) == 0xb2 &&
		   node_byte(m, &a, TW_PG + 1, 5) == 0xa5,
	   "the memory node has A's bytes and both of B's: nothing undone");
	mnc_close(m);
	ok(pager_release_acquire(p2, region, &n) == 0 && a.m.mem[TW_PG * PS + 2] == 0xb2 &&
		   a.m.mem[TW_PG * PS] == 0xa0,
	   "after its acquire A reads B's bytes beside its own");
	pager_stats(p2, &st);
	ok(st.failed == 0 && st.pages_written_back == 0, "no failure, no page sent whole");
	pager_free(p2);
	holder_stop(&b);
	holder_stop(&a);
	close(tf);
}

int main(int argc, char **argv)
{
	struct mnc_opts mo = { 0 };
	struct proto_section s;
	struct holder a, b;
	struct mnspawn mn;
	struct pager_stats st;
	struct mnc *c = NULL;
	uint8_t *page = malloc(PS * NW);
	uint64_t na, nb, ba, bb;
	int r;

	if (mntap_start(argv[0], &mn, 4 * SEC, SEC, &s) < 0)
		return tap_done();
	mo = (struct mnc_opts){ .addr = mn.addr, .key = &mn.key, .orch_key = mn.gkey, .node_id = 1 };
	r = mnc_connect(&mo, &c);
	/* The set-up's admin connection may not be seen closed yet. */
	for (int i = 0; r == 0 && i < 200 && connections(c) > 1; i++)
		usleep(10 * 1000);
	ok(r == 0 && connections(c) == 1, "the memory node counts one connection: ours");
	/* A's cleaner is due after 20 ms: it must leave a release region alone. */
	r = holder_start(&a, &mn, 101, &s, 20, UINT64_MAX);
	if (r == 0)
		r = holder_start(&b, &mn, 102, &s, -1, UINT64_MAX);
	if (!ok(r == 0, "two pagers map one release region: %s", strerror(-r))) {
		mnspawn_stop(&mn, true);
		return tap_done();
	}
	for (int i = 0; i < 200 && connections(c) < 3; i++)
		usleep(10 * 1000);
	ok(connections(c) == 3,
	   "each pager's write-back connection is open before any write-back (pager_wb_warm)");
	mnc_close(c);
	c = NULL;

	write_half(a.m.mem, false);
	write_half(b.m.mem, true);
	ok(pages_hold(a.m.mem, 1) && pages_hold(b.m.mem, 2),
	   "each reads only its own bytes before any release");
	usleep(300 * 1000);
	mo = (struct mnc_opts){ .addr = mn.addr, .key = &mn.key, .node_id = 101 };
	r = mnc_connect(&mo, &c);
	ok(r == 0 && mnc_read_range(c, &a.sec.grant, 0, NW, page) == 0 && pages_hold(page, 0),
	   "nothing reached the memory node before a release (the cleaner sends no whole page)");

	ok(pager_release_publish(a.m.p, 0, &na, &ba) == 0 && na == NW && ba == NW * PS / 2,
	   "A released: %llu pages, %llu bytes of diffs", (unsigned long long)na,
	   (unsigned long long)ba);
	ok(pager_release_publish(b.m.p, 0, &nb, &bb) == 0 && nb == NW && bb == NW * PS / 2,
	   "B released: %llu pages, %llu bytes of diffs", (unsigned long long)nb,
	   (unsigned long long)bb);
	ok(pager_release_publish(b.m.p, 0, &nb, &bb) == 0 && nb == 0 && bb == 0,
	   "a release with nothing written since publishes nothing");
	ok(c && mnc_read_range(c, &a.sec.grant, 0, NW, page) == 0 && pages_hold(page, 3),
	   "the memory node holds both halves of every page");
	mnc_close(c);
	ok(pages_hold(a.m.mem, 1) && pages_hold(b.m.mem, 2),
	   "before their acquire, each still reads its cached pages");
	ok(pager_release_acquire(a.m.p, 0, &na) == 0 && na >= NW &&
	   pager_release_acquire(b.m.p, 0, &nb) == 0 && nb >= NW,
	   "both acquired (%llu and %llu pages dropped)", (unsigned long long)na,
	   (unsigned long long)nb);
	ok(pages_hold(a.m.mem, 3) && pages_hold(b.m.mem, 3), "both read the union");

	/* Unpublished writes survive an acquire; they meet the others' at the next release. */
	a.m.mem[100 * PS] = 0x11;
	b.m.mem[100 * PS + 1] = 0x22;
	ok(pager_release_publish(b.m.p, 0, &nb, &bb) == 0 && nb == 1, "B released page 100 (%llu)",
	   (unsigned long long)nb);
	ok(pager_release_acquire(a.m.p, 0, &na) == 0 && a.m.mem[100 * PS] == 0x11 &&
	   a.m.mem[100 * PS + 1] == 0, "A's acquire keeps its own unreleased page 100");
	ok(pager_release_publish(a.m.p, 0, &na, &ba) == 0 && na == 1 && ba == 1 &&
	   pager_release_acquire(a.m.p, 0, &na) == 0 && a.m.mem[100 * PS] == 0x11 &&
	   a.m.mem[100 * PS + 1] == 0x22, "after A's release and acquire: both bytes");

	test_control_pages(&a);
	test_two_stores(&a, &mn);
	test_bad_frames(&mn, &a);
	test_small_budget(&mn, &s);
	test_twins_survive(&mn, &s);

	pager_stats(a.m.p, &st);
	ok(st.release_pages_published >= NW + 3 && st.release_diff_bytes >= NW * PS / 2,
	   "counted: %llu pages, %llu bytes published",
	   (unsigned long long)st.release_pages_published,
	   (unsigned long long)st.release_diff_bytes);
	ok(st.failed == 0 && st.pages_written_back == 0, "no pager failure, no whole page sent");
	ok(pager_shared_release(a.m.p, 5, &na) == -ENOENT &&
	   pager_release_publish(a.m.p, 5, &na, &ba) == -ENOENT, "no such region: -ENOENT");

	holder_stop(&b);
	holder_stop(&a);
	mnspawn_stop(&mn, false);
	free(page);
	return tap_done();
}
