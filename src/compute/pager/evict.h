// SPDX-License-Identifier: MIT
/*
 * The evictor thread (evict.c): eviction under budget pressure; otherwise
 * reconciliation with the file and background write-back (clean.h).
 */
#ifndef DISAGG_PAGER_EVICT_H
#define DISAGG_PAGER_EVICT_H

/* The thread's body (pager_start); arg is the struct pager. */
void *pager_evictor_main(void *arg);

#endif /* DISAGG_PAGER_EVICT_H */
