// SPDX-License-Identifier: MIT
/*
 * Counters, lock-free log2 latency histograms and the Prometheus text
 * exposition format (version 0.0.4). See metrics.h.
 *
 * Histogram bucket i counts values < 2^i ns (bucket 0 holds only 0); the
 * last bucket also takes everything larger, so it is rendered only in the
 * +Inf bucket. Renderers snapshot the buckets and derive the count from
 * them, so _count always equals the +Inf bucket even while other threads
 * observe.
 *
 * Label values in the `labels` argument are taken as raw text and escaped
 * here (backslash, double quote, newline), so callers may pass any string,
 * e.g. a path or an address, between the quotes.
 */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ---- histograms -------------------------------------------------------- */

static unsigned hist_bucket(uint64_t ns)
{
	unsigned b = ns ? 64u - (unsigned)__builtin_clzll(ns) : 0u;

	return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

void hist_observe(struct hist *h, uint64_t ns)
{
	atomic_fetch_add_explicit(&h->buckets[hist_bucket(ns)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

/* Copy the buckets; returns their total. */
static uint64_t hist_snapshot(const struct hist *h, uint64_t ret[HIST_BUCKETS])
{
	uint64_t total = 0;

	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		/* atomic_load on a const object is fine in C11 but not in every libc. */
		ret[i] = atomic_load_explicit((_Atomic uint64_t *)&h->buckets[i],
					      memory_order_relaxed);
		total += ret[i];
	}
	return total;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t b[HIST_BUCKETS], total, rank, seen = 0;

	total = hist_snapshot(h, b);
	if (total == 0)
		return 0;
	if (!(q > 0.0)) /* also NaN */
		q = 0.0;
	if (q > 1.0)
		q = 1.0;
	rank = (uint64_t)ceil(q * (double)total);
	if (rank < 1)
		rank = 1;
	if (rank > total)
		rank = total;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += b[i];
		if (seen >= rank)
			return 1ull << i;
	}
	return 1ull << (HIST_BUCKETS - 1);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	struct hist *s = (struct hist *)src; /* read-only use */

	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		atomic_fetch_add_explicit(&dst->buckets[i],
					  atomic_load_explicit(&s->buckets[i], memory_order_relaxed),
					  memory_order_relaxed);
	atomic_fetch_add_explicit(&dst->count,
				  atomic_load_explicit(&s->count, memory_order_relaxed),
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&dst->sum_ns,
				  atomic_load_explicit(&s->sum_ns, memory_order_relaxed),
				  memory_order_relaxed);
}

/* ---- strbuf ------------------------------------------------------------ */

void strbuf_init(struct strbuf *sb)
{
	*sb = (struct strbuf){ 0 };
}

void strbuf_free(struct strbuf *sb)
{
	if (!sb)
		return;
	free(sb->buf);
	strbuf_init(sb);
}

static int strbuf_reserve(struct strbuf *sb, size_t extra)
{
	size_t need, cap;
	char *p;

	if (sb->err)
		return sb->err;
	if (extra > SIZE_MAX - sb->len - 1)
		return sb->err = -ENOMEM;
	need = sb->len + extra + 1;
	if (need <= sb->cap)
		return 0;
	cap = sb->cap ? sb->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(sb->buf, cap);
	if (!p)
		return sb->err = -ENOMEM;
	sb->buf = p;
	sb->cap = cap;
	return 0;
}

int strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list aq;
	int n, r;

	if (sb->err)
		return sb->err;
	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		return -EINVAL;
	r = strbuf_reserve(sb, (size_t)n);
	if (r < 0)
		return r;
	vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
	sb->len += (size_t)n;
	return n;
}

int strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = strbuf_vprintf(sb, fmt, ap);
	va_end(ap);
	return r;
}

int strbuf_append(struct strbuf *sb, const void *data, size_t n)
{
	int r = strbuf_reserve(sb, n);

	if (r < 0)
		return r;
	memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
	return 0;
}

static void strbuf_putc(struct strbuf *sb, char c)
{
	if (strbuf_reserve(sb, 1) < 0)
		return;
	sb->buf[sb->len++] = c;
	sb->buf[sb->len] = '\0';
}

char *strbuf_steal(struct strbuf *sb)
{
	char *s;

	if (sb->err) {
		strbuf_free(sb);
		return NULL;
	}
	s = sb->buf ? sb->buf : strdup("");
	strbuf_init(sb);
	return s;
}

/* ---- Prometheus text format ------------------------------------------- */

static bool is_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9');
}

/* Append s, escaping backslash and newline (and '"' if quote). */
static void put_escaped(struct strbuf *sb, const char *s, size_t n, bool quote)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\\') {
			strbuf_putc(sb, '\\');
			strbuf_putc(sb, '\\');
		} else if (c == '\n') {
			strbuf_putc(sb, '\\');
			strbuf_putc(sb, 'n');
		} else if (c == '"' && quote) {
			strbuf_putc(sb, '\\');
			strbuf_putc(sb, '"');
		} else {
			strbuf_putc(sb, c);
		}
	}
}

/* Length of a label name at s, or 0. */
static size_t label_name_len(const char *s)
{
	size_t n = 0;

	if (!is_name_start(s[0]))
		return 0;
	while (is_name_char(s[n]))
		n++;
	return n;
}

/*
 * Does a label value that started before `q` (a '"') end here? It does if
 * the quote is the last character, or is followed by `,name="`.
 */
static bool value_ends_at(const char *q)
{
	size_t n;

	if (q[1] == '\0')
		return true;
	if (q[1] != ',')
		return false;
	n = label_name_len(q + 2);
	return n > 0 && q[2 + n] == '=' && q[3 + n] == '"';
}

/*
 * Append `labels` (key="v",...) with every value escaped, followed by
 * `extra` (an already-escaped pair such as le="0.5") if not NULL. Emits
 * nothing when both are empty. A labels string that does not parse is
 * kept whole in one label, `labels`, so no input can break the format.
 */
static void put_labels(struct strbuf *sb, const char *labels, const char *extra)
{
	const char *p = labels ? labels : "";
	bool any = false;
	size_t start;

	if (!*p && !extra)
		return;
	strbuf_putc(sb, '{');
	start = sb->len;
	while (*p) {
		size_t n = label_name_len(p);
		const char *v, *q;

		if (n == 0 || p[n] != '=' || p[n + 1] != '"')
			goto bad;
		v = p + n + 2;
		for (q = v; *q && !(*q == '"' && value_ends_at(q)); q++)
			;
		if (!*q)
			goto bad;
		if (any)
			strbuf_putc(sb, ',');
		strbuf_printf(sb, "%.*s=\"", (int)n, p);
		put_escaped(sb, v, (size_t)(q - v), true);
		strbuf_putc(sb, '"');
		any = true;
		p = q[1] ? q + 2 : q + 1;
	}
	goto done;
bad:
	/* Drop whatever was emitted for this set and keep the raw text. */
	if (!sb->err) {
		sb->len = start;
		sb->buf[start] = '\0';
	}
	strbuf_printf(sb, "labels=\"");
	put_escaped(sb, labels, strlen(labels), true);
	strbuf_putc(sb, '"');
	any = true;
done:
	if (extra) {
		if (any)
			strbuf_putc(sb, ',');
		strbuf_printf(sb, "%s", extra);
	}
	strbuf_putc(sb, '}');
}

static void put_header(struct strbuf *sb, const char *name, const char *help,
		       const char *type)
{
	if (!help)
		return;
	strbuf_printf(sb, "# HELP %s ", name);
	put_escaped(sb, help, strlen(help), false);
	strbuf_printf(sb, "\n# TYPE %s %s\n", name, type);
}

static void put_double(struct strbuf *sb, double v)
{
	if (isnan(v))
		strbuf_printf(sb, "NaN");
	else if (isinf(v))
		strbuf_printf(sb, "%cInf", v > 0 ? '+' : '-');
	else {
		/* Shortest of %.15g..%.17g that reads back as the same double. */
		char buf[32];

		for (int prec = 15; prec <= 17; prec++) {
			snprintf(buf, sizeof(buf), "%.*g", prec, v);
			if (strtod(buf, NULL) == v)
				break;
		}
		strbuf_printf(sb, "%s", buf);
	}
}

void metrics_counter(struct strbuf *sb, const char *name, const char *help,
		     const char *labels, uint64_t v)
{
	put_header(sb, name, help, "counter");
	strbuf_printf(sb, "%s", name);
	put_labels(sb, labels, NULL);
	strbuf_printf(sb, " %llu\n", (unsigned long long)v);
}

void metrics_gauge(struct strbuf *sb, const char *name, const char *help,
		   const char *labels, double v)
{
	put_header(sb, name, help, "gauge");
	strbuf_printf(sb, "%s", name);
	put_labels(sb, labels, NULL);
	strbuf_putc(sb, ' ');
	put_double(sb, v);
	strbuf_putc(sb, '\n');
}

void metrics_hist(struct strbuf *sb, const char *name, const char *help,
		  const char *labels, const struct hist *h)
{
	uint64_t b[HIST_BUCKETS], total, cum = 0, sum_ns;
	char le[48];

	total = hist_snapshot(h, b);
	sum_ns = atomic_load_explicit((_Atomic uint64_t *)&h->sum_ns, memory_order_relaxed);
	put_header(sb, name, help, "histogram");
	/* Finite buckets: every bucket but the last (which also holds overflow). */
	for (unsigned i = 0; i < HIST_BUCKETS - 1; i++) {
		cum += b[i];
		snprintf(le, sizeof(le), "le=\"%.10g\"", (double)(1ull << i) / 1e9);
		strbuf_printf(sb, "%s_bucket", name);
		put_labels(sb, labels, le);
		strbuf_printf(sb, " %llu\n", (unsigned long long)cum);
	}
	strbuf_printf(sb, "%s_bucket", name);
	put_labels(sb, labels, "le=\"+Inf\"");
	strbuf_printf(sb, " %llu\n", (unsigned long long)total);
	strbuf_printf(sb, "%s_sum", name);
	put_labels(sb, labels, NULL);
	strbuf_printf(sb, " %.9f\n", (double)sum_ns / 1e9);
	strbuf_printf(sb, "%s_count", name);
	put_labels(sb, labels, NULL);
	strbuf_printf(sb, " %llu\n", (unsigned long long)total);
}
