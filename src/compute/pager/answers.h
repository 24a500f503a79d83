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
 * The file is a ring of PAGER_ANSWER_SLOTS records, one pwrite each: the
 * agent keeps at most 16 answers unconfirmed (vm_strict.c), so the ring
 * never overwrites one that may still be needed.
 */
#ifndef DISAGG_PAGER_ANSWERS_H
#define DISAGG_PAGER_ANSWERS_H

#include <stddef.h>
#include <stdint.h>

#define PAGER_ANSWER_SLOTS 32

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
/* Forget every answer (handed back). */
int pager_answers_clear(int fd);

#endif /* DISAGG_PAGER_ANSWERS_H */
