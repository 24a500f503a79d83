// SPDX-License-Identifier: MIT
/*
 * Logging to stderr: one line per message, "LEVEL time prog: message".
 * Thread-safe (one fprintf per line, which stdio locks).
 */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum log_level cur_level = LOG_LVL_INFO;
static const char *prog = "disagg";

static const char *const level_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void log_init(const char *progname)
{
	const char *env = getenv("DISAGG_LOG");

	if (progname) {
		const char *slash = strrchr(progname, '/');
		prog = slash ? slash + 1 : progname;
	}
	if (env)
		(void)log_set_level_str(env);
}

int log_set_level_str(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			cur_level = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_set_level(enum log_level lvl)
{
	cur_level = lvl;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char buf[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (lvl > cur_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%02d:%02d:%02d.%03ld %-5s %s: %s\n", tm.tm_hour, tm.tm_min,
		tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl], prog, buf);
}
