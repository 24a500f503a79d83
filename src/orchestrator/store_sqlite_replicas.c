// SPDX-License-Identifier: MIT
/*
 * Replicas of slots' remote sections in the SQLite store (store.h, struct
 * store_replica_ops), schema version 13: position 0 of a section is its
 * row of `sections` (with the columns state and reason), positions 1.. are
 * rows of `section_replicas` (slot, index, position, memory node, section,
 * generation, epoch, state, reason), deleted with their slot. Listing
 * gives both, so that whoever looks at a section's replicas (placement,
 * the orphan sweep, repair) sees every position the same way. And the
 * operator's edits of nodes that replication relies on: labels (zones),
 * and removing a node nothing names any more.
 */
#include "store_sqlite_replicas.h"

#include <string.h>

#include "store_sqlite_db.h"

static void read_replica(sqlite3_stmt *p, struct replica_rec *o)
{
	memset(o, 0, sizeof(*o));
	o->slot_id = sqlite3_column_int64(p, 0);
	sq_copy_text(o->slot, sizeof(o->slot), p, 1);
	o->idx = sqlite3_column_int64(p, 2);
	o->replica = sqlite3_column_int64(p, 3);
	o->memnode = (uint64_t)sqlite3_column_int64(p, 4);
	o->section = (uint32_t)sqlite3_column_int64(p, 5);
	o->generation = (uint32_t)sqlite3_column_int64(p, 6);
	o->epoch = (uint32_t)sqlite3_column_int64(p, 7);
	sq_copy_text(o->state, sizeof(o->state), p, 8);
	sq_copy_text(o->reason, sizeof(o->reason), p, 9);
}

static int sq_replica_list(struct store *s, int64_t slot_id, uint64_t memnode,
			   struct replica_rec **ret, size_t *ret_n)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	if ((p = sq_stmt(st, Q_REP_LIST))) {
		sqlite3_bind_int64(p, 1, slot_id);
		sqlite3_bind_int64(p, 2, (int64_t)memnode);
		r = COLLECT(st, p, struct replica_rec, read_replica, ret, ret_n);
	}
	sq_unlock(st);
	return r;
}

/* Statement q with the nine columns of rec bound in order. */
static int write_replica(struct store *s, enum q q, const struct replica_rec *o, bool one_row)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	if ((p = sq_stmt(st, q))) {
		sqlite3_bind_int64(p, 1, o->slot_id);
		sqlite3_bind_int64(p, 2, o->idx);
		sqlite3_bind_int64(p, 3, o->replica);
		sqlite3_bind_int64(p, 4, (int64_t)o->memnode);
		sqlite3_bind_int64(p, 5, o->section);
		sqlite3_bind_int64(p, 6, o->generation);
		sqlite3_bind_int64(p, 7, o->epoch);
		sq_bind_text(p, 8, o->state[0] ? o->state : "in");
		sq_bind_text(p, 9, o->reason);
		r = one_row ? sq_one_row(st, p, "replica") : sq_exec_done(st, p, "replica_put");
	}
	sq_unlock(st);
	return r;
}

static int sq_replica_put(struct store *s, const struct replica_rec *o)
{
	return o->replica < 1 ? -EINVAL : write_replica(s, Q_REP_PUT, o, false);
}

static int sq_replica_update(struct store *s, const struct replica_rec *o)
{
	return write_replica(s, o->replica == 0 ? Q_REP_UPDATE0 : Q_REP_UPDATE, o, true);
}

static int sq_replica_remove(struct store *s, int64_t slot_id, int64_t idx)
{
	return sq_exec_2i(sq_of(s), Q_REP_REMOVE, slot_id, idx, false, "replica_remove");
}

static int sq_node_set_labels(struct store *s, uint64_t id, const char *labels)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	if ((p = sq_stmt(st, Q_NODE_LABELS))) {
		sqlite3_bind_int64(p, 1, (int64_t)id);
		sq_bind_text(p, 2, labels);
		r = sq_one_row(st, p, "node_set_labels");
	}
	sq_unlock(st);
	return r;
}

static int sq_node_remove(struct store *s, uint64_t id)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	if ((p = sq_stmt(st, Q_NODE_REMOVE))) {
		sqlite3_bind_int64(p, 1, (int64_t)id);
		r = sq_one_row(st, p, "node_remove");   /* a reference to it: -EEXIST */
	}
	sq_unlock(st);
	return r;
}

static const struct store_replica_ops replica_ops = {
	.replica_list = sq_replica_list,
	.replica_put = sq_replica_put,
	.replica_update = sq_replica_update,
	.replica_remove = sq_replica_remove,
	.node_set_labels = sq_node_set_labels,
	.node_remove = sq_node_remove,
};

void store_sqlite_replicas(struct store *s)
{
	s->rep = &replica_ops;
}
