// SPDX-License-Identifier: MIT
/*
 * Memory migration (memmig.c): move a remote section to another memory
 * node while the mapping keeps running.
 */
#ifndef DISAGG_PAGER_MEMMIG_H
#define DISAGG_PAGER_MEMMIG_H

#include <stdint.h>

#include "types.h"

/*
 * Memory migration: move remote section `index` of region `region` to
 * another memory node while the mapping keeps running (docs/pager.md,
 * "Memory migration"). The caller (the agent, driven by the orchestrator):
 *
 *   1. pager_section_migrate_begin(target): from now on every write-back
 *      of the section goes to its memory node (the source) AND to `target`
 *      and is acknowledged when both acknowledged; pages written back are
 *      recorded. A target that fails never fails a write-back: the
 *      migration is marked failed and the writes go on to the source.
 *   2. has the source memory node COPY the section to `target` (zeroed at
 *      allocation) and waits for the COPY's answer;
 *   3. pager_section_migrate_commit(): re-sends to the target every page
 *      written back before the commit (the COPY may have written an older
 *      copy after it), in chunks while faults run, then fences the section
 *      briefly (faults on it wait) for the rest and switches the section to
 *      `target`, keeping resident pages and dirty state; dual writing
 *      stops. *ret tells what it took (the fence time is also in the
 *      stats' memmig_pause histogram);
 *      or pager_section_migrate_abort(): dual writing stops, the section
 *      stays on the source (the target can be freed).
 *
 * Only a remote section can move, to a different remote section, one
 * migration per section at a time.
 * begin:  -EINVAL (local section, target not remote or the section
 *         itself), -ENOENT (no region), -ERANGE (index), -EBUSY (a
 *         migration of this section is in progress), -EDEADLK, -ENOMEM.
 * commit: -ENOENT (no migration in progress), -EREMOTEIO (the target
 *         failed during the window or the re-send: the migration is dropped
 *         and the section stays on the source; the target's error is in
 *         stats.memmig_last_err), or the error reading the source (also
 *         dropped); -ENOMEM keeps the migration (retry or abort).
 * abort:  -ENOENT if no migration is in progress.
 * While a section migrates, pager_region_set_section() to another section
 * is -EBUSY unless it discards (which also drops the migration), and
 * pager_remove_region() drops it.
 */
int pager_section_migrate_begin(struct pager *p, int region, unsigned index,
				const struct pager_section *target);
int pager_section_migrate_commit(struct pager *p, int region, unsigned index,
				 struct pager_memmig_result *ret);
int pager_section_migrate_abort(struct pager *p, int region, unsigned index);
/* The target of the migration of a section in progress: 0, or -ENOENT if none. */
int pager_section_migration(struct pager *p, int region, unsigned index,
			    struct pager_section *ret_target);

/*
 * The same for replica position `replica` of a replicated section
 * (replica.h; 0 for an unreplicated one, which is what the calls above
 * do). One migration per section at a time, whatever its position. The
 * writes go to the section's in-replicas and to the target; the re-send
 * at commit reads the latest content from an in-replica; commit puts the
 * target in position `replica` and makes it in. A position that is out can
 * migrate: that is its repair (docs/replication.md), with the COPY from a
 * live replica. begin: also -ERANGE (no such position) and -EINVAL (the
 * target is one of the section's replicas). commit and abort: -ENOENT also
 * when the migration in progress is of another position.
 */
int pager_section_migrate_begin_replica(struct pager *p, int region, unsigned index,
					unsigned replica, const struct pager_section *target);
int pager_section_migrate_commit_replica(struct pager *p, int region, unsigned index,
					 unsigned replica, struct pager_memmig_result *ret);
int pager_section_migrate_abort_replica(struct pager *p, int region, unsigned index,
					unsigned replica);
/* The target and the position (*ret_replica, may be NULL) of the migration in progress. */
int pager_section_migration_replica(struct pager *p, int region, unsigned index,
				    unsigned *ret_replica, struct pager_section *ret_target);

/* ---- for the pager's own layers ------------------------------------------- */

int pager_mm_new(struct pager *p);
/* After the threads stopped and the regions were freed. */
void pager_mm_free(struct pager *p);
void pager_mm_stats(struct pager *p, uint64_t *ret_active, int *ret_last_err);

#endif /* DISAGG_PAGER_MEMMIG_H */
