// SPDX-License-Identifier: MIT
/*
 * Unit test of the console tail parser (src/compute/vm/console.c): the
 * reason a VM's failure quotes from the guest's console (the last kernel
 * panic line, else the last line that is not empty) and the one-line tail
 * of QEMU's log, on texts and on files (missing, empty, longer than the
 * 32 KiB the parser reads).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "console.h"
#include "tap.h"

static char dir[] = "/tmp/console-XXXXXX";

static const char *reason_of(const char *text)
{
	static char out[256];
	char *t = strdup(text);

	console_parse_reason(t, out, sizeof(out));
	free(t);
	return out;
}

static void write_file(const char *path, const char *s, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, s, len) != (ssize_t)len)
		diag("cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void test_parse(void)
{
	char small[8];
	char *t;

	is_str(reason_of(""), "", "empty console: no reason");
	is_str(reason_of("\n\n\r\n"), "", "only line breaks: no reason");
	is_str(reason_of("one line"), "one line", "a single line without a break");
	is_str(reason_of("booting\nlast words\n\n"), "last words",
	       "no panic: the last line that is not empty");
	is_str(reason_of("a\r\nb\r\n"), "b", "CRLF line ends");
	is_str(reason_of("x\n[    1.0] Kernel panic - not syncing: VFS: no root\nCPU: 0\n---[ end ]\n"),
	       "Kernel panic - not syncing: VFS: no root", "the panic line, not what follows it");
	is_str(reason_of("Kernel panic - not syncing: first\nKernel panic - not syncing: second\nz\n"),
	       "Kernel panic - not syncing: second", "two panics: the last one");
	t = strdup("hello world, a long line\n");
	console_parse_reason(t, small, sizeof(small));
	is_str(small, "hello w", "a short buffer: cut and NUL-terminated");
	free(t);
}

static void test_files(void)
{
	char path[256], buf[512], *big;
	size_t n = 40000;

	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/missing.log", dir);
	strcpy(buf, "stale");
	console_reason(path, buf, sizeof(buf));
	is_str(buf, "", "a missing console: no reason");
	console_log_tail(path, buf, sizeof(buf));
	is_str(buf, "", "a missing log: empty tail");

	snprintf(path, sizeof(path), "%s/console.log", dir);
	write_file(path, "", 0);
	console_reason(path, buf, sizeof(buf));
	is_str(buf, "", "an empty console: no reason");

	/* A panic more than 32 KiB before the end is out of reach: the last line then. */
	big = malloc(n + 1);
	memset(big, 'a', n);
	memcpy(big, "Kernel panic - not syncing: early\n", 34);
	for (size_t i = 100; i < n; i += 100)
		big[i] = '\n';
	memcpy(big + n - 12, "\nlast line\n", 11);
	big[n - 1] = '\n';
	write_file(path, big, n);
	console_reason(path, buf, sizeof(buf));
	is_str(buf, "last line", "a panic 40 KB back is not read: the last line");
	memcpy(big + n - 200, "\nKernel panic - not syncing: late\n", 34);
	write_file(path, big, n);
	console_reason(path, buf, sizeof(buf));
	is_str(buf, "Kernel panic - not syncing: late", "a panic near the end is found");
	free(big);

	snprintf(path, sizeof(path), "%s/qemu.log", dir);
	write_file(path, "qemu: error one\nqemu: error two\n", 32);
	console_log_tail(path, buf, sizeof(buf));
	is_str(buf, "qemu: error one qemu: error two", "QEMU's log on one line, the last break gone");
	console_log_tail(path, buf, 11);
	is_str(buf, "error two", "only the last len - 1 bytes");
	console_file_tail(path, buf, 5);
	is_str(buf, "two\n", "console_file_tail: the last bytes, raw");
	unlink(path);
	snprintf(path, sizeof(path), "%s/console.log", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	test_parse();
	test_files();
	done_testing();
	return tap_exit();
}
