// SPDX-License-Identifier: MIT
/*
 * What the host charges for the kernel mechanisms every fault uses, in
 * the same run as the pager (bench/pager/hostprobe.c): a system call, and
 * a wake-up round trip on one CPU between two processes and between two
 * threads of one process. A fault served by a memory node crosses to
 * another process and back; the raw baselines stay in one. Recorded so
 * that a change of machine (a paravirtualized guest kernel, page-table
 * isolation without PCID) shows in the results instead of in the pager's
 * figures alone. Not gated: they describe the host, not the code.
 */
#ifndef DISAGG_BENCH_HOSTPROBE_H
#define DISAGG_BENCH_HOSTPROBE_H

#include <stdbool.h>

struct host_probe {
	double syscall_ns;            /* getppid(), the median of batches */
	double pipe_rtt_proc_us;      /* one byte there and back over pipes, two processes */
	double pipe_rtt_thread_us;    /* the same between two threads of one process */
};

/* Fill *hp (pin: both sides on CPU 0, as --pin places the pager). 0 or -errno. */
int host_probe_run(struct host_probe *hp, bool pin);

#endif /* DISAGG_BENCH_HOSTPROBE_H */
