/* SPDX-License-Identifier: MIT */
/*
 * A VM's remote sections as JSON, with their replicas (docs/replication.md):
 * the "replicas" of a remote section's JSON and the replica positions that
 * are out (kept in the VM's records and its state file, so that a VM
 * adopted by a restarted agent never reads a stale replica; vm_replica.c
 * keeps them up to date).
 */
#ifndef DISAGG_VM_REPLICA_JSON_H
#define DISAGG_VM_REPLICA_JSON_H

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
/* {"addr", "grant"[, "kind": "remote"]} -> a remote section. -EINVAL with err set. */
int vm_parse_remote(json_t *j, const char *name, struct pager_section *ret, char *err,
		    size_t errlen);
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
 * The out replicas, for the VM's brief and its status (lock held):
 * [{"memnode", "section", "generation", "addr", "reason"}], or NULL.
 */
json_t *vm_replicas_out_json(struct vm *vm);
#endif /* DISAGG_VM_REPLICA_JSON_H */
