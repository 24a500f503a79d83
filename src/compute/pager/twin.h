// SPDX-License-Identifier: MIT
/*
 * The twins of a release region (twin.c; release.h): page pg's content as
 * it was when it was first written since its last release, which its
 * diff is taken against. They live in a file, page pg's at offset pg * PS:
 * a page has a twin exactly when the file has data there (tmpfs:
 * SEEK_DATA is exact per page), and a dropped twin is punched. The
 * release journal follows at npages * PS (reljournal.h).
 *
 * The VM gives a file in its run directory (pager_region_config.twin_fd),
 * so that the twins outlive the agent: a restarted agent's pager finds
 * them there (pager_adopt_region keeps the pages that have one), and the
 * guest's writes that were not released yet are released as diffs, as
 * before the restart.
 * Without a file the pager makes a memfd of its own.
 *
 * Everything but init, free and pager_twins_read runs with p->lock held
 * (a release reads the twins of the pages it has claimed BUSY: nobody
 * else drops those).
 */
#ifndef DISAGG_PAGER_TWIN_H
#define DISAGG_PAGER_TWIN_H

#include <stdbool.h>
#include <stdint.h>

struct pager_twins;

/*
 * Twins for npages pages in fd (-1: a memfd of the pager's own), sized
 * here; the twins the file has already are kept (a restarted agent's), so
 * new memory needs an empty file. fd stays the caller's (it is dup'ed).
 */
int pager_twins_new(int fd, uint64_t npages, struct pager_twins **ret);
void pager_twins_free(struct pager_twins *t);

/* Does page pg have a twin? */
bool pager_twin_has(const struct pager_twins *t, uint64_t pg);
/* The twins of pages [pg, pg + n) into buf (zeros for a page without one): 0 or -errno. */
int pager_twins_read(const struct pager_twins *t, uint64_t pg, uint64_t n, void *buf);
/* Keep data (PS bytes) as page pg's twin, unless it has one: 0 or -errno. */
int pager_twin_put(struct pager_twins *t, uint64_t pg, const void *data);
/* Make data page pg's twin, whether it had one or not: 0 or -errno. */
int pager_twin_set(struct pager_twins *t, uint64_t pg, const void *data);
/* Drop the twins of pages [pg, pg + n): punched from the file. */
void pager_twin_drop(struct pager_twins *t, uint64_t pg, uint64_t n);
/* Pages with a twin. */
uint64_t pager_twin_count(const struct pager_twins *t);
/* The file (the journal follows the twins there: reljournal.h) and its pages of twins. */
int pager_twins_fd(const struct pager_twins *t);
uint64_t pager_twins_npages(const struct pager_twins *t);

#endif /* DISAGG_PAGER_TWIN_H */
