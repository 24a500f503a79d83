/* SPDX-License-Identifier: MIT */
/*
 * Counters, latency histograms and their Prometheus text rendering.
 *
 * Histograms have fixed log2 buckets in nanoseconds (bucket i holds values
 * < 2^i ns, 2^10 ns = ~1 µs ... 2^34 ns = ~17 s) and are lock-free: any
 * thread may observe while another renders.
 */
#ifndef DISAGG_METRICS_H
#define DISAGG_METRICS_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define HIST_BUCKETS 36

struct hist {
	_Atomic uint64_t buckets[HIST_BUCKETS];
	_Atomic uint64_t count;
	_Atomic uint64_t sum_ns;
};

void hist_observe(struct hist *h, uint64_t ns);
/* Approximate quantile (0..1) in ns: upper bound of the bucket that holds it. */
uint64_t hist_quantile(const struct hist *h, double q);
/* Add every bucket of src into dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* A growing string buffer. */
struct strbuf {
	char *buf;
	size_t len, cap;
	int err;                 /* sticky -ENOMEM */
};

void strbuf_init(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);
int strbuf_printf(struct strbuf *sb, const char *fmt, ...) _printf_(2, 3);
int strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap);
/* Hand the string over (NUL-terminated) and reset sb. NULL on error. */
char *strbuf_steal(struct strbuf *sb);
/* n bytes (binary too), kept NUL-terminated: 0 or -ENOMEM (sticky). */
int strbuf_append(struct strbuf *sb, const void *data, size_t n);

/*
 * Prometheus text exposition. `labels` is "" or `key="v",key2="w"`.
 * Emit "# HELP"/"# TYPE" once per metric name: pass help=NULL for further
 * label sets of the same name.
 */
void metrics_counter(struct strbuf *sb, const char *name, const char *help,
		     const char *labels, uint64_t v);
void metrics_gauge(struct strbuf *sb, const char *name, const char *help,
		   const char *labels, double v);
/* Rendered in seconds, as Prometheus expects (buckets le="..." cumulative, _sum, _count). */
void metrics_hist(struct strbuf *sb, const char *name, const char *help,
		  const char *labels, const struct hist *h);

#endif /* DISAGG_METRICS_H */
