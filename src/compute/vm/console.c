// SPDX-License-Identifier: MIT
/*
 * The console tail parser: what a VM's failure reason quotes from the
 * guest's serial console (a kernel panic, or the last words) and from
 * QEMU's own log (its error message).
 */
#include "console.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

#define CONSOLE_TAIL 32768

void console_file_tail(const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		return;
	n = pread(fd, buf, len - 1, size > (off_t)len - 1 ? size - (off_t)len + 1 : 0);
	buf[n > 0 ? n : 0] = '\0';
}

void console_parse_reason(char *text, char *buf, size_t len)
{
	static const char panic[] = "Kernel panic - not syncing:";
	char *line = NULL, *p;

	for (p = strstr(text, panic); p; p = strstr(p + 1, panic))
		line = p;
	if (!line) {
		for (p = text + strlen(text); p > text && (p[-1] == '\n' || p[-1] == '\r'); p--)
			p[-1] = '\0';
		line = strrchr(text, '\n');
		line = line ? line + 1 : text;
	}
	line[strcspn(line, "\r\n")] = '\0';
	snprintf(buf, len, "%s", line);
}

void console_reason(const char *path, char *buf, size_t len)
{
	_cleanup_free_ char *tail = malloc(CONSOLE_TAIL);

	buf[0] = '\0';
	if (!tail)
		return;
	console_file_tail(path, tail, CONSOLE_TAIL);
	console_parse_reason(tail, buf, len);
}

void console_log_tail(const char *path, char *buf, size_t len)
{
	console_file_tail(path, buf, len);
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = p[1] ? ' ' : '\0';
}
