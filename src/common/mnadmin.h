/* SPDX-License-Identifier: MIT */
/*
 * Section allocation and release (mnadmin.c), on a memory-node client
 * connection (mnclient.h).
 */
#ifndef DISAGG_MNADMIN_H
#define DISAGG_MNADMIN_H

#include <stdint.h>

#include "mnclient.h"

/*
 * ALLOC and mnc_free need a connection made with opts.orch_key: the
 * orchestrator's capability (-ENOKEY otherwise).
 */
int mnc_alloc(struct mnc *c, uint64_t owner_id, struct proto_section *ret);
/* Free a section as its owner of ownership epoch `epoch` (-EKEYREVOKED: fenced). */
int mnc_free(struct mnc *c, uint32_t section, uint32_t generation, uint32_t epoch);
/*
 * Free the section of grant g (held by us, with PROTO_R_FREE), at the
 * grant's epoch: any holder may (-EPERM without the free right).
 */
int mnc_free_grant(struct mnc *c, const struct proto_grant *g);
/*
 * REVOKE (the orchestrator's capability): replace the node's list of
 * revoked node ids with ids[0..n). -EOPNOTSUPP if the node does not offer
 * it, -E2BIG over PROTO_MAX_REVOKED.
 */
int mnc_revoke(struct mnc *c, const uint64_t *ids, size_t n);
/* STATS: the node's counters. */
int mnc_stats(struct mnc *c, struct proto_stats_rep *ret);

#endif /* DISAGG_MNADMIN_H */
