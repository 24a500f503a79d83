// SPDX-License-Identifier: MIT
/*
 * Socket helpers. See net.h.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int net_split_addr(const char *addr, char *ret_host, size_t hostlen, uint16_t *ret_port)
{
	const char *colon, *hs = addr, *he;
	char *end;
	unsigned long port;

	if (!addr || !*addr)
		return -EINVAL;
	if (addr[0] == '[') {
		he = strchr(addr, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		hs = addr + 1;
		colon = he + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		he = colon;
	}
	if ((size_t)(he - hs) + 1 > hostlen || he == hs)
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port > 65535)
		return -EINVAL;
	memcpy(ret_host, hs, (size_t)(he - hs));
	ret_host[he - hs] = '\0';
	*ret_port = (uint16_t)port;
	return 0;
}

static int resolve(const char *addr, bool passive, struct addrinfo **ret)
{
	char host[256], port_s[8];
	uint16_t port;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = passive ? AI_PASSIVE : 0,
	};
	int r;

	r = net_split_addr(addr, host, sizeof(host), &port);
	if (r < 0)
		return r;
	snprintf(port_s, sizeof(port_s), "%u", port);
	r = getaddrinfo(host, port_s, &hints, ret);
	if (r != 0)
		return r == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	return 0;
}

int net_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int net_set_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ? -errno : 0;
}

int net_listen_tcp(const char *addr, bool nonblock)
{
	struct addrinfo *ai = NULL;
	int r, last = -EADDRNOTAVAIL;

	r = resolve(addr, true, &ai);
	if (r < 0)
		return r;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		_cleanup_close_ int fd = -1;
		int one = 1;

		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC |
				(nonblock ? SOCK_NONBLOCK : 0), 0);
		if (fd < 0) {
			last = -errno;
			continue;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 512) < 0) {
			last = -errno;
			continue;
		}
		freeaddrinfo(ai);
		return TAKE_FD(fd);
	}
	freeaddrinfo(ai);
	return last;
}

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int err = 0, r;
	socklen_t elen = sizeof(err);

	if (timeout_ms < 0)
		return connect(fd, sa, len) < 0 ? -errno : 0;
	r = net_set_nonblock(fd, true);
	if (r < 0)
		return r;
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS)
			return -errno;
		do
			r = poll(&pfd, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			return -errno;
		if (err)
			return -err;
	}
	return net_set_nonblock(fd, false);
}

int net_connect_tcp(const char *addr, int timeout_ms)
{
	struct addrinfo *ai = NULL;
	int r, last = -EHOSTUNREACH;

	r = resolve(addr, false, &ai);
	if (r < 0)
		return r;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		_cleanup_close_ int fd = -1;

		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			last = -errno;
			continue;
		}
		r = connect_timeout(fd, a->ai_addr, a->ai_addrlen, timeout_ms);
		if (r < 0) {
			last = r;
			continue;
		}
		(void)net_set_nodelay(fd);
		freeaddrinfo(ai);
		return TAKE_FD(fd);
	}
	freeaddrinfo(ai);
	return last;
}

int net_local_addr(int fd, char *ret, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	uint16_t port;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(ret, len, "%s:%u", host, port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(ret, len, "[%s]:%u", host, port);
	} else {
		return -EAFNOSUPPORT;
	}
	return 0;
}

int net_read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int net_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int net_ms_left(uint64_t deadline_ns)
{
	uint64_t now = now_ns();

	if (now >= deadline_ns)
		return 0;
	return (int)((deadline_ns - now + 999999) / 1000000);
}

int net_wait_fd(int fd, short events, uint64_t deadline_ns)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int t = net_ms_left(deadline_ns), r;

		if (t == 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, t);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ETIMEDOUT;
		if (pfd.revents & POLLNVAL)
			return -EBADF;
		return 0;
	}
}

int net_connect_unix(const char *path, int timeout_ms, bool nonblock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline = now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err;

		if (fd < 0)
			return -errno;
		err = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
		if (err == EINPROGRESS || err == EAGAIN) {
			/* The listener's backlog is full: wait until it takes us. */
			err = -net_wait_fd(fd, POLLOUT, deadline);
		}
		if (err == 0 && !nonblock)
			err = -net_set_nonblock(fd, false);
		if (err == 0)
			return fd;
		close(fd);
		if ((err != ENOENT && err != ECONNREFUSED) || now_ns() >= deadline)
			return err == ENOENT || err == ECONNREFUSED ? -ETIMEDOUT : -err;
		usleep(10000);
	}
}

