/* SPDX-License-Identifier: MIT */
/*
 * Background jobs on shared regions (rjob.c): one job at a time runs on a
 * thread of its own while the main loop goes on answering the channel, and
 * RJOB reports it. A job waits on the other guest at the most
 * RJOB_WAIT_NS without progress, then ends with "result=error".
 *
 *   RPOKE REGION OFFSET VALUE   OK started   (stores VALUE at OFFSET)
 *   RCOUNTER REGION ITERS       OK started   (spinlock at 0, counter at 64)
 *   RJOB                        OK job=NAME state=running progress=N ms=T
 *                               OK job=NAME state=done result=ok|error FIELDS...
 *                               OK job=none state=idle
 * A start while a job runs answers "ERR busy: ...". RLITMUS is in litmus.c.
 */
#ifndef DISAGG_GUEST_RJOB_H
#define DISAGG_GUEST_RJOB_H

#include "guestutil.h"
#include "rmap.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define RJOB_WAIT_NS (30ull * 1000000000ull)

struct rjob {
	char name[16];
	struct rmap map;                 /* the region, mapped for the whole job */
	uint64_t arg[4];                 /* the command's numbers */
	void (*run)(struct rjob *j);
	atomic_uint_fast64_t progress;   /* iterations done, for RJOB while running */
	uint64_t t0;                     /* guest_now_ns() at the start */
	char result[512];                /* "ok FIELDS" or "error reason=..." */
};

/* Terminated by an entry with a NULL name. */
extern const struct guest_cmd rjob_cmds[];

/*
 * The job slot for a new job, unmapped and cleared (a finished job is
 * joined and forgotten), or NULL after answering "ERR busy".
 */
struct rjob *rjob_claim(void);

/* Answer "OK started" and run run(j) on the job thread. */
void rjob_launch(struct rjob *j, const char *name, void (*run)(struct rjob *j));

/* From run(): set the result, "ok ..." or "error reason=...". */
void rjob_result(struct rjob *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * One turn of a spin-wait loop: a pause, and every few thousand turns a
 * look at the clock. *deadline starts at 0 (set on the first turn to
 * RJOB_WAIT_NS from now). True when the wait has lasted too long.
 */
bool rjob_spin(uint64_t *spins, uint64_t *deadline);

#endif
