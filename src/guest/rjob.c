// SPDX-License-Identifier: MIT
/*
 * Background jobs on shared regions (rjob.h): the job slot and its thread,
 * RJOB, and the jobs RPOKE (one store, which may wait in the hypervisor
 * until this VM holds the region) and RCOUNTER (a test-and-set spinlock at
 * offset 0 guarding a 64-bit counter at offset 64, for atomicity between
 * guests).
 *
 * The main loop answers "OK started" before the thread exists, so the
 * answer is on its way even when the job's first store stops the vCPU.
 * Only the main thread writes to the channel; the job thread leaves its
 * result in the slot and RJOB reads it once `running` is false.
 */
#include "rjob.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static struct rjob job = { .name = "none" };
static pthread_t thread;
static bool thread_live; /* a thread to join (main thread only) */
static atomic_bool running;

struct rjob *rjob_claim(void)
{
	if (atomic_load(&running)) {
		guest_reply("ERR busy: job %s runs (RJOB until state=done)", job.name);
		return NULL;
	}
	if (thread_live) {
		pthread_join(thread, NULL);
		thread_live = false;
	}
	rmap_close(&job.map);
	memset(&job, 0, sizeof(job));
	strcpy(job.name, "none");
	return &job;
}

static void *job_main(void *arg)
{
	struct rjob *j = arg;

	j->run(j);
	atomic_store(&running, false);
	return NULL;
}

void rjob_launch(struct rjob *j, const char *name, void (*run)(struct rjob *j))
{
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->run = run;
	j->t0 = guest_now_ns();
	atomic_store(&j->progress, 0);
	atomic_store(&running, true);
	guest_reply("OK started");
	if (pthread_create(&thread, NULL, job_main, j) != 0) {
		rjob_result(j, "error reason=pthread_create");
		atomic_store(&running, false);
		return;
	}
	thread_live = true;
}

void rjob_result(struct rjob *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->result, sizeof(j->result), fmt, ap);
	va_end(ap);
}

bool rjob_spin(uint64_t *spins, uint64_t *deadline)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
	if ((++*spins & 4095) != 1)
		return false;
	if (!*deadline) {
		*deadline = guest_now_ns() + RJOB_WAIT_NS;
		return false;
	}
	return guest_now_ns() > *deadline;
}

static void cmd_rjob(char **av, int ac)
{
	(void)av;
	if (ac != 1)
		return guest_reply("ERR usage: RJOB");
	if (atomic_load(&running))
		return guest_reply("OK job=%s state=running progress=%" PRIuFAST64 " ms=%llu",
				   job.name, atomic_load(&job.progress), guest_ms_since(job.t0));
	if (!strcmp(job.name, "none"))
		return guest_reply("OK job=none state=idle");
	guest_reply("OK job=%s state=done result=%s", job.name, job.result);
}

static void poke_run(struct rjob *j)
{
	__atomic_store_n(rmap_word(&j->map, j->arg[0]), j->arg[1], __ATOMIC_SEQ_CST);
	rjob_result(j, "ok offset=%" PRIu64 " value=%" PRIu64 " ms=%llu", j->arg[0], j->arg[1],
		    guest_ms_since(j->t0));
}

static void cmd_rpoke(char **av, int ac)
{
	struct rjob *j;
	uint64_t value, *w;

	if (ac != 4 || guest_parse_u64(av[3], 0, UINT64_MAX, &value) < 0)
		return guest_reply("ERR usage: RPOKE REGION OFFSET VALUE");
	if (!(j = rjob_claim()) || rmap_open(av[1], &j->map) < 0 ||
	    !(w = rmap_word_arg(&j->map, av[2])))
		return;
	j->arg[0] = (uint64_t)((uint8_t *)w - j->map.mem);
	j->arg[1] = value;
	rjob_launch(j, "poke", poke_run);
}

#define COUNTER_LOCK 0
#define COUNTER_VALUE 64

static void counter_run(struct rjob *j)
{
	uint64_t *lock = rmap_word(&j->map, COUNTER_LOCK);
	uint64_t *ctr = rmap_word(&j->map, COUNTER_VALUE);
	uint64_t iters = j->arg[0], v = 0;

	for (uint64_t i = 0; i < iters; i++) {
		uint64_t spins = 0, deadline = 0;

		/* Test-and-set (xchg), and spin reading until the lock looks free. */
		while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) != 0)
			while (__atomic_load_n(lock, __ATOMIC_RELAXED) != 0)
				if (rjob_spin(&spins, &deadline))
					return rjob_result(j,
							   "error reason=lock_timeout iter=%" PRIu64
							   " lock=%" PRIu64,
							   i, __atomic_load_n(lock, __ATOMIC_RELAXED));
		v = __atomic_load_n(ctr, __ATOMIC_RELAXED) + 1;
		__atomic_store_n(ctr, v, __ATOMIC_RELAXED);
		__atomic_store_n(lock, 0, __ATOMIC_RELEASE);
		atomic_store_explicit(&j->progress, i + 1, memory_order_relaxed);
	}
	rjob_result(j, "ok counter=%" PRIu64 " ms=%llu", v, guest_ms_since(j->t0));
}

static void cmd_rcounter(char **av, int ac)
{
	struct rjob *j;
	uint64_t iters;

	if (ac != 3 || guest_parse_u64(av[2], 1, 1000000000ull, &iters) < 0)
		return guest_reply("ERR usage: RCOUNTER REGION ITERS (1..1000000000)");
	if (!(j = rjob_claim()) || rmap_open(av[1], &j->map) < 0)
		return;
	j->arg[0] = iters;
	rjob_launch(j, "counter", counter_run);
}

const struct guest_cmd rjob_cmds[] = {
	{ "RJOB", cmd_rjob },
	{ "RPOKE", cmd_rpoke },
	{ "RCOUNTER", cmd_rcounter },
	{ NULL, NULL },
};
