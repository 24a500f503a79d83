// SPDX-License-Identifier: MIT
/*
 * The pager's statistics (stats.c): counters, gauges and histograms of
 * every layer (struct pager_stats, types.h), as a snapshot or as
 * Prometheus text.
 */
#ifndef DISAGG_PAGER_STATS_H
#define DISAGG_PAGER_STATS_H

#include "types.h"

const char *pager_mode_name(enum pager_dirty_mode m);
void pager_stats(struct pager *p, struct pager_stats *ret);
/* Prometheus text; labels "" or `vm="x"`. */
void pager_render_metrics(struct pager *p, struct strbuf *sb, const char *labels);

#endif /* DISAGG_PAGER_STATS_H */
