/* SPDX-License-Identifier: MIT */
/*
 * Replicated far memory in the orchestrator (docs/replication.md): what
 * replicas.c (placement, the slot's state, the agent's JSON, the hooks of
 * struct orch_replicas) gives replicas_repair.c (taking replicas out of
 * lost memory nodes, repair).
 *
 * A replicated slot's remote section has replica positions 0..n-1: 0 is
 * its sections row, 1.. rows of section_replicas (store.h, struct
 * replica_rec). The replicas of one section are on distinct memory nodes,
 * and in distinct zones (a memory node's `zone` label; a node without one
 * is a zone of its own).
 */
#ifndef DISAGG_ORCH_REPLICAS_H
#define DISAGG_ORCH_REPLICAS_H

#include "migrate.h"

#define REPLICAS_MAX 3

/*
 * Set orch.replicas (main.c, after the store has its replica operations);
 * `more` (may be NULL) fills in the hooks of replicas_repair.c.
 */
void replicas_start(struct orch *o, void (*more)(struct orch_replicas *ops));

/* The zone of memory node n: its "zone" label, else "node:ID". */
void replicas_zone(const struct node_rec *n, char *buf, size_t len);

/*
 * Place and allocate one replica for slot s on a memory node that is none
 * of nodes[0..nn) and in no zone of zone_nodes[0..nz) (ids), under the
 * slot's policy and memory labels; a node that cannot allocate is marked
 * full and another one tried. 0 (*ret_mn, *ret_sec, *ret_gen; the node's
 * free count reserved), or -ENOSPC / -EHOSTUNREACH with why set.
 */
int replicas_alloc(struct orch *o, const struct slot_rec *s, const uint64_t *nodes, size_t nn,
		   const uint64_t *zone_nodes, size_t nz, struct node_rec *ret_mn,
		   uint32_t *ret_sec, uint32_t *ret_gen, char *why, size_t whylen);

/* The section_rec of replica r (remote, its memory node, section, generation, epoch). */
void replicas_as_section(const struct replica_rec *r, struct section_rec *ret);

/* Fence and free replica r's section on its memory node; its free count back. */
void replicas_free(struct orch *o, const struct replica_rec *r);

/* {"addr": A, "grant": G} of replica r on mn for holder (read-write, r's epoch). */
json_t *replicas_entry(struct orch *o, const struct node_rec *mn, uint64_t holder,
		       const struct replica_rec *r);

/* In one transaction: replica r written (replica_update) and an event. */
int replicas_record(struct orch *o, const struct replica_rec *r, const char *kind,
		    uint64_t node, const char *fmt, ...) _printf_(5, 6);

/*
 * One entry e of a VM's "replicas_out" ({"memnode", "section",
 * "generation"[, "reason"]}): that replica of slot s, found in reps[0..n),
 * is out (recorded with a replica_out event; its state in reps too). An
 * entry that matches none, or one out already, changes nothing.
 */
void replicas_take_out(struct orch *o, const struct slot_rec *s, struct replica_rec *reps,
		       size_t n, json_t *e);

#endif /* DISAGG_ORCH_REPLICAS_H */
