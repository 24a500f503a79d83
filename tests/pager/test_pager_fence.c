// SPDX-License-Identifier: MIT
/*
 * A pager whose sections were handed over (functional, real memory node):
 * another node takes section 0 with a newer ownership epoch and writes its
 * own data there, while the pager still holds dirty pages of it. The
 * pager's flush and its evictions must then neither fail nor retry for
 * ever: the memory node refuses those write-backs (FENCED), the pager
 * drops them and counts them, its write-backs to section 1 (still its own)
 * land, and the new owner's data stays what it wrote.
 * Skipped (exit 77) without userfaultfd or without a disagg-memnode binary.
 */
#include "tap.h"

#include <signal.h>
#include <string.h>

#include "grant.h"
#include "mnadmin.h"
#include "mnclient.h"
#include "mnspawn.h"

#define PS PAGER_PAGE_SIZE
#define SEC (4u << 20)
#define NSEC 2
#define LEN (NSEC * SEC)
#define NPG (LEN / PS)
#define SPP (SEC / PS)
#define NEW_OWNER 5151

static uint32_t ver[NPG];

/* Pages of [a, b) whose copy on the memory node is not version v (ver[] if v < 0). */
static unsigned node_bad(struct tmap *m, uint64_t a, uint64_t b, int64_t v)
{
	static uint8_t buf[PS];
	unsigned bad = 0;

	for (uint64_t pg = a; pg < b; pg++)
		if (tmap_backend_read(m, pg, buf) < 0 ||
		    pat_check(buf, pg, v < 0 ? ver[pg] : (uint32_t)v, true))
			bad++;
	return bad;
}

static void write_range(struct tmap *m, uint64_t a, uint64_t b, uint32_t v)
{
	for (uint64_t pg = a; pg < b; pg++) {
		ver[pg] = v;
		pat_fill(m->mem + pg * PS, pg, v);
	}
}

/* The new owner of section 0: fence it at epoch 1, then write version 9 over it. */
static int take_over(const struct mnspawn *mn, const struct proto_grant *old)
{
	struct mnc_opts mo = { .addr = mn->addr, .key = &mn->key, .node_id = NEW_OWNER };
	_cleanup_free_ uint8_t *data = malloc(SEC);
	struct proto_grant g;
	struct mnc *c = NULL;
	uint32_t epoch = 0;
	int r;

	if (!data)
		return -ENOMEM;
	for (uint64_t pg = 0; pg < SPP; pg++)
		pat_fill(data + pg * PS, pg, 9);
	r = grant_mint(mn->gkey, old->memnode_id, NEW_OWNER, old->section, old->generation, 1,
			     PROTO_R_ALL, 0, &g);
	if (r == 0)
		r = mnc_connect(&mo, &c);
	if (r == 0)
		r = mnc_fence(c, &g, &epoch);
	if (r == 0 && epoch != 1)
		r = -EPROTO;
	if (r == 0)
		r = mnc_write_range(c, &g, 0, SPP, data);
	mnc_close(c);
	return r;
}

int main(int argc, char **argv)
{
	struct pager_section secs[NSEC];
	struct pager_config cfg = { .name = "zombie", .budget = UINT64_MAX,
				    .fail_timeout_ms = 1500 };
	struct pager_backend *be = NULL;
	struct mnc_opts mo = { 0 };
	struct mnc *c = NULL;
	struct mnspawn mn;
	struct pager_stats st;
	struct tmap m;
	char exe[4096];
	uint64_t my_id = 4343, fenced;
	int r;

	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	if (mnspawn_find(argv[0], exe, sizeof(exe)) < 0)
		tap_skip_all("no disagg-memnode binary (set DISAGG_MEMNODE)");
	signal(SIGPIPE, SIG_IGN);
	r = mnspawn_start(&mn, exe, 2 * LEN, SEC, 11);
	if (!ok(r == 0, "memnode started at %s: %s", mn.addr, strerror(-r)))
		return tap_done();
	mo.addr = mn.addr;
	mo.key = &mn.key;
	mo.orch_key = mn.gkey;
	mo.node_id = my_id;
	r = mnc_connect(&mo, &c);
	for (unsigned i = 0; r == 0 && i < NSEC; i++) {
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
	ok(r == 0, "sections allocated, grants of epoch 0 minted: %s", strerror(-r));
	if (r == 0)
		r = pager_backend_memnode_new(&mn.key, my_id, 2000, 0, &be);
	if (r == 0)
		r = tmap_setup_secs(&m, LEN, SEC, &cfg, secs, be, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0, "pager on the memnode backend: %s", strerror(-r))) {
		mnspawn_stop(&mn, true);
		return tap_done();
	}

	/* Everything written and flushed once: the pager owns both sections. */
	write_range(&m, 0, NPG, 1);
	r = pager_flush(m.p);
	ok(r == 0 && node_bad(&m, 0, NPG, -1) == 0, "flushed as the owner: %s", strerror(-r));

	/* Dirty again, then section 0 changes hands behind the pager's back. */
	write_range(&m, 0, NPG, 2);
	r = take_over(&mn, &secs[0].grant);
	ok(r == 0, "another node fenced section 0 at epoch 1 and wrote it: %s", strerror(-r));

	r = pager_flush(m.p);
	pager_stats(m.p, &st);
	ok(r == 0, "flush of a fenced section neither fails nor hangs: %s", strerror(-r));
	ok(st.writebacks_fenced > 0, "refused write-backs counted: %llu",
	   (unsigned long long)st.writebacks_fenced);
	ok(node_bad(&m, 0, SPP, 9) == 0, "the new owner's data in section 0 is intact");
	ok(node_bad(&m, SPP, NPG, 2) == 0, "the pager's own section 1 was written back");
	ok(st.dirty_pages == 0 && st.failed == 0, "nothing left dirty (%llu), pager not failed",
	   (unsigned long long)st.dirty_pages);

	/* Evictions of dirty pages of the fenced section: no retry loop, no failure. */
	fenced = st.writebacks_fenced;
	write_range(&m, 0, SPP, 3);
	ok(pager_set_budget(m.p, 16 * PS) == 0 && pager_wait_budget(m.p, 20000) == 0,
	   "evicting dirty pages of the fenced section reaches the budget");
	pager_stats(m.p, &st);
	ok(st.failed == 0 && st.resident_pages <= 16 && st.writebacks_fenced > fenced,
	   "pager not failed, %llu pages resident, %llu more batches refused and dropped",
	   (unsigned long long)st.resident_pages,
	   (unsigned long long)(st.writebacks_fenced - fenced));
	ok(node_bad(&m, 0, SPP, 9) == 0, "section 0 still holds the new owner's data");
	ok(node_bad(&m, SPP, NPG, 2) == 0, "section 1 still holds the pager's");

	tmap_teardown(&m);
	pager_backend_free(be);
	mnspawn_stop(&mn, false);
	return tap_done();
}
