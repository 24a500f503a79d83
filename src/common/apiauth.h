/* SPDX-License-Identifier: MIT */
/*
 * Authentication of the HTTP control APIs (docs/api.md#authentication).
 *
 * Two kinds of bearer token travel in "Authorization: Bearer TOKEN":
 *
 *  - people tokens, for operators and tools calling the orchestrator: any
 *    string of 16 to 256 printable characters, listed one per line in the
 *    orchestrator's --api-tokens file (mode 0600). Only their SHA-256
 *    hashes are kept in memory, compared in constant time.
 *
 *  - node tokens, derived from a node's credential. The orchestrator holds
 *    a node secret (32 random bytes, mode 0600, like the cluster key); the
 *    credential of node ID is C = HMAC-SHA256(secret, "disagg-node-credential"
 *    || ID as 8 big-endian bytes), issued to the node by the operator
 *    (disagg-grant --node-credential) in a file "ID:HEX(C)" (mode 0600).
 *    Each direction has its own token, so that neither side can replay
 *    what the other sent:
 *        node -> orchestrator  "node.ID.HEX(HMAC(C, "disagg-api node->orchestrator"))"
 *        orchestrator -> node  "orch.ID.HEX(HMAC(C, "disagg-api orchestrator->node"))"
 *    The orchestrator recomputes C from ID, so it needs no per-node record,
 *    and a node's credential works against no other node.
 *
 * Every refusal is counted by reason and rendered by apiauth_metrics() as
 * disagg_http_auth_failures_total{daemon=...,reason=...}.
 */
#ifndef DISAGG_APIAUTH_H
#define DISAGG_APIAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "http.h"
#include "metrics.h"

#define APIAUTH_CRED_SIZE 32
#define APIAUTH_TOKEN_MIN 16
#define APIAUTH_TOKEN_MAX 256
#define APIAUTH_BEARER_MAX 96   /* "node." + 20 digits + "." + 64 hex + NUL */

enum apiauth_reason {
	APIAUTH_MISSING,      /* no Authorization header, or not "Bearer ..." */
	APIAUTH_INVALID,      /* a token nobody issued */
	APIAUTH_WRONG_NODE,   /* a valid node token used as another node */
	APIAUTH_FORBIDDEN,    /* a valid token of the wrong kind for this request */
	APIAUTH__MAX,
};

/* The people tokens of --api-tokens. */
struct apiauth_tokens;

/* Load a token file: -EPERM if group or others may read it, -EINVAL on a bad line or none. */
int apiauth_tokens_load(const char *path, struct apiauth_tokens **ret);
void apiauth_tokens_free(struct apiauth_tokens *t);   /* accepts NULL */
bool apiauth_tokens_check(const struct apiauth_tokens *t, const char *token);
/* A new random people token: "dgt_" and 64 hex digits. */
int apiauth_token_new(char ret[APIAUTH_BEARER_MAX]);

/* The credential C of node id (see above). */
int apiauth_node_cred(const struct auth_key *secret, uint64_t id,
		      uint8_t ret[APIAUTH_CRED_SIZE]);
/* Write "ID:HEX" to path (mode 0600, -EEXIST if it exists). */
int apiauth_cred_save(const char *path, uint64_t id, const uint8_t cred[APIAUTH_CRED_SIZE]);
/* Read a credential file: -EPERM if group or others may read it, -EINVAL if malformed. */
int apiauth_cred_load(const char *path, uint64_t *ret_id, uint8_t ret[APIAUTH_CRED_SIZE]);
/* The bearer token of one direction: to_node selects "orch.", else "node.". */
int apiauth_bearer(const uint8_t cred[APIAUTH_CRED_SIZE], uint64_t id, bool to_node,
		   char ret[APIAUTH_BEARER_MAX]);
/*
 * Check a node token of the direction to_node against the node secret:
 * 0 with *ret_id, or -EINVAL (malformed or not ours).
 */
int apiauth_node_check(const struct auth_key *secret, const char *token, bool to_node,
		       uint64_t *ret_id);
/* Check a token addressed to this node (it holds cred for id): true if it is. */
bool apiauth_for_me(const uint8_t cred[APIAUTH_CRED_SIZE], uint64_t id, const char *token);

/* The token of "Authorization: Bearer TOKEN", or NULL. */
const char *apiauth_bearer_of(const struct http_req *req);
/* Count a refusal and answer 401 (403 for FORBIDDEN) with WWW-Authenticate. */
void apiauth_refuse(struct http_resp *resp, enum apiauth_reason why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
uint64_t apiauth_failures(enum apiauth_reason why);
/* disagg_http_auth_failures_total{daemon=...,reason=...}, every reason (zeros too). */
void apiauth_metrics(struct strbuf *sb, const char *daemon);
/*
 * --api-open: serve an HTTP API without credentials. Every daemon needs
 * either its credentials or this flag, which only a loopback --http
 * allows: an open API is for development and tests on one machine.
 */
#define APIAUTH_OPT_OPEN 0x4101
#define APIAUTH_OPEN_OPTION { "api-open", no_argument, NULL, APIAUTH_OPT_OPEN }
#define APIAUTH_OPEN_HELP                                                            \
	"  --api-open             serve the HTTP API without credentials (loopback\n"  \
	"                         --http only; for development and tests)\n"

/*
 * A node's side (compute agent, memory node): its credential and who may
 * call its API. Without a credential (on == false) the API is open, which
 * apiauth_node_setup allows only with --api-open on a loopback address.
 */
struct apiauth_node {
	bool on;
	uint64_t id;
	uint8_t cred[APIAUTH_CRED_SIZE];
	struct apiauth_tokens *metrics;   /* --metrics-tokens: may read /metrics only */
	char bearer[APIAUTH_BEARER_MAX];  /* ours towards the orchestrator */
};

/*
 * Load --node-credential (may be NULL) and --metrics-tokens (may be NULL)
 * for node id serving on http_addr (NULL: no API); `open` is --api-open.
 * Errors are logged. 0 or -errno.
 */
int apiauth_node_setup(struct apiauth_node *n, const char *cred_file,
		       const char *metrics_tokens, uint64_t id, const char *http_addr,
		       bool open);
/* The orchestrator's and the nodes' common rule for --api-open: 0 or -EINVAL (logged). */
int apiauth_open_check(bool has_credentials, bool open, const char *http_addr,
		       const char *credentials);
void apiauth_node_clear(struct apiauth_node *n);
/*
 * May this request go on? GET /healthz: anyone; GET /metrics: the
 * orchestrator or a metrics token; anything else: the orchestrator only
 * (its token for this node). Else resp holds the counted refusal.
 */
bool apiauth_node_authorize(const struct apiauth_node *n, const struct http_req *req,
			    struct http_resp *resp);

/* What to tell a user about a file that a loader refused with r: " (hint)" or "". */
const char *apiauth_file_hint(int r);

#endif /* DISAGG_APIAUTH_H */
