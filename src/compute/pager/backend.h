// SPDX-License-Identifier: MIT
/*
 * Backends (struct pager_backend_ops, types.h) and the pager's retry loop
 * over a backend connection, shared by the source (fetches, source.c) and
 * the sink (write-backs, sink.c).
 */
#ifndef DISAGG_PAGER_BACKEND_H
#define DISAGG_PAGER_BACKEND_H

#include "types.h"

void pager_backend_free(struct pager_backend *be);

/*
 * fn(conn, arg) on *connp, connecting first if *connp is NULL. Failures
 * are retried with a reset connection and a back-off from 2 to 200 ms for
 * cfg.fail_timeout_ms, except final ones: a bad or expired grant, missing
 * rights, out of range, -ECANCELED (fn's own: region removed, section
 * fenced), and the pager stopping. Returns fn's result or the last error.
 */
int pager_retry_io(struct pager *p, void **connp, int (*fn)(void *conn, void *arg), void *arg);

#endif /* DISAGG_PAGER_BACKEND_H */
