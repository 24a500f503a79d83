/* SPDX-License-Identifier: MIT */
/*
 * How many file descriptors this process has open, for tests that check
 * that code under test closes what it receives or opens: the count taken
 * before and after must be the same.
 */
#ifndef DISAGG_TEST_FDS_H
#define DISAGG_TEST_FDS_H

#include <dirent.h>

static inline int test_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

#endif /* DISAGG_TEST_FDS_H */
