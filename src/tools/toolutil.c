// SPDX-License-Identifier: MIT
/*
 * Helpers shared by the command-line tools. See toolutil.h.
 */
#include "toolutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disagg/proto.h"

int tool_u64(const char *what, const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	errno = 0;
	/* strtoull() would skip blanks and accept a sign: " -1" must not become 2^64-1. */
	if (!s || !isdigit((unsigned char)*s))
		goto bad;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		goto bad;
	*ret = v;
	return 0;
bad:
	fprintf(stderr, "invalid number for %s: '%s'\n", what, s ? s : "");
	return -EINVAL;
}

int tool_rights(const char *s, uint32_t *ret)
{
	uint32_t r = 0;

	for (const char *p = s; *p; p++) {
		uint32_t bit = *p == 'r' ? PROTO_R_READ : *p == 'w' ? PROTO_R_WRITE
				: *p == 'f' ? PROTO_R_FREE : 0;

		if (!bit || (r & bit)) {
			r = 0;
			break;
		}
		r |= bit;
	}
	if (!r) {
		fprintf(stderr, "invalid rights '%s' (letters r, w and f: read, write, free)\n", s);
		return -EINVAL;
	}
	*ret = r;
	return 0;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void tool_pattern(uint64_t seed, uint64_t memnode, uint32_t section, uint32_t page, void *buf)
{
	uint64_t s = splitmix64(splitmix64(splitmix64(seed) ^ memnode) ^
				((uint64_t)section << 32 | page));
	uint8_t *p = buf;

	if (s == 0)
		s = 1;
	for (size_t i = 0; i < PROTO_PAGE_SIZE; i += 8) {
		uint64_t v;

		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		v = s * 0x2545f4914f6cdd1dull;
		memcpy(p + i, &v, 8);
	}
}
