/* SPDX-License-Identifier: MIT */
/*
 * Registrar: keeps a daemon registered with the orchestrator.
 *
 * A daemon started with --orchestrator URL starts a registrar with its
 * registration (docs/api.md, POST /v1/nodes/register), e.g. for a memory
 * node:
 *
 *     json_t *reg = json_pack("{s:I, s:s, s:s, s:s, s:o, s:I, s:I, s:I}",
 *                             "node_id", id, "kind", "memnode", "addr", addr,
 *                             "http", http, "labels", labels,
 *                             "section_size", ss, "sections_total", total,
 *                             "sections_free", nfree);
 *     r = registrar_start(url, reg, fill_capacity, node, &reg_handle);
 *     json_decref(reg);
 *     ...
 *     registrar_stop(reg_handle);
 *
 * A background thread registers (retrying with exponential backoff, 0.5 s
 * up to 10 s, while the orchestrator cannot be reached or refuses), then
 * sends a heartbeat every `heartbeat_interval_s` that the orchestrator
 * answered, and registers again when a heartbeat gets 404 (the
 * orchestrator lost or never had the node). Failures are logged at debug
 * level; the first success after a failure at info level.
 *
 * `refresh` (may be NULL) is called from the registrar's thread before
 * every registration and heartbeat with the JSON object about to be sent:
 * it sets the capacity members that change (memory nodes: "sections_free",
 * compute nodes: "vcpus") with json_object_set_new(). It must only set
 * members that POST /v1/nodes/ID/heartbeat accepts ("sections_free",
 * "sections_total", "vcpus", "vms", "vm_states") and must be thread-safe
 * with respect to the daemon.
 *
 * URL is "http://host:port" (a bare "host:port" works too).
 */
#ifndef DISAGG_REGISTRAR_H
#define DISAGG_REGISTRAR_H

#include <jansson.h>

#include "macro.h"

struct registrar;

typedef void (*registrar_fill_fn)(void *opaque, json_t *body);

/*
 * Start the registrar thread. `registration` is copied (the caller keeps
 * its reference) and must contain "node_id". Returns 0 at once: the
 * registration happens in the background.
 */
int registrar_start(const char *url, json_t *registration, registrar_fill_fn refresh,
		    void *opaque, struct registrar **ret);
/*
 * The same, authenticating with bearer ("Authorization: Bearer ...", may be
 * NULL) and verifying an https:// orchestrator against cafile (PEM, may be
 * NULL: the system's CAs).
 */
int registrar_start_auth(const char *url, json_t *registration, registrar_fill_fn refresh,
			 void *opaque, const char *bearer, const char *cafile,
			 struct registrar **ret);
/* Stop the thread (interrupting a wait or backoff) and free. Accepts NULL. */
void registrar_stop(struct registrar *r);
/*
 * Send the next heartbeat now instead of at the end of the interval (the
 * daemon has news, e.g. a VM changed state). Thread-safe; accepts NULL.
 */
void registrar_kick(struct registrar *r);
/*
 * POST body to the orchestrator's `path` with this daemon's credential, from
 * any thread (a handle of its own): the HTTP status (*ret: the answer's
 * JSON, or NULL), or -errno when there was no answer (-ETIMEDOUT after
 * timeout_ms; 0: 5 s).
 */
int registrar_post(struct registrar *r, const char *path, json_t *body, int timeout_ms,
		   json_t **ret);
/* Has the last registration or heartbeat succeeded? */
int registrar_registered(const struct registrar *r);

DEFINE_CLEANUP_FUNC(struct registrar, registrar_stop)

#endif /* DISAGG_REGISTRAR_H */
