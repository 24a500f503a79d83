/* SPDX-License-Identifier: MIT */
/*
 * A VM's records of its sections (boot RAM, DIMMs, virtio-mem slots):
 * counting, keeping, freeing them on their memory nodes, and their JSON.
 */
#ifndef DISAGG_VM_SECTIONS_H
#define DISAGG_VM_SECTIONS_H

#include <stddef.h>

#include "replica_json.h"
#include "vm_internal.h"

/* Free a section on its memory node if the control plane asked us to (free_on_release). */
void vm_free_section(struct vm *vm, const struct vm_section *s);
/* Never free a section when this VM goes (its sections are the control plane's to free). */
void vm_keep_sections(struct vm *vm);
void vm_keep_sections_locked(struct vm *vm);   /* lock held */
unsigned vm_hot_count(struct vm *vm);   /* plugged hot sections; lock held */
/*
 * The VM's record of the remote section `match` names (same memory node,
 * section and generation: boot RAM, a plugged DIMM or a virtio-mem slot),
 * or NULL. Lock held.
 */
struct pager_section *vm_section_record(struct vm *vm, const struct pager_section *match);
/*
 * The same for any replica position (docs/replication.md): the record of
 * the section one of whose replicas `match` names, and that position.
 */
struct pager_section *vm_replica_record(struct vm *vm, const struct pager_section *match,
					unsigned *ret_pos);
/* Free the hot sections (where asked) and unlink their files. Lock held. */
void vm_hot_release(struct vm *vm);
/* {"kind"[, "addr", "memnode", "section", "generation", "free_on_release"]}: never the grant. */
json_t *vm_section_json(const struct vm_section *s);
/*
 * A section object of the API: {"kind": "local"} or {"kind": "remote",
 * "addr", "grant"[, "free_on_release"][, "replicas": [{"addr", "grant"}...],
 * "out": [POSITION...]]} (replicated sections, replica_json.h).
 */
int vm_parse_section(json_t *j, struct vm_section *ret, char *err, size_t errlen);
/* The shared regions attached ([{"region", "mode", "size", "pci", "writable", "sections"}]); lock held. */
json_t *vm_shared_json(struct vm *vm);

#endif /* DISAGG_VM_SECTIONS_H */
