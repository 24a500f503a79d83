/* SPDX-License-Identifier: MIT */
/*
 * Bytes as lowercase hex digits and back (grants, keys, credentials).
 */
#ifndef DISAGG_HEX_H
#define DISAGG_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The 2n lowercase hex digits of b[0..n) and a NUL into out[0..2n]. */
void hex_encode(const uint8_t *b, size_t n, char *out);
/* Exactly the 2n hex digits at s (either case) into out[0..n): 0 or -EINVAL. */
int hex_decode(const char *s, uint8_t *out, size_t n);

#endif /* DISAGG_HEX_H */
