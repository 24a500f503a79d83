// SPDX-License-Identifier: MIT
/*
 * Unit test of src/common/thread.c: a thread's name; the quick slice as
 * the kernel reads it back (sched_getattr), with DISAGG_QUICK_SLICE_US
 * changing it, turning it off, and ignored when it is not a number of
 * microseconds up to 100 ms; nice is kept; a real-time thread is left
 * alone. On a kernel without custom slices (before 6.12) the slice checks
 * are skipped: the request is accepted and has no effect there.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tap.h"
#include "thread.h"

struct attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

static struct attr now_attr(void)
{
	struct attr a;

	memset(&a, 0, sizeof(a));
	if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0) < 0)
		a.size = 0;
	return a;
}

static uint64_t slice_with(const char *env, uint64_t ask, int *ret)
{
	if (env)
		setenv("DISAGG_QUICK_SLICE_US", env, 1);
	else
		unsetenv("DISAGG_QUICK_SLICE_US");
	*ret = thread_quick(ask);
	return now_attr().runtime;
}

static void *quick_main(void *arg)
{
	uint64_t dflt = now_attr().runtime, got;
	char name[16] = "";
	int r;

	(void)arg;
	thread_start("a-name-longer-than-15", 0);
	pthread_getname_np(pthread_self(), name, sizeof(name));
	is_str(name, "a-name-longer-t", "the name, cut to 15 characters");
	is((long long)now_attr().runtime, (long long)dflt, "no slice asked: the default (%llu ns)",
	   (unsigned long long)dflt);

	got = slice_with(NULL, THREAD_QUICK_SLICE_NS, &r);
	is(r, 0, "a quick slice asked for");
	if (got != THREAD_QUICK_SLICE_NS) {
		skip("this kernel has no custom slices (before 6.12)");
		return NULL;
	}
	ok(1, "the kernel reads back %llu ns", (unsigned long long)got);
	is((long long)slice_with("500", THREAD_QUICK_SLICE_NS, &r), 500000ll,
	   "DISAGG_QUICK_SLICE_US=500: 500 us");
	is((long long)slice_with("abc", 200000, &r), 200000ll, "not a number: the caller's slice");
	is((long long)slice_with("200000", 300000, &r), 300000ll,
	   "over 100 ms: the caller's slice");
	slice_with(NULL, 0, &r);
	is((long long)slice_with("0", THREAD_QUICK_SLICE_NS, &r), 300000ll,
	   "DISAGG_QUICK_SLICE_US=0: nothing asked, the slice stays as it was");
	unsetenv("DISAGG_QUICK_SLICE_US");
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 5) == 0) {
		thread_quick(THREAD_QUICK_SLICE_NS);
		is(now_attr().nice, 5, "nice is kept");
	} else {
		skip("setpriority failed");
	}
	return NULL;
}

static void *rt_main(void *arg)
{
	struct sched_param sp = { .sched_priority = 1 };

	(void)arg;
	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) != 0) {
		skip("no real-time policy here (not root)");
		return NULL;
	}
	is(thread_quick(THREAD_QUICK_SLICE_NS), 0, "a real-time thread: nothing to do");
	is((int)now_attr().policy, SCHED_FIFO, "  and it stays SCHED_FIFO");
	return NULL;
}

int main(void)
{
	pthread_t t;

	pthread_create(&t, NULL, quick_main, NULL);
	pthread_join(t, NULL);
	pthread_create(&t, NULL, rt_main, NULL);
	pthread_join(t, NULL);
	done_testing();
	return tap_exit();
}
