/* SPDX-License-Identifier: MIT */
/*
 * Counters of the device node as /metrics and /healthz (stats.c).
 */
#ifndef DISAGG_DEVNODE_STATS_H
#define DISAGG_DEVNODE_STATS_H

#include <stdbool.h>

#include "devnode.h"

char *dn_stats_render(struct dn_node *n);
/* *ret_ok: the store can be listed (else /healthz answers 503). */
char *dn_health_render(struct dn_node *n, bool *ret_ok);
#endif /* DISAGG_DEVNODE_STATS_H */
