// SPDX-License-Identifier: MIT
/*
 * Adoption (pager_adopt.c): a pager that dies with dirty resident pages,
 * evicted pages and a fault it read and never served; a new pager over the
 * same uffd and file takes the region over with pager_adopt_region(). The
 * resident pages of remote sections count as resident and dirty, the
 * thread blocked in the lost fault is woken and served, every page reads
 * right, a flush puts every write on the backend, and eviction afterwards
 * loses nothing.
 */
#include "tap.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "pager_adopt.h"

#define PS PAGER_PAGE_SIZE
#define SEC (1u << 20)
#define LEN (8u * SEC)
#define NPG (LEN / PS)

static uint32_t ver[NPG];

static unsigned verify_mapping(struct tmap *m)
{
	unsigned bad = 0;

	for (uint64_t pg = 0; pg < NPG; pg++)
		bad += pat_check(m->mem + pg * PS, pg, ver[pg], true);
	return bad;
}

static unsigned verify_backend(struct tmap *m)
{
	return tmap_backend_bad(m, ver, 0, NPG);
}

struct toucher {
	struct tmap *m;
	uint64_t pg;
	int bad;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	t->bad = pat_check(t->m->mem + t->pg * PS, t->pg, ver[t->pg], true);
	return NULL;
}

/* The resident pages of remote sections: what the file holds there. */
static uint64_t file_resident(struct tmap *m)
{
	uint64_t n = 0;

	for (uint64_t pg = 0; pg < NPG; pg++)
		if (tmap_remote(m, pg) && lseek(m->memfd, (off_t)(pg * PS), SEEK_DATA) == (off_t)(pg * PS))
			n++;
	return n;
}

int main(void)
{
	struct pager_config cfg = { .name = "adopt", .budget = UINT64_MAX, .writeback_delay_ms = -1 };
	struct pager_region_config rc = { 0 };
	struct toucher t = { 0 };
	struct pager_stats st;
	struct uffd_msg msg;
	struct tmap m;
	struct pager *p2 = NULL;
	uint64_t pages = 0, resident;
	pthread_t th;
	int r, region;

	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	/* Section 1 is local. */
	r = tmap_setup(&m, LEN, SEC, &cfg, 1u << 1, NULL, PAGER_DIRTY_SYNC_WP);
	if (!ok(r == 0, "setup: %s", strerror(-r)))
		return tap_done();
	for (uint64_t pg = 0; pg < NPG; pg++)
		ver[pg] = tmap_remote(&m, pg) ? 1 : 0;
	ok(tmap_fill_backend(&m, ver) == 0, "fill backend");
	ok(verify_mapping(&m) == 0, "every page reads the backend's data");
	/* Writes the backend never gets from this pager: dirty when it dies. */
	for (uint64_t pg = 0; pg < NPG; pg += 7) {
		ver[pg]++;
		pat_fill(m.mem + pg * PS, pg, ver[pg]);
	}
	/* Some pages leave (written back, punched): they must come back from the backend. */
	ok(pager_set_budget(m.p, LEN / 2) == 0 && pager_wait_budget(m.p, 10000) == 0,
	   "half the remote pages evicted");
	pager_stats(m.p, &st);
	ok(st.dirty_pages > 0, "the dying pager has %llu dirty pages",
	   (unsigned long long)st.dirty_pages);

	/* The pager dies; a thread then faults on an evicted page. */
	pager_free(m.p);
	m.p = NULL;
	resident = file_resident(&m);
	for (t.pg = 0; t.pg < NPG; t.pg++)
		if (tmap_remote(&m, t.pg) &&
		    lseek(m.memfd, (off_t)(t.pg * PS), SEEK_DATA) != (off_t)(t.pg * PS))
			break;
	t.m = &m;
	t.bad = -1;
	if (!ok(t.pg < NPG && pthread_create(&th, NULL, touch_main, &t) == 0,
		"a thread faults on page %llu", (unsigned long long)t.pg))
		return tap_done();
	{
		struct pollfd pfd = { .fd = m.uffd, .events = POLLIN };

		/* The dead pager had read this fault and never served it: lost. */
		ok(poll(&pfd, 1, 5000) == 1 && read(m.uffd, &msg, sizeof(msg)) == sizeof(msg) &&
			   msg.event == UFFD_EVENT_PAGEFAULT,
		   "its fault message is read and dropped");
	}

	/* A new pager over the same uffd, file and backend. */
	cfg.backend = m.be;
	cfg.section_size = SEC;
	cfg.budget = UINT64_MAX;
	r = pager_new(&cfg, &p2);
	rc.uffd = m.uffd;
	rc.uffd_features = m.features;
	rc.file_fd = m.memfd;
	rc.base = (uintptr_t)m.mem;
	rc.length = LEN;
	rc.sections = m.secs;
	rc.pagemap_fd = -1;
	region = r < 0 ? r : pager_add_region(p2, &rc);
	r = region < 0 ? region : pager_start(p2);
	ok(r == 0, "new pager: %s", strerror(-r));
	r = pager_adopt_region(p2, region, &pages);
	ok(r == 0 && pages == resident, "adopted: %llu resident pages (the file has %llu)",
	   (unsigned long long)pages, (unsigned long long)resident);
	pthread_join(th, NULL);
	ok(t.bad == 0, "the thread of the lost fault was woken and read the right page");
	pager_stats(p2, &st);
	/* (The fault's pages are counted just after the thread is woken: not yet, maybe.) */
	ok(st.resident_pages >= resident &&
		   lseek(m.memfd, (off_t)(t.pg * PS), SEEK_DATA) == (off_t)(t.pg * PS),
	   "resident %llu, and the fault's page is in the file", (unsigned long long)st.resident_pages);
	ok(st.dirty_pages >= resident, "every adopted page is dirty (%llu dirty)",
	   (unsigned long long)st.dirty_pages);
	ok(verify_mapping(&m) == 0, "every page reads right");
	ok(pager_flush(p2) == 0, "flush");
	ok(verify_backend(&m) == 0, "the backend has every write, also the dead pager's");
	ok(pager_set_budget(p2, LEN / 8) == 0 && pager_wait_budget(p2, 10000) == 0,
	   "evict down to an eighth");
	ok(verify_mapping(&m) == 0, "every page still reads right");
	ok(pager_adopt_region(p2, 7, NULL) == -ENOENT && pager_adopt_region(p2, -1, NULL) == -EINVAL,
	   "no such region: -ENOENT, -EINVAL");
	m.p = p2;
	tmap_teardown(&m);
	return tap_done();
}
