/* SPDX-License-Identifier: MIT */
/*
 * Internal to the SQLite store: the schema migrations (migration i takes
 * a database from PRAGMA user_version i to i + 1; append, never edit a
 * released one) and the SQL of every cached statement, indexed by enum q.
 */
#ifndef DISAGG_ORCH_STORE_SQLITE_SQL_H
#define DISAGG_ORCH_STORE_SQLITE_SQL_H

#include <stddef.h>

enum q {
	Q_NODE_PUT,
	Q_NODE_GET,
	Q_NODE_LIST,
	Q_NODE_LIST_KIND,
	Q_NODE_STATE,
	Q_NODE_DRAINED,
	Q_NODE_HB,
	Q_NODE_ADJ,
	Q_NODE_SETFREE,
	Q_NODE_STALE,
	Q_SLOT_INSERT,
	Q_SLOT_GET,
	Q_SLOT_LIST,
	Q_SLOT_LIST_COMPUTE,
	Q_SLOT_LIST_MEMNODE,
	Q_SLOT_UPDATE,
	Q_SLOT_DELETE,
	Q_SEC_ADD,
	Q_SEC_REMOVE,
	Q_SEC_LIST,
	Q_SEC_COUNT,
	Q_REQ_GET,
	Q_REQ_INSERT,
	Q_REQ_FINISH,
	Q_REQ_FORGET,
	Q_REQ_PRUNE,
	Q_REQ_ABANDON,
	Q_EV_ADD,
	Q_EV_LIST,
	Q_REVOKED_ADD,
	Q_REVOKED_LIST,
	Q_REG_INSERT,
	Q_REG_GET,
	Q_REG_LIST,
	Q_REG_UPDATE,
	Q_REG_SEC_EPOCH,
	Q_REG_DELETE,
	Q_REG_SEC_ADD,
	Q_REG_SEC_LIST,
	Q_ATT_PUT,
	Q_ATT_REMOVE,
	Q_ATT_LIST,
	Q_VOL_INSERT,
	Q_VOL_GET,
	Q_VOL_LIST,
	Q_VOL_UPDATE,
	Q_VOL_DELETE,
	Q_VOL_DISK_PUT,
	Q_VOL_EPOCH_PUT,
	Q_IMG_INSERT,
	Q_IMG_GET,
	Q_IMG_LIST,
	Q_IMG_UPDATE,
	Q_IMG_DELETE,
	Q_REP_LIST,
	Q_REP_PUT,
	Q_REP_UPDATE,
	Q_REP_UPDATE0,
	Q_REP_REMOVE,
	Q_NODE_LABELS,
	Q_NODE_REMOVE,
	Q__MAX,
};

extern const char *const store_sqlite_migrations[];
extern const size_t store_sqlite_nmigrations;
extern const char *const store_sqlite_sql[Q__MAX];

#endif /* DISAGG_ORCH_STORE_SQLITE_SQL_H */
