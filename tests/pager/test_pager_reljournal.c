// SPDX-License-Identifier: MIT
/*
 * A release region's journal (reljournal.h) against a real memory node:
 * a batch of diffs whose outcome the publisher did not see is sent again
 * as it was, and the node applies each frame at most once, so it never
 * undoes what another slot released since.
 *
 * A wraps its memory-node backend to lose what the tests need: an
 * acknowledgement (the node applied the frames, A sees an error), or a
 * frame (never sent) and then the acknowledgement.
 * - Lost acknowledgement, retried in the same publish: B releases the
 *   same byte in between; A's retry leaves B's byte.
 * - Lost frame and acknowledgement, then A's agent dies: the batch stays
 *   in the journal of the twins' file. B releases a byte of the page whose
 *   frame landed; a restarted pager on A's files sends the batch again
 *   (the landed frame is not applied again, the lost one is), makes it its
 *   pages' twins, and then publishes only what A's guest wrote after the
 *   failure. The node holds B's byte and all of A's.
 * - A fence before the new grants (a gone slot fenced out): B's release
 *   is refused and kept; with grants of the new epoch it goes again.
 * - A park before a region moves sends a kept batch first.
 * Skipped (exit 77) without userfaultfd or a disagg-memnode binary.
 */
#include "tap.h"

#include <sys/mman.h>
#include <string.h>
#include <unistd.h>

#include "mnclient.h"
#include "mntap.h"
#include "share_move.h"

#define PS    PAGER_PAGE_SIZE
#define SEC   (4u << 20)
#define P0    10                     /* pages of the tests */
#define P1    11
#define P2    12

struct holder {
	uint64_t id;
	struct pager_section sec;
	struct pager_backend *be;
	struct tmap m;
};

static void on_control(void *opaque, int region, enum pager_ctl op)
{
	(void)opaque, (void)region, (void)op;
}

static int holder_start(struct holder *h, const struct mnspawn *mn, uint64_t id,
			const struct proto_section *s, int twin_fd)
{
	struct pager_config cfg = { .name = "reljournal", .budget = UINT64_MAX,
				    .fail_timeout_ms = 3000, .on_control = on_control };
	int r;

	memset(h, 0, sizeof(*h));
	h->id = id;
	tmap_release = true;
	tmap_twin_fd = twin_fd;
	r = mntap_map(mn, id, s, SEC, &cfg, &h->sec, &h->be, &h->m);
	tmap_twin_fd = 0;
	return r;
}

static void holder_stop(struct holder *h)
{
	tmap_teardown(&h->m);
	pager_backend_free(h->be);
}

/* ---- A's backend, wrapped -------------------------------------------------------- */

enum { LOSE_NOTHING, LOSE_ACK, LOSE_FRAME1_AND_ACK };

static const struct pager_backend_ops *real;
static struct pager_backend_ops wrapped;
static int lose;                    /* what the next publish loses */
static unsigned submitted;          /* frames submitted since the loss was armed */
static struct holder *other;        /* B: releases while A's acknowledgement is lost */
static uint8_t other_byte;

static int w_diff_submit(void *conn, const struct pager_section *s, uint32_t npages,
			 const struct proto_diff_once *once, const void *body, size_t len)
{
	if (lose == LOSE_FRAME1_AND_ACK && submitted++ == 1)
		return 0;   /* lost on the way */
	return real->diff_submit(conn, s, npages, once, body, len);
}

static int w_write_wait(void *conn)
{
	uint64_t n, bytes;
	int r = real->write_wait(conn);

	if (r < 0 || lose == LOSE_NOTHING)
		return r;
	if (lose == LOSE_ACK) {
		/* Applied; before A hears of it, B releases the same byte. */
		lose = LOSE_NOTHING;
		other->m.mem[P2 * PS] = other_byte;
		(void)pager_release_publish(other->m.p, 0, &n, &bytes);
		return -EIO;   /* retried */
	}
	lose = LOSE_NOTHING;
	return -ECANCELED;   /* not retried: the publish fails */
}

static uint32_t w_max_pages(void *conn)
{
	(void)conn;
	return 1;   /* a frame a page */
}

static void wrap(struct holder *a, int what)
{
	if (a->be->ops != &wrapped)
		real = a->be->ops;
	wrapped = *real;
	wrapped.diff_submit = w_diff_submit;
	wrapped.write_wait = w_write_wait;
	wrapped.max_pages = w_max_pages;
	a->be->ops = &wrapped;
	lose = what;
	submitted = 0;
}

/* ---- the node's bytes ------------------------------------------------------------- */

static uint8_t node_byte(const struct mnspawn *mn, const struct holder *h, uint64_t pg,
			 unsigned i)
{
	struct mnc_opts mo = { .addr = mn->addr, .key = &mn->key, .node_id = h->id };
	static uint8_t page[PS];
	struct proto_extent e = { (uint32_t)pg, 1 };
	struct mnc *m = NULL;
	uint8_t v = 0xee;

	if (mnc_connect(&mo, &m) == 0 && mnc_read(m, &h->sec.grant, &e, 1, page) == 0)
		v = page[i];
	mnc_close(m);
	return v;
}

/*
 * The orchestrator fenced a gone slot out (docs/api.md, "A slot whose VM
 * is gone"): the section is at a new epoch before B has grants of it. B's
 * release fails (FENCED), its page stays dirty and its batch in the
 * journal; with the new grant the next release sends it, and it lands.
 */
#define P3 13
static void fenced_then_regranted(const struct mnspawn *mn, struct holder *b)
{
	struct mnc_opts mo = { .addr = mn->addr, .key = &mn->key, .node_id = b->id };
	struct pager_section sec = b->sec;
	struct pager_stats st0, st;
	struct mnc *c = NULL;
	uint64_t n, bytes;
	uint32_t epoch = 0;
	int r;

	b->m.mem[P3 * PS] = 0xb3;
	r = grant_mint(mn->gkey, sec.grant.memnode_id, b->id, sec.grant.section,
		       sec.grant.generation, sec.grant.epoch + 1, PROTO_R_ALL, 0, &sec.grant);
	if (r == 0)
		r = mnc_connect(&mo, &c);
	if (r == 0)
		r = mnc_fence(c, &sec.grant, &epoch);
	mnc_close(c);
	ok(r == 0 && epoch == b->sec.grant.epoch + 1, "the section is fenced at epoch %u: %s", epoch,
	   strerror(-r));
	pager_stats(b->m.p, &st0);
	r = pager_release_publish(b->m.p, 0, &n, &bytes);
	ok(r < 0 && node_byte(mn, b, P3, 0) == 0,
	   "B's release with its old grant is refused, nothing lands (%s)", strerror(-r));
	r = pager_region_set_section(b->m.p, 0, 0, &sec, false);
	if (r == 0)
		b->sec = sec;
	r = r < 0 ? r : pager_release_publish(b->m.p, 0, &n, &bytes);
	pager_stats(b->m.p, &st);
	ok(r == 0 && node_byte(mn, b, P3, 0) == 0xb3 &&
		   st.release_batches_resent == st0.release_batches_resent + 1,
	   "with grants of the new epoch its next release sends the kept batch, and it lands: %s",
	   strerror(-r));
}

/*
 * A region about to move to another memory node parks (share_move.h):
 * its write-back publishes, and a batch the journal keeps goes first, to
 * the node that took part of it. So no batch outlives a move, and the new
 * node (whose table of frames applied is empty) never sees one again.
 */
#define P4 14
#define P5 15
static void park_sends_the_batch(const struct mnspawn *mn, struct holder *b)
{
	struct pager_stats st0, st;
	uint64_t n, bytes, flushed = 0, dropped = 0;
	int r;

	b->m.mem[P4 * PS] = 0xb4;
	b->m.mem[P5 * PS] = 0xb5;
	wrap(b, LOSE_FRAME1_AND_ACK);
	r = pager_release_publish(b->m.p, 0, &n, &bytes);
	b->be->ops = real;
	ok(r < 0 && node_byte(mn, b, P4, 0) == 0xb4 && node_byte(mn, b, P5, 0) == 0,
	   "B's release failed with one frame landed, one lost (%s)", strerror(-r));
	pager_stats(b->m.p, &st0);
	r = pager_shared_park(b->m.p, 0, &flushed, &dropped);
	pager_stats(b->m.p, &st);
	ok(r == 0 && st.release_batches_resent == st0.release_batches_resent + 1 &&
		   node_byte(mn, b, P5, 0) == 0xb5,
	   "parked for a move: the kept batch went first, to this node (%s)", strerror(-r));
	ok(pager_shared_unpark(b->m.p, 0) == 1, "unparked");
	r = pager_release_publish(b->m.p, 0, &n, &bytes);
	pager_stats(b->m.p, &st0);
	ok(r == 0 && n == 0 && st0.release_batches_resent == st.release_batches_resent,
	   "the journal kept nothing to send to the next node (%llu pages)",
	   (unsigned long long)n);
}

/* A new pager on A's mapping and files, as a restarted agent's: its region in *ret_region. */
static int restart(struct holder *a, int tf, struct pager **ret, int *ret_region)
{
	struct pager_config cfg = { .name = "reljournal2", .budget = UINT64_MAX,
				    .fail_timeout_ms = 3000, .on_control = on_control,
				    .backend = a->be, .section_size = SEC };
	struct pager_region_config rc = {
		.uffd = a->m.uffd, .uffd_features = a->m.features, .file_fd = a->m.memfd,
		.base = (uintptr_t)a->m.mem, .length = SEC, .sections = &a->sec,
		.pagemap_fd = -1, .shared = true, .release = true, .control = true,
		.twin_fd = tf,
	};
	uint64_t kept = 0;
	int r = pager_new(&cfg, ret);

	*ret_region = r < 0 ? r : pager_add_region(*ret, &rc);
	r = *ret_region < 0 ? *ret_region : pager_start(*ret);
	return r < 0 ? r : pager_adopt_region(*ret, *ret_region, &kept);
}

int main(int argc, char **argv)
{
	struct proto_section s;
	struct holder a, b;
	struct mnspawn mn;
	struct pager_stats st;
	struct pager *p2 = NULL;
	uint64_t n, bytes;
	int tf = memfd_create("twins", MFD_CLOEXEC), region, r;

	(void)argc;
	if (mntap_start(argv[0], &mn, 4 * SEC, SEC, &s) < 0)
		return tap_done();
	r = holder_start(&a, &mn, 101, &s, tf);
	if (r == 0)
		r = holder_start(&b, &mn, 102, &s, 0);
	if (!ok(tf > 0 && r == 0, "two pagers map one release region, A with a twins' file: %s",
		strerror(-r))) {
		mnspawn_stop(&mn, true);
		return tap_done();
	}

	/* A lost acknowledgement, retried at once. */
	a.m.mem[P2 * PS] = 0xa2;
	other = &b;
	other_byte = 0xb2;
	wrap(&a, LOSE_ACK);
	r = pager_release_publish(a.m.p, 0, &n, &bytes);
	ok(r == 0 && n == 1, "A's release succeeded on its retry: %s", strerror(-r));
	ok(node_byte(&mn, &a, P2, 0) == 0xb2,
	   "B's byte, released between A's frame and its retry, stands (0x%02x)",
	   node_byte(&mn, &a, P2, 0));

	/* A frame lost, the acknowledgement lost, and A's agent dies. */
	a.m.mem[P0 * PS] = 0xa0;
	a.m.mem[P1 * PS] = 0xa1;
	wrap(&a, LOSE_FRAME1_AND_ACK);
	r = pager_release_publish(a.m.p, 0, &n, &bytes);
	ok(r < 0, "A's release failed (%s)", strerror(-r));
	ok(node_byte(&mn, &a, P0, 0) == 0xa0 && node_byte(&mn, &a, P1, 0) == 0,
	   "the node took the first frame and not the second");
	a.m.mem[P1 * PS + 1] = 0xa3;   /* A's guest writes on */
	pager_free(a.m.p);
	a.m.p = NULL;
	a.be->ops = real;
	b.m.mem[P0 * PS] = 0xb0;
	ok(pager_release_publish(b.m.p, 0, &n, &bytes) == 0 && node_byte(&mn, &a, P0, 0) == 0xb0,
	   "meanwhile B released the byte of A's landed frame");

	r = restart(&a, tf, &p2, &region);
	ok(r == 0, "a new pager adopted A's region: %s", strerror(-r));
	r = r < 0 ? r : pager_release_publish(p2, region, &n, &bytes);
	ok(r == 0 && n == 1 && bytes == 1,
	   "its release sent the journal's batch, then only the byte written since "
	   "(%llu pages, %llu bytes): %s", (unsigned long long)n, (unsigned long long)bytes,
	   strerror(-r));
	ok(node_byte(&mn, &a, P0, 0) == 0xb0, "B's byte stands: A's landed frame was not "
	   "applied again (0x%02x)", node_byte(&mn, &a, P0, 0));
	ok(node_byte(&mn, &a, P1, 0) == 0xa1 && node_byte(&mn, &a, P1, 1) == 0xa3,
	   "A's lost frame and its later write landed");
	if (p2) {
		pager_stats(p2, &st);
		ok(st.release_batches_resent == 1, "one batch sent again (%llu)",
		   (unsigned long long)st.release_batches_resent);
		ok(pager_release_publish(p2, region, &n, &bytes) == 0 && n == 0,
		   "nothing is left to publish");
		ok(pager_release_acquire(p2, region, &n) == 0 && a.m.mem[P0 * PS] == 0xb0 &&
			   a.m.mem[P1 * PS] == 0xa1,
		   "after its acquire A reads B's byte and its own");
		pager_free(p2);
	}
	fenced_then_regranted(&mn, &b);
	park_sends_the_batch(&mn, &b);
	holder_stop(&b);
	holder_stop(&a);
	close(tf);
	mnspawn_stop(&mn, false);
	return tap_done();
}
