// SPDX-License-Identifier: MIT
/*
 * Shared regions in the SQLite store (store.h): the regions table (name,
 * mode, size, home memory node, lock holder, ownership epoch, the state of
 * an operation in progress), their sections (one row per section, like a
 * slot's) and their attachments to slots (region_attachments, with the
 * device's PCI address and whether an invalidation is owed).
 *
 * A region's sections share its epoch: region_update writes the region's
 * row and the epoch of every one of its sections in one transaction, so
 * that the store never shows a section behind the grants minted for it.
 */
#include "store_sqlite_regions.h"

#include <string.h>

#include "store_sqlite_db.h"

static void read_region(sqlite3_stmt *p, struct region_rec *o)
{
	memset(o, 0, sizeof(*o));
	o->id = sqlite3_column_int64(p, 0);
	sq_copy_text(o->name, sizeof(o->name), p, 1);
	sq_copy_text(o->mode, sizeof(o->mode), p, 2);
	sq_copy_text(o->state, sizeof(o->state), p, 3);
	o->size = (uint64_t)sqlite3_column_int64(p, 4);
	o->home = (uint64_t)sqlite3_column_int64(p, 5);
	o->holder = sqlite3_column_int64(p, 6);
	sq_copy_text(o->holder_name, sizeof(o->holder_name), p, 7);
	o->pending = sqlite3_column_int64(p, 8);
	o->epoch = (uint32_t)sqlite3_column_int64(p, 9);
	o->created = sqlite3_column_int64(p, 10);
}

int sq_region_insert(struct store *s, struct region_rec *o)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_REG_INSERT);
	if (p) {
		sq_bind_text(p, 1, o->name);
		sq_bind_text(p, 2, o->mode);
		sq_bind_text(p, 3, o->state);
		sqlite3_bind_int64(p, 4, (int64_t)o->size);
		sqlite3_bind_int64(p, 5, (int64_t)o->home);
		sqlite3_bind_int64(p, 6, o->holder);
		sqlite3_bind_int64(p, 7, o->pending);
		sqlite3_bind_int64(p, 8, o->epoch);
		sqlite3_bind_int64(p, 9, o->created);
		r = sq_exec_done(st, p, "region_insert");
		if (r == 0)
			o->id = sqlite3_last_insert_rowid(st->db);
	}
	sq_unlock(st);
	return r;
}

int sq_region_get(struct store *s, const char *name, struct region_rec *ret)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO, rc;

	sq_lock(st);
	p = sq_stmt(st, Q_REG_GET);
	if (p) {
		sq_bind_text(p, 1, name);
		rc = sqlite3_step(p);
		if (rc == SQLITE_ROW) {
			read_region(p, ret);
			r = 0;
		} else {
			r = rc == SQLITE_DONE ? -ENOENT : sq_err(st, rc, "region_get");
		}
		sqlite3_reset(p);
	}
	sq_unlock(st);
	return r;
}

int sq_region_list(struct store *s, struct region_rec **ret, size_t *ret_n)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_REG_LIST);
	if (p)
		r = COLLECT(st, p, struct region_rec, read_region, ret, ret_n);
	sq_unlock(st);
	return r;
}

int sq_region_update(struct store *s, const struct region_rec *o)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r;

	/* Both statements or neither: a transaction of its own, or the caller's. */
	r = s->ops->begin(s);
	if (r < 0)
		return r;
	p = sq_stmt(st, Q_REG_UPDATE);
	r = -EIO;
	if (p) {
		sqlite3_bind_int64(p, 1, o->id);
		sq_bind_text(p, 2, o->state);
		sqlite3_bind_int64(p, 3, o->holder);
		sqlite3_bind_int64(p, 4, o->pending);
		sqlite3_bind_int64(p, 5, o->epoch);
		sqlite3_bind_int64(p, 6, (int64_t)o->home);
		r = sq_one_row(st, p, "region_update");
	}
	if (r == 0) {
		p = sq_stmt(st, Q_REG_SEC_EPOCH);
		r = -EIO;
		if (p) {
			sqlite3_bind_int64(p, 1, o->id);
			sqlite3_bind_int64(p, 2, o->epoch);
			r = sq_exec_done(st, p, "region_update");
		}
	}
	if (r < 0) {
		s->ops->rollback(s);
		return r;
	}
	return s->ops->commit(s);
}

int sq_region_delete(struct store *s, int64_t id)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_REG_DELETE);
	if (p) {
		sqlite3_bind_int64(p, 1, id);
		r = sq_one_row(st, p, "region_delete");
	}
	sq_unlock(st);
	return r;
}

int sq_region_section_add(struct store *s, const struct region_section_rec *o)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_REG_SEC_ADD);
	if (p) {
		sqlite3_bind_int64(p, 1, o->region_id);
		sqlite3_bind_int64(p, 2, o->idx);
		sqlite3_bind_int64(p, 3, (int64_t)o->memnode);
		sqlite3_bind_int64(p, 4, o->section);
		sqlite3_bind_int64(p, 5, o->generation);
		sqlite3_bind_int64(p, 6, o->epoch);
		r = sq_exec_done(st, p, "region_section_add");
	}
	sq_unlock(st);
	return r;
}

static void read_region_section(sqlite3_stmt *p, struct region_section_rec *o)
{
	memset(o, 0, sizeof(*o));
	o->region_id = sqlite3_column_int64(p, 0);
	o->idx = sqlite3_column_int64(p, 1);
	o->memnode = (uint64_t)sqlite3_column_int64(p, 2);
	o->section = (uint32_t)sqlite3_column_int64(p, 3);
	o->generation = (uint32_t)sqlite3_column_int64(p, 4);
	o->epoch = (uint32_t)sqlite3_column_int64(p, 5);
}

int sq_region_section_list(struct store *s, int64_t region_id, uint64_t memnode,
			   struct region_section_rec **ret, size_t *ret_n)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_REG_SEC_LIST);
	if (p) {
		sqlite3_bind_int64(p, 1, region_id);
		sqlite3_bind_int64(p, 2, (int64_t)memnode);
		r = COLLECT(st, p, struct region_section_rec, read_region_section, ret, ret_n);
	}
	sq_unlock(st);
	return r;
}

int sq_attach_put(struct store *s, const struct region_attach_rec *o)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_ATT_PUT);
	if (p) {
		sqlite3_bind_int64(p, 1, o->region_id);
		sqlite3_bind_int64(p, 2, o->slot_id);
		sq_bind_text(p, 3, o->state);
		sq_bind_text(p, 4, o->pci);
		sqlite3_bind_int(p, 5, o->stale);
		r = sq_exec_done(st, p, "attach_put");
	}
	sq_unlock(st);
	return r;
}

int sq_attach_remove(struct store *s, int64_t region_id, int64_t slot_id)
{
	return sq_exec_2i(sq_of(s), Q_ATT_REMOVE, region_id, slot_id, true, "attach_remove");
}

static void read_attach(sqlite3_stmt *p, struct region_attach_rec *o)
{
	memset(o, 0, sizeof(*o));
	o->region_id = sqlite3_column_int64(p, 0);
	sq_copy_text(o->region, sizeof(o->region), p, 1);
	o->slot_id = sqlite3_column_int64(p, 2);
	sq_copy_text(o->slot, sizeof(o->slot), p, 3);
	o->compute = (uint64_t)sqlite3_column_int64(p, 4);
	sq_copy_text(o->state, sizeof(o->state), p, 5);
	sq_copy_text(o->pci, sizeof(o->pci), p, 6);
	o->stale = sqlite3_column_int(p, 7) != 0;
}

int sq_attach_list(struct store *s, int64_t region_id, int64_t slot_id,
		   struct region_attach_rec **ret, size_t *ret_n)
{
	struct sqlstore *st = sq_of(s);
	sqlite3_stmt *p;
	int r = -EIO;

	sq_lock(st);
	p = sq_stmt(st, Q_ATT_LIST);
	if (p) {
		sqlite3_bind_int64(p, 1, region_id);
		sqlite3_bind_int64(p, 2, slot_id);
		r = COLLECT(st, p, struct region_attach_rec, read_attach, ret, ret_n);
	}
	sq_unlock(st);
	return r;
}
