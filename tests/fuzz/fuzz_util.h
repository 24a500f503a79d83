/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the libFuzzer targets in this directory: a CHECK()
 * that traps (so a broken promise counts as a crash), a cursor that hands
 * out input bytes field by field (integers little-endian), and poll()
 * through signals. An input must not leak a descriptor: targets compare
 * test_open_fds() (tests/unit/fds.h) before and after.
 *
 * Header-only on purpose: each target is one translation unit plus the
 * sources it drives.
 */
#ifndef DISAGG_FUZZ_UTIL_H
#define DISAGG_FUZZ_UTIL_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fds.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The input, consumed front to back; reads past the end give zeros. */
struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = in->p[0];
		in->p++;
		in->n--;
	}
	return v;
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	return (uint16_t)(fz_u8(in) | fz_u8(in) << 8);
}

static inline uint32_t fz_u32(struct fz_in *in)
{
	return (uint32_t)fz_u16(in) | (uint32_t)fz_u16(in) << 16;
}

/* Up to `len` bytes into dst (the rest zeroed); returns how many were input. */
static inline size_t fz_bytes(struct fz_in *in, void *dst, size_t len)
{
	size_t k = len < in->n ? len : in->n;

	memcpy(dst, in->p, k);
	memset((uint8_t *)dst + k, 0, len - k);
	in->p += k;
	in->n -= k;
	return k;
}

/* poll() that carries on through signals (libFuzzer's timer interrupts waits). */
static inline int fz_poll(struct pollfd *pfd, nfds_t n, int timeout_ms)
{
	int r;

	do
		r = poll(pfd, n, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r;
}

#endif /* DISAGG_FUZZ_UTIL_H */
