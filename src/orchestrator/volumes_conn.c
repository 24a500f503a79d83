// SPDX-License-Identifier: MIT
/*
 * Connections to device nodes for the volume catalog (volumes_conn.h).
 *
 * A device node is reached on a connection of its own per operation
 * (HELLO + AUTH with the cluster key and the orchestrator's proof under
 * our --node-id; VOL_* need that capability). Volume operations are few
 * and each waits for the disk, so nothing is cached. On a TLS fabric the
 * connection is TLS, and the device node's certificate must have the role
 * device (dnc_connect asks for it).
 *
 * A file of its own so that the API fuzzer (tests/fuzz/fuzz_orch_api.c),
 * which links the rest of volumes*.c, answers for the device nodes instead
 * of connecting to the addresses its input registers.
 */
#include "volumes_conn.h"

#include <errno.h>
#include <inttypes.h>

#include "log.h"

int volumes_connect(struct orch *o, const struct node_rec *dn, struct mnc **ret)
{
	struct mnc_opts opts = {
		.addr = dn->addr,
		.key = &o->key,
		.orch_key = o->grant_key,
		.node_id = o->node_id,
		.timeout_ms = VOLUMES_TIMEOUT_MS,
	};
	int r;

	r = dnc_connect(&opts, ret);
	if (r < 0)
		return r;
	if (mnc_info(*ret)->node_id != dn->id) {
		log_warn("device node at %s says it is node %" PRIu64 ", registered as %" PRIu64,
			 dn->addr, mnc_info(*ret)->node_id, dn->id);
		mnc_close(*ret);
		*ret = NULL;
		return -ESTALE;
	}
	return 0;
}
