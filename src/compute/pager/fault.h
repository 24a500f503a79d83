// SPDX-License-Identifier: MIT
/*
 * The fault threads (fault.c): they read and decode the uffd messages of
 * every region and serve them (serve.h), and the prefetch queue (hot.h).
 */
#ifndef DISAGG_PAGER_FAULT_H
#define DISAGG_PAGER_FAULT_H

struct pager;
struct pager_region;

/* The epoll set, the stop eventfd and the prefetch queue's eventfd (pager_new). */
int pager_fault_init(struct pager *p);
/* Start p->nthreads threads into p->threads (pager_start; p->rcu is set up). */
int pager_fault_start(struct pager *p);
/* p->stop is set: wake the threads and join them. */
void pager_fault_stop(struct pager *p);
void pager_fault_fini(struct pager *p);
/* Serve r's uffd (add it to the epoll set; r is published). */
int pager_fault_watch(struct pager *p, struct pager_region *r);
/* Stop serving r's uffd (events returned just before are dropped by the tag). */
void pager_fault_unwatch(struct pager *p, struct pager_region *r);
/* The same for another uffd of r (an alias, alias.h): its events serve r. */
int pager_fault_watch_fd(struct pager *p, struct pager_region *r, int fd);
void pager_fault_unwatch_fd(struct pager *p, int fd);

#endif /* DISAGG_PAGER_FAULT_H */
