// SPDX-License-Identifier: MIT
/*
 * The SQLite implementation of the orchestrator's store (store.h).
 *
 * One connection, WAL journal (readers never block the writer, a crash
 * loses at most the last transactions), synchronous=NORMAL, foreign keys
 * on, a busy timeout for other processes (a backup with `sqlite3 .backup`).
 * The schema is versioned with PRAGMA user_version: `migrations[i]` brings
 * a database from version i to i + 1, each in its own transaction, so an
 * old database is upgraded in order and a newer one is refused.
 *
 * The connection is guarded by one recursive mutex: every operation takes
 * it, and begin() keeps it until commit()/rollback(), which makes a
 * transaction exclusive to its thread. Statements are prepared once and
 * cached (SQL texts: store_sqlite_sql.c, by enum q; helpers: store_sqlite_db.h;
 * shared regions: store_sqlite_regions.c).
 */
#include "store_sqlite.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>

#include "log.h"
#include "macro.h"
#include "store_sqlite_db.h"
#include "store_sqlite_regions.h"

static int sq_exec_sql(struct sqlstore *st, const char *text)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, text, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_error("sqlite: %s: %s", text, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return sq_err(st, rc, text);
	}
	return 0;
}

/* ---- transactions ------------------------------------------------------ */

static int sq_begin(struct store *s)
{
	struct sqlstore *st = sq_of(s);
	int r;

	sq_lock(st);
	if (st->txdepth++ > 0)
		return 0;
	r = sq_exec_sql(st, "BEGIN IMMEDIATE");
	if (r < 0) {
		st->txdepth--;
		sq_unlock(st);
	}
	return r;
}

static int sq_commit(struct store *s)
{
	struct sqlstore *st = sq_of(s);
	int r = 0;

	if (--st->txdepth == 0) {
		r = sq_exec_sql(st, "COMMIT");
		if (r < 0)
			sq_exec_sql(st, "ROLLBACK");
	}
	sq_unlock(st);
	return r;
}

static void sq_rollback(struct store *s)
{
	struct sqlstore *st = sq_of(s);

	/* A nested rollback rolls the whole transaction back at the outermost level. */
	if (--st->txdepth == 0 && !sqlite3_get_autocommit(st->db))
		sq_exec_sql(st, "ROLLBACK");
	sq_unlock(st);
}

/* ---- nodes ------------------------------------------------------------- */

static void read_node(sqlite3_stmt *p, struct node_rec *n)
{
	memset(n, 0, sizeof(*n));
	n->id = (uint64_t)sqlite3_column_int64(p, 0);
	sq_copy_text(n->kind, sizeof(n->kind), p, 1);
	sq_copy_text(n->name, sizeof(n->name), p, 2);
	sq_copy_text(n->state, sizeof(n->state), p, 3);
	n->drained = sqlite3_column_int(p, 4) != 0;
	sq_copy_text(n->addr, sizeof(n->addr), p, 5);
	sq_copy_text(n->http, sizeof(n->http), p, 6);
	sq_copy_text(n->labels, sizeof(n->labels), p, 7);
	n->section_size = (uint64_t)sqlite3_column_int64(p, 8);
	n->sections_total = sqlite3_column_int64(p, 9);
	n->sections_free = sqlite3_column_int64(p, 10);
	n->vcpus = sqlite3_column_int64(p, 11);
	n->registered = sqlite3_column_int64(p, 12);
	n->last_heartbeat = sqlite3_column_int64(p, 13);
	n->nslots = sqlite3_column_int64(p, 14);
	n->vcpus_used = sqlite3_column_int64(p, 15);
}

static int sq_node_put(struct store *s, const struct node_rec *n)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_NODE_PUT);
	if (p) {
		sqlite3_bind_int64(p, 1, (int64_t)n->id);
		sq_bind_text(p, 2, n->kind);
		sq_bind_text(p, 3, n->name);
		sq_bind_text(p, 4, n->addr);
		sq_bind_text(p, 5, n->http);
		sq_bind_text(p, 6, n->labels[0] ? n->labels : "{}");
		sqlite3_bind_int64(p, 7, (int64_t)n->section_size);
		sqlite3_bind_int64(p, 8, n->sections_total);
		sqlite3_bind_int64(p, 9, n->sections_free);
		sqlite3_bind_int64(p, 10, n->vcpus);
		sqlite3_bind_int64(p, 11, n->last_heartbeat);
		r = sq_exec_done(st, p, "node_put");
	}
	sq_unlock(st);
	return r;
}

static int sq_node_get(struct store *s, uint64_t id, struct node_rec *ret)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO, rc;

	sq_lock(st);
	p = sq_stmt(st, Q_NODE_GET);
	if (p) {
		sqlite3_bind_int64(p, 1, (int64_t)id);
		rc = sqlite3_step(p);
		if (rc == SQLITE_ROW) {
			read_node(p, ret);
			r = 0;
		} else {
			r = rc == SQLITE_DONE ? -ENOENT : sq_err(st, rc, "node_get");
		}
		sqlite3_reset(p);
	}
	sq_unlock(st);
	return r;
}

static int sq_node_list(struct store *s, const char *kind, struct node_rec **ret, size_t *ret_n)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, kind ? Q_NODE_LIST_KIND : Q_NODE_LIST);
	if (p) {
		if (kind)
			sq_bind_text(p, 1, kind);
		r = COLLECT(st, p, struct node_rec, read_node, ret, ret_n);
	}
	sq_unlock(st);
	return r;
}

static int sq_node_set_state(struct store *s, uint64_t id, const char *state)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_NODE_STATE);
	if (p) {
		sqlite3_bind_int64(p, 1, (int64_t)id);
		sq_bind_text(p, 2, state);
		r = sq_one_row(st, p, "node_set_state");
	}
	sq_unlock(st);
	return r;
}

static int sq_node_set_drained(struct store *s, uint64_t id, bool drained)
{
	return sq_exec_2i(sq_of(s), Q_NODE_DRAINED, (int64_t)id, drained, true, "node_set_drained");
}

static int sq_node_heartbeat(struct store *s, uint64_t id, int64_t now, int64_t sections_free,
			     int64_t sections_total, int64_t vcpus)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_NODE_HB);
	if (p) {
		sqlite3_bind_int64(p, 1, (int64_t)id);
		sqlite3_bind_int64(p, 2, now);
		sqlite3_bind_int64(p, 3, sections_free);
		sqlite3_bind_int64(p, 4, sections_total);
		sqlite3_bind_int64(p, 5, vcpus);
		r = sq_one_row(st, p, "node_heartbeat");
	}
	sq_unlock(st);
	return r;
}

static int sq_node_adjust_free(struct store *s, uint64_t id, int64_t delta)
{
	return sq_exec_2i(sq_of(s), Q_NODE_ADJ, (int64_t)id, delta, true, "node_adjust_free");
}

static int sq_node_set_free(struct store *s, uint64_t id, int64_t sections_free)
{
	return sq_exec_2i(sq_of(s), Q_NODE_SETFREE, (int64_t)id, sections_free, true, "node_set_free");
}

static void read_id(sqlite3_stmt *p, uint64_t *id)
{
	*id = (uint64_t)sqlite3_column_int64(p, 0);
}

/* The ids statement q returns (bound to `arg` if there is one). */
static int ids_query(struct sqlstore *st, enum q q, const int64_t *arg, uint64_t **ret,
		     size_t *ret_n)
{
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	if ((p = sq_stmt(st, q))) {
		if (arg)
			sqlite3_bind_int64(p, 1, *arg);
		r = COLLECT(st, p, uint64_t, read_id, ret, ret_n);
	}
	sq_unlock(st);
	return r;
}

static int sq_node_stale(struct store *s, int64_t deadline, uint64_t **ret, size_t *ret_n)
{
	return ids_query(sq_of(s), Q_NODE_STALE, &deadline, ret, ret_n);
}

/* ---- slots ------------------------------------------------------------- */
static void read_slot(sqlite3_stmt *p, struct slot_rec *o)
{
	memset(o, 0, sizeof(*o));
	o->id = sqlite3_column_int64(p, 0);
	sq_copy_text(o->name, sizeof(o->name), p, 1);
	sq_copy_text(o->state, sizeof(o->state), p, 2);
	o->vcpus = sqlite3_column_int64(p, 3);
	o->memory = (uint64_t)sqlite3_column_int64(p, 4);
	o->remote_percent = sqlite3_column_int64(p, 5);
	o->cache = sqlite3_column_int64(p, 6);
	o->compute = (uint64_t)sqlite3_column_int64(p, 7);
	sq_copy_text(o->policy, sizeof(o->policy), p, 8);
	sq_copy_text(o->hotplug, sizeof(o->hotplug), p, 9);
	sq_copy_text(o->constraints, sizeof(o->constraints), p, 10);
	sq_copy_text(o->reason, sizeof(o->reason), p, 11);
	o->created = sqlite3_column_int64(p, 12);
	sq_copy_text(o->op, sizeof(o->op), p, 13);
	sq_copy_text(o->page_key, sizeof(o->page_key), p, 14);
	sq_copy_text(o->net, sizeof(o->net), p, 15);
	o->replicas = sqlite3_column_int64(p, 16);
}

static int sq_slot_insert(struct store *s, struct slot_rec *o)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_SLOT_INSERT);
	if (p) {
		sq_bind_text(p, 1, o->name);
		sq_bind_text(p, 2, o->state);
		sqlite3_bind_int64(p, 3, o->vcpus);
		sqlite3_bind_int64(p, 4, (int64_t)o->memory);
		sqlite3_bind_int64(p, 5, o->remote_percent);
		sqlite3_bind_int64(p, 6, o->cache);
		sqlite3_bind_int64(p, 7, (int64_t)o->compute);
		sq_bind_text(p, 8, o->policy);
		sq_bind_text(p, 9, o->hotplug);
		sq_bind_text(p, 10, o->constraints[0] ? o->constraints : "{}");
		sq_bind_text(p, 11, o->reason);
		sqlite3_bind_int64(p, 12, o->created);
		sq_bind_text(p, 13, o->page_key);
		sq_bind_text(p, 14, o->net);
		sqlite3_bind_int64(p, 15, o->replicas);
		r = sq_exec_done(st, p, "slot_insert");
		if (r == 0)
			o->id = sqlite3_last_insert_rowid(st->db);
	}
	sq_unlock(st);
	return r;
}

static int sq_slot_get(struct store *s, const char *name, struct slot_rec *ret)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO, rc;

	sq_lock(st);
	p = sq_stmt(st, Q_SLOT_GET);
	if (p) {
		sq_bind_text(p, 1, name);
		rc = sqlite3_step(p);
		if (rc == SQLITE_ROW) {
			read_slot(p, ret);
			r = 0;
		} else {
			r = rc == SQLITE_DONE ? -ENOENT : sq_err(st, rc, "slot_get");
		}
		sqlite3_reset(p);
	}
	sq_unlock(st);
	return r;
}

static int sq_slot_list(struct store *s, uint64_t compute, uint64_t memnode,
			struct slot_rec **ret, size_t *ret_n)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	if (memnode) {
		p = sq_stmt(st, Q_SLOT_LIST_MEMNODE);
		if (p)
			sqlite3_bind_int64(p, 1, (int64_t)memnode);
	} else if (compute) {
		p = sq_stmt(st, Q_SLOT_LIST_COMPUTE);
		if (p)
			sqlite3_bind_int64(p, 1, (int64_t)compute);
	} else {
		p = sq_stmt(st, Q_SLOT_LIST);
	}
	if (p)
		r = COLLECT(st, p, struct slot_rec, read_slot, ret, ret_n);
	sq_unlock(st);
	return r;
}

static int sq_slot_update(struct store *s, const struct slot_rec *o)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_SLOT_UPDATE);
	if (p) {
		sqlite3_bind_int64(p, 1, o->id);
		sq_bind_text(p, 2, o->state);
		sqlite3_bind_int64(p, 3, (int64_t)o->memory);
		sq_bind_text(p, 4, o->reason);
		sqlite3_bind_int64(p, 5, (int64_t)o->compute);
		sq_bind_text(p, 6, o->op);
		sq_bind_text(p, 7, o->net);
		r = sq_one_row(st, p, "slot_update");
	}
	sq_unlock(st);
	return r;
}

static int sq_slot_delete(struct store *s, int64_t id)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_SLOT_DELETE);
	if (p) {
		sqlite3_bind_int64(p, 1, id);
		r = sq_one_row(st, p, "slot_delete");
	}
	sq_unlock(st);
	return r;
}

/* ---- sections ---------------------------------------------------------- */
static int sq_section_add(struct store *s, const struct section_rec *o)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_SEC_ADD);
	if (p) {
		sqlite3_bind_int64(p, 1, o->slot_id);
		sqlite3_bind_int64(p, 2, o->idx);
		sq_bind_text(p, 3, o->remote ? "remote" : "local");
		if (o->remote)
			sqlite3_bind_int64(p, 4, (int64_t)o->memnode);
		else
			sqlite3_bind_null(p, 4);
		sqlite3_bind_int64(p, 5, o->section);
		sqlite3_bind_int64(p, 6, o->generation);
		sqlite3_bind_int64(p, 7, o->hot_index);
		sqlite3_bind_int64(p, 8, o->epoch);
		r = sq_exec_done(st, p, "section_add");
	}
	sq_unlock(st);
	return r;
}

static int sq_section_remove(struct store *s, int64_t slot_id, int64_t idx)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_SEC_REMOVE);
	if (p) {
		sqlite3_bind_int64(p, 1, slot_id);
		sqlite3_bind_int64(p, 2, idx);
		r = sq_one_row(st, p, "section_remove");
	}
	sq_unlock(st);
	return r;
}

static void read_section(sqlite3_stmt *p, struct section_rec *o)
{
	memset(o, 0, sizeof(*o));
	o->slot_id = sqlite3_column_int64(p, 0);
	sq_copy_text(o->slot, sizeof(o->slot), p, 1);
	o->idx = sqlite3_column_int64(p, 2);
	o->remote = strcmp((const char *)sqlite3_column_text(p, 3), "remote") == 0;
	o->memnode = (uint64_t)sqlite3_column_int64(p, 4);
	o->section = (uint32_t)sqlite3_column_int64(p, 5);
	o->generation = (uint32_t)sqlite3_column_int64(p, 6);
	o->hot_index = sqlite3_column_int64(p, 7);
	o->epoch = (uint32_t)sqlite3_column_int64(p, 8);
}

static int sq_section_list(struct store *s, int64_t slot_id, uint64_t memnode,
			   struct section_rec **ret, size_t *ret_n)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_SEC_LIST);
	if (p) {
		sqlite3_bind_int64(p, 1, slot_id);
		sqlite3_bind_int64(p, 2, (int64_t)memnode);
		r = COLLECT(st, p, struct section_rec, read_section, ret, ret_n);
	}
	sq_unlock(st);
	return r;
}

static int sq_section_count(struct store *s, int64_t *ret)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO, rc;

	sq_lock(st);
	p = sq_stmt(st, Q_SEC_COUNT);
	if (p) {
		rc = sqlite3_step(p);
		if (rc == SQLITE_ROW) {
			*ret = sqlite3_column_int64(p, 0);
			r = 0;
		} else {
			r = sq_err(st, rc, "section_count");
		}
		sqlite3_reset(p);
	}
	sq_unlock(st);
	return r;
}

/* ---- requests ---------------------------------------------------------- */

static int sq_request_begin(struct store *s, const char *id, const char *method, const char *path,
			    int64_t now, int *ret_status, char **ret_body, char **ret_key)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO, rc;

	sq_lock(st);
	p = sq_stmt(st, Q_REQ_GET);
	if (!p)
		goto out;
	sq_bind_text(p, 1, id);
	rc = sqlite3_step(p);
	if (rc == SQLITE_ROW) {
		const char *body = (const char *)sqlite3_column_text(p, 1);
		const char *key = (const char *)sqlite3_column_text(p, 2);

		*ret_status = sqlite3_column_int(p, 0);
		*ret_body = body ? strdup(body) : NULL;
		*ret_key = key ? strdup(key) : NULL;
		sqlite3_reset(p);
		r = -EEXIST;
		goto out;
	}
	sqlite3_reset(p);
	if (rc != SQLITE_DONE) {
		r = sq_err(st, rc, "request_get");
		goto out;
	}
	p = sq_stmt(st, Q_REQ_INSERT);
	if (!p)
		goto out;
	sq_bind_text(p, 1, id);
	sq_bind_text(p, 2, method);
	sq_bind_text(p, 3, path);
	sqlite3_bind_int64(p, 4, now);
	r = sq_exec_done(st, p, "request_insert");
out:
	sq_unlock(st);
	return r;
}

static int sq_request_finish(struct store *s, const char *id, int status, const char *body)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_REQ_FINISH);
	if (p) {
		sq_bind_text(p, 1, id);
		sqlite3_bind_int(p, 2, status);
		if (body)
			sq_bind_text(p, 3, body);
		else
			sqlite3_bind_null(p, 3);
		r = sq_exec_done(st, p, "request_finish");
	}
	sq_unlock(st);
	return r;
}

static int sq_request_forget(struct store *s, const char *id)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_REQ_FORGET);
	if (p) {
		sq_bind_text(p, 1, id);
		r = sq_exec_done(st, p, "request_forget");
	}
	sq_unlock(st);
	return r;
}

static int sq_request_prune(struct store *s, int64_t before)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_REQ_PRUNE);
	if (p) {
		sqlite3_bind_int64(p, 1, before);
		r = sq_exec_done(st, p, "request_prune");
	}
	sq_unlock(st);
	return r;
}

static int sq_request_abandon(struct store *s)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_REQ_ABANDON);
	if (p)
		r = sq_exec_done(st, p, "request_abandon");
	sq_unlock(st);
	return r;
}

/* ---- events ------------------------------------------------------------ */

static int sq_revoked_add(struct store *s, uint64_t id, int64_t now)
{
	return sq_exec_2i(sq_of(s), Q_REVOKED_ADD, (int64_t)id, now, false, "revoked_add");
}

static int sq_revoked_list(struct store *s, uint64_t **ret, size_t *ret_n)
{
	return ids_query(sq_of(s), Q_REVOKED_LIST, NULL, ret, ret_n);
}

static int sq_event_add(struct store *s, const char *kind, uint64_t node, const char *slot,
			const char *message)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_EV_ADD);
	if (p) {
		sqlite3_bind_int64(p, 1, (int64_t)time(NULL));
		sq_bind_text(p, 2, kind);
		if (node)
			sqlite3_bind_int64(p, 3, (int64_t)node);
		else
			sqlite3_bind_null(p, 3);
		if (slot && *slot)
			sq_bind_text(p, 4, slot);
		else
			sqlite3_bind_null(p, 4);
		sq_bind_text(p, 5, message);
		r = sq_exec_done(st, p, "event_add");
	}
	sq_unlock(st);
	return r;
}

static void read_event(sqlite3_stmt *p, struct event_rec *o)
{
	memset(o, 0, sizeof(*o));
	o->seq = sqlite3_column_int64(p, 0);
	o->time = sqlite3_column_int64(p, 1);
	sq_copy_text(o->kind, sizeof(o->kind), p, 2);
	o->node = (uint64_t)sqlite3_column_int64(p, 3);
	sq_copy_text(o->slot, sizeof(o->slot), p, 4);
	sq_copy_text(o->message, sizeof(o->message), p, 5);
}

static int sq_event_list(struct store *s, int64_t since, int64_t limit, struct event_rec **ret,
			 size_t *ret_n)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_EV_LIST);
	if (p) {
		sqlite3_bind_int64(p, 1, since);
		sqlite3_bind_int64(p, 2, limit);
		r = COLLECT(st, p, struct event_rec, read_event, ret, ret_n);
	}
	sq_unlock(st);
	return r;
}

/* ---- open, migrate, close ---------------------------------------------- */

static void sq_close(struct store *s)
{
	struct sqlstore *st;

	if (!s)
		return;
	st = sq_of(s);
	if (st->stmts)
		for (int i = 0; i < Q__MAX; i++)
			sqlite3_finalize(st->stmts[i]);
	free(st->stmts);
	sqlite3_close(st->db);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

static const struct store_ops sqlite_ops = {
	.close = sq_close,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.node_put = sq_node_put,
	.node_get = sq_node_get,
	.node_list = sq_node_list,
	.node_set_state = sq_node_set_state,
	.node_set_drained = sq_node_set_drained,
	.node_heartbeat = sq_node_heartbeat,
	.node_adjust_free = sq_node_adjust_free,
	.node_set_free = sq_node_set_free,
	.node_stale = sq_node_stale,
	.slot_insert = sq_slot_insert,
	.slot_get = sq_slot_get,
	.slot_list = sq_slot_list,
	.slot_update = sq_slot_update,
	.slot_delete = sq_slot_delete,
	.section_add = sq_section_add,
	.section_remove = sq_section_remove,
	.section_list = sq_section_list,
	.section_count = sq_section_count,
	.request_begin = sq_request_begin,
	.request_finish = sq_request_finish,
	.request_forget = sq_request_forget,
	.request_prune = sq_request_prune,
	.request_abandon = sq_request_abandon,
	.revoked_add = sq_revoked_add,
	.revoked_list = sq_revoked_list,
	.event_add = sq_event_add,
	.event_list = sq_event_list,
	.region_insert = sq_region_insert,
	.region_get = sq_region_get,
	.region_list = sq_region_list,
	.region_update = sq_region_update,
	.region_delete = sq_region_delete,
	.region_section_add = sq_region_section_add,
	.region_section_list = sq_region_section_list,
	.attach_put = sq_attach_put,
	.attach_remove = sq_attach_remove,
	.attach_list = sq_attach_list,
};

static int user_version(struct sqlstore *st, int *ret)
{
	sqlite3_stmt *p = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &p, NULL) != SQLITE_OK)
		return sq_err(st, SQLITE_ERROR, "user_version");
	rc = sqlite3_step(p);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int(p, 0);
	sqlite3_finalize(p);
	return rc == SQLITE_ROW ? 0 : sq_err(st, rc, "user_version");
}

static int migrate(struct sqlstore *st)
{
	int v = 0, r;

	r = user_version(st, &v);
	if (r < 0)
		return r;
	if (v > (int)store_sqlite_nmigrations) {
		log_error("database schema version %d is newer than this program's (%zu)", v,
			  store_sqlite_nmigrations);
		return -EPROTONOSUPPORT;
	}
	for (; v < (int)store_sqlite_nmigrations; v++) {
		char bump[64];

		r = sq_exec_sql(st, "BEGIN IMMEDIATE");
		if (r < 0)
			return r;
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
		r = sq_exec_sql(st, store_sqlite_migrations[v]);
		if (r == 0)
			r = sq_exec_sql(st, bump);
		if (r == 0)
			r = sq_exec_sql(st, "COMMIT");
		if (r < 0) {
			sq_exec_sql(st, "ROLLBACK");
			return r;
		}
		log_info("database schema migrated to version %d", v + 1);
	}
	return 0;
}

int store_sqlite_open(const char *path, struct store **ret)
{
	pthread_mutexattr_t attr;
	struct sqlstore *st;
	int r;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->base.ops = &sqlite_ops;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&st->mu, &attr);
	pthread_mutexattr_destroy(&attr);
	st->stmts = calloc(Q__MAX, sizeof(*st->stmts));
	if (!st->stmts) {
		r = -ENOMEM;
		goto fail;
	}
	/* SQLite opens its files O_CLOEXEC where the platform has it. */
	if (sqlite3_open_v2(path, &st->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		log_error("cannot open database %s: %s", path,
			  st->db ? sqlite3_errmsg(st->db) : "out of memory");
		r = -EIO;
		goto fail;
	}
	sqlite3_busy_timeout(st->db, 5000);
	r = sq_exec_sql(st, "PRAGMA journal_mode = WAL");
	if (r == 0)
		r = sq_exec_sql(st, "PRAGMA synchronous = NORMAL");
	if (r == 0)
		r = sq_exec_sql(st, "PRAGMA foreign_keys = ON");
	if (r == 0)
		r = migrate(st);
	if (r < 0)
		goto fail;
	*ret = &st->base;
	return 0;
fail:
	sq_close(&st->base);
	return r;
}
