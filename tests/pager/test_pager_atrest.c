// SPDX-License-Identifier: MIT
/*
 * Guest memory at rest against a real disagg-memnode with a file backing
 * (functional): the pager writes a marked pattern back and evicts it; the
 * memory node's file is searched for the marker. Sealed with a slot key:
 * no hit, and every page reads back intact. The control, the same run
 * without a key: hits. Then the memory node's file is tampered with - one
 * bit flipped, an older ciphertext of a page put back (a replay), two
 * pages swapped - and each time the fault on that page is refused: the
 * fault thread reports -EBADMSG, the faulting thread stays blocked and is
 * never handed the page, and the pager counts it. Once the file is
 * restored, the same fault, woken, is served the right page (the control).
 * Skipped (exit 77) without userfaultfd or without a disagg-memnode binary.
 */
#include "tap.h"

#include <fcntl.h>
#include <pthread.h>
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
#define LEN (2 * SEC)
#define NPG (LEN / PS)

static const char marker[16] = "GUEST-SECRET-7f!";
static _Atomic int fail_calls, fail_err;

static void on_fail(void *opaque, int err, uint64_t addr, uint32_t tid)
{
	fail_err = err;
	fail_calls++;
}

/* Page pg, content generation g: the marker over and over, page and generation first. */
static void fill(uint8_t *page, uint64_t pg, uint32_t g)
{
	for (unsigned o = 0; o < PS; o += sizeof(marker))
		memcpy(page + o, marker, sizeof(marker));
	memcpy(page, &pg, 8);
	memcpy(page + 8, &g, 4);
}

static bool check(const uint8_t *page, uint64_t pg, uint32_t g)
{
	uint8_t want[PS];

	fill(want, pg, g);
	return memcmp(page, want, PS) == 0;
}

/* Occurrences of the marker in the file. */
static long hits(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	static uint8_t buf[1 << 20];
	long n = 0;
	ssize_t got;

	if (fd < 0)
		return -1;
	while ((got = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i + (ssize_t)sizeof(marker) <= got; i += sizeof(marker))
			n += memcmp(buf + i, marker, sizeof(marker)) == 0;
	close(fd);
	return n;
}

/* Offset of these 4096 bytes in the file (page-aligned), or -1. */
static off_t find_page(const char *path, const uint8_t *page)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t buf[PS];
	off_t off = 0, at = -1;

	if (fd < 0)
		return -1;
	while (pread(fd, buf, PS, off) == (ssize_t)PS) {
		if (memcmp(buf, page, PS) == 0) {
			at = off;
			break;
		}
		off += PS;
	}
	close(fd);
	return at;
}

static int put(const char *path, off_t off, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t w;

	if (fd < 0)
		return -errno;
	w = pwrite(fd, data, len, off);
	close(fd);
	return w == (ssize_t)len ? 0 : -EIO;
}

struct reader {
	struct tmap *m;
	uint64_t pg;
	uint32_t gen;
	_Atomic bool done;
	bool good;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	rd->good = check(rd->m->mem + rd->pg * PS, rd->pg, rd->gen);
	atomic_store(&rd->done, true);
	return NULL;
}

struct setup {
	struct mnspawn mn;
	struct pager_section secs[LEN / SEC];
	struct pager_backend *be;
	struct pager_crypt *crypt;
	struct tmap m;
	char file[64];
};

static int start(struct setup *s, const char *exe, bool encrypt, int n)
{
	struct pager_config cfg = { .name = "atrest", .budget = LEN, .fail_timeout_ms = 1500,
				    .on_fail = on_fail, .writeback_delay_ms = -1 };
	struct mnc_opts mo = { 0 };
	struct mnc *c = NULL;
	char backing[80];
	uint8_t key[PAGER_KEY_BYTES];
	uint64_t my_id = 4343;
	int r;

	snprintf(s->file, sizeof(s->file), "/tmp/disagg-atrest-%d-%d", (int)getpid(), n);
	snprintf(backing, sizeof(backing), "file:%s", s->file);
	mnspawn_backing = backing;
	r = mnspawn_start(&s->mn, exe, 2 * LEN, SEC, 11);
	mnspawn_backing = NULL;
	if (r < 0)
		return r;
	mo.addr = s->mn.addr;
	mo.key = &s->mn.key;
	mo.orch_key = s->mn.gkey;
	mo.node_id = my_id;
	r = mnc_connect(&mo, &c);
	for (unsigned i = 0; r == 0 && i < LEN / SEC; i++) {
		struct proto_section ps;

		r = mnc_alloc(c, my_id, &ps);
		if (r == 0)
			r = grant_mint(s->mn.gkey, mnc_info(c)->node_id, my_id, ps.section,
				       ps.generation, 0, PROTO_R_ALL, 0, &s->secs[i].grant);
		s->secs[i].kind = PAGER_SEC_REMOTE;
		s->secs[i].nrep = 0;           /* not replicated */
		snprintf(s->secs[i].addr, sizeof(s->secs[i].addr), "%s", s->mn.addr);
	}
	mnc_close(c);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(0xa5 ^ i);
	if (encrypt) {
		r = pager_crypt_new(key, NULL, NPG, &s->crypt);
		if (r < 0)
			return r;
	}
	cfg.crypt = s->crypt;
	r = pager_backend_memnode_new(&s->mn.key, my_id, 2000, 0, &s->be);
	if (r == 0)
		r = tmap_setup_secs(&s->m, LEN, SEC, &cfg, s->secs, s->be, PAGER_DIRTY_SYNC_WP);
	return r;
}

static void stop(struct setup *s)
{
	tmap_teardown(&s->m);
	pager_backend_free(s->be);
	pager_crypt_free(s->crypt);
	mnspawn_stop(&s->mn, true);
	unlink(s->file);
}

/* Write every page (generation 1), write back and evict all of it. */
static int write_all(struct setup *s)
{
	for (uint64_t pg = 0; pg < NPG; pg++)
		fill(s->m.mem + pg * PS, pg, 1);
	if (pager_flush(s->m.p) < 0 || pager_set_budget(s->m.p, 0) < 0 ||
	    pager_wait_budget(s->m.p, 10000) < 0)
		return -EIO;
	return pager_set_budget(s->m.p, LEN);
}

/*
 * Fault page pg (expect generation gen) after `tamper` changed the file:
 * the fault must be refused; then `restore`, wake it: it must be served.
 */
static void refused_then_served(struct setup *s, const char *what, uint64_t pg, uint32_t gen,
				off_t off, const uint8_t *bad, const uint8_t *good, size_t len)
{
	struct reader rd = { .m = &s->m, .pg = pg, .gen = gen };
	struct pager_stats st0, st;
	uint64_t t0;
	pthread_t th;
	int calls = fail_calls;

	pager_stats(s->m.p, &st0);
	ok(put(s->file, off, bad, len) == 0, "%s: the memory node's file changed", what);
	pthread_create(&th, NULL, reader_main, &rd);
	t0 = tap_mono_ms();
	while (fail_calls == calls && tap_mono_ms() - t0 < 10000)
		usleep(10000);
	usleep(200000);
	pager_stats(s->m.p, &st);
	ok(fail_calls > calls && fail_err == -EBADMSG, "%s: the fault is refused with EBADMSG (%s)",
	   what, strerror(-fail_err));
	ok(st.integrity_failures > st0.integrity_failures, "%s: counted (%llu integrity failures)",
	   what, (unsigned long long)st.integrity_failures);
	ok(!atomic_load(&rd.done), "%s: the faulting thread is parked, never handed the page",
	   what);
	/* Control: the intact bytes back, the same fault woken, served right. */
	ok(put(s->file, off, good, len) == 0, "%s: file restored", what);
	(void)uffd_wake(s->m.uffd, (uint64_t)(uintptr_t)s->m.mem + (pg & ~15ull) * PS, 16 * PS);
	t0 = tap_mono_ms();
	while (!atomic_load(&rd.done) && tap_mono_ms() - t0 < 10000) {
		usleep(20000);
		(void)uffd_wake(s->m.uffd, (uint64_t)(uintptr_t)s->m.mem + (pg & ~15ull) * PS,
				16 * PS);
	}
	ok(atomic_load(&rd.done) && rd.good, "%s: restored, the same fault is served the right page",
	   what);
	if (!atomic_load(&rd.done)) {
		pthread_detach(th);
		return;
	}
	pthread_join(th, NULL);
	/* Leave the page out again for the next case. */
	(void)pager_set_budget(s->m.p, 0);
	(void)pager_wait_budget(s->m.p, 10000);
	(void)pager_set_budget(s->m.p, LEN);
}

/* Every sealed neighbour kept so far opened or given up (stash.h): the stats then, 10 s at most. */
static void settled(struct setup *s, struct pager_stats *st)
{
	uint64_t t0 = tap_mono_ms();

	for (;;) {
		pager_stats(s->m.p, st);
		if (st->pages_stashed == st->pages_stash_opened + st->pages_stash_dropped ||
		    tap_mono_ms() - t0 > 10000)
			return;
		usleep(10000);
	}
}

int main(int argc, char **argv)
{
	static struct setup enc, clr;
	static uint8_t a[PS], b[PS], old[PS];
	char exe[4096];
	uint64_t bad = 0;
	long h;
	int r;

	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	if (mnspawn_find(argv[0], exe, sizeof(exe)) < 0)
		tap_skip_all("no disagg-memnode binary (set DISAGG_MEMNODE)");
	signal(SIGPIPE, SIG_IGN);

	/* The control: no key, the pattern is in the memory node's file. */
	r = start(&clr, exe, false, 0);
	if (!ok(r == 0, "clear pager on a file-backed memory node: %s", strerror(-r)))
		return tap_done();
	ok(write_all(&clr) == 0, "clear: written back and evicted");
	h = hits(clr.file);
	ok(h > 0, "clear (control): the memory node's file holds the pattern (%ld hits)", h);
	stop(&clr);

	r = start(&enc, exe, true, 1);
	if (!ok(r == 0, "sealing pager on a file-backed memory node: %s", strerror(-r)))
		return tap_done();
	ok(write_all(&enc) == 0, "sealed: written back and evicted");
	h = hits(enc.file);
	ok(h == 0, "sealed: the memory node's file holds no trace of the pattern (%ld hits)", h);
	for (uint64_t pg = 0; pg < NPG; pg++)
		bad += !check(enc.m.mem + pg * PS, pg, 1);
	ok(bad == 0, "sealed: every page reads back intact (%llu bad)", (unsigned long long)bad);
	ok(pager_set_budget(enc.m.p, 0) == 0 && pager_wait_budget(enc.m.p, 10000) == 0 &&
	   pager_set_budget(enc.m.p, LEN) == 0, "evicted again");
	{
		struct pager_stats st;

		pager_stats(enc.m.p, &st);
		ok(st.encrypted && st.pages_sealed >= NPG && st.integrity_failures == 0,
		   "stats: %llu pages sealed, no integrity failure",
		   (unsigned long long)st.pages_sealed);
	}

	/* 1. One bit flipped in a stored page. */
	{
		off_t off;

		ok(tmap_backend_read(&enc.m, 10, a) == 0, "page 10's ciphertext read from the node");
		off = find_page(enc.file, a);
		ok(off >= 0, "found in the file at %lld", (long long)off);
		memcpy(b, a, PS);
		b[100] ^= 0x04;
		if (off >= 0)
			refused_then_served(&enc, "one bit flipped", 10, 1, off, b, a, PS);
	}
	/* 2. A replay: page 40's older ciphertext put back after a newer write-back. */
	{
		off_t off;

		ok(tmap_backend_read(&enc.m, 40, old) == 0, "page 40's version-1 ciphertext kept");
		fill(enc.m.mem + 40 * PS, 40, 2);
		ok(pager_flush(enc.m.p) == 0 && pager_set_budget(enc.m.p, 0) == 0 &&
		   pager_wait_budget(enc.m.p, 10000) == 0 && pager_set_budget(enc.m.p, LEN) == 0,
		   "page 40 rewritten, written back, evicted");
		ok(tmap_backend_read(&enc.m, 40, a) == 0 && memcmp(a, old, PS) != 0,
		   "its new ciphertext differs");
		off = find_page(enc.file, a);
		ok(off >= 0, "found in the file at %lld", (long long)off);
		if (off >= 0)
			refused_then_served(&enc, "an older version replayed", 40, 2, off, old, a, PS);
	}
	/* 3. Two pages swapped (each its own valid ciphertext, at the other's place). */
	{
		static uint8_t two[2 * PS], swapped[2 * PS];
		off_t off;

		ok(tmap_backend_read(&enc.m, 70, two) == 0 &&
		   tmap_backend_read(&enc.m, 71, two + PS) == 0, "pages 70 and 71 read");
		off = find_page(enc.file, two);
		ok(off >= 0 && find_page(enc.file, two + PS) == off + PS,
		   "adjacent in the file at %lld", (long long)off);
		memcpy(swapped, two + PS, PS);
		memcpy(swapped + PS, two, PS);
		if (off >= 0)
			refused_then_served(&enc, "two pages swapped", 70, 1, off, swapped, two,
					    2 * PS);
	}
	/*
	 * 4. The neighbours of a random fault (page 97 of cluster 96-111) are
	 * kept sealed after the fault's wake and opened later (stash.h): all
	 * of them read back right, from the one fetch.
	 */
	{
		struct pager_stats st0, st;
		uint64_t nbad = 0, fetched;

		settled(&enc, &st0);
		nbad += !check(enc.m.mem + 97 * PS, 97, 1);
		for (uint64_t pg = 96; pg < 112; pg++)
			nbad += !check(enc.m.mem + pg * PS, pg, 1);
		/* The counters follow the installs that woke us. */
		settled(&enc, &st);
		ok(nbad == 0, "neighbours: page 97 and its cluster read back intact (%llu bad)",
		   (unsigned long long)nbad);
		fetched = st.pages_fetched - st0.pages_fetched;
		ok(fetched >= 16 && fetched <= 32,
		   "neighbours: one fetch of the cluster (%llu pages fetched)",
		   (unsigned long long)fetched);
		ok(st.pages_stashed - st0.pages_stashed == fetched - 1 &&
		   st.pages_stash_opened - st0.pages_stash_opened == fetched - 1 &&
		   st.pages_stash_dropped == st0.pages_stash_dropped,
		   "neighbours: all but the faulting page kept sealed after the wake, "
		   "then opened (%llu, %llu)",
		   (unsigned long long)(st.pages_stashed - st0.pages_stashed),
		   (unsigned long long)(st.pages_stash_opened - st0.pages_stash_opened));
		(void)pager_set_budget(enc.m.p, 0);
		(void)pager_wait_budget(enc.m.p, 10000);
		(void)pager_set_budget(enc.m.p, LEN);
	}
	/*
	 * 5. A neighbour flipped: page 130's ciphertext changed, the guest
	 * faults on page 129 of the same cluster. 129 is served (the control);
	 * 130, opened after the wake, fails and is never installed: a fault on
	 * it is refused and parked, and served once the bytes are restored.
	 */
	{
		struct pager_stats st0, st;
		uint64_t t0;
		off_t off;
		bool good;

		ok(tmap_backend_read(&enc.m, 130, a) == 0, "page 130's ciphertext read from the node");
		off = find_page(enc.file, a);
		ok(off >= 0, "found in the file at %lld", (long long)off);
		memcpy(b, a, PS);
		b[4000] ^= 0x80;
		if (off >= 0) {
			pager_stats(enc.m.p, &st0);
			ok(put(enc.file, off, b, PS) == 0, "a neighbour flipped: file changed");
			good = check(enc.m.mem + 129 * PS, 129, 1);
			t0 = tap_mono_ms();
			do {
				usleep(10000);
				pager_stats(enc.m.p, &st);
			} while (st.integrity_failures == st0.integrity_failures &&
				 tap_mono_ms() - t0 < 10000);
			ok(good, "a neighbour flipped: the faulting page 129 is served (control)");
			ok(st.integrity_failures > st0.integrity_failures,
			   "a neighbour flipped: the neighbour fails authentication after the wake "
			   "(%llu integrity failures)", (unsigned long long)st.integrity_failures);
			refused_then_served(&enc, "a neighbour flipped", 130, 1, off, b, a, PS);
		}
	}
	stop(&enc);
	return tap_done();
}
