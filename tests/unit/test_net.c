// SPDX-License-Identifier: MIT
/*
 * Unit test of the deadline and UNIX-socket helpers in src/common/net.c:
 * net_ms_left rounding, net_wait_fd (timeout, readable, closed fd) and
 * net_connect_unix (a socket that appears late, never appears, a path too
 * long, blocking or not as asked).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"
#include "tap.h"

static char path[108];

static int listen_unix(const char *p)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
		return -1;
	return fd;
}

static void *late_listener(void *arg)
{
	usleep(150000);
	*(int *)arg = listen_unix(path);
	return NULL;
}

int main(void)
{
	char longp[200];
	int sv[2], fd, lfd = -1;
	uint64_t t0;
	pthread_t th;

	ok(net_ms_left(now_ns() - 1) == 0, "a deadline passed: 0 ms left");
	{
		/* Bound the true time left by clock reads around the call. */
		uint64_t d = now_ns() + 1500000, a = now_ns();
		int l = net_ms_left(d);
		uint64_t b = now_ns();
		int hi = (int)((d - a + 999999) / 1000000), lo = b >= d ? 0 : (int)((d - b + 999999) / 1000000);

		ok(l >= lo && l <= hi, "1.5 ms left rounds up (%d, within %d..%d)", l, lo, hi);
	}

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 1;
	t0 = now_ns();
	ok(net_wait_fd(sv[0], POLLIN, now_ns() + 30000000) == -ETIMEDOUT &&
	   now_ns() - t0 >= 25000000, "nothing to read: -ETIMEDOUT after the deadline");
	ok(write(sv[1], "x", 1) == 1 && net_wait_fd(sv[0], POLLIN, now_ns() + 1000000000) == 0,
	   "readable: 0");
	close(sv[0]);
	close(sv[1]);
	ok(net_wait_fd(sv[0], POLLIN, now_ns() + 1000000000) == -EBADF, "closed fd: -EBADF");

	snprintf(path, sizeof(path), "/tmp/disagg-test-net-%d.sock", (int)getpid());
	unlink(path);
	t0 = now_ns();
	ok(net_connect_unix(path, 50, false) == -ETIMEDOUT && now_ns() - t0 >= 40000000,
	   "no such socket: -ETIMEDOUT after the timeout");
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	ok(net_connect_unix(longp, 50, false) == -ENAMETOOLONG, "path too long: -ENAMETOOLONG");

	pthread_create(&th, NULL, late_listener, &lfd);
	fd = net_connect_unix(path, 5000, false);
	pthread_join(th, NULL);
	ok(fd >= 0 && lfd >= 0, "a socket created 150 ms later: connected (%d)", fd);
	ok(fd >= 0 && !(fcntl(fd, F_GETFL) & O_NONBLOCK), "blocking as asked");
	if (fd >= 0)
		close(fd);
	fd = net_connect_unix(path, 1000, true);
	ok(fd >= 0 && (fcntl(fd, F_GETFL) & O_NONBLOCK), "non-blocking as asked");
	if (fd >= 0)
		close(fd);
	close(lfd);
	unlink(path);
	done_testing();
	return tap_exit();
}
