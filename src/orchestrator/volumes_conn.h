/* SPDX-License-Identifier: MIT */
/*
 * Connections to device nodes for the volume catalog (volumes_conn.c): a
 * module of its own, so that the API fuzzer links the rest of volumes*.c
 * and answers for the device nodes itself.
 */
#ifndef DISAGG_ORCH_VOLUMES_CONN_H
#define DISAGG_ORCH_VOLUMES_CONN_H

#include "dnclient.h"
#include "orch.h"

#define VOLUMES_TIMEOUT_MS 5000           /* connect and handshake; VOL_* wait ten times it */

/*
 * An authenticated connection to device node dn, with the orchestrator's
 * capability (over TLS on a TLS fabric, to a certificate of role device):
 * 0, -ESTALE when the node at dn's address has another id, or
 * dnc_connect()'s -errno.
 */
int volumes_connect(struct orch *o, const struct node_rec *dn, struct mnc **ret);

#endif /* DISAGG_ORCH_VOLUMES_CONN_H */
