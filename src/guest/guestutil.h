/* SPDX-License-Identifier: MIT */
/*
 * What every part of disagg-guest shares: the host channel's answer line,
 * the monotonic clock, small sysfs file helpers, strict number parsing, the
 * memory pattern of FILL and RFILL, and the command table type through
 * which disagg-guest.c dispatches the commands of the other files.
 *
 * disagg-guest is a static program with no dependency on the rest of the
 * project (src/LAYERS: guest may include nothing else), so it has its own
 * small cleanup macro.
 */
#ifndef DISAGG_GUESTUTIL_H
#define DISAGG_GUESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#define PAGE 4096u
#define MIN_U64(a, b) ((a) < (b) ? (a) : (b))
#define _cleanup_(f) __attribute__((cleanup(f)))

/* One command of the line protocol: av[0] is the command word. */
struct guest_cmd {
	const char *name;
	void (*run)(char **av, int ac);
};

/* Where answers go: the host channel's file descriptor. */
void guest_set_channel(int fd);

/* Send one line (a '\n' is appended) on the host channel. Main thread only. */
void guest_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

uint64_t guest_now_ns(void);

/* Milliseconds since t0 (a guest_now_ns() value). */
unsigned long long guest_ms_since(uint64_t t0);

/* A small file into buf (NUL-terminated, trailing white space cut): 0 or -errno. */
int guest_read_file(const char *path, char *buf, size_t len);

/* Write s to a sysfs attribute: 0 or -errno. */
int guest_write_file(const char *path, const char *s);

/*
 * A whole decimal (never octal) or 0x-hex number in [min, max]: 0, or -EINVAL for
 * anything else (empty, a sign, trailing characters, out of range).
 */
int guest_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/*
 * The pattern word at (seed, page, index) of FILL and RFILL: cheap, and
 * differs for every page. Never zero, so a page of zeros always mismatches.
 */
static inline uint64_t guest_pattern_word(uint64_t seed, uint64_t page, uint64_t i)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull ^ (page << 9 | i);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x | 1;
}

#endif
