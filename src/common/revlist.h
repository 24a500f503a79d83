/* SPDX-License-Identifier: MIT */
/*
 * Revoked node ids (revlist.c): the list the orchestrator pushes with
 * REVOKE to memory nodes and device nodes, in memory as a sorted array
 * and, given a state directory, in DIR/revoked. Lookups take a read lock,
 * and none at all while the list is empty.
 */
#ifndef DISAGG_REVLIST_H
#define DISAGG_REVLIST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct revlist {
	pthread_rwlock_t lock;
	uint64_t *ids;         /* sorted, no duplicates */
	size_t n;
	_Atomic size_t count;  /* n, readable without the lock */
	_Atomic uint64_t gen;  /* bumped by every new list */
	const char *dir;       /* the state directory, or NULL: memory only */
};

/* Load DIR/revoked (dir may be NULL: memory only). Errors are logged. */
int revlist_init(struct revlist *rv, const char *dir);
void revlist_destroy(struct revlist *rv);
bool revlist_has(struct revlist *rv, uint64_t id);
/*
 * Replace the list (persisted first) and bump its generation: the caller
 * then closes the revoked nodes' connections (memory node: wakes its
 * workers; device node: shuts the connections' sockets).
 */
int revlist_set(struct revlist *rv, const uint64_t *ids, size_t count);

/*
 * revlist_set() with a REVOKE payload (docs/protocol.md): -EBADMSG for a
 * wrong length, a reserved field set, over PROTO_MAX_REVOKED ids or an id
 * 0; -EIO if it could not be stored (the old list stays); -ENOMEM.
 */
int revlist_set_wire(struct revlist *rv, const void *p, size_t len);

#endif /* DISAGG_REVLIST_H */
