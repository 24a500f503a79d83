// SPDX-License-Identifier: MIT
/*
 * Processes named by pid and start time (see proc.h): used by `disagg
 * up/down` for the daemons they start and by the compute agent for the
 * QEMUs that an earlier instance of it started.
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

int64_t proc_starttime(int64_t pid)
{
	char path[64], buf[1024], *p;
	_cleanup_close_ int fd = -1;
	ssize_t n;
	long long st = -1;

	if (pid <= 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return -EBADMSG;
	/* Fields after ")": 3 state ... 22 starttime. A zombie counts as gone. */
	if (p[1] == ' ' && p[2] == 'Z')
		return -ESRCH;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%lld", &st) != 1)
		return -EBADMSG;
	return st;
}

bool proc_alive(int64_t pid, int64_t starttime)
{
	int64_t st = proc_starttime(pid);

	return st >= 0 && (starttime <= 0 || st == starttime);
}
