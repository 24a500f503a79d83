// SPDX-License-Identifier: MIT
/*
 * Human output of the disagg command: aligned tables (columns sized to
 * their widest cell, two spaces apart, like `kubectl get`), sizes as
 * 512M/1.5G, durations and ages, indented JSON, tolerant JSON accessors,
 * and the progress display of long operations (a spinner with the elapsed
 * time when stderr is a terminal, plain lines otherwise).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "net.h"

/* ---- tables ---------------------------------------------------------------- */

void table_init(struct table *t, int ncols, const char *const *head)
{
	*t = (struct table){ .ncols = MIN(ncols, TABLE_MAX_COLS) };
	for (int i = 0; i < t->ncols; i++)
		t->head[i] = head[i];
}

int table_row(struct table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));

		if (!c)
			return -ENOMEM;
		t->cells = c;
		t->cap = cap;
	}
	for (int i = 0; i < t->ncols; i++) {
		char *s = strdup(cells[i] && cells[i][0] ? cells[i] : "-");

		if (!s) {
			while (i-- > 0)
				free(t->cells[t->nrows * t->ncols + i]);
			return -ENOMEM;
		}
		t->cells[t->nrows * t->ncols + i] = s;
	}
	t->nrows++;
	return 0;
}

int table_rowf(struct table *t, const char *fmt, ...)
{
	_cleanup_free_ char *line = NULL;
	const char *cells[TABLE_MAX_COLS] = { 0 };
	char *p, *save = NULL;
	va_list ap;
	int n = 0, r;

	va_start(ap, fmt);
	r = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	/* strsep keeps empty cells, which print as "-". */
	save = line;
	while ((p = strsep(&save, "\t")) && n < t->ncols)
		cells[n++] = p;
	return table_row(t, cells);
}

/* Display width of a UTF-8 string (code points; every cell is narrow). */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void table_print(const struct table *t)
{
	size_t w[TABLE_MAX_COLS];

	for (int c = 0; c < t->ncols; c++) {
		w[c] = width(t->head[c]);
		for (size_t r = 0; r < t->nrows; r++)
			w[c] = MAX(w[c], width(t->cells[r * t->ncols + c]));
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++) {
			const char *s = r == 0 ? t->head[c] : t->cells[(r - 1) * t->ncols + c];
			size_t pad = w[c] - width(s);
			bool last = c == t->ncols - 1;

			if (t->right[c] && r > 0)
				printf("%*s%s", (int)pad, "", s);
			else
				printf("%s%*s", s, last ? 0 : (int)pad, "");
			if (!last)
				fputs("  ", stdout);
		}
		fputc('\n', stdout);
	}
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

/* ---- sizes, durations, times ---------------------------------------------- */

void fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	double v = (double)bytes;
	int u = -1;

	while (v >= 1024 && u < (int)sizeof(units) - 2) {
		v /= 1024;
		u++;
	}
	if (u < 0) {
		snprintf(buf, len, "%" PRIu64, bytes);
		return;
	}
	/* One decimal when it says something: 1.5G, but 512M and 2G. */
	if (v < 100 && fabs(v - round(v)) >= 0.05)
		snprintf(buf, len, "%.1f%c", v, units[u]);
	else
		snprintf(buf, len, "%.0f%c", v, units[u]);
}

int parse_size(const char *s, uint64_t *ret)
{
	const char *p = s;
	char *end;
	double v;
	uint64_t mult = 1;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	/* Integers are taken exactly; decimals only with a unit. */
	errno = 0;
	unsigned long long iv = strtoull(p, &end, 10);
	bool integral = *end != '.';
	if (errno)
		return -ERANGE;
	if (!integral) {
		v = strtod(p, &end);
		if (end == p)
			return -EINVAL;
	} else
		v = (double)iv;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K': mult = 1ull << 10; end++; break;
	case 'M': mult = 1ull << 20; end++; break;
	case 'G': mult = 1ull << 30; end++; break;
	case 'T': mult = 1ull << 40; end++; break;
	default: return -EINVAL;
	}
	if (mult > 1) {
		if (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0)
			end += strlen(end);
	} else if (strcasecmp(end, "B") == 0) {
		end++;
	}
	if (*end)
		return -EINVAL;
	if (integral) {
		if (iv > UINT64_MAX / mult)
			return -ERANGE;
		*ret = iv * mult;
		return 0;
	}
	if (mult == 1)
		return -EINVAL; /* "1.5" bytes */
	v *= (double)mult;
	if (v >= 18446744073709551615.0 || v < 0)
		return -ERANGE;
	if (v != floor(v))
		return -EINVAL; /* not a whole number of bytes */
	*ret = (uint64_t)v;
	return 0;
}

void fmt_duration(double secs, char *buf, size_t len)
{
	uint64_t s;

	if (secs < 0)
		secs = 0;
	if (secs < 10 && secs != floor(secs)) {
		snprintf(buf, len, "%.1fs", secs);
		return;
	}
	s = (uint64_t)secs;
	if (s < 60)
		snprintf(buf, len, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%" PRIu64 "d%" PRIu64 "h", s / 86400, s / 3600 % 24);
}

int parse_time(const char *s, int64_t *ret)
{
	struct tm tm = { 0 };
	const char *end;

	if (!s)
		return -EINVAL;
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -EINVAL;
	if (*end == '.') /* fractions of a second */
		while (isdigit((unsigned char)*++end))
			;
	if (*end != 'Z' && *end != '\0' && strcmp(end, "+00:00") != 0)
		return -EINVAL;
	*ret = (int64_t)timegm(&tm);
	return 0;
}

void fmt_age(const char *rfc3339, char *buf, size_t len)
{
	int64_t t;

	if (parse_time(rfc3339, &t) < 0) {
		snprintf(buf, len, "-");
		return;
	}
	/* Ages are whole seconds: 3m12s, not 3m12.4s. */
	fmt_duration(floor((double)(time(NULL) - t)), buf, len);
}

void print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

int64_t jint(const json_t *o, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return dflt;
}

void jtext(const json_t *o, const char *key, char *buf, size_t len)
{
	json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_true(v))
		snprintf(buf, len, "yes");
	else if (json_is_false(v))
		snprintf(buf, len, "no");
	else
		snprintf(buf, len, "-");
}

/* ---- progress -------------------------------------------------------------- */

#define SPIN_INTERVAL_NS 100000000ull        /* 10 frames a second */
#define LINE_INTERVAL_NS 15000000000ull      /* "still waiting" lines when not a TTY */

void progress_start(struct progress *p, const char *label)
{
	*p = (struct progress){ .label = label, .start_ns = now_ns(), .tty = isatty(STDERR_FILENO),
				.active = true };
	p->last_line_ns = p->start_ns;
	if (p->tty)
		progress_tick(p, NULL);
	else
		fprintf(stderr, "%s ...\n", label);
}

double progress_elapsed(const struct progress *p)
{
	return (double)(now_ns() - p->start_ns) / 1e9;
}

void progress_tick(struct progress *p, const char *status)
{
	static const char frames[] = "|/-\\";
	uint64_t now = now_ns();
	char el[32];

	if (!p->active)
		return;
	fmt_duration(floor(progress_elapsed(p)), el, sizeof(el));
	if (p->tty) {
		if (p->last_ns && now - p->last_ns < SPIN_INTERVAL_NS)
			return;
		p->last_ns = now;
		fprintf(stderr, "\r\033[K%c %s %s%s%s", frames[p->frame++ % 4], p->label, el,
			status ? "  " : "", status ? status : "");
		fflush(stderr);
		return;
	}
	if (now - p->last_line_ns >= LINE_INTERVAL_NS) {
		p->last_line_ns = now;
		fprintf(stderr, "%s: still waiting (%s)%s%s\n", p->label, el, status ? ": " : "",
			status ? status : "");
	}
}

void progress_end(struct progress *p, bool ok, const char *note)
{
	char el[32];
	double secs = progress_elapsed(p);

	if (!p->active)
		return;
	p->active = false;
	if (secs < 10)
		snprintf(el, sizeof(el), "%.1fs", secs);
	else
		fmt_duration(secs, el, sizeof(el));
	if (p->tty)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "%s: %s %s%s%s%s\n", p->label, ok ? "done in" : "failed after", el,
		note ? " (" : "", note ? note : "", note ? ")" : "");
}
