// SPDX-License-Identifier: MIT
/*
 * Background write-back (clean.c): the evictor thread's cleaner, which
 * writes back pages dirty for writeback_delay_ms while there is no budget
 * pressure.
 */
#ifndef DISAGG_PAGER_CLEAN_H
#define DISAGG_PAGER_CLEAN_H

#include <stdbool.h>
#include <stdint.h>

#include "writeback.h"

struct pager_cleaner {
	struct pager_wb_bufs b;
	unsigned region;             /* cursor: slot and page */
	uint64_t page;
	bool found;                  /* this sweep claimed something */
	uint32_t idle_epoch;         /* a whole sweep found nothing eligible in this epoch */
	bool idle;
	uint64_t last_bump;          /* wb_epoch last advanced (ns) */
};

int pager_cleaner_init(struct pager *p, struct pager_cleaner *c);
void pager_cleaner_fini(struct pager_cleaner *c);
/* Advance the age clock; each pass of the evictor's loop. */
void pager_cleaner_tick(struct pager *p, struct pager_cleaner *c);
/* With p->lock held and no budget pressure: is a step worth taking? */
bool pager_cleaner_due(struct pager *p, struct pager_cleaner *c);
/*
 * One step, io_lock held: pages written back (> 0: call again soon), 0 if
 * nothing was eligible in this step (c->idle: nothing until the next
 * epoch), or -errno.
 */
int pager_cleaner_step(struct pager *p, struct pager_cleaner *c);
/* How long the idle evictor sleeps between passes, ms. */
long pager_cleaner_idle_ms(const struct pager *p);

#endif /* DISAGG_PAGER_CLEAN_H */
