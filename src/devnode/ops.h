/* SPDX-License-Identifier: MIT */
/*
 * The device node's handlers (ops.c), one per opcode.
 */
#ifndef DISAGG_DEVNODE_OPS_H
#define DISAGG_DEVNODE_OPS_H

#include "conn.h"

/* Dispatch one validated frame: the node's dn_dispatch_fn (devnode.h). */
void dn_dispatch(struct dn_conn *c, const struct proto_hdr *h, uint8_t *payload,
		 uint8_t **owned);
#endif /* DISAGG_DEVNODE_OPS_H */
