// SPDX-License-Identifier: MIT
#include "opts.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>

#include "jsonhttp.h"
#include "log.h"

int opt_u64(const char *name, const char *arg, uint64_t min, uint64_t max, const char *unit,
	    uint64_t *ret)
{
	uint64_t v;

	if (u64_parse(arg, &v) < 0 || v < min || v > max) {
		log_error("invalid --%s '%s': %" PRIu64 " to %" PRIu64 "%s%s", name, arg, min, max,
			  unit ? " " : "", unit ? unit : "");
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

int opt_size(const char *name, const char *arg, uint64_t pow2_min, uint64_t *ret)
{
	uint64_t v;

	if (size_parse(arg, &v) < 0 || v == 0 ||
	    (pow2_min && ((v & (v - 1)) || v < pow2_min))) {
		if (pow2_min)
			log_error("invalid --%s '%s': a power of two >= %" PRIu64 "M", name, arg,
				  pow2_min >> 20);
		else
			log_error("invalid --%s '%s': a size such as 512M or 1G", name, arg);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

int opt_node_id(const char *arg, uint64_t *ret)
{
	uint64_t v;

	if (u64_parse(arg, &v) < 0 || v == 0) {
		log_error("invalid --node-id '%s': a nonzero 64-bit number", arg);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

int opt_done(int argc, char **argv, const char *keyfile)
{
	if (optind < argc) {
		log_error("unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if (!keyfile) {
		log_error("--key FILE is required");
		return -EINVAL;
	}
	return 0;
}
