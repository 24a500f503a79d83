/* SPDX-License-Identifier: MIT */
/*
 * Logging. Daemons log to stderr with a level, a timestamp and the program
 * name; the level comes from --log-level or DISAGG_LOG (error, warn, info,
 * debug). Library code logs at debug level at most and reports failures
 * through -errno return values; daemons log once, at the boundary.
 */
#ifndef DISAGG_LOG_H
#define DISAGG_LOG_H

#include "macro.h"

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN  = 1,
	LOG_LVL_INFO  = 2,
	LOG_LVL_DEBUG = 3,
};

void log_init(const char *progname);
int log_set_level_str(const char *s);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
void log_msg(enum log_level lvl, const char *fmt, ...) _printf_(2, 3);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                         \
	do {                                                   \
		if (_unlikely_(log_get_level() >= LOG_LVL_DEBUG)) \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);   \
	} while (0)

#endif /* DISAGG_LOG_H */
