// SPDX-License-Identifier: MIT
/*
 * Images in the SQLite store (store.h, struct store_volume_ops, image_*):
 * the table `images` of schema version 9 (name, state, the format that was
 * imported, size, the base volume, the kernel's and initramfs's sizes and
 * command line), read with its base volume's device node. In the same
 * database and on the same connection as the volume catalog, so that an
 * image's row, its volume's and their event share a transaction.
 */
#include "store_sqlite_images.h"

#include <string.h>

#include "store_sqlite_db.h"

static void read_image(sqlite3_stmt *p, struct image_rec *o)
{
	memset(o, 0, sizeof(*o));
	o->id = sqlite3_column_int64(p, 0);
	sq_copy_text(o->name, sizeof(o->name), p, 1);
	sq_copy_text(o->state, sizeof(o->state), p, 2);
	sq_copy_text(o->format, sizeof(o->format), p, 3);
	o->size = (uint64_t)sqlite3_column_int64(p, 4);
	o->volume_id = sqlite3_column_int64(p, 5);
	o->devnode = (uint64_t)sqlite3_column_int64(p, 6);
	o->kernel_size = (uint64_t)sqlite3_column_int64(p, 7);
	o->initrd_size = (uint64_t)sqlite3_column_int64(p, 8);
	sq_copy_text(o->cmdline, sizeof(o->cmdline), p, 9);
	o->created = sqlite3_column_int64(p, 10);
}

int store_sqlite_image_insert(struct store *s, struct image_rec *o)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	if ((p = sq_stmt(st, Q_IMG_INSERT))) {
		sq_bind_text(p, 1, o->name);
		sq_bind_text(p, 2, o->state);
		sq_bind_text(p, 3, o->format);
		sqlite3_bind_int64(p, 4, (int64_t)o->size);
		sqlite3_bind_int64(p, 5, o->volume_id);
		sqlite3_bind_int64(p, 6, (int64_t)o->kernel_size);
		sqlite3_bind_int64(p, 7, (int64_t)o->initrd_size);
		sq_bind_text(p, 8, o->cmdline);
		sqlite3_bind_int64(p, 9, o->created);
		r = sq_exec_done(st, p, "image_insert");
		if (r == 0)
			o->id = sqlite3_last_insert_rowid(st->db);
	}
	sq_unlock(st);
	return r;
}

int store_sqlite_image_get(struct store *s, const char *name, struct image_rec *ret)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO, rc;

	sq_lock(st);
	if ((p = sq_stmt(st, Q_IMG_GET))) {
		sq_bind_text(p, 1, name);
		rc = sqlite3_step(p);
		if (rc == SQLITE_ROW)
			read_image(p, ret);
		r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : sq_err(st, rc, "image_get");
		sqlite3_reset(p);
	}
	sq_unlock(st);
	return r;
}

int store_sqlite_image_list(struct store *s, struct image_rec **ret, size_t *ret_n)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	if ((p = sq_stmt(st, Q_IMG_LIST)))
		r = COLLECT(st, p, struct image_rec, read_image, ret, ret_n);
	sq_unlock(st);
	return r;
}

int store_sqlite_image_update(struct store *s, const struct image_rec *o)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	if ((p = sq_stmt(st, Q_IMG_UPDATE))) {
		sqlite3_bind_int64(p, 1, o->id);
		sq_bind_text(p, 2, o->state);
		r = sq_one_row(st, p, "image_update");
	}
	sq_unlock(st);
	return r;
}

int store_sqlite_image_delete(struct store *s, int64_t id)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	if ((p = sq_stmt(st, Q_IMG_DELETE))) {
		sqlite3_bind_int64(p, 1, id);
		r = sq_one_row(st, p, "image_delete");
	}
	sq_unlock(st);
	return r;
}
