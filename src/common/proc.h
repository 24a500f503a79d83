/* SPDX-License-Identifier: MIT */
/*
 * Processes by pid, safely: a pid can be reused once its process is gone,
 * so a process is named by its pid and its start time (field 22 of
 * /proc/PID/stat, clock ticks since boot), which no later process with
 * the same pid has.
 */
#ifndef DISAGG_PROC_H
#define DISAGG_PROC_H

#include <stdbool.h>
#include <stdint.h>

/* The start time of process pid, or -errno (-ESRCH for a zombie: it is gone). */
int64_t proc_starttime(int64_t pid);
/* Is pid still the process started at starttime (<= 0: any start time)? */
bool proc_alive(int64_t pid, int64_t starttime);

#endif /* DISAGG_PROC_H */
