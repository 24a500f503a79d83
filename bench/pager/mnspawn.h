// SPDX-License-Identifier: MIT
/*
 * Start and stop a disagg-memnode for the pager benchmark and the pager's
 * functional tests: a temporary cluster key (0600, 32 random bytes) and
 * grant key pair (the caller acts as the orchestrator: it holds `gkey`,
 * mints grants and connects with it as opts.orch_key), a loopback
 * listener on port 0, and the address it prints on stdout.
 */
#ifndef DISAGG_MNSPAWN_H
#define DISAGG_MNSPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth.h"
#include "grant.h"
#include "disagg/proto.h"

struct mnspawn {
	pid_t pid;
	char addr[PROTO_MAX_ADDR];
	char keypath[64];
	char gkeypath[64], gpubpath[72];  /* the grant key pair's files */
	struct auth_key key;
	struct grant_key *gkey;           /* private half; shared with key_from's */
	uint64_t node_id;
};

/*
 * Find disagg-memnode: $DISAGG_MEMNODE, then next to argv0 (build/bin),
 * then ../../src/memnode/ relative to the real executable (a meson build dir).
 */
/* The next nodes started get --backing this ("file:PATH"); NULL: the default pool. */
extern const char *mnspawn_backing;

int mnspawn_find(const char *argv0, char *ret, size_t len);
int mnspawn_start(struct mnspawn *m, const char *exe, uint64_t pool_bytes, uint64_t section_size,
		  uint64_t node_id);
/* Like mnspawn_start, but on the cluster key of `key_from` (several nodes, one cluster). */
int mnspawn_start_keyed(struct mnspawn *m, const char *exe, uint64_t pool_bytes,
			uint64_t section_size, uint64_t node_id, const struct mnspawn *key_from);
/* Allocate one section of m for `owner`, as the orchestrator (its grant key). */
int mnspawn_alloc(const struct mnspawn *m, uint64_t owner, struct proto_section *ret);
/* SIGKILL (hard) or SIGTERM, then reap. Removes the key files (and frees gkey if ours). */
void mnspawn_stop(struct mnspawn *m, bool hard);

#endif
