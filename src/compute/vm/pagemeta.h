/* SPDX-License-Identifier: MIT */
/*
 * A VM's page-metadata table and key (guest memory at rest, pager/crypt.h):
 * RUN_DIR/NAME/page.key (the slot's 32-byte key, 0600) and
 * RUN_DIR/NAME/page-meta (the table, mmap'd by the pager's cipher). Both
 * are on the agent's run directory like the RAM files, so an agent restart
 * finds them; a VM that says it is encrypted but has lost either is not
 * adopted (its pages would be unreadable, never silently zeros).
 *
 * A compute migration moves the table in two steps. Pre-copy: while the
 * guest still runs, the source copies its live table (the base, kept) and
 * the control plane hands its records to the destination. Final: after the
 * source's final flush (the memory nodes then hold exactly what the table
 * names) it snapshots the table again, in full and as the delta against
 * the base (every entry whose 24 bytes differ), and the control plane
 * hands the delta over; the destination's faults on remote pages wait
 * until the last part (vm_pagemeta.c serves both ends over HTTP). The
 * base may hold entries torn by a concurrent write-back: any such entry
 * differs from its final value, so the delta carries it. Records are
 * sparse: only pages the slot ever wrote back, as records of 28 bytes
 * (slot page index, 32 bits LE, then the 24-byte entry).
 */
#ifndef DISAGG_VM_PAGEMETA_H
#define DISAGG_VM_PAGEMETA_H

#include <stddef.h>
#include <stdint.h>

#include "vm_types.h"

#define VM_META_RECORD 28u
#define VM_META_PART_MAX 131072u   /* records in one part: 3.5 MiB (< HTTP_MAX_BODY) */

/* The snapshots a migration source serves. */
enum vm_meta_kind {
	VM_META_FINAL,     /* after the final flush, every record */
	VM_META_PRECOPY,   /* the live table while the guest runs (the base) */
	VM_META_DELTA,     /* after the final flush, the records that differ from the base */
	VM_META_NKINDS,
};

/*
 * Open (adopted VM: load) the key and table; vm->crypt. A migration's
 * destination also gets RUN_DIR/NAME/page-meta.pending, removed once the
 * table is complete: an agent restarted in between still waits for it.
 * *ret_pending: faults on remote pages must wait. err set on failure.
 */
int vm_pagemeta_open(struct vm *vm, bool *ret_pending, char *err, size_t errlen);
/*
 * Pre-copy: copy the live table (the base) and its records (a migration
 * source, the guest running). *ret_gen: its number, which the delta names.
 * -ENOTSUP if the VM is not sealed.
 */
int vm_pagemeta_precopy(struct vm *vm, uint64_t *ret_gen, size_t *ret_records);
/*
 * Snapshot the table as records (a migration source, after its final
 * flush): in full, and as the delta against the base if a pre-copy was
 * taken. 0 (nothing to do if the VM is not sealed) or -ENOMEM.
 */
int vm_pagemeta_snapshot(struct vm *vm);
/*
 * Records [from, from + max) of a snapshot, copied into *ret (malloc'd).
 * total: its records. -ENOENT: no such snapshot; -ESTALE: the delta is
 * not against pre-copy gen (VM_META_DELTA only); -ERANGE: from > total.
 */
int vm_pagemeta_read(struct vm *vm, enum vm_meta_kind kind, uint64_t gen, size_t from,
		     size_t max, uint8_t **ret, size_t *ret_len, size_t *ret_total);
/*
 * Put records into a destination's table; done: the table is complete,
 * faults go on. Every record is checked before any is applied: -EINVAL
 * (not whole records), -ERANGE (a page outside the VM; *ret_bad: its
 * index), -EBADMSG (a record with version 0), -EALREADY (complete),
 * -ENOTSUP (not sealed), -ESRCH (no pager).
 */
int vm_pagemeta_put(struct vm *vm, const uint8_t *rec, size_t len, bool done,
		    uint64_t *ret_bad);
/* Free the snapshots (the VM goes). */
void vm_pagemeta_free(struct vm *vm);

#endif /* DISAGG_VM_PAGEMETA_H */
