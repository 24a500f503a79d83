/* SPDX-License-Identifier: MIT */
/*
 * The memory node's accept loop (accept.c), run by main.c once the
 * workers have started.
 */
#ifndef DISAGG_MEMNODE_ACCEPT_H
#define DISAGG_MEMNODE_ACCEPT_H

#include "memnode.h"

/* Accept loop of the calling thread until `stop_fd` is readable. */
int mn_server_run(struct mn_node *n, int stop_fd);

#endif /* DISAGG_MEMNODE_ACCEPT_H */
