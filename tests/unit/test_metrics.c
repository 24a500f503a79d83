// SPDX-License-Identifier: MIT
/*
 * Unit test of src/common/metrics.c: histogram bucket placement, quantiles,
 * merging, concurrent observation, the strbuf, and the Prometheus text
 * output, which is parsed back line by line (HELP/TYPE once, label
 * escaping, cumulative le buckets in seconds, +Inf == _count, _sum).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "tap.h"

static uint64_t bucket_of(uint64_t v)
{
	struct hist h = { 0 };

	hist_observe(&h, v);
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		if (atomic_load(&h.buckets[i]))
			return i;
	return 999;
}

static void *observer(void *arg)
{
	struct hist *h = arg;

	for (uint64_t i = 0; i < 100000; i++)
		hist_observe(h, i);
	return NULL;
}

/* Count lines of `text` that start with `prefix`. */
static int count_lines(const char *text, const char *prefix)
{
	int n = 0;
	size_t pl = strlen(prefix);

	for (const char *p = text; p && *p;) {
		if (strncmp(p, prefix, pl) == 0)
			n++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return n;
}

/* Value of the first line starting with `prefix` followed by a space. */
static double value_of(const char *text, const char *prefix)
{
	size_t pl = strlen(prefix);

	for (const char *p = text; p && *p;) {
		if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ')
			return strtod(p + pl + 1, NULL);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NAN;
}

/* Parse the histogram `name` with `lbl` ("" or `k="v",`): buckets must be cumulative. */
static bool hist_well_formed(const char *text, const char *name, uint64_t *ret_inf)
{
	char prefix[128];
	double prev_le = -1, prev_v = -1;
	int n = 0;

	snprintf(prefix, sizeof(prefix), "%s_bucket{", name);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, prefix, strlen(prefix)) == 0) {
			const char *le = strstr(p, "le=\"");
			const char *end = strchr(p, '\n');
			const char *sp = end;
			double lev, v;

			if (!le || !end)
				return false;
			while (sp > p && sp[-1] != ' ')
				sp--;
			lev = strncmp(le + 4, "+Inf\"", 5) == 0 ? INFINITY : strtod(le + 4, NULL);
			v = strtod(sp, NULL);
			if (!(lev > prev_le) || v < prev_v)
				return false;
			prev_le = lev;
			prev_v = v;
			n++;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	*ret_inf = (uint64_t)prev_v;
	return n == HIST_BUCKETS && isinf(prev_le);
}

int main(void)
{
	static struct hist h, h2;
	struct strbuf sb;
	char *out;
	uint64_t inf = 0;

	plan(52);

	/* Buckets: i counts values < 2^i. */
	is(bucket_of(0), 0, "0 -> bucket 0");
	is(bucket_of(1), 1, "1 -> bucket 1");
	is(bucket_of(2), 2, "2 -> bucket 2");
	is(bucket_of(3), 2, "3 -> bucket 2");
	is(bucket_of(4), 3, "4 -> bucket 3");
	is(bucket_of(1023), 10, "1023 -> bucket 10");
	is(bucket_of(1024), 11, "1024 -> bucket 11");
	is(bucket_of((1ull << 34) - 1), 34, "2^34-1 -> bucket 34");
	is(bucket_of(1ull << 34), 35, "2^34 -> bucket 35 (last)");
	is(bucket_of(UINT64_MAX), HIST_BUCKETS - 1, "huge values clamp to the last bucket");

	/* Quantiles. */
	is(hist_quantile(&h, 0.5), 0, "empty histogram: quantile 0");
	for (int i = 0; i < 90; i++)
		hist_observe(&h, 1000);          /* bucket 10, bound 1024 */
	for (int i = 0; i < 10; i++)
		hist_observe(&h, 1000000);       /* bucket 20, bound 1048576 */
	is(atomic_load(&h.count), 100, "count");
	is(atomic_load(&h.sum_ns), 90 * 1000 + 10 * 1000000, "sum");
	is(hist_quantile(&h, 0.5), 1024, "p50 = upper bound of its bucket");
	is(hist_quantile(&h, 0.9), 1024, "p90 still in the low bucket");
	is(hist_quantile(&h, 0.91), 1048576, "p91 in the high bucket");
	is(hist_quantile(&h, 1.0), 1048576, "p100");
	is(hist_quantile(&h, 0.0), 1024, "p0 = lowest non-empty bucket");
	is(hist_quantile(&h, 7.0), 1048576, "q > 1 clamps");
	is(hist_quantile(&h, NAN), 1024, "NaN acts as 0");

	/* Merge. */
	hist_merge(&h2, &h);
	hist_merge(&h2, &h);
	is(atomic_load(&h2.count), 200, "merge adds counts");
	is(atomic_load(&h2.sum_ns), 2 * (90 * 1000 + 10 * 1000000), "merge adds sums");
	is(atomic_load(&h2.buckets[10]), 180, "merge adds buckets");

	/* Concurrent observers lose nothing. */
	{
		static struct hist hc;
		pthread_t t[4];
		uint64_t total = 0;

		for (int i = 0; i < 4; i++)
			pthread_create(&t[i], NULL, observer, &hc);
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
		for (unsigned i = 0; i < HIST_BUCKETS; i++)
			total += atomic_load(&hc.buckets[i]);
		is(atomic_load(&hc.count), 400000, "4 threads: count");
		is(total, 400000, "4 threads: bucket total");
		is(atomic_load(&hc.sum_ns), 4ull * (99999ull * 100000 / 2), "4 threads: sum");
	}

	/* strbuf. */
	strbuf_init(&sb);
	out = strbuf_steal(&sb);
	is_str(out, "", "empty strbuf steals as \"\"");
	free(out);
	for (int i = 0; i < 1000; i++)
		strbuf_printf(&sb, "%04d,", i);
	is(sb.len, 5000, "strbuf grows");
	ok(strncmp(sb.buf + 4995, "0999,", 5) == 0 && sb.buf[5000] == '\0', "strbuf content");
	out = strbuf_steal(&sb);
	ok(out && sb.buf == NULL && sb.len == 0, "steal resets");
	free(out);
	{
		/* Binary bytes (a NUL inside), kept NUL-terminated past them. */
		static const uint8_t bin[6] = { 'a', 0, 0xff, 'b', 0, 'c' };

		ok(strbuf_append(&sb, bin, sizeof(bin)) == 0, "strbuf_append");
		for (int i = 1; i < 1000; i++)
			strbuf_append(&sb, bin, sizeof(bin));
		is(sb.len, 6000, "strbuf_append grows");
		ok(memcmp(sb.buf + 5994, bin, 6) == 0 && sb.buf[6000] == '\0',
		   "strbuf_append content and NUL");
		free(strbuf_steal(&sb));
	}
	sb.err = -ENOMEM;
	ok(strbuf_append(&sb, "x", 1) == -ENOMEM, "strbuf_append: sticky error");
	ok(strbuf_printf(&sb, "x") < 0 && strbuf_steal(&sb) == NULL, "sticky error: steal gives NULL");
	strbuf_free(&sb);
	strbuf_free(NULL);

	/* Prometheus text. */
	strbuf_init(&sb);
	metrics_counter(&sb, "dsg_requests_total", "Requests served.\nSecond \\ line",
			"op=\"read\"", 42);
	metrics_counter(&sb, "dsg_requests_total", NULL, "op=\"wr\"ite\",peer=\"a\\b\nc\"", 7);
	metrics_gauge(&sb, "dsg_ratio", "A ratio.", "", 0.25);
	metrics_gauge(&sb, "dsg_tenth", "A tenth.", "", 0.1);
	metrics_gauge(&sb, "dsg_third", "A third.", "", 1.0 / 3);
	metrics_gauge(&sb, "dsg_nan", "Not a number.", NULL, NAN);
	metrics_gauge(&sb, "dsg_inf", "Infinite.", "", -INFINITY);
	metrics_hist(&sb, "dsg_latency_seconds", "Latency.", "op=\"read\"", &h);
	metrics_hist(&sb, "dsg_empty_seconds", "Empty.", "", &h2);
	metrics_counter(&sb, "dsg_bad_labels", "Bad labels.", "no equals sign", 1);
	out = strbuf_steal(&sb);
	ok(out != NULL, "rendered");
	if (!out)
		return tap_exit();
	diag("output starts:\n%.600s", out);

	is(count_lines(out, "# HELP dsg_requests_total "), 1, "HELP once per name");
	is(count_lines(out, "# TYPE dsg_requests_total counter"), 1, "TYPE counter once");
	ok(strstr(out, "# HELP dsg_requests_total Requests served.\\nSecond \\\\ line\n") != NULL,
	   "HELP escapes newline and backslash");
	is(value_of(out, "dsg_requests_total{op=\"read\"}"), 42, "counter value");
	is(value_of(out, "dsg_requests_total{op=\"wr\\\"ite\",peer=\"a\\\\b\\nc\"}"), 7,
	   "label values escaped (quote, backslash, newline)");
	is(value_of(out, "dsg_ratio") * 100, 25, "gauge without labels has no braces");
	ok(strstr(out, "\ndsg_tenth 0.1\n") != NULL, "gauge uses the shortest exact form");
	ok(value_of(out, "dsg_third") == 1.0 / 3, "gauge value reads back exactly");
	ok(strstr(out, "\ndsg_nan NaN\n") && strstr(out, "\ndsg_inf -Inf\n"), "NaN and -Inf spelled as Prometheus does");
	is(count_lines(out, "# TYPE dsg_latency_seconds histogram"), 1, "TYPE histogram");
	ok(hist_well_formed(out, "dsg_latency_seconds", &inf), "buckets cumulative, le increasing, +Inf last");
	is(inf, 100, "+Inf bucket == count");
	is(value_of(out, "dsg_latency_seconds_count{op=\"read\"}"), 100, "_count");
	ok(fabs(value_of(out, "dsg_latency_seconds_sum{op=\"read\"}") - 0.01009) < 1e-9, "_sum in seconds");
	is(value_of(out, "dsg_latency_seconds_bucket{op=\"read\",le=\"1.024e-06\"}"), 90,
	   "le=1.024e-06 bucket holds the 1 µs values");
	ok(strstr(out, "dsg_bad_labels{labels=\"no equals sign\"} 1\n") != NULL,
	   "unparseable label text is kept, quoted, in one label");
	free(out);

	return tap_exit();
}
