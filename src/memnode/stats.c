// SPDX-License-Identifier: MIT
/*
 * Observability of the memory node: the Prometheus text for GET /metrics
 * and the JSON for GET /healthz. The counters themselves (struct mn_stats)
 * are atomics bumped by the workers; rendering reads them without locks,
 * so a scrape never slows the data path.
 *
 * Metrics (all prefixed disagg_memnode_):
 *   requests_total{op}              requests received, per opcode
 *   errors_total                    replies with a status other than OK
 *   bytes_read_total                page bytes served by READ
 *   bytes_written_total             page bytes stored by WRITE
 *   diff_frames_repeated_total      WRITE_DIFF frames with PROTO_DIFF_ONCE that
 *                                   came again and were not applied again
 *   request_seconds{op}             histogram: request received -> reply queued
 *   sections{state="used"|"free"}   sections of the pool
 *   section_bytes                   section size
 *   connections                     open client connections
 *   connections_total               connections accepted
 *   connections_unauthenticated     open connections that have not authenticated
 *   worker_connections{worker}      open connections each worker thread serves
 *   connections_rejected_total{reason}  connections refused: "max_conns" (the
 *                                   node's cap), "per_addr" (their address's
 *                                   cap), "unauthenticated" (the caps on
 *                                   connections before AUTH)
 *   connections_closed_total{reason}  connections closed by the node:
 *                                   "handshake_timeout", "idle_timeout",
 *                                   "preauth_oversize" (a frame too large
 *                                   before AUTH)
 *   copies_total, copy_pages_total  completed COPY operations and pages sent
 *   fenced_requests_total           writes and frees refused: their epoch is over
 *   epoch_raises_total              section epochs raised (FENCE or a newer grant)
 *   auth_failures_total             AUTHs refused (bad MAC or orchestrator proof)
 *   grants_rejected_total{reason}   "forged" (bad signature, or for another node,
 *                                   holder or section), "expired", "rights"
 *   denied_requests_total           orchestrator-only requests from anyone else
 *   tls_handshakes_total            TLS handshakes completed (client certificate verified)
 *   tls_failures_total{reason}      TLS handshakes refused: "no_cert" (none offered),
 *                                   "bad_cert" (not of the cluster CA), "identity"
 *                                   (no disagg node identity), "protocol" (not TLS 1.3,
 *                                   plaintext, or broken)
 *   revoked_nodes                   node ids on the revocation list (REVOKE)
 *   revocation_refusals_total{stage}  revoked nodes refused: "handshake" (TLS), "hello"
 *   revoked_connections_closed_total  live connections closed by a new list
 *   identity_refusals_total{reason} "node_id" (HELLO names another node than the
 *                                   certificate), "role" (the orchestrator's capability
 *                                   from a certificate of another role)
 * The coherence directory (dir.c; its requests by opcode are requests_total{op="dir_*"}):
 *   dir_recalls_total{mode}         recalls sent: "downgrade", "invalidate"
 *   dir_recall_seconds              histogram: recall sent -> answered (or holder dropped)
 *   dir_holders_lost_total          holders dropped: a recall unanswered within the
 *                                   lease, or their recall channel closed and they were
 *                                   not back within the grace period
 *   dir_holders_away                holders whose channel closed while they held pages,
 *                                   which may still come back and hand them back, now
 *   dir_holders_back_total          away holders that came back and handed back their pages
 *   dir_pages_lost_total            pages those holders owned (unpublished writes lost)
 *   dir_dirty_pages_total           pages stored from recall answers
 *   dir_acks_total{reply}           recall answers taken: "answered" (a reply went back),
 *                                   "quiet" (PROTO_DIR_QUIET: a reply only if it failed)
 *   dir_detached_total              requests refused with DIR_DETACHED
 *   dir_holders, dir_sections       holders attached, sections in strict use, now
 *   dir_reclaimed_pages_total       pages handed back by their holders after a restart
 *                                   (the node's, or theirs)
 *   dir_reclaim_superseded_total    pages handed back and set aside: the node's were newer
 *   dir_grace_sections              sections waiting for their holders after a restart, now
 *   dir_conn_moves_total            directory connections (PROTO_FEAT_DIR_CONN) moved to
 *                                   worker 0 after their HELLO, which serves them all
 *   dir_connections                 open connections that offered PROTO_FEAT_DIR_CONN
 *   posts_total{path}               frames one thread made for a connection it does not
 *                                   read: "local" on the connection's own worker (sent
 *                                   from the pump), "queued" from another thread
 */
#include "memnode.h"

#include <stddef.h>
#include <stdio.h>

#include "wire.h"

/* Connections refused and closed, by reason (help text on the first of a name). */
static const struct {
	const char *name, *help, *labels;
	size_t off;
} conn_counters[] = {
	{ "disagg_memnode_connections_rejected_total",
	  "Connections refused at accept, by the cap they hit.", "reason=\"max_conns\"",
	  offsetof(struct mn_stats, rejected_conns) },
	{ "disagg_memnode_connections_rejected_total", NULL, "reason=\"per_addr\"",
	  offsetof(struct mn_stats, rejected_per_addr) },
	{ "disagg_memnode_connections_rejected_total", NULL, "reason=\"unauthenticated\"",
	  offsetof(struct mn_stats, rejected_unauth) },
	{ "disagg_memnode_connections_closed_total", "Connections closed by the node, by reason.",
	  "reason=\"handshake_timeout\"", offsetof(struct mn_stats, handshake_timeouts) },
	{ "disagg_memnode_connections_closed_total", NULL, "reason=\"idle_timeout\"",
	  offsetof(struct mn_stats, idle_timeouts) },
	{ "disagg_memnode_connections_closed_total", NULL, "reason=\"preauth_oversize\"",
	  offsetof(struct mn_stats, preauth_oversize) },
};

static void stats_dir(struct strbuf *sb, const struct mn_dir_counters *d)
{
	metrics_counter(sb, "disagg_memnode_dir_recalls_total",
			"Recalls the coherence directory sent, by mode.", "mode=\"downgrade\"",
			atomic_load(&d->recalls[0]));
	metrics_counter(sb, "disagg_memnode_dir_recalls_total", NULL, "mode=\"invalidate\"",
			atomic_load(&d->recalls[1]));
	metrics_hist(sb, "disagg_memnode_dir_recall_seconds",
		     "Time from a recall being sent to its answer (or its holder being dropped).",
		     "", &d->recall_latency);
	metrics_counter(sb, "disagg_memnode_dir_holders_lost_total",
			"Holders dropped from a directory: a recall unanswered within the lease, "
			"or their recall channel closed and they were not back in time.", "",
			atomic_load(&d->holders_lost));
	metrics_gauge(sb, "disagg_memnode_dir_holders_away",
		      "Holders whose recall channel closed while they held pages, which may "
		      "still come back and hand them back, now.", "",
		      (double)atomic_load(&d->holders_away));
	metrics_counter(sb, "disagg_memnode_dir_holders_back_total",
			"Away holders that came back and handed back their pages.", "",
			atomic_load(&d->holders_back));
	metrics_counter(sb, "disagg_memnode_dir_pages_lost_total",
			"Pages the dropped holders owned: their unpublished writes are lost.", "",
			atomic_load(&d->pages_lost));
	metrics_counter(sb, "disagg_memnode_dir_dirty_pages_total",
			"Pages stored from the answers to recalls.", "", atomic_load(&d->dirty_pages));
	metrics_counter(sb, "disagg_memnode_dir_acks_total",
			"Recall answers taken, by whether a reply went back (quiet: only if it "
			"failed).", "reply=\"answered\"", atomic_load(&d->acks[0]));
	metrics_counter(sb, "disagg_memnode_dir_acks_total", NULL, "reply=\"quiet\"",
			atomic_load(&d->acks[1]));
	metrics_counter(sb, "disagg_memnode_dir_migrated_total",
			"Directory reads answered with ownership (migratory pages).", "",
			atomic_load(&d->migrated));
	metrics_counter(sb, "disagg_memnode_dir_detached_total",
			"Directory requests refused: the holder is not attached.", "",
			atomic_load(&d->detached));
	metrics_gauge(sb, "disagg_memnode_dir_holders", "Holders attached to directories now.", "",
		      (double)atomic_load(&d->holders));
	metrics_gauge(sb, "disagg_memnode_dir_sections", "Sections in strict use now.", "",
		      (double)atomic_load(&d->sections));
	metrics_counter(sb, "disagg_memnode_dir_reclaimed_pages_total",
			"Pages their holders handed back after a restart, the node's or theirs "
			"(DIR_RECLAIM).", "",
			atomic_load(&d->reclaimed));
	metrics_counter(sb, "disagg_memnode_dir_reclaim_superseded_total",
			"Pages handed back and not stored: the node's content was newer.", "",
			atomic_load(&d->superseded));
	metrics_gauge(sb, "disagg_memnode_dir_grace_sections",
		      "Sections waiting for their holders' reclaims after a restart, now.", "",
		      (double)atomic_load(&d->grace_sections));
}

char *mn_stats_render(struct mn_node *n)
{
	struct mn_stats *s = &n->stats;
	uint32_t used = atomic_load(&n->table.nused);
	struct strbuf sb;
	char labels[64];
	bool first;

	strbuf_init(&sb);
	first = true;
	for (unsigned op = 1; op < PROTO_OP_MAX; op++) {
		snprintf(labels, sizeof(labels), "op=\"%s\"", proto_op_name(op));
		metrics_counter(&sb, "disagg_memnode_requests_total",
				first ? "Requests received, by opcode." : NULL, labels,
				atomic_load(&s->requests[op]));
		first = false;
	}
	metrics_counter(&sb, "disagg_memnode_errors_total",
			"Replies with an error status.", "", atomic_load(&s->errors));
	metrics_counter(&sb, "disagg_memnode_bytes_read_total", "Page bytes served by READ.", "",
			atomic_load(&s->bytes_read));
	metrics_counter(&sb, "disagg_memnode_bytes_written_total",
			"Page bytes stored by WRITE.", "", atomic_load(&s->bytes_written));
	metrics_counter(&sb, "disagg_memnode_diff_frames_repeated_total",
			"WRITE_DIFF frames sent again and not applied again (PROTO_DIFF_ONCE).", "",
			atomic_load(&s->diff_frames_repeated));
	first = true;
	for (unsigned op = 1; op < PROTO_OP_MAX; op++) {
		snprintf(labels, sizeof(labels), "op=\"%s\"", proto_op_name(op));
		metrics_hist(&sb, "disagg_memnode_request_seconds",
			     first ? "Time from a request's arrival to its reply being queued." :
				     NULL,
			     labels, &s->latency[op]);
		first = false;
	}
	metrics_gauge(&sb, "disagg_memnode_sections", "Sections of the pool, by state.",
		      "state=\"used\"", used);
	metrics_gauge(&sb, "disagg_memnode_sections", NULL, "state=\"free\"",
		      n->pool->nsections - used);
	metrics_gauge(&sb, "disagg_memnode_section_bytes", "Size of a section in bytes.", "",
		      (double)n->pool->section_size);
	metrics_gauge(&sb, "disagg_memnode_connections", "Open client connections.", "",
		      (double)atomic_load(&s->connections));
	metrics_counter(&sb, "disagg_memnode_connections_total", "Connections accepted.", "",
			atomic_load(&s->connections_total));
	metrics_gauge(&sb, "disagg_memnode_connections_unauthenticated",
		      "Open connections that have not authenticated yet.", "",
		      (double)mn_admit_unauth(n->admit));
	for (unsigned i = 0; i < n->nworkers; i++) {
		snprintf(labels, sizeof(labels), "worker=\"%u\"", i);
		metrics_gauge(&sb, "disagg_memnode_worker_connections",
			      i == 0 ? "Open connections each worker thread serves." : NULL, labels,
			      (double)mn_server_worker_conns(n, i));
	}
	for (size_t i = 0; i < ARRAY_SIZE(conn_counters); i++)
		metrics_counter(&sb, conn_counters[i].name, conn_counters[i].help,
				conn_counters[i].labels,
				atomic_load((_Atomic uint64_t *)((char *)s + conn_counters[i].off)));
	metrics_counter(&sb, "disagg_memnode_copies_total", "Section copies completed.", "",
			atomic_load(&s->copies));
	metrics_counter(&sb, "disagg_memnode_copy_pages_total",
			"Pages sent by completed section copies.", "", atomic_load(&s->copy_pages));
	metrics_counter(&sb, "disagg_memnode_fenced_requests_total",
			"Writes and frees refused because they are of an older ownership epoch.", "",
			atomic_load(&s->fenced));
	metrics_counter(&sb, "disagg_memnode_epoch_raises_total",
			"Section ownership epochs raised, by FENCE or by a newer grant.", "",
			atomic_load(&s->epoch_raises));
	metrics_counter(&sb, "disagg_memnode_auth_failures_total",
			"AUTH requests refused: a bad MAC or a bad orchestrator proof.", "",
			atomic_load(&s->auth_failed));
	metrics_counter(&sb, "disagg_memnode_grants_rejected_total",
			"Grants refused: forged (bad signature, or for another node or holder).",
			"reason=\"forged\"", atomic_load(&s->grants_rejected));
	metrics_counter(&sb, "disagg_memnode_grants_rejected_total", NULL, "reason=\"expired\"",
			atomic_load(&s->grants_expired));
	metrics_counter(&sb, "disagg_memnode_grants_rejected_total", NULL, "reason=\"rights\"",
			atomic_load(&s->grants_rights));
	metrics_counter(&sb, "disagg_memnode_tls_handshakes_total",
			"TLS handshakes completed with a verified client certificate.", "",
			atomic_load(&s->tls_handshakes));
	for (unsigned i = 0; i < MN_TLS_FAIL_MAX; i++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", mn_tls_fail_name(i));
		metrics_counter(&sb, "disagg_memnode_tls_failures_total",
				i == 0 ? "TLS handshakes refused, by reason." : NULL, labels,
				atomic_load(&s->tls_fail[i]));
	}
	metrics_counter(&sb, "disagg_memnode_identity_refusals_total",
			"HELLO/AUTH refused for the client certificate's identity, by reason.",
			"reason=\"node_id\"", atomic_load(&s->id_node_mismatch));
	metrics_counter(&sb, "disagg_memnode_identity_refusals_total", NULL, "reason=\"role\"",
			atomic_load(&s->id_role));
	metrics_gauge(&sb, "disagg_memnode_revoked_nodes",
		      "Node ids on the revocation list.", "", atomic_load(&n->revoked.count));
	metrics_counter(&sb, "disagg_memnode_revocation_refusals_total",
			"Connections of revoked nodes refused, by stage.", "stage=\"handshake\"",
			atomic_load(&s->revoked_handshake));
	metrics_counter(&sb, "disagg_memnode_revocation_refusals_total", NULL,
			"stage=\"hello\"", atomic_load(&s->revoked_hello));
	metrics_counter(&sb, "disagg_memnode_revoked_connections_closed_total",
			"Live connections closed because their node was revoked.", "",
			atomic_load(&s->revoked_closed));
	stats_dir(&sb, mn_dir_counters(n->dir));
	metrics_counter(&sb, "disagg_memnode_dir_conn_moves_total",
			"Directory connections moved to worker 0, which serves them all.", "",
			atomic_load(&s->dir_conn_moves));
	metrics_counter(&sb, "disagg_memnode_posts_total",
			"Frames made for another connection than the one being read: on its own "
			"worker (local), or from another thread (queued).",
			"path=\"local\"", atomic_load(&s->posts_local));
	metrics_counter(&sb, "disagg_memnode_posts_total", NULL, "path=\"queued\"",
			atomic_load(&s->posts_queued));
	metrics_gauge(&sb, "disagg_memnode_dir_connections",
		      "Open connections that carry directory traffic (on worker 0).", "",
		      (double)atomic_load(&s->dir_conns));
	metrics_counter(&sb, "disagg_memnode_denied_requests_total",
			"Requests that need the orchestrator's capability, from another node.", "",
			atomic_load(&s->denied));
	return strbuf_steal(&sb);
}

char *mn_health_render(struct mn_node *n)
{
	struct strbuf sb;
	uint32_t used = atomic_load(&n->table.nused);

	strbuf_init(&sb);
	strbuf_printf(&sb,
		      "{\"status\":\"ok\",\"node_id\":%llu,\"backing\":\"%s\","
		      "\"section_size\":%llu,\"sections\":%u,\"sections_used\":%u,"
		      "\"connections\":%llu}\n",
		      (unsigned long long)n->node_id, mn_backing_name(n->pool->backing),
		      (unsigned long long)n->pool->section_size, n->pool->nsections, used,
		      (unsigned long long)atomic_load(&n->stats.connections));
	return strbuf_steal(&sb);
}
