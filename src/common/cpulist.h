/* SPDX-License-Identifier: MIT */
/*
 * CPU lists as the kernel and taskset(1) write them ("0-3,8,10-11"): parse
 * into a cpu_set_t, format back, and check against the CPUs this process
 * may run on (sched_getaffinity). For the daemons' CPU placement options
 * (--vcpu-cpus, --housekeeping-cpus, --cpus).
 */
#ifndef DISAGG_CPULIST_H
#define DISAGG_CPULIST_H

#include <sched.h>     /* cpu_set_t: _GNU_SOURCE (meson.build) */
#include <stddef.h>

/*
 * "N", "N-M" and commas between them, ascending or not, no blanks: 0, or
 * -EINVAL (malformed, empty, a range backwards) or -ERANGE (a CPU at or
 * above CPU_SETSIZE).
 */
int cpulist_parse(const char *s, cpu_set_t *set);
/* The shortest list ("0-3,8"); "" for an empty set. -ENOBUFS if it does not fit. */
int cpulist_format(const cpu_set_t *set, char *buf, size_t len);
/*
 * A command-line option's CPU list: parsed, nonempty and within this
 * process's affinity. 0, or -EINVAL after logging "invalid --NAME 'ARG':
 * why".
 */
int opt_cpus(const char *name, const char *arg, cpu_set_t *ret);

#endif /* DISAGG_CPULIST_H */
