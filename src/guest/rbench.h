/* SPDX-License-Identifier: MIT */
/*
 * Shared-region benchmark jobs (rbench.c), run as background jobs (rjob.h):
 *
 *   RPINGPONG REGION ROLE ITERS   the word at offset 8192 goes 0, 1, 2, ...:
 *                                 role 0 writes the odd values, role 1 the
 *                                 even ones, each after seeing the one
 *                                 before; result rtt_us= (one round: two
 *                                 hand-overs of the page) ms=
 *   RTOUCH REGION FIRST PAGES     reads one word of each page from FIRST on;
 *                                 result us_per_page= ms=
 *   RREADBW TARGET MB ROUNDS THREADS
 *                                 THREADS threads read MB of TARGET (a region,
 *                                 or "ram": memory of this process) ROUNDS
 *                                 times after one warm-up pass; result
 *                                 MBps= (all threads together) ms=
 */
#ifndef DISAGG_GUEST_RBENCH_H
#define DISAGG_GUEST_RBENCH_H

#include "guestutil.h"

extern const struct guest_cmd rbench_cmds[];

#endif
