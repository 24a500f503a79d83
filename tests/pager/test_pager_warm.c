// SPDX-License-Identifier: MIT
/*
 * The write-back connection opened ahead (pager_wb_warm) when the memory
 * node of a new region does not answer: two real memory nodes, A with
 * the guest memory (a quarter of it in budget) and B, frozen (SIGSTOP:
 * it accepts TCP connections and never answers a handshake), behind a
 * region added while the pager runs. The backend waits 20 s for a node.
 *   - writes to A over the budget, right after the add, are evicted and
 *     the pager is back within its budget long before that (the warm-up
 *     gives up on B after PAGER_WB_WARM_MS; before, the evictor waited
 *     the backend's 20 s, and every fault over the budget 200 ms);
 *   - every page written to A is on A after a flush;
 *   - B thawed, a page of the new region is written, flushed and read
 *     back from B.
 * Skipped (exit 77) without userfaultfd or a disagg-memnode binary.
 */
#include "tap.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "grant.h"
#include "mnclient.h"
#include "mntap.h"
#include "writeback.h"

#define PS   PAGER_PAGE_SIZE
#define SEC  (4u << 20)
#define NPG  (SEC / PS)
#define ME   77u
#define WAIT_MS 20000                /* the backend's wait for a node */

/* A second mapping of one remote section, added to a running pager. */
struct extra {
	int memfd, uffd;
	uint64_t feat;
	uint8_t *mem;
	struct pager_section sec;
	int idx;
};

static int extra_add(struct pager *p, struct extra *x)
{
	struct pager_region_config rc = { 0 };
	int r;

	x->memfd = memfd_create("warm", MFD_CLOEXEC);
	if (x->memfd < 0 || ftruncate(x->memfd, SEC) < 0)
		return -errno;
	x->mem = mmap(NULL, SEC, PROT_READ | PROT_WRITE, MAP_SHARED, x->memfd, 0);
	if (x->mem == MAP_FAILED) {
		x->mem = NULL;
		return -errno;
	}
	r = pager_uffd_open(PAGER_DIRTY_SYNC_WP, &x->uffd, &x->feat);
	if (r >= 0)
		r = pager_uffd_register(x->uffd, (uintptr_t)x->mem, SEC);
	if (r < 0)
		return r;
	rc.uffd = x->uffd;
	rc.uffd_features = x->feat;
	rc.file_fd = x->memfd;
	rc.base = (uintptr_t)x->mem;
	rc.length = SEC;
	rc.sections = &x->sec;
	rc.pagemap_fd = -1;
	rc.fresh = true;
	x->idx = pager_add_region(p, &rc);
	return x->idx < 0 ? x->idx : 0;
}

static int remote_of(const struct mnspawn *mn, const struct proto_section *s,
		     struct pager_section *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->kind = PAGER_SEC_REMOTE;
	snprintf(ret->addr, sizeof(ret->addr), "%s", mn->addr);
	return grant_mint(mn->gkey, mn->node_id, ME, s->section, s->generation, 0, PROTO_R_ALL, 0,
			  &ret->grant);
}

int main(int argc, char **argv)
{
	struct pager_config cfg = { .name = "warm", .budget = SEC / 4, .fail_timeout_ms = WAIT_MS };
	struct extra x = { .memfd = -1, .uffd = -1, .idx = -1 };
	struct proto_section sa, sb;
	struct pager_section ram;
	struct pager_backend *be = NULL;
	struct pager_stats st;
	struct mnspawn a, b;
	struct mnc_opts mo;
	struct mnc *c = NULL;
	static uint8_t page[PS];
	uint64_t t0, took, bad = 0;
	char exe[4096];
	struct tmap m;
	int r;

	if (mntap_start(argv[0], &a, 2 * SEC, SEC, &sa) < 0)
		return tap_done();
	if (mnspawn_find(argv[0], exe, sizeof(exe)) < 0 ||
	    !ok(mnspawn_start_keyed(&b, exe, 2 * SEC, SEC, 12, &a) == 0 &&
			mnspawn_alloc(&b, ME, &sb) == 0,
		"a second memory node, one section allocated")) {
		mnspawn_stop(&a, true);
		return tap_done();
	}
	r = remote_of(&a, &sa, &ram);
	if (r == 0)
		r = remote_of(&b, &sb, &x.sec);
	if (r == 0)
		r = pager_backend_memnode_new(&a.key, ME, WAIT_MS, 0, &be);
	if (r == 0)
		r = tmap_setup_secs(&m, SEC, SEC, &cfg, &ram, be, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0, "a pager on memory node A, budget a quarter: %s", strerror(-r))) {
		mnspawn_stop(&b, true);
		mnspawn_stop(&a, true);
		return tap_done();
	}

	/* B frozen: it takes TCP connections (the kernel does) and answers nothing. */
	ok(kill(b.pid, SIGSTOP) == 0, "memory node B frozen");
	ok(extra_add(m.p, &x) == 0, "a region on B added while the pager runs");
	t0 = tap_mono_ms();
	for (uint64_t pg = 0; pg < NPG; pg++)
		pat_fill(m.mem + pg * PS, pg, 1);
	took = tap_mono_ms() - t0;
	r = pager_wait_budget(m.p, WAIT_MS / 4);
	pager_stats(m.p, &st);
	ok(r == 0 && st.pages_evicted >= NPG / 2,
	   "%u pages written in %llu ms over a budget of %u, %llu evicted, back within the "
	   "budget while B stays frozen: %s", NPG, (unsigned long long)took, NPG / 4,
	   (unsigned long long)st.pages_evicted, strerror(-r));
	ok(pager_flush(m.p) == 0, "flushed");
	mo = (struct mnc_opts){ .addr = a.addr, .key = &a.key, .node_id = ME };
	r = mnc_connect(&mo, &c);
	for (uint64_t pg = 0; r == 0 && pg < NPG; pg++)
		bad += mnc_read_range(c, &ram.grant, (uint32_t)pg, 1, page) != 0 ||
		       pat_check(page, pg, 1, true) != 0;
	ok(r == 0 && bad == 0, "every page written is on A (%llu bad)", (unsigned long long)bad);
	mnc_close(c);
	c = NULL;

	ok(kill(b.pid, SIGCONT) == 0, "B thawed");
	pat_fill(x.mem, 0, 7);
	ok(pager_flush(m.p) == 0, "the new region's page flushed to B");
	mo = (struct mnc_opts){ .addr = b.addr, .key = &b.key, .node_id = ME };
	r = mnc_connect(&mo, &c);
	ok(r == 0 && mnc_read_range(c, &x.sec.grant, 0, 1, page) == 0 &&
		   pat_check(page, 0, 7, true) == 0,
	   "B holds it");
	mnc_close(c);
	pager_stats(m.p, &st);
	ok(st.failed == 0, "the pager did not fail");

	tmap_teardown(&m);
	if (x.mem)
		munmap(x.mem, SEC);
	if (x.uffd >= 0)
		close(x.uffd);
	if (x.memfd >= 0)
		close(x.memfd);
	pager_backend_free(be);
	mnspawn_stop(&b, false);
	mnspawn_stop(&a, false);
	return tap_done();
}
