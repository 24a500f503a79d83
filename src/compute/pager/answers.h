/* SPDX-License-Identifier: MIT */
/*
 * A strict region's recall answers on file (answers.c): a page this node
 * gives up in a recall leaves its mapping before the memory node has read
 * the answer that carries it. If the agent dies in between, the page's
 * last write would be nowhere; so each changed page given up is written
 * to the region's answers file first (REGION.answers in the VM's run
 * directory), and a restarted agent hands the answers back with the
 * region's other pages (pager_strict_adopt). The memory node stores such
 * a page only while its recall is still waiting for the answer
 * (docs/memnode.md, "Away holders").
 *
 * The file starts with a ring of PAGER_ANSWER_SLOTS records, one pwrite
 * each: the agent keeps at most 16 answers unconfirmed (vm_strict.c), so
 * the ring never overwrites one that may still be needed. After it, from
 * PAGER_KEPT_BASE, page pg of the region at pg * 4096 (a hole where none):
 * the changed pages this node owned when its recall channel broke
 * (pager_strict_keep), which it hands back once attached again. Both
 * outlive the agent, and are cleared once handed back.
 */
#ifndef DISAGG_PAGER_ANSWERS_H
#define DISAGG_PAGER_ANSWERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGER_ANSWER_SLOTS 32
#define PAGER_KEPT_BASE    (256u * 1024)   /* past the ring, page-aligned */

struct pager_kept;

/* Keep answer number n (page `page` of section `section`, of that recall's version). */
int pager_answer_keep(int fd, uint64_t n, uint32_t section, uint32_t page, uint32_t version,
		      const void *data);
/*
 * The answers in fd, the newest of each page, as pages given up in a
 * recall (pager_kept.recalled): *ret (malloc'd, NULL when none), *ret_n.
 * The number of the newest answer + 1 in *ret_next (where to go on).
 */
int pager_answers_read(int fd, struct pager_kept **ret, size_t *ret_n, uint64_t *ret_next);
/* Keep page pg of the region, changed, owned when the channel broke. */
int pager_kept_write(int fd, uint64_t pg, const void *data);
/*
 * The first page kept so at or after page *pg of the region, as a changed
 * page (not recalled) of section pg / sec_pages, into *out: 1, with *pg
 * moved past it; 0 when there is none; -errno. One page at a time, so
 * that a whole region kept costs no memory to hand back.
 */
int pager_kept_next(int fd, uint64_t sec_pages, uint64_t *pg, struct pager_kept *out);
/* Is page pg of the region kept so? */
bool pager_kept_has(int fd, uint64_t pg);
/* Forget every answer and kept page (handed back). */
int pager_answers_clear(int fd);

#endif /* DISAGG_PAGER_ANSWERS_H */
