/* SPDX-License-Identifier: MIT */
/*
 * The one form of QEMU migration URI the cluster uses, checked strictly:
 * "tcp:HOST:PORT", HOST a DNS name or IPv4 address ([A-Za-z0-9.-], not
 * starting with '-') or a bracketed IPv6 address, PORT 1 to 65535 in
 * decimal, nothing else (no options, no other transports: QEMU would run
 * an exec: URI as a command).
 */
#ifndef DISAGG_MIGURI_H
#define DISAGG_MIGURI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 0 with the host (brackets kept for IPv6) and port, or -EINVAL. */
int miguri_parse(const char *uri, char *ret_host, size_t hostlen, uint16_t *ret_port);
/* Is uri such a URI? */
bool miguri_valid(const char *uri);
/* "HOST:0" on the host part of a node's control address http ("HOST:PORT"). */
void miguri_listen(const char *http, char *buf, size_t len);
/*
 * A migration source's target: the port a destination answered (answered,
 * a strict tcp:HOST:PORT) on the host it registered (dst_http's), so that
 * a destination cannot send the VM anywhere else. 0 or -EINVAL.
 */
int miguri_target(const char *answered, const char *dst_http, char *buf, size_t len);

#endif /* DISAGG_MIGURI_H */
