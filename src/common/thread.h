/* SPDX-License-Identifier: MIT */
/*
 * A daemon's own threads: a name that `top -H`, `ps -L` and `perf sched`
 * show, and a short scheduler slice for the threads that answer another
 * node while it waits (docs/operations.md, "Threads and scheduling").
 */
#ifndef DISAGG_THREAD_H
#define DISAGG_THREAD_H

#include <stdint.h>

/* The slice of a thread another node waits on: 100 us, the kernel's least. */
#define THREAD_QUICK_SLICE_NS 100000ull

/* Name the calling thread (at most 15 characters are kept). */
void thread_name(const char *name);

/*
 * Ask the kernel for a slice of slice_ns for the calling thread under the
 * fair scheduler (sched_setattr's sched_runtime, EEVDF, Linux 6.12 and
 * later): a thread woken with a shorter slice than the one running runs
 * first, instead of waiting up to a tick behind a busy thread (a spinning
 * vCPU). Its share of the CPU does not change. Nice and policy are kept; a
 * thread under a real-time policy is left alone. 0 or -errno; a kernel
 * without custom slices ignores the request (0 too), which costs nothing.
 * The environment's DISAGG_QUICK_SLICE_US, when set, replaces slice_ns
 * (0: ask for nothing, the kernel's default slice; 100-100000 us).
 */
int thread_quick(uint64_t slice_ns);

/* Both, at the start of a thread: its name, and a quick slice unless 0. */
static inline void thread_start(const char *name, uint64_t quick_slice_ns)
{
	thread_name(name);
	if (quick_slice_ns)
		(void)thread_quick(quick_slice_ns);
}

#endif /* DISAGG_THREAD_H */
