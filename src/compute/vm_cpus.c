// SPDX-License-Identifier: MIT
/*
 * CPU placement (vm_cpus.h). Once a VM's QMP answers (start, incoming
 * migration, adoption), query-cpus-fast names its vCPU threads: each goes
 * to the vCPU set (without one, to the CPUs the agent had before it took
 * the housekeeping set), and every other thread of that QEMU to the
 * housekeeping set. A thread QEMU creates later inherits its creator's
 * CPUs (the main loop's: housekeeping). A thread id that is not one of
 * that QEMU's threads is refused, so a QEMU that lies cannot move
 * another process. Failing to place a vCPU fails the start: an operator
 * who asked for dedicated CPUs does not get a VM that silently floats.
 */
#include "vm_cpus.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "qmp.h"

DEFINE_CLEANUP_FUNC(DIR, closedir);

static struct {
	cpu_set_t vcpu, house;
	bool has_vcpu, has_house;
} conf;

int vm_cpus_configure(const cpu_set_t *vcpu, const cpu_set_t *housekeeping)
{
	conf.has_vcpu = vcpu != NULL;
	conf.has_house = housekeeping != NULL;
	/*
	 * Without a vCPU set, vCPUs keep the CPUs the agent had before it
	 * took the housekeeping set (QEMU would otherwise inherit that).
	 */
	if (vcpu)
		conf.vcpu = *vcpu;
	else if (sched_getaffinity(0, sizeof(conf.vcpu), &conf.vcpu) < 0)
		return -errno;
	if (housekeeping) {
		conf.house = *housekeeping;
		if (sched_setaffinity(0, sizeof(conf.house), &conf.house) < 0)
			return -errno;
	}
	return 0;
}

static bool is_task(pid_t pid, long tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%ld", (int)pid, tid);
	return access(path, F_OK) == 0;
}

/* The vCPU thread ids (QMP query-cpus-fast), at most max: their count, or -errno. */
static int vcpu_threads(struct vm *vm, long *tids, int max, char *err, size_t errlen)
{
	_cleanup_(json_decrefp) json_t *cpus = NULL;
	size_t i;
	json_t *c;
	int n = 0, r;

	r = qmp_execute(vm->qmp, "query-cpus-fast", NULL, 10000, &cpus);
	if (r < 0) {
		snprintf(err, errlen, "CPU placement: QMP query-cpus-fast: %s", strerror(-r));
		return r;
	}
	json_array_foreach(cpus, i, c) {
		json_int_t tid = json_integer_value(json_object_get(c, "thread-id"));
		bool seen = false;

		if (tid <= 0 || !is_task(vm->pid, (long)tid)) {
			snprintf(err, errlen, "CPU placement: QEMU named thread %lld for vCPU %zu, "
				 "not one of its threads", (long long)tid, i);
			return -ESRCH;
		}
		for (int k = 0; k < n; k++)
			seen |= tids[k] == tid;   /* one thread for all vCPUs (single-threaded TCG) */
		if (!seen && n < max)
			tids[n++] = (long)tid;
	}
	if (!n) {
		snprintf(err, errlen, "CPU placement: QEMU reports no vCPU");
		return -ENOENT;
	}
	return n;
}

/* Every other thread of QEMU to the housekeeping set: how many moved. */
static unsigned place_others(struct vm *vm, const long *vcpus, int nv)
{
	_cleanup_(closedirp) DIR *d = NULL;
	char path[64];
	struct dirent *e;
	unsigned n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)vm->pid);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		long tid = strtol(e->d_name, NULL, 10);
		bool vcpu = false;

		if (tid <= 0)
			continue;
		for (int k = 0; k < nv; k++)
			vcpu |= vcpus[k] == tid;
		/* A thread that just ended (ESRCH) is no error. */
		if (!vcpu && sched_setaffinity((pid_t)tid, sizeof(conf.house), &conf.house) == 0)
			n++;
	}
	return n;
}

static int cpus_qmp_ready(struct vm *vm, char *err, size_t errlen)
{
	char vs[256] = "", hs[256] = "";
	long tids[512];
	unsigned others = 0;
	int n;

	if (!conf.has_vcpu && !conf.has_house)
		return 0;
	n = vcpu_threads(vm, tids, (int)ARRAY_SIZE(tids), err, errlen);
	if (n < 0)
		return n;
	(void)cpulist_format(&conf.vcpu, vs, sizeof(vs));
	(void)cpulist_format(&conf.house, hs, sizeof(hs));
	for (int k = 0; k < n; k++) {
		if (sched_setaffinity((pid_t)tids[k], sizeof(conf.vcpu), &conf.vcpu) < 0) {
			int r = -errno;

			snprintf(err, errlen, "CPU placement: vCPU thread %ld to CPUs %s: %s", tids[k],
				 vs, strerror(-r));
			return r;
		}
	}
	if (conf.has_house)
		others = place_others(vm, tids, n);
	log_info("vm %s: %d vCPU thread%s on CPUs %s, %u other QEMU thread%s on CPUs %s",
		 vm->spec.name, n, n == 1 ? "" : "s", vs, others,
		 others == 1 ? "" : "s", conf.has_house ? hs : "(as started)");
	return 0;
}

const struct vm_ext_ops vm_cpus_ext = {
	.name = "cpus",
	.qmp_ready = cpus_qmp_ready,
};
