/* SPDX-License-Identifier: MIT */
/*
 * Readiness and shutdown notices to the service manager (systemd's
 * Type=notify protocol): one datagram "READY=1" or "STOPPING=1" to the
 * UNIX socket named by $NOTIFY_SOCKET (a path, or an abstract name when it
 * starts with '@'). Nothing happens when NOTIFY_SOCKET is unset, so a
 * daemon calls these unconditionally.
 */
#ifndef DISAGG_NOTIFY_H
#define DISAGG_NOTIFY_H

/* Send `state` ("READY=1", "STOPPING=1", "STATUS=..."): 0 (also when unset) or -errno. */
int notify_send(const char *state);

/* The daemon serves requests now / is shutting down. Failures are logged at debug level. */
void notify_ready(void);
void notify_stopping(void);

#endif /* DISAGG_NOTIFY_H */
