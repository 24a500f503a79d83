/* SPDX-License-Identifier: MIT */
/*
 * QMP client: the QEMU Machine Protocol over a UNIX socket, with jansson.
 *
 * One `struct qmp` per QEMU. Calls are serialised by an internal mutex, so
 * any thread may use it. Commands carry an "id" and their answer is matched
 * by it; events that arrive meanwhile are queued (bounded) and can be
 * waited for by name with qmp_wait_event().
 *
 * Errors: -ETIMEDOUT when QEMU does not answer in time, -EPIPE when the
 * socket closed (QEMU exited), -EBADMSG on a malformed message, and -EIO
 * when QEMU answered with an error: qmp_last_error() then holds QEMU's
 * "class: desc" text until the next call on the same thread's behalf.
 */
#ifndef DISAGG_QMP_H
#define DISAGG_QMP_H

#include <jansson.h>

#include "macro.h"

struct qmp;

/* Connect, read the greeting and negotiate capabilities. */
int qmp_connect(const char *path, int timeout_ms, struct qmp **ret);
/* The same over a connected socket, which is the client's from here on (also on failure). */
int qmp_connect_fd(int fd, int timeout_ms, struct qmp **ret);
void qmp_close(struct qmp *q);      /* accepts NULL */
DEFINE_CLEANUP_FUNC(struct qmp, qmp_close)

/*
 * Execute `cmd` with `args` (a JSON object, or NULL; the reference is
 * stolen). On success *ret (if not NULL) gets a new reference to "return".
 */
int qmp_execute(struct qmp *q, const char *cmd, json_t *args, int timeout_ms, json_t **ret);
/* Like qmp_execute but with args built by json_pack(fmt, ...). */
int qmp_executef(struct qmp *q, int timeout_ms, json_t **ret, const char *cmd,
		 const char *fmt, ...);

/*
 * Wait for an event called `name` whose "data" contains the string member
 * `key` equal to `value` (key NULL: any). Queued events are searched first.
 * *ret_data (if not NULL) gets a new reference to the event's data.
 */
int qmp_wait_event(struct qmp *q, const char *name, const char *key, const char *value,
		   int timeout_ms, json_t **ret_data);
/* Drop queued events (e.g. before starting an operation). */
void qmp_clear_events(struct qmp *q);

/* QEMU's error text of the last failed command ("" if none). */
const char *qmp_last_error(struct qmp *q);

#endif /* DISAGG_QMP_H */
