// SPDX-License-Identifier: MIT
/*
 * Unit test of CPU lists (src/common/cpulist.c): what parses and what is
 * refused, the shortest format back, and the check of an option against
 * this process's own CPUs (sched_getaffinity).
 */
#include <errno.h>
#include <string.h>

#include "cpulist.h"
#include "tap.h"

/* s parsed, then formatted: the text, or an error's name. */
static const char *round_trip(const char *s)
{
	static char buf[256];
	cpu_set_t set;
	int r = cpulist_parse(s, &set);

	if (r == -EINVAL)
		return "EINVAL";
	if (r == -ERANGE)
		return "ERANGE";
	if (r < 0 || cpulist_format(&set, buf, sizeof(buf)) < 0)
		return "?";
	return buf;
}

int main(void)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "0", "0" }, { "3", "3" }, { "0-3", "0-3" }, { "0,1,2,3", "0-3" },
		{ "5,0-2,3", "0-3,5" }, { "2-2", "2" }, { "1,1", "1" }, { "0-1,4-6,9", "0-1,4-6,9" },
		{ "", "EINVAL" }, { "-1", "EINVAL" }, { "3-1", "EINVAL" }, { "1,", "EINVAL" },
		{ ",1", "EINVAL" }, { "1 ,2", "EINVAL" }, { "a", "EINVAL" }, { "1-", "EINVAL" },
		{ "0x1", "EINVAL" }, { "+1", "EINVAL" }, { "1024", "ERANGE" }, { "0-1024", "ERANGE" },
		{ "99999999999999999999", "ERANGE" },
	};
	cpu_set_t mine, set;
	char buf[8], all[256];

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *in = cases[i].in, *out = cases[i].out;

		is_str(round_trip(in), out, "'%s' parses (or not) as expected", in);
	}
	ok(cpulist_parse(NULL, &set) == -EINVAL, "NULL: -EINVAL");

	CPU_ZERO(&set);
	ok(cpulist_format(&set, buf, sizeof(buf)) == 0 && !buf[0], "an empty set formats as ''");
	for (int c = 0; c < 64; c += 2)
		CPU_SET(c, &set);
	ok(cpulist_format(&set, buf, sizeof(buf)) == -ENOBUFS, "too long for the buffer: -ENOBUFS");
	ok(cpulist_format(&set, buf, 0) == -ENOBUFS, "a zero-length buffer: -ENOBUFS");

	ok(sched_getaffinity(0, sizeof(mine), &mine) == 0 &&
	   cpulist_format(&mine, all, sizeof(all)) == 0, "this process's CPUs: %s", all);
	ok(opt_cpus("cpus", all, &set) == 0 && CPU_EQUAL(&set, &mine),
	   "--cpus with exactly those: accepted");
	ok(opt_cpus("cpus", "1000", &set) == -EINVAL, "a CPU this process may not use: refused");
	ok(opt_cpus("cpus", "1024", &set) == -EINVAL, "a CPU beyond CPU_SETSIZE: refused");
	ok(opt_cpus("cpus", "x", &set) == -EINVAL, "not a list: refused");
	done_testing();
	return tap_exit();
}
