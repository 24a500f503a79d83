/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by the command-line tools in src/tools: strict
 * number parsing with an error message, grant rights strings, and the
 * deterministic page pattern that `disagg-mnctl fill` writes and `verify`
 * checks.
 */
#ifndef DISAGG_TOOLUTIL_H
#define DISAGG_TOOLUTIL_H

#include <stdint.h>

/* Parse an unsigned number (decimal, 0x hex); prints an error naming `what` on failure. */
int tool_u64(const char *what, const char *s, uint64_t *ret);
/* "r", "w" or "rw" -> PROTO_R_* bits; prints an error on failure. */
int tool_rights(const char *s, uint32_t *ret);

/*
 * Fill one 4 KiB page with the pattern of (seed, memnode, section, page):
 * xorshift64* seeded by a splitmix64 hash of the four, so a page written to
 * the wrong node, section or place does not verify.
 */
void tool_pattern(uint64_t seed, uint64_t memnode, uint32_t section, uint32_t page, void *buf);

#endif /* DISAGG_TOOLUTIL_H */
