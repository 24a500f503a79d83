/* SPDX-License-Identifier: MIT */
/*
 * Minimal TAP (Test Anything Protocol) producer for the unit tests.
 *
 *     plan(3);                 // or call done_testing() at the end
 *     ok(x == 1, "x is one");
 *     is(r, 0, "call succeeds");
 *     is_str(s, "abc", "string");
 *     diag("note: %d", v);
 *     return tap_exit();       // 0 if every test passed and the plan held
 *
 * Output goes to stdout ("ok N - name" / "not ok N - name"); diagnostics to
 * stdout as "# ..." lines, which meson shows in the test log.
 */
#ifndef DISAGG_TAP_H
#define DISAGG_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_planned = -1;
static int tap_run;
static int tap_failed;

static inline void plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline void plan_skip_all(const char *reason)
{
	printf("1..0 # SKIP %s\n", reason);
	fflush(stdout);
}

__attribute__((format(printf, 1, 2))) static inline void diag(const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* Every line of a multi-line message gets its own "# ". */
	for (char *line = msg, *nl; line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		printf("# %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
	}
	free(msg);
	fflush(stdout);
}

__attribute__((format(printf, 2, 3))) static inline bool ok_at(bool cond, const char *fmt, ...)
{
	va_list ap;

	tap_run++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) ok_at(!!(cond), __VA_ARGS__)

/* Integers (compared as long long). */
#define is(got, want, ...)                                                       \
	({                                                                       \
		long long _g = (long long)(got), _w = (long long)(want);         \
		bool _r = ok_at(_g == _w, __VA_ARGS__);                          \
		if (!_r)                                                         \
			diag("  %s:%d: got %lld, want %lld", __FILE__, __LINE__, \
			     _g, _w);                                            \
		_r;                                                              \
	})

#define is_str(got, want, ...)                                                    \
	({                                                                        \
		const char *_g = (got), *_w = (want);                             \
		bool _r = ok_at(_g && _w && strcmp(_g, _w) == 0, __VA_ARGS__);    \
		if (!_r)                                                          \
			diag("  %s:%d: got \"%s\", want \"%s\"", __FILE__, __LINE__, \
			     _g ? _g : "(null)", _w ? _w : "(null)");             \
		_r;                                                               \
	})

static inline void skip(const char *reason)
{
	tap_run++;
	printf("ok %d # SKIP %s\n", tap_run, reason);
	fflush(stdout);
}

static inline void done_testing(void)
{
	if (tap_planned < 0) {
		tap_planned = tap_run;
		printf("1..%d\n", tap_run);
		fflush(stdout);
	}
}

/* Exit status: 0 when every test passed and as many ran as planned. */
static inline int tap_exit(void)
{
	if (tap_planned >= 0 && tap_planned != tap_run) {
		diag("planned %d tests but ran %d", tap_planned, tap_run);
		return 1;
	}
	if (tap_failed)
		diag("failed %d of %d tests", tap_failed, tap_run);
	return tap_failed ? 1 : 0;
}

#endif /* DISAGG_TAP_H */
