// SPDX-License-Identifier: MIT
/*
 * The bare kernel mechanisms under the pager, measured in the same run as
 * the pager (bench/pager/baseline.c):
 *   raw userfaultfd floor: a handler thread that answers every MISSING
 *   fault at once with UFFDIO_COPY of one ready page (no page table, no
 *   budget, no cache state): the least a userspace fault can cost here;
 *   loopback round trip: a blocking TCP request/reply with the frame sizes
 *   of a memory node fetch, against an echo thread.
 * Both use the caller's CPU placement (pin: the handler or server thread
 * on CPU 0 with the caller, like --pin of the pager's fault thread).
 */
#ifndef DISAGG_BENCH_BASELINE_H
#define DISAGG_BENCH_BASELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Median µs of n first-touch reads, one in each of n random distinct
 * 16-page clusters of a `len`-byte shared memfd mapping served by the raw
 * handler (the access pattern of the pager's cold-fault workload); < 0:
 * -errno.
 */
double baseline_uffd_fault_us(uint64_t len, unsigned n, bool pin);

/*
 * Median µs of n blocking round trips over TCP loopback: `req` bytes out,
 * `reply` bytes back; < 0: -errno.
 */
double baseline_tcp_rtt_us(size_t req, size_t reply, unsigned n, bool pin);

#endif /* DISAGG_BENCH_BASELINE_H */
