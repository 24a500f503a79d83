/* SPDX-License-Identifier: MIT */
/*
 * Command-line option values for the daemons, with one error message per
 * kind of mistake: "invalid --NAME 'ARG': what is expected", logged as an
 * error (stderr). Each returns 0, or -EINVAL after logging.
 */
#ifndef DISAGG_OPTS_H
#define DISAGG_OPTS_H

#include <stdint.h>

/* A number in [min, max]; `unit` (may be NULL) follows the range in the message. */
int opt_u64(const char *name, const char *arg, uint64_t min, uint64_t max, const char *unit,
	    uint64_t *ret);
/* A size ("512M", "1G", "4096"), nonzero; pow2_min > 0: a power of two >= pow2_min. */
int opt_size(const char *name, const char *arg, uint64_t pow2_min, uint64_t *ret);
/* --node-id: a nonzero 64-bit number. */
int opt_node_id(const char *arg, uint64_t *ret);

/* After getopt: no operand left (optind == argc) and --key given. */
int opt_done(int argc, char **argv, const char *keyfile);

#endif /* DISAGG_OPTS_H */
