// SPDX-License-Identifier: MIT
/*
 * Observability of the device node: the Prometheus text for GET /metrics
 * and the JSON for GET /healthz (with the block devices served and their
 * paths). The counters are atomics bumped by the
 * connection threads; rendering reads them without locks.
 *
 * Metrics (all prefixed disagg_devnode_):
 *   requests_total{op}            requests received, per opcode
 *   errors_total{op}              replies with a status other than OK, per opcode
 *   request_seconds{op}           histogram: received -> answered (block I/O:
 *                                 until the kernel answered)
 *   bytes_read_total, bytes_written_total   volume bytes moved
 *   io_errors_total               reads, writes and flushes the kernel failed
 *   queue_full_total              times a connection stopped reading: its
 *                                 depth or its byte caps were reached
 *   connections, connections_total   open now, accepted ever
 *   connections_rejected_total    refused at accept: over --max-conns
 *   handshake_timeouts_total      closed: no AUTH within the handshake timeout
 *   bad_frames_total              frames that failed validation (connection closed)
 *   auth_failures_total           AUTHs refused
 *   tls_failures_total            TLS handshakes refused or timed out
 *   grants_rejected_total         BLK_OPENs refused for their grant
 *   denied_requests_total         VOL_* and REVOKE from anyone but the orchestrator
 *   revoked_nodes                 node ids on the revocation list (REVOKE)
 *   revocation_refusals_total{stage}  revoked nodes refused: "handshake" (TLS), "hello"
 *   revoked_connections_closed_total  live connections closed by a new list
 *   volumes, volume_bytes, volume_allocated_bytes   the store, now
 */
#include "stats.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "wire.h"

static void counter(struct strbuf *sb, const char *name, const char *help, _Atomic uint64_t *v)
{
	metrics_counter(sb, name, help, "", atomic_load(v));
}

char *dn_stats_render(struct dn_node *n)
{
	struct dn_stats *s = &n->stats;
	struct dn_volume_info *v = NULL;
	uint64_t bytes = 0, alloc = 0;
	struct strbuf sb;
	size_t nv = 0;
	char label[64];
	bool first = true;

	strbuf_init(&sb);
	for (unsigned op = 1; op < PROTO_OP_MAX; op++) {
		if (!atomic_load(&s->requests[op]))
			continue;
		snprintf(label, sizeof(label), "op=\"%s\"", proto_op_name(op));
		metrics_counter(&sb, "disagg_devnode_requests_total",
				first ? "Requests received, by opcode." : NULL, label,
				atomic_load(&s->requests[op]));
		first = false;
	}
	first = true;
	for (unsigned op = 1; op < PROTO_OP_MAX; op++) {
		if (!atomic_load(&s->errors[op]))
			continue;
		snprintf(label, sizeof(label), "op=\"%s\"", proto_op_name(op));
		metrics_counter(&sb, "disagg_devnode_errors_total",
				first ? "Replies with an error status, by opcode." : NULL, label,
				atomic_load(&s->errors[op]));
		first = false;
	}
	first = true;
	for (unsigned op = 1; op < PROTO_OP_MAX; op++) {
		if (!atomic_load(&s->latency[op].count))
			continue;
		snprintf(label, sizeof(label), "op=\"%s\"", proto_op_name(op));
		metrics_hist(&sb, "disagg_devnode_request_seconds",
			     first ? "Time from a request's arrival to its answer." : NULL, label,
			     &s->latency[op]);
		first = false;
	}
	counter(&sb, "disagg_devnode_bytes_read_total", "Volume bytes read.", &s->bytes_read);
	counter(&sb, "disagg_devnode_bytes_written_total", "Volume bytes written.",
		&s->bytes_written);
	counter(&sb, "disagg_devnode_io_errors_total", "Reads, writes and flushes the kernel failed.",
		&s->io_errors);
	counter(&sb, "disagg_devnode_queue_full_total",
		"Times a connection stopped reading at its depth or byte caps.", &s->queue_full);
	metrics_gauge(&sb, "disagg_devnode_connections", "Open connections.", "",
		      (double)atomic_load(&s->conns_open));
	counter(&sb, "disagg_devnode_connections_total", "Connections accepted.", &s->connections);
	counter(&sb, "disagg_devnode_connections_rejected_total",
		"Connections refused: over --max-conns.", &s->rejected_conns);
	counter(&sb, "disagg_devnode_handshake_timeouts_total",
		"Connections closed for not authenticating in time.", &s->handshake_timeouts);
	counter(&sb, "disagg_devnode_bad_frames_total", "Frames that failed validation.",
		&s->bad_frames);
	counter(&sb, "disagg_devnode_auth_failures_total", "AUTHs refused.", &s->auth_failed);
	counter(&sb, "disagg_devnode_tls_failures_total",
		"TLS handshakes refused (no, a bad or an anonymous certificate) or timed out.",
		&s->tls_failures);
	counter(&sb, "disagg_devnode_grants_rejected_total", "BLK_OPENs refused for their grant.",
		&s->grants_refused);
	counter(&sb, "disagg_devnode_denied_requests_total",
		"Volume operations and REVOKEs from anyone but the orchestrator.", &s->denied);
	metrics_gauge(&sb, "disagg_devnode_revoked_nodes", "Node ids on the revocation list.", "",
		      (double)atomic_load(&n->revoked.count));
	metrics_counter(&sb, "disagg_devnode_revocation_refusals_total",
			"Connections of revoked nodes refused, by stage.", "stage=\"handshake\"",
			atomic_load(&s->revoked_handshake));
	metrics_counter(&sb, "disagg_devnode_revocation_refusals_total", NULL,
			"stage=\"hello\"", atomic_load(&s->revoked_hello));
	counter(&sb, "disagg_devnode_revoked_connections_closed_total",
		"Live connections closed because their node was revoked.", &s->revoked_closed);
	if (dn_volume_list(n->vols, &v, &nv) == 0) {
		for (size_t i = 0; i < nv; i++) {
			bytes += v[i].size;
			alloc += v[i].allocated;
		}
		free(v);
	}
	metrics_gauge(&sb, "disagg_devnode_volumes", "Volumes in the store.", "", (double)nv);
	metrics_gauge(&sb, "disagg_devnode_volume_bytes", "Their sizes, summed.", "", (double)bytes);
	metrics_gauge(&sb, "disagg_devnode_volume_allocated_bytes",
		      "Bytes they take on the node's disk.", "", (double)alloc);
	return strbuf_steal(&sb);
}

char *dn_health_render(struct dn_node *n, bool *ret_ok)
{
	_cleanup_free_ struct dn_volume_info *v = NULL;
	json_t *j, *blocks = json_array();
	size_t nv = 0;
	char *out;
	int r = dn_volume_list(n->vols, &v, &nv);

	/* The store must be readable: a node that cannot list its volumes is not healthy. */
	*ret_ok = r == 0;
	for (size_t i = 0; blocks && i < nv; i++)
		if (v[i].kind == DN_VOLUME_BLOCK)
			json_array_append_new(blocks, json_pack("{s:s, s:s, s:I}", "name", v[i].name,
								"device", v[i].device, "size",
								(json_int_t)v[i].size));
	j = json_pack("{s:s, s:I, s:I, s:I, s:o}", "status", r == 0 ? "ok" : "error", "node_id",
		      (json_int_t)n->node_id, "volumes", (json_int_t)nv, "connections",
		      (json_int_t)atomic_load(&n->stats.conns_open), "block_devices", blocks);
	out = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return out;
}
