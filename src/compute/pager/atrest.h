// SPDX-License-Identifier: MIT
/*
 * Where the pager meets the page cipher (crypt.h): every page on its way to
 * a memory node is sealed in one place, the sink (pager_sink_write, sink.c, which
 * every write-back, eviction, flush, cleaning and memory migration's dual
 * write goes through), and every fetched page is opened in one place, the
 * fault path (serve.c) before anything is installed. A memory migration's
 * commit copies ciphertext from the source memory node as it is
 * (memmig.c); nothing else reads or writes a memory node's pages.
 */
#ifndef DISAGG_PAGER_ATREST_H
#define DISAGG_PAGER_ATREST_H

#include <stddef.h>

#include "crypt.h"
#include "types.h"

struct pager_region;

/*
 * Open, in place, page pg of r fetched into buf. -EBADMSG: it fails
 * authentication (counted; buf holds zeros, never the bad page).
 */
int pager_open_page(struct pager *p, struct pager_region *r, uint64_t pg, void *buf);

/* A new region: forget what the table says was stored in its pages (admin_lock). */
void pager_meta_fresh(struct pager *p, struct pager_region *r);

/*
 * The page-metadata table of a compute migration's source (pager_meta_table
 * on the source, after its last flush): imported, then every parked fault
 * on a remote page is woken. -EINVAL: another size; -ENOTSUP: no cipher.
 */
int pager_meta_import(struct pager *p, const void *data, size_t len);
/* The table is complete (pager_crypt_put by parts): wake every parked fault on a remote page. */
void pager_meta_done(struct pager *p);
/* The table as bytes (valid while the pager lives). NULL if not encrypted. */
const void *pager_meta_table(struct pager *p, size_t *ret_len);
/* Faults on remote pages wait for pager_meta_import. */
bool pager_meta_pending(struct pager *p);
/*
 * A compute migration's destination: the hand-over `bits` (PAGER_HOLD_*,
 * core.h) is here. When nothing is held any more, every parked fault on
 * a remote page is woken.
 */
void pager_hold_release(struct pager *p, unsigned bits);

#endif /* DISAGG_PAGER_ATREST_H */
