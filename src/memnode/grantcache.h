/* SPDX-License-Identifier: MIT */
/*
 * Grants whose signature this memory node has verified (grantcache.c).
 *
 * An Ed25519 verification costs tens of microseconds (openssl speed: about
 * 8,000 per second on a busy 2-CPU host), far more than the page I/O it
 * guards. A grant's signature covers every field, so a grant that verified
 * once verifies again byte for byte: the cache remembers that, node-wide,
 * for every connection. It only answers "this signature is good"; the
 * caller still checks the holder against the connection, the expiry and
 * the rights on every use.
 */
#ifndef DISAGG_MN_GRANTCACHE_H
#define DISAGG_MN_GRANTCACHE_H

#include <stdbool.h>

#include "disagg/proto.h"

struct mn_grant_cache;

/* A cache of 2^bits grants, direct-mapped. -ENOMEM. */
int mn_grant_cache_new(unsigned bits, struct mn_grant_cache **ret);
void mn_grant_cache_free(struct mn_grant_cache *gc);        /* accepts NULL */
/* Has g (byte for byte) verified before? Thread-safe. */
bool mn_grant_cache_has(struct mn_grant_cache *gc, const struct proto_grant *g);
/* Remember g as verified (it may push out another). Thread-safe. */
void mn_grant_cache_add(struct mn_grant_cache *gc, const struct proto_grant *g);

#endif /* DISAGG_MN_GRANTCACHE_H */
