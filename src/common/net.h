/* SPDX-License-Identifier: MIT */
/*
 * TCP and UNIX socket helpers. Addresses are "host:port" strings
 * ("127.0.0.1:7000", "[::1]:7000", "localhost:0"). Every fd is O_CLOEXEC.
 */
#ifndef DISAGG_NET_H
#define DISAGG_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Split "host:port" (host may be [v6]) into its parts. */
int net_split_addr(const char *addr, char *ret_host, size_t hostlen, uint16_t *ret_port);
/* Listen on addr (TCP, SO_REUSEADDR). `nonblock` sets O_NONBLOCK. */
int net_listen_tcp(const char *addr, bool nonblock);
/* Connect to addr with a timeout in ms (<0: none); returns a blocking fd with TCP_NODELAY. */
int net_connect_tcp(const char *addr, int timeout_ms);
/* The "host:port" a socket is bound to (useful after listening on port 0). */
int net_local_addr(int fd, char *ret, size_t len);
/* Per-socket tuning. */
int net_set_nonblock(int fd, bool on);
int net_set_nodelay(int fd);
/* Read or write exactly len bytes on a blocking fd (EINTR-safe); -EPIPE on EOF. */
int net_read_full(int fd, void *buf, size_t len);
int net_write_full(int fd, const void *buf, size_t len);
/*
 * Deadlines (CLOCK_MONOTONIC ns): ms left, rounded up (0: passed), for
 * poll(); and waiting for `events` on fd until then: 0 (readable/writable,
 * or HUP/ERR: the I/O call tells), -ETIMEDOUT, -EBADF, -errno.
 */
int net_ms_left(uint64_t deadline_ns);
int net_wait_fd(int fd, short events, uint64_t deadline_ns);
/*
 * Connect to a UNIX stream socket, retrying while it does not exist yet or
 * refuses (a process creating it a moment after it starts), for up to
 * timeout_ms: the fd (non-blocking if asked), -ETIMEDOUT, -ENAMETOOLONG,
 * -errno.
 */
int net_connect_unix(const char *path, int timeout_ms, bool nonblock);
/* Monotonic clock in ns and µs. */
uint64_t now_ns(void);
static inline uint64_t now_us(void)
{
	return now_ns() / 1000;
}

#endif /* DISAGG_NET_H */
