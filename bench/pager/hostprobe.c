// SPDX-License-Identifier: MIT
/*
 * Host probes of bench-pager (hostprobe.h): the cost of a system call and
 * of a pipe ping-pong between processes and between threads.
 */
#include "hostprobe.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"

#define BATCHES     21
#define CALLS       20000           /* system calls per batch */
#define ROUND_TRIPS 20000

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static void pin_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

static double syscall_ns(void)
{
	double v[BATCHES];

	for (unsigned b = 0; b < BATCHES; b++) {
		uint64_t t0 = now_ns();

		for (unsigned i = 0; i < CALLS; i++)
			(void)syscall(SYS_getppid);
		v[b] = (double)(now_ns() - t0) / CALLS;
	}
	return median(v, BATCHES);
}

struct echo {
	int in, out;                  /* the echo side's ends */
	bool pin;
};

/* Answer every byte until the pipe closes. */
static void *echo_main(void *arg)
{
	struct echo *e = arg;
	char c;

	if (e->pin)
		pin_cpu0();
	while (read(e->in, &c, 1) == 1)
		if (write(e->out, &c, 1) != 1)
			break;
	return NULL;
}

/* Median µs of a round trip, with the echo in a thread or a child process. */
static double pipe_rtt_us(bool process, bool pin)
{
	int to[2] = { -1, -1 }, from[2] = { -1, -1 };
	struct echo e = { .pin = pin };
	double *lat = calloc(ROUND_TRIPS, sizeof(*lat)), res = -ENOMEM;
	pthread_t th;
	pid_t pid = -1;
	bool started = false;
	char c = 'x';

	if (!lat)
		return -ENOMEM;
	if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0) {
		res = -errno;
		goto out;
	}
	e.in = to[0];
	e.out = from[1];
	if (process) {
		pid = fork();
		if (pid == 0) {
			close(to[1]);
			close(from[0]);
			echo_main(&e);
			_exit(0);
		}
		started = pid > 0;
	} else {
		started = pthread_create(&th, NULL, echo_main, &e) == 0;
	}
	if (!started) {
		res = -EAGAIN;
		goto out;
	}
	res = 0;
	for (unsigned i = 0; i < ROUND_TRIPS && res == 0; i++) {
		uint64_t t0 = now_ns();

		if (write(to[1], &c, 1) != 1 || read(from[0], &c, 1) != 1)
			res = -EIO;
		lat[i] = (double)(now_ns() - t0) / 1000.0;
	}
	if (res == 0)
		res = median(lat, ROUND_TRIPS);
out:
	if (to[1] >= 0)
		close(to[1]);     /* the echo sees end of file */
	to[1] = -1;
	if (started && process)
		(void)waitpid(pid, NULL, 0);
	else if (started)
		pthread_join(th, NULL);
	for (int i = 0; i < 2; i++) {
		if (to[i] >= 0)
			close(to[i]);
		if (from[i] >= 0)
			close(from[i]);
	}
	free(lat);
	return res;
}

int host_probe_run(struct host_probe *hp, bool pin)
{
	cpu_set_t old;
	bool restore = pin && sched_getaffinity(0, sizeof(old), &old) == 0;

	if (pin)
		pin_cpu0();
	hp->syscall_ns = syscall_ns();
	hp->pipe_rtt_proc_us = pipe_rtt_us(true, pin);
	hp->pipe_rtt_thread_us = pipe_rtt_us(false, pin);
	if (restore)
		(void)sched_setaffinity(0, sizeof(old), &old);
	if (hp->pipe_rtt_proc_us < 0)
		return (int)hp->pipe_rtt_proc_us;
	return hp->pipe_rtt_thread_us < 0 ? (int)hp->pipe_rtt_thread_us : 0;
}
