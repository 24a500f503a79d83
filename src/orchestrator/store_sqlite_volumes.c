// SPDX-License-Identifier: MIT
/*
 * The volume catalog in the SQLite store (store.h, struct
 * store_volume_ops): the table `volumes` of schema version 7 (name,
 * device node, size, key, image flag, the volume it was cloned from, the
 * slot it is attached to, and the state and run of an operation in
 * progress; version 8 adds the table `volume_disks`: an attached volume's
 * disk id on its compute agent and whether it is read-only; version 9 the
 * table `volume_epochs`: its ownership epoch; version 10 images,
 * store_sqlite_images.c; version 12 the column `kind`: file or block),
 * in the same
 * database and on the same connection as the rest, so that a volume's row
 * and its event share a transaction.
 */
#include "store_sqlite_volumes.h"

#include <string.h>

#include "store_sqlite_db.h"
#include "store_sqlite_images.h"

static void read_volume(sqlite3_stmt *p, struct volume_rec *o)
{
	memset(o, 0, sizeof(*o));
	o->id = sqlite3_column_int64(p, 0);
	sq_copy_text(o->name, sizeof(o->name), p, 1);
	sq_copy_text(o->state, sizeof(o->state), p, 2);
	o->devnode = (uint64_t)sqlite3_column_int64(p, 3);
	o->size = (uint64_t)sqlite3_column_int64(p, 4);
	o->key = (uint64_t)sqlite3_column_int64(p, 5);
	o->image = sqlite3_column_int(p, 6) != 0;
	sq_copy_text(o->origin, sizeof(o->origin), p, 7);
	o->slot_id = sqlite3_column_int64(p, 8);
	sq_copy_text(o->slot, sizeof(o->slot), p, 9);
	o->run = sqlite3_column_int64(p, 10);
	o->created = sqlite3_column_int64(p, 11);
	sq_copy_text(o->disk, sizeof(o->disk), p, 12);
	o->read_only = sqlite3_column_int(p, 13) != 0;
	o->epoch = (uint32_t)sqlite3_column_int64(p, 14);
	o->holder = (uint64_t)sqlite3_column_int64(p, 15);
	sq_copy_text(o->kind, sizeof(o->kind), p, 16);
}

static int sq_volume_insert(struct store *s, struct volume_rec *o)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_VOL_INSERT);
	if (p) {
		sq_bind_text(p, 1, o->name);
		sq_bind_text(p, 2, o->state);
		sqlite3_bind_int64(p, 3, (int64_t)o->devnode);
		sqlite3_bind_int64(p, 4, (int64_t)o->size);
		sqlite3_bind_int64(p, 5, (int64_t)o->key);
		sqlite3_bind_int(p, 6, o->image);
		sq_bind_text(p, 7, o->origin);
		sqlite3_bind_int64(p, 8, o->slot_id);
		sqlite3_bind_int64(p, 9, o->run);
		sqlite3_bind_int64(p, 10, o->created);
		sq_bind_text(p, 11, o->kind[0] ? o->kind : "file");
		r = sq_exec_done(st, p, "volume_insert");
		if (r == 0)
			o->id = sqlite3_last_insert_rowid(st->db);
	}
	sq_unlock(st);
	return r;
}

static int sq_volume_get(struct store *s, const char *name, struct volume_rec *ret)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO, rc;

	sq_lock(st);
	p = sq_stmt(st, Q_VOL_GET);
	if (p) {
		sq_bind_text(p, 1, name);
		rc = sqlite3_step(p);
		if (rc == SQLITE_ROW) {
			read_volume(p, ret);
			r = 0;
		} else {
			r = rc == SQLITE_DONE ? -ENOENT : sq_err(st, rc, "volume_get");
		}
		sqlite3_reset(p);
	}
	sq_unlock(st);
	return r;
}

static int sq_volume_list(struct store *s, uint64_t devnode, struct volume_rec **ret,
			  size_t *ret_n)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_VOL_LIST);
	if (p) {
		sqlite3_bind_int64(p, 1, (int64_t)devnode);
		r = COLLECT(st, p, struct volume_rec, read_volume, ret, ret_n);
	}
	sq_unlock(st);
	return r;
}

static int sq_volume_update(struct store *s, const struct volume_rec *o)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r;

	/* The row, its disk and its epoch, or none: a transaction of its own, or the caller's. */
	r = s->ops->begin(s);
	if (r < 0)
		return r;
	p = sq_stmt(st, Q_VOL_UPDATE);
	r = -EIO;
	if (p) {
		sqlite3_bind_int64(p, 1, o->id);
		sq_bind_text(p, 2, o->state);
		sqlite3_bind_int64(p, 3, (int64_t)o->size);
		sqlite3_bind_int64(p, 4, (int64_t)o->key);
		sqlite3_bind_int64(p, 5, o->slot_id);
		sqlite3_bind_int64(p, 6, o->run);
		sq_bind_text(p, 7, o->kind[0] ? o->kind : "file");
		r = sq_one_row(st, p, "volume_update");
	}
	if (r == 0) {
		p = sq_stmt(st, Q_VOL_DISK_PUT);
		r = -EIO;
		if (p) {
			sqlite3_bind_int64(p, 1, o->id);
			sq_bind_text(p, 2, o->slot_id ? o->disk : "");
			sqlite3_bind_int(p, 3, o->slot_id && o->read_only);
			r = sq_exec_done(st, p, "volume_update");
		}
	}
	if (r == 0)
		r = sq_exec_2i(st, Q_VOL_EPOCH_PUT, o->id, o->epoch, false, "volume_update");
	if (r < 0) {
		s->ops->rollback(s);
		return r;
	}
	return s->ops->commit(s);
}

static int sq_volume_delete(struct store *s, int64_t id)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_VOL_DELETE);
	if (p) {
		sqlite3_bind_int64(p, 1, id);
		r = sq_one_row(st, p, "volume_delete");
	}
	sq_unlock(st);
	return r;
}

static const struct store_volume_ops volume_ops = {
	.volume_insert = sq_volume_insert,
	.volume_get = sq_volume_get,
	.volume_list = sq_volume_list,
	.volume_update = sq_volume_update,
	.volume_delete = sq_volume_delete,
	.image_insert = store_sqlite_image_insert,
	.image_get = store_sqlite_image_get,
	.image_list = store_sqlite_image_list,
	.image_update = store_sqlite_image_update,
	.image_delete = store_sqlite_image_delete,
};

void store_sqlite_volumes(struct store *s)
{
	s->vol = &volume_ops;
}
