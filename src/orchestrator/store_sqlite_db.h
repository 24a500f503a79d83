/* SPDX-License-Identifier: MIT */
/*
 * Internal to the SQLite store (store_sqlite.c, store_sqlite_regions.c):
 * the connection and the small helpers every operation uses, as static
 * inline functions so that the files of the store share them without
 * depending on each other.
 *
 * Every operation takes the connection's recursive mutex (sq_lock) for
 * as long as it uses a statement; sq_stmt hands out the cached statement
 * of an enum q, reset and unbound; SQLite result codes become -errno
 * (sq_err). COLLECT reads every row of a statement into a malloc'd array.
 */
#ifndef DISAGG_ORCH_STORE_SQLITE_DB_H
#define DISAGG_ORCH_STORE_SQLITE_DB_H

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "log.h"
#include "macro.h"
#include "store.h"
#include "store_sqlite_sql.h"

struct sqlstore {
	struct store base;
	sqlite3 *db;
	pthread_mutex_t mu;
	int txdepth;
	sqlite3_stmt **stmts;
};

static inline struct sqlstore *sq_of(struct store *s)
{
	return container_of(s, struct sqlstore, base);
}

static inline void sq_lock(struct sqlstore *st)
{
	pthread_mutex_lock(&st->mu);
}

static inline void sq_unlock(struct sqlstore *st)
{
	pthread_mutex_unlock(&st->mu);
}

static inline int sq_err(struct sqlstore *st, int rc, const char *what)
{
	log_debug("sqlite %s: %s (%d)", what, sqlite3_errmsg(st->db), rc);
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* The cached statement for q, reset and unbound. Call with the lock held. */
static inline sqlite3_stmt *sq_stmt(struct sqlstore *st, enum q q)
{
	sqlite3_stmt *p = st->stmts[q];

	if (!p) {
		if (sqlite3_prepare_v3(st->db, store_sqlite_sql[q], -1, SQLITE_PREPARE_PERSISTENT, &p, NULL) !=
		    SQLITE_OK) {
			log_error("sqlite prepare %d: %s", (int)q, sqlite3_errmsg(st->db));
			return NULL;
		}
		st->stmts[q] = p;
	}
	sqlite3_reset(p);
	sqlite3_clear_bindings(p);
	return p;
}

static inline void sq_copy_text(char *dst, size_t len, sqlite3_stmt *p, int col)
{
	const unsigned char *t = sqlite3_column_text(p, col);

	snprintf(dst, len, "%s", t ? (const char *)t : "");
}

static inline void sq_bind_text(sqlite3_stmt *p, int i, const char *s)
{
	sqlite3_bind_text(p, i, s, -1, SQLITE_TRANSIENT);
}

/* Run a statement that returns no rows. */
static inline int sq_exec_done(struct sqlstore *st, sqlite3_stmt *p, const char *what)
{
	int rc = sqlite3_step(p);

	sqlite3_reset(p);
	return rc == SQLITE_DONE ? 0 : sq_err(st, rc, what);
}

/* Run an UPDATE or DELETE of one row: -ENOENT if no row changed. */
static inline int sq_one_row(struct sqlstore *st, sqlite3_stmt *p, const char *what)
{
	int r = sq_exec_done(st, p, what);

	if (r == 0 && sqlite3_changes(st->db) == 0)
		r = -ENOENT;
	return r;
}

/* Statement q with two integers: -ENOENT if `one_row` and no row changed. */
static inline int sq_exec_2i(struct sqlstore *st, enum q q, int64_t a, int64_t b, bool one_row,
				    const char *what)
{
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	if ((p = sq_stmt(st, q))) {
		sqlite3_bind_int64(p, 1, a);
		sqlite3_bind_int64(p, 2, b);
		r = one_row ? sq_one_row(st, p, what) : sq_exec_done(st, p, what);
	}
	sq_unlock(st);
	return r;
}

/* Collect every row of p with `read` into a malloc'd array. Lock held. */
#define COLLECT(st, p, type, readfn, ret, ret_n)                                 \
	({                                                                      \
		type *_arr = NULL, *_np;                                        \
		size_t _n = 0, _cap = 0;                                        \
		int _rc, _r = 0;                                                \
		while ((_rc = sqlite3_step(p)) == SQLITE_ROW) {                 \
			if (_n == _cap) {                                       \
				_cap = _cap ? 2 * _cap : 16;                    \
				_np = realloc(_arr, _cap * sizeof(type));       \
				if (!_np) {                                     \
					_r = -ENOMEM;                           \
					break;                                  \
				}                                               \
				_arr = _np;                                     \
			}                                                       \
			readfn(p, &_arr[_n++]);                                 \
		}                                                               \
		if (!_r && _rc != SQLITE_DONE)                                  \
			_r = sq_err(st, _rc, "list");                           \
		sqlite3_reset(p);                                               \
		if (_r < 0) {                                                   \
			free(_arr);                                             \
		} else {                                                        \
			*(ret) = _arr;                                          \
			*(ret_n) = _n;                                          \
		}                                                               \
		_r;                                                             \
	})

#endif /* DISAGG_ORCH_STORE_SQLITE_DB_H */
