// SPDX-License-Identifier: MIT
/*
 * The SQLite store's schema migrations and statement texts (see
 * store_sqlite_sql.h). Statements read nodes with two derived columns: the
 * number of slots using the node and, for compute nodes, the vCPUs of
 * their live slots.
 */
#include "store_sqlite_sql.h"

#include "macro.h"

const char *const store_sqlite_migrations[] = {
	/* 0 -> 1: the first schema. */
	"CREATE TABLE nodes ("
	"  id INTEGER PRIMARY KEY,"
	"  kind TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  state TEXT NOT NULL DEFAULT 'up',"
	"  drained INTEGER NOT NULL DEFAULT 0,"
	"  addr TEXT NOT NULL DEFAULT '',"
	"  http TEXT NOT NULL DEFAULT '',"
	"  labels TEXT NOT NULL DEFAULT '{}',"
	"  section_size INTEGER NOT NULL DEFAULT 0,"
	"  sections_total INTEGER NOT NULL DEFAULT 0,"
	"  sections_free INTEGER NOT NULL DEFAULT 0,"
	"  vcpus INTEGER NOT NULL DEFAULT 0,"
	"  registered INTEGER NOT NULL,"
	"  last_heartbeat INTEGER NOT NULL);"
	"CREATE TABLE slots ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  state TEXT NOT NULL,"
	"  vcpus INTEGER NOT NULL,"
	"  memory INTEGER NOT NULL,"
	"  remote_percent INTEGER NOT NULL,"
	"  cache INTEGER NOT NULL,"
	"  compute INTEGER NOT NULL REFERENCES nodes(id),"
	"  policy TEXT NOT NULL,"
	"  hotplug TEXT NOT NULL,"
	"  constraints TEXT NOT NULL DEFAULT '{}',"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  created INTEGER NOT NULL);"
	"CREATE INDEX slots_compute ON slots(compute);"
	"CREATE TABLE sections ("
	"  slot_id INTEGER NOT NULL REFERENCES slots(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('local', 'remote')),"
	"  memnode INTEGER REFERENCES nodes(id),"
	"  section INTEGER NOT NULL DEFAULT 0,"
	"  generation INTEGER NOT NULL DEFAULT 0,"
	"  hot_index INTEGER NOT NULL DEFAULT -1,"
	"  PRIMARY KEY (slot_id, idx));"
	"CREATE INDEX sections_memnode ON sections(memnode);"
	"CREATE TABLE requests ("
	"  id TEXT PRIMARY KEY,"
	"  method TEXT NOT NULL,"
	"  path TEXT NOT NULL,"
	"  status INTEGER NOT NULL DEFAULT 0,"
	"  body TEXT,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE events ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  node INTEGER,"
	"  slot TEXT,"
	"  message TEXT NOT NULL);",
	/* 1 -> 2: the migration in progress on a slot (JSON), for restarts. */
	"ALTER TABLE slots ADD COLUMN op TEXT NOT NULL DEFAULT '';",
	/* 2 -> 3: each section's ownership epoch (fence.c); existing ones are at 0. */
	"ALTER TABLE sections ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;",
	/* 3 -> 4: the slot's page key (guest memory at rest); existing slots are in clear. */
	"ALTER TABLE slots ADD COLUMN page_key TEXT NOT NULL DEFAULT '';",
	/* 4 -> 5: revoked node ids (certificates shut out of the fabric, common/revlist.c). */
	"CREATE TABLE IF NOT EXISTS revoked ("
	"  node_id INTEGER PRIMARY KEY,"
	"  time INTEGER NOT NULL);",
	/* 5 -> 6: shared regions (regions.c), their sections and the slots that map them
	 * (IF NOT EXISTS, as 4 -> 5: a database stepped back to an older version migrates). */
	"CREATE TABLE IF NOT EXISTS regions ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  mode TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  home INTEGER NOT NULL REFERENCES nodes(id),"
	"  holder INTEGER REFERENCES slots(id) ON DELETE SET NULL,"
	"  pending INTEGER NOT NULL DEFAULT 0,"
	"  epoch INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS region_sections ("
	"  region_id INTEGER NOT NULL REFERENCES regions(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"
	"  memnode INTEGER NOT NULL REFERENCES nodes(id),"
	"  section INTEGER NOT NULL,"
	"  generation INTEGER NOT NULL,"
	"  epoch INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (region_id, idx));"
	"CREATE INDEX IF NOT EXISTS region_sections_memnode ON region_sections(memnode);"
	"CREATE TABLE IF NOT EXISTS region_attachments ("
	"  region_id INTEGER NOT NULL REFERENCES regions(id) ON DELETE CASCADE,"
	"  slot_id INTEGER NOT NULL REFERENCES slots(id) ON DELETE CASCADE,"
	"  state TEXT NOT NULL,"
	"  pci TEXT NOT NULL DEFAULT '',"
	"  stale INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (region_id, slot_id));"
	"CREATE INDEX IF NOT EXISTS region_attachments_slot ON region_attachments(slot_id);",
	/* 6 -> 7: the volume catalog (volumes.c): block volumes on device nodes. A slot
	 * deleted no longer holds its volume (slot_id NULL). */
	"CREATE TABLE IF NOT EXISTS volumes ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  state TEXT NOT NULL,"
	"  devnode INTEGER NOT NULL REFERENCES nodes(id),"
	"  size INTEGER NOT NULL,"
	"  key INTEGER NOT NULL DEFAULT 0,"
	"  image INTEGER NOT NULL DEFAULT 0,"
	"  origin TEXT NOT NULL DEFAULT '',"
	"  slot_id INTEGER REFERENCES slots(id) ON DELETE SET NULL,"
	"  run INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS volumes_devnode ON volumes(devnode);",
	/* 7 -> 8: a volume attached to a slot: the compute agent's disk id, read-only or
	 * not (a table, IF NOT EXISTS as 5 -> 6: a database stepped back migrates again;
	 * read as empty while the volume's slot_id is NULL). */
	"CREATE TABLE IF NOT EXISTS volume_disks ("
	"  volume_id INTEGER PRIMARY KEY REFERENCES volumes(id) ON DELETE CASCADE,"
	"  disk TEXT NOT NULL DEFAULT '',"
	"  read_only INTEGER NOT NULL DEFAULT 0);",
	/* 8 -> 9: each volume's ownership epoch (volumes_disks.c: every attach and every
	 * compute migration of its slot advances it; its grants carry it), 0 for the
	 * volumes already there (their grants carried 0). A table, IF NOT EXISTS as
	 * 7 -> 8: a database stepped back migrates again. */
	"CREATE TABLE IF NOT EXISTS volume_epochs ("
	"  volume_id INTEGER PRIMARY KEY REFERENCES volumes(id) ON DELETE CASCADE,"
	"  epoch INTEGER NOT NULL DEFAULT 0);",
	/* 9 -> 10: images (images.c): a disk image in a base volume, with its kernel and
	 * initramfs sizes (IF NOT EXISTS, as 5 -> 6). The image goes with its base
	 * volume's row. */
	"CREATE TABLE IF NOT EXISTS images ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  state TEXT NOT NULL,"
	"  format TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  volume_id INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,"
	"  kernel_size INTEGER NOT NULL DEFAULT 0,"
	"  initrd_size INTEGER NOT NULL DEFAULT 0,"
	"  cmdline TEXT NOT NULL DEFAULT '',"
	"  created INTEGER NOT NULL);",
	/* 10 -> 11: the slot's network card (slotnet.c), JSON; '' = a slot from before
	 * cards, whose VM has none. */
	"ALTER TABLE slots ADD COLUMN net TEXT NOT NULL DEFAULT '';",
	/* 11 -> 12: a volume's kind (volumes_adopt.c): 'file' or 'block' (a block device
	 * its device node serves, which the node neither resizes nor deletes). Every
	 * volume before it was made by the orchestrator: a file. */
	"ALTER TABLE volumes ADD COLUMN kind TEXT NOT NULL DEFAULT 'file';",
	/* 12 -> 13: replicated far memory (replicas.c): the slot's number of replicas,
	 * the state of position 0 of each section, and positions 1.. in a table of
	 * their own (IF NOT EXISTS, as 5 -> 6). */
	"ALTER TABLE slots ADD COLUMN replicas INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE sections ADD COLUMN state TEXT NOT NULL DEFAULT 'in';"
	"ALTER TABLE sections ADD COLUMN reason TEXT NOT NULL DEFAULT '';"
	"CREATE TABLE IF NOT EXISTS section_replicas ("
	"  slot_id INTEGER NOT NULL REFERENCES slots(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"
	"  replica INTEGER NOT NULL CHECK (replica >= 1),"
	"  memnode INTEGER NOT NULL REFERENCES nodes(id),"
	"  section INTEGER NOT NULL,"
	"  generation INTEGER NOT NULL,"
	"  epoch INTEGER NOT NULL DEFAULT 0,"
	"  state TEXT NOT NULL DEFAULT 'in' CHECK (state IN ('in', 'out', 'repairing')),"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  PRIMARY KEY (slot_id, idx, replica));"
	"CREATE INDEX IF NOT EXISTS section_replicas_memnode ON section_replicas(memnode);",
};



#define NODE_COLS                                                                     \
	"n.id, n.kind, n.name, n.state, n.drained, n.addr, n.http, n.labels, "        \
	"n.section_size, n.sections_total, n.sections_free, n.vcpus, n.registered, " \
	"n.last_heartbeat, "                                                          \
	"(SELECT COUNT(*) FROM slots s WHERE s.compute = n.id) + "                    \
	"(SELECT COUNT(DISTINCT x.slot_id) FROM (SELECT slot_id, memnode FROM sections "  \
	" UNION ALL SELECT slot_id, memnode FROM section_replicas) x WHERE x.memnode = n.id), " \
	"(SELECT COALESCE(SUM(s.vcpus), 0) FROM slots s WHERE s.compute = n.id "      \
	" AND s.state NOT IN ('failed', 'lost')) "
#define REGION_COLS                                                                       \
	"r.id, r.name, r.mode, r.state, r.size, r.home, COALESCE(r.holder, 0), "            \
	"COALESCE((SELECT s.name FROM slots s WHERE s.id = r.holder), ''), r.pending, "    \
	"r.epoch, r.created "
#define VOLUME_COLS                                                                   \
	"v.id, v.name, v.state, v.devnode, v.size, v.key, v.image, v.origin, "         \
	"COALESCE(v.slot_id, 0), "                                                      \
	"COALESCE((SELECT s.name FROM slots s WHERE s.id = v.slot_id), ''), v.run, "  \
	"v.created, CASE WHEN v.slot_id IS NULL THEN '' ELSE COALESCE("                \
	"(SELECT d.disk FROM volume_disks d WHERE d.volume_id = v.id), '') END, "       \
	"v.slot_id IS NOT NULL AND COALESCE("                                           \
	"(SELECT d.read_only FROM volume_disks d WHERE d.volume_id = v.id), 0) != 0, " \
	"COALESCE((SELECT e.epoch FROM volume_epochs e WHERE e.volume_id = v.id), 0), "  \
	"COALESCE((SELECT s.compute FROM slots s WHERE s.id = v.slot_id), 0), v.kind "
#define IMAGE_COLS                                                                    \
	"i.id, i.name, i.state, i.format, i.size, i.volume_id, "                      \
	"COALESCE((SELECT v.devnode FROM volumes v WHERE v.id = i.volume_id), 0), "    \
	"i.kernel_size, i.initrd_size, i.cmdline, i.created "
#define SLOT_COLS                                                                         \
	"id, name, state, vcpus, memory, remote_percent, cache, compute, policy, hotplug, " \
	"constraints, reason, created, op, page_key, net, replicas "

const char *const store_sqlite_sql[Q__MAX] = {
	[Q_NODE_PUT] =
		"INSERT INTO nodes (id, kind, name, addr, http, labels, section_size, "
		"sections_total, sections_free, vcpus, registered, last_heartbeat, state) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, 'up') "
		"ON CONFLICT(id) DO UPDATE SET kind = ?2, name = ?3, addr = ?4, http = ?5, "
		"labels = ?6, section_size = ?7, sections_total = ?8, sections_free = ?9, "
		"vcpus = ?10, registered = ?11, last_heartbeat = ?11, state = 'up'",
	[Q_NODE_GET] = "SELECT " NODE_COLS "FROM nodes n WHERE n.id = ?1",
	[Q_NODE_LIST] = "SELECT " NODE_COLS "FROM nodes n ORDER BY n.id",
	[Q_NODE_LIST_KIND] = "SELECT " NODE_COLS "FROM nodes n WHERE n.kind = ?1 ORDER BY n.id",
	[Q_NODE_STATE] = "UPDATE nodes SET state = ?2 WHERE id = ?1",
	[Q_NODE_DRAINED] = "UPDATE nodes SET drained = ?2 WHERE id = ?1",
	[Q_NODE_HB] =
		"UPDATE nodes SET last_heartbeat = ?2, "
		"sections_free = CASE WHEN ?3 >= 0 THEN ?3 ELSE sections_free END, "
		"sections_total = CASE WHEN ?4 >= 0 THEN ?4 ELSE sections_total END, "
		"vcpus = CASE WHEN ?5 >= 0 THEN ?5 ELSE vcpus END WHERE id = ?1",
	/* A give-back may follow a heartbeat that counted it: never more than the node has. */
	[Q_NODE_ADJ] = "UPDATE nodes SET sections_free = MAX(0, CASE WHEN sections_total > 0 "
		       "THEN MIN(sections_free + ?2, sections_total) ELSE sections_free + ?2 END) "
		       "WHERE id = ?1",
	[Q_NODE_SETFREE] = "UPDATE nodes SET sections_free = ?2 WHERE id = ?1",
	[Q_NODE_STALE] = "SELECT id FROM nodes WHERE state = 'up' AND last_heartbeat < ?1",
	[Q_SLOT_INSERT] =
		"INSERT INTO slots (name, state, vcpus, memory, remote_percent, cache, compute, "
		"policy, hotplug, constraints, reason, created, page_key, net, replicas) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, MAX(1, ?15))",
	[Q_SLOT_GET] = "SELECT " SLOT_COLS "FROM slots WHERE name = ?1",
	[Q_SLOT_LIST] = "SELECT " SLOT_COLS "FROM slots ORDER BY id",
	[Q_SLOT_LIST_COMPUTE] = "SELECT " SLOT_COLS "FROM slots WHERE compute = ?1 ORDER BY id",
	[Q_SLOT_LIST_MEMNODE] =
		"SELECT " SLOT_COLS "FROM slots WHERE id IN "
		"(SELECT slot_id FROM sections WHERE memnode = ?1 UNION "
		"SELECT slot_id FROM section_replicas WHERE memnode = ?1) ORDER BY id",
	[Q_SLOT_UPDATE] = "UPDATE slots SET state = ?2, memory = ?3, reason = ?4, compute = ?5, "
			  "op = ?6, net = ?7 WHERE id = ?1",
	[Q_SLOT_DELETE] = "DELETE FROM slots WHERE id = ?1",
	[Q_SEC_ADD] =
		"INSERT INTO sections (slot_id, idx, kind, memnode, section, generation, hot_index, "
		"epoch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[Q_SEC_REMOVE] = "DELETE FROM sections WHERE slot_id = ?1 AND idx = ?2",
	[Q_SEC_LIST] =
		"SELECT x.slot_id, s.name, x.idx, x.kind, COALESCE(x.memnode, 0), x.section, "
		"x.generation, x.hot_index, x.epoch FROM sections x JOIN slots s ON s.id = x.slot_id "
		"WHERE (?1 = 0 OR x.slot_id = ?1) AND (?2 = 0 OR x.memnode = ?2) "
		"ORDER BY x.slot_id, x.idx",
	[Q_SEC_COUNT] = "SELECT (SELECT COUNT(*) FROM sections WHERE kind = 'remote') + "
			"(SELECT COUNT(*) FROM section_replicas)",
	[Q_REQ_GET] = "SELECT status, body, method || ' ' || path FROM requests WHERE id = ?1",
	[Q_REQ_INSERT] =
		"INSERT INTO requests (id, method, path, status, created) VALUES (?1, ?2, ?3, 0, ?4)",
	[Q_REQ_FINISH] = "UPDATE requests SET status = ?2, body = ?3 WHERE id = ?1",
	[Q_REQ_FORGET] = "DELETE FROM requests WHERE id = ?1",
	[Q_REQ_PRUNE] = "DELETE FROM requests WHERE created < ?1 AND status != 0",
	[Q_REQ_ABANDON] = "DELETE FROM requests WHERE status = 0",
	[Q_EV_ADD] =
		"INSERT INTO events (time, kind, node, slot, message) VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_EV_LIST] =
		"SELECT seq, time, kind, COALESCE(node, 0), COALESCE(slot, ''), message "
		"FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
	[Q_REVOKED_ADD] = "INSERT OR IGNORE INTO revoked (node_id, time) VALUES (?1, ?2)",
	[Q_REVOKED_LIST] = "SELECT node_id FROM revoked ORDER BY node_id",
	[Q_REG_INSERT] =
		"INSERT INTO regions (name, mode, state, size, home, holder, pending, epoch, created) "
		"VALUES (?1, ?2, ?3, ?4, ?5, NULLIF(?6, 0), ?7, ?8, ?9)",
	[Q_REG_GET] = "SELECT " REGION_COLS "FROM regions r WHERE r.name = ?1",
	[Q_REG_LIST] = "SELECT " REGION_COLS "FROM regions r ORDER BY r.id",
	[Q_REG_UPDATE] = "UPDATE regions SET state = ?2, holder = NULLIF(?3, 0), pending = ?4, "
			 "epoch = ?5, home = ?6 WHERE id = ?1",
	[Q_REG_SEC_EPOCH] = "UPDATE region_sections SET epoch = ?2 WHERE region_id = ?1",
	[Q_REG_DELETE] = "DELETE FROM regions WHERE id = ?1",
	[Q_REG_SEC_ADD] =
		"INSERT OR REPLACE INTO region_sections (region_id, idx, memnode, section, "
		"generation, epoch) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[Q_REG_SEC_LIST] =
		"SELECT region_id, idx, memnode, section, generation, epoch FROM region_sections "
		"WHERE (?1 = 0 OR region_id = ?1) AND (?2 = 0 OR memnode = ?2) "
		"ORDER BY region_id, idx",
	[Q_ATT_PUT] =
		"INSERT OR REPLACE INTO region_attachments (region_id, slot_id, state, pci, stale) "
		"VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_ATT_REMOVE] = "DELETE FROM region_attachments WHERE region_id = ?1 AND slot_id = ?2",
	[Q_ATT_LIST] =
		"SELECT a.region_id, r.name, a.slot_id, s.name, s.compute, a.state, a.pci, a.stale "
		"FROM region_attachments a JOIN regions r ON r.id = a.region_id "
		"JOIN slots s ON s.id = a.slot_id "
		"WHERE (?1 = 0 OR a.region_id = ?1) AND (?2 = 0 OR a.slot_id = ?2) "
		"ORDER BY a.region_id, a.slot_id",
	[Q_VOL_INSERT] =
		"INSERT INTO volumes (name, state, devnode, size, key, image, origin, slot_id, run, "
		"created, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULLIF(?8, 0), ?9, ?10, ?11)",
	[Q_VOL_GET] = "SELECT " VOLUME_COLS "FROM volumes v WHERE v.name = ?1",
	[Q_VOL_LIST] = "SELECT " VOLUME_COLS "FROM volumes v WHERE (?1 = 0 OR v.devnode = ?1) "
		       "ORDER BY v.name",
	[Q_VOL_UPDATE] = "UPDATE volumes SET state = ?2, size = ?3, key = ?4, "
			 "slot_id = NULLIF(?5, 0), run = ?6, kind = ?7 WHERE id = ?1",
	[Q_VOL_DISK_PUT] = "INSERT OR REPLACE INTO volume_disks (volume_id, disk, read_only) "
			   "VALUES (?1, ?2, ?3)",
	[Q_VOL_EPOCH_PUT] = "INSERT OR REPLACE INTO volume_epochs (volume_id, epoch) VALUES (?1, ?2)",
	[Q_VOL_DELETE] = "DELETE FROM volumes WHERE id = ?1",
	[Q_IMG_INSERT] =
		"INSERT INTO images (name, state, format, size, volume_id, kernel_size, initrd_size, "
		"cmdline, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[Q_IMG_GET] = "SELECT " IMAGE_COLS "FROM images i WHERE i.name = ?1",
	[Q_IMG_LIST] = "SELECT " IMAGE_COLS "FROM images i ORDER BY i.name",
	[Q_IMG_UPDATE] = "UPDATE images SET state = ?2 WHERE id = ?1",
	[Q_IMG_DELETE] = "DELETE FROM images WHERE id = ?1",
	[Q_REP_LIST] =
		"SELECT x.slot_id, s.name, x.idx, 0, x.memnode, x.section, x.generation, x.epoch, "
		"x.state, x.reason FROM sections x JOIN slots s ON s.id = x.slot_id "
		"WHERE x.kind = 'remote' AND (?1 = 0 OR x.slot_id = ?1) AND (?2 = 0 OR x.memnode = ?2) "
		"UNION ALL SELECT r.slot_id, s.name, r.idx, r.replica, r.memnode, r.section, "
		"r.generation, r.epoch, r.state, r.reason FROM section_replicas r "
		"JOIN slots s ON s.id = r.slot_id "
		"WHERE (?1 = 0 OR r.slot_id = ?1) AND (?2 = 0 OR r.memnode = ?2) ORDER BY 1, 3, 4",
	[Q_REP_PUT] =
		"INSERT OR REPLACE INTO section_replicas (slot_id, idx, replica, memnode, section, "
		"generation, epoch, state, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[Q_REP_UPDATE] =
		"UPDATE section_replicas SET memnode = ?4, section = ?5, generation = ?6, epoch = ?7, "
		"state = ?8, reason = ?9 WHERE slot_id = ?1 AND idx = ?2 AND replica = ?3",
	[Q_REP_UPDATE0] =
		"UPDATE sections SET memnode = ?4, section = ?5, generation = ?6, epoch = ?7, "
		"state = ?8, reason = ?9 WHERE slot_id = ?1 AND idx = ?2 AND ?3 = 0 AND kind = 'remote'",
	[Q_REP_REMOVE] =
		"DELETE FROM section_replicas WHERE slot_id = ?1 AND (?2 < 0 OR idx = ?2)",
	[Q_NODE_LABELS] = "UPDATE nodes SET labels = ?2 WHERE id = ?1",
	[Q_NODE_REMOVE] = "DELETE FROM nodes WHERE id = ?1",
};

const size_t store_sqlite_nmigrations = ARRAY_SIZE(store_sqlite_migrations);
