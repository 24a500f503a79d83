// SPDX-License-Identifier: MIT
#include "cpulist.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* One decimal CPU number at *s (no sign, no blank); advances *s. */
static int cpu_number(const char **s, unsigned long *ret)
{
	char *end;

	if (**s < '0' || **s > '9')
		return -EINVAL;
	errno = 0;
	*ret = strtoul(*s, &end, 10);
	if (errno == ERANGE || *ret >= CPU_SETSIZE)
		return -ERANGE;
	*s = end;
	return 0;
}

int cpulist_parse(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	if (!s || !*s)
		return -EINVAL;
	for (;;) {
		unsigned long a, b;
		int r = cpu_number(&s, &a);

		if (r < 0)
			return r;
		b = a;
		if (*s == '-') {
			s++;
			r = cpu_number(&s, &b);
			if (r < 0)
				return r;
			if (b < a)
				return -EINVAL;
		}
		for (unsigned long c = a; c <= b; c++)
			CPU_SET(c, set);
		if (!*s)
			return 0;
		if (*s++ != ',')
			return -EINVAL;
	}
}

int cpulist_format(const cpu_set_t *set, char *buf, size_t len)
{
	size_t off = 0;
	bool first = true;

	if (!len)
		return -ENOBUFS;
	buf[0] = '\0';
	for (unsigned c = 0; c < CPU_SETSIZE; c++) {
		unsigned e = c;
		int n;

		if (!CPU_ISSET(c, set))
			continue;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		n = e == c ? snprintf(buf + off, len - off, "%s%u", first ? "" : ",", c)
			   : snprintf(buf + off, len - off, "%s%u-%u", first ? "" : ",", c, e);
		if (n < 0 || (size_t)n >= len - off)
			return -ENOBUFS;
		off += (size_t)n;
		first = false;
		c = e;
	}
	return 0;
}

int opt_cpus(const char *name, const char *arg, cpu_set_t *ret)
{
	cpu_set_t mine, outside;
	char have[256];
	int r = cpulist_parse(arg, ret);

	if (r == -ERANGE) {
		log_error("invalid --%s '%s': CPU numbers below %d", name, arg, CPU_SETSIZE);
		return -EINVAL;
	}
	if (r < 0) {
		log_error("invalid --%s '%s': a CPU list such as 0-3,8", name, arg);
		return -EINVAL;
	}
	if (sched_getaffinity(0, sizeof(mine), &mine) < 0) {
		log_error("--%s: this process's CPUs: %s", name, strerror(errno));
		return -EINVAL;
	}
	CPU_XOR(&outside, ret, &mine);
	CPU_AND(&outside, &outside, ret);
	if (CPU_COUNT(&outside)) {
		if (cpulist_format(&mine, have, sizeof(have)) < 0)
			snprintf(have, sizeof(have), "%d CPUs", CPU_COUNT(&mine));
		log_error("invalid --%s '%s': not among the CPUs this process may use (%s)", name,
			  arg, have);
		return -EINVAL;
	}
	return 0;
}
