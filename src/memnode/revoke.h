/* SPDX-License-Identifier: MIT */
/*
 * Revoked node ids (revoke.c): the list the orchestrator pushes with
 * REVOKE, in memory as a sorted array and, given a state directory, in
 * DIR/revoked. Lookups take a read lock, and none at all while the list is
 * empty.
 */
#ifndef DISAGG_MEMNODE_REVOKE_H
#define DISAGG_MEMNODE_REVOKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mn_revoked {
	pthread_rwlock_t lock;
	uint64_t *ids;         /* sorted, no duplicates */
	size_t n;
	_Atomic size_t count;  /* n, readable without the lock */
	_Atomic uint64_t gen;  /* bumped by every new list */
	const char *dir;       /* --state-dir, or NULL: memory only */
};

/* Load DIR/revoked (dir may be NULL: memory only). Errors are logged. */
int mn_revoked_init(struct mn_revoked *rv, const char *dir);
void mn_revoked_destroy(struct mn_revoked *rv);
bool mn_revoked_has(struct mn_revoked *rv, uint64_t id);
/*
 * Replace the list (persisted first) and bump its generation: the caller
 * then wakes the workers, which close the revoked nodes' connections.
 */
int mn_revoked_set(struct mn_revoked *rv, const uint64_t *ids, size_t count);

#endif /* DISAGG_MEMNODE_REVOKE_H */
