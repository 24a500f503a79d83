// SPDX-License-Identifier: MIT
#include "thread.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct sched_attr of the kernel's ABI (glibc 2.36 does not declare it). */
struct thread_sched_attr {
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t sched_util_min, sched_util_max;
};

void thread_name(const char *name)
{
	char n[16];

	snprintf(n, sizeof(n), "%s", name);
	(void)pthread_setname_np(pthread_self(), n);
}

/* DISAGG_QUICK_SLICE_US overrides the slice; 0 keeps the kernel's default. */
static uint64_t slice_override(uint64_t slice_ns)
{
	const char *e = getenv("DISAGG_QUICK_SLICE_US");
	char *end;
	unsigned long long us;

	if (!e || !*e)
		return slice_ns;
	errno = 0;
	us = strtoull(e, &end, 10);
	if (errno || *end || us > 100000)
		return slice_ns;   /* not a number of microseconds up to 100 ms: the default */
	return us * 1000ull;
}

int thread_quick(uint64_t slice_ns)
{
	struct thread_sched_attr a;

	slice_ns = slice_override(slice_ns);
	if (!slice_ns)
		return 0;
	memset(&a, 0, sizeof(a));
	if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0) < 0)
		return -errno;
	if (a.sched_policy != SCHED_OTHER && a.sched_policy != SCHED_BATCH)
		return 0;
	a.size = sizeof(a);
	a.sched_flags = 0;
	a.sched_runtime = slice_ns;
	if (syscall(SYS_sched_setattr, 0, &a, 0) < 0)
		return -errno;
	return 0;
}
