// SPDX-License-Identifier: MIT
/*
 * Serving one write-protect fault (serve_wp.c): mark dirty, un-protect.
 */
#ifndef DISAGG_PAGER_SERVE_WP_H
#define DISAGG_PAGER_SERVE_WP_H

#include <stdint.h>

#include "serve.h"

/* A WP fault at addr. */
void pager_serve_wp(struct pager_fault_ctx *c, struct pager_region *r, uint64_t addr);

#endif /* DISAGG_PAGER_SERVE_WP_H */
