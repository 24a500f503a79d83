/* SPDX-License-Identifier: MIT */
/*
 * A VM's replicated sections (docs/replication.md): the "replicas" of a
 * remote section's JSON, the replica positions the pager took out (kept in
 * the VM's records and its state file, so that a VM adopted by a restarted
 * agent never reads a stale replica), what the VM reports about them, and
 * the control plane's drop.
 */
#ifndef DISAGG_VM_REPLICAS_H
#define DISAGG_VM_REPLICAS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "vm_internal.h"

/*
 * The "replicas" member of section object j (absent or null: none) into
 * s, whose position 0 is parsed already: [{"addr", "grant"}...], at most
 * PAGER_MAX_REPLICAS - 1, each on a memory node of its own. -EINVAL with
 * err set.
 */
int vm_replicas_parse(json_t *j, struct pager_section *s, char *err, size_t errlen);
/*
 * Positions 1.. of s as JSON, NULL when s is not replicated. grants: as
 * vm_replicas_parse takes them ([{"addr", "grant"}], for vm.json); else
 * where they live and whether they are in ([{"addr", "memnode", "section",
 * "generation", "in"}], for the status).
 */
json_t *vm_replicas_json(const struct pager_section *s, bool grants);
/* The out positions of s as a JSON array of numbers (NULL: none). */
json_t *vm_replicas_out_positions(const struct pager_section *s);
/* Set s->out from such an array (absent: none). -EINVAL with err set. */
int vm_replicas_out_parse(json_t *arr, struct pager_section *s, char *err, size_t errlen);

/* Position pos of s as a section of its own (addr and grant of that replica). */
void vm_replica_view(const struct pager_section *s, unsigned pos, struct pager_section *ret);

/*
 * The pager took a replica out (pager_config.on_replica): the records
 * follow, vm.json is written and the orchestrator hears of it with the
 * next heartbeat. Called by the health thread, no lock held.
 */
void vm_replicas_sync(struct vm *vm);
/*
 * The out replicas, for the VM's brief and its status (lock held):
 * [{"memnode", "section", "generation", "addr", "reason"}], or NULL.
 */
json_t *vm_replicas_out_json(struct vm *vm);
/*
 * The control plane takes replica `match` (memory node, section and
 * generation of its grant) out: 0 (also when it was out already),
 * -ENOENT, -EDEADLK (it is the section's only replica in). err set.
 */
int vm_replica_drop(struct vm *vm, const struct pager_section *match, char *err,
		    size_t errlen);

#endif /* DISAGG_VM_REPLICAS_H */
