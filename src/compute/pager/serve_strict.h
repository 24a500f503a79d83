// SPDX-License-Identifier: MIT
/*
 * Strict shared regions (serve_strict.c): faults served through the
 * coherence directory of the region's home memory node, and recalls of
 * pages that another node's request needs.
 */
#ifndef DISAGG_PAGER_SERVE_STRICT_H
#define DISAGG_PAGER_SERVE_STRICT_H

#include <stdbool.h>
#include <stdint.h>

struct pager;
struct pager_fault_ctx;
struct pager_region;

/* A fault on strict region r: a write-protect fault (wp), else MISSING (write: a write fault). */
void pager_serve_strict(struct pager_fault_ctx *t, struct pager_region *r, uint64_t addr,
			bool wp, bool write);

/*
 * The directory recalls page `page` of section `section` of strict region
 * `region`: it is write-protected (invalidate false: DOWNGRADE, it stays a
 * read copy) or dropped (INVALIDATE). `grants`: the recall's count of the
 * directory's answers to this node for the section (a fault installing an
 * answer sent before the recall is waited for). If this node had changed it,
 * *ret_dirty is set and buf (4 KiB) gets its data, for the directory to
 * keep; given up (invalidate) it is kept on the region's answers file
 * first, with the recall's `version` (answers.h). Returns once no write of
 * this node can reach the page any more:
 * answer the recall only then. 0, -ENOENT (no such region), -EINVAL (not
 * strict, out of range), -ETIMEDOUT (a fault on the page did not finish),
 * or an uffd error. Called from any thread but a pager thread.
 */
int pager_strict_recall(struct pager *p, int region, uint32_t section, uint32_t page,
			bool invalidate, uint32_t grants, uint32_t version, void *buf,
			bool *ret_dirty);

/*
 * Did the directory answer DIR_DETACHED since the last call (it forgot this
 * node)? The recall thread then drops every copy (pager_strict_reset) and
 * attaches again.
 */
bool pager_strict_detached(struct pager *p, int region);

#endif /* DISAGG_PAGER_SERVE_STRICT_H */
