/* SPDX-License-Identifier: MIT */
/*
 * A VM's page-metadata table and key (guest memory at rest, pager/crypt.h):
 * RUN_DIR/NAME/page.key (the slot's 32-byte key, 0600) and
 * RUN_DIR/NAME/page-meta (the table, mmap'd by the pager's cipher). Both
 * are on the agent's run directory like the RAM files, so an agent restart
 * finds them; a VM that says it is encrypted but has lost either is not
 * adopted (its pages would be unreadable, never silently zeros).
 *
 * A compute migration moves the table: the source snapshots it after its
 * final flush (the memory nodes then hold exactly what it names), the
 * control plane reads the snapshot in chunks and hands them to the
 * destination, whose faults on remote pages wait until the last chunk
 * (vm_pagemeta.c serves both ends over HTTP). Chunks are sparse: only
 * pages the slot ever wrote back, as records of 28 bytes (slot page index,
 * 32 bits LE, then the 24-byte entry).
 */
#ifndef DISAGG_VM_PAGEMETA_H
#define DISAGG_VM_PAGEMETA_H

#include <stddef.h>
#include <stdint.h>

#include "vm_types.h"

#define VM_META_RECORD 28u

/*
 * Open (adopted VM: load) the key and table; vm->crypt. A migration's
 * destination also gets RUN_DIR/NAME/page-meta.pending, removed once the
 * table is complete: an agent restarted in between still waits for it.
 * *ret_pending: faults on remote pages must wait. err set on failure.
 */
int vm_pagemeta_open(struct vm *vm, bool *ret_pending, char *err, size_t errlen);
/* Snapshot the table as sparse records into vm->meta_snap (a migration source, after its final flush). */
int vm_pagemeta_snapshot(struct vm *vm);
/* Drop the snapshot (the migration failed: the live table goes on). */
void vm_pagemeta_drop(struct vm *vm);
/* Records [from, from + max) of the snapshot, copied into *ret (malloc'd). total: records. */
int vm_pagemeta_read(struct vm *vm, size_t from, size_t max, uint8_t **ret, size_t *ret_len,
		     size_t *ret_total);
/* Put records into a destination's table; done: the table is complete, faults go on. */
int vm_pagemeta_put(struct vm *vm, const uint8_t *rec, size_t len, bool done);

#endif /* DISAGG_VM_PAGEMETA_H */
