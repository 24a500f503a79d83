// SPDX-License-Identifier: MIT
/*
 * The helpers every part of disagg-guest shares (guestutil.h): answering on the
 * host channel, the clock, sysfs files, strict number parsing.
 */
#include "guestutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int chan = -1;

void guest_set_channel(int fd)
{
	chan = fd;
}

void guest_reply(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t w = write(chan, buf + off, (size_t)(n - off));

		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return;
		}
		off += (int)w;
	}
}

uint64_t guest_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

unsigned long long guest_ms_since(uint64_t t0)
{
	return (unsigned long long)((guest_now_ns() - t0) / 1000000);
}

int guest_read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	return 0;
}

int guest_write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n < 0 ? -errno : 0;
}

int guest_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	bool hex = s && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	unsigned long long v;
	char *end;

	if (!s || !isxdigit((unsigned char)s[hex ? 2 : 0]) || (!hex && !isdigit((unsigned char)s[0])))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, hex ? 16 : 10); /* never octal: 010 is ten */
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}
