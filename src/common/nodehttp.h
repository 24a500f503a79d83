/* SPDX-License-Identifier: MIT */
/*
 * The HTTP side of a storage node (memory node, device node): the options
 * of its endpoint, credential and orchestrator, the endpoint (GET /healthz
 * for anyone, GET /metrics for the orchestrator and --metrics-tokens), the
 * answers both nodes give there, and the registration with the
 * orchestrator. The daemon keeps its routes and what they render (its
 * health, its statistics) and its registration's members; this module the
 * parts that are the same, so the two nodes cannot drift apart.
 */
#ifndef DISAGG_NODEHTTP_H
#define DISAGG_NODEHTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "apiauth.h"
#include "http.h"
#include "registrar.h"

struct nodehttp_opts {
	const char *http;              /* --http HOST:PORT, NULL: no endpoint */
	const char *http_cert, *http_key;   /* --http-cert, --http-key: HTTPS */
	const char *http_ca;           /* --http-ca: verifies an https:// --orchestrator */
	const char *node_cred;         /* --node-credential */
	const char *metrics_tokens;    /* --metrics-tokens */
	bool api_open;                 /* --api-open */
	const char *orchestrator;      /* --orchestrator URL: register and heartbeat */
	const char *name;              /* --name: shown by the orchestrator */
	const char *advertise;         /* --advertise HOST:PORT: the data address to register */
};

enum {
	NODEHTTP_OPT_HTTP = 0x4301,
	NODEHTTP_OPT_CERT,
	NODEHTTP_OPT_KEY,
	NODEHTTP_OPT_CA,
	NODEHTTP_OPT_CRED,
	NODEHTTP_OPT_METRICS_TOKENS,
	NODEHTTP_OPT_ORCH,
	NODEHTTP_OPT_NAME,
	NODEHTTP_OPT_ADVERTISE,
};

/* getopt_long helper: true if `opt` is one of the options above (its value stored). */
bool nodehttp_opt(int opt, const char *arg, struct nodehttp_opts *o);

/*
 * The credential's and the endpoint's TLS options, for getopt_long; the
 * daemon lists --http, --orchestrator, --name and --advertise (with the
 * NODEHTTP_OPT_ ids) where they stand in its own --help.
 */
#define NODEHTTP_AUTH_OPTIONS                                                        \
	{ "node-credential", required_argument, NULL, NODEHTTP_OPT_CRED },           \
	{ "metrics-tokens", required_argument, NULL, NODEHTTP_OPT_METRICS_TOKENS },  \
	APIAUTH_OPEN_OPTION,                                                         \
	{ "http-cert", required_argument, NULL, NODEHTTP_OPT_CERT },                 \
	{ "http-key", required_argument, NULL, NODEHTTP_OPT_KEY },                   \
	{ "http-ca", required_argument, NULL, NODEHTTP_OPT_CA }

/*
 * Serve GET /healthz with healthz and GET /metrics with metrics (their
 * opaque: node) on o->http, over TLS when o->http_cert and o->http_key
 * are given; without o->http there is no endpoint (*ret = NULL). 0, or
 * -errno (logged).
 */
int nodehttp_start(const struct nodehttp_opts *o, http_handler_fn healthz,
		   http_handler_fn metrics, void *node, struct http_server **ret);
/* GET /healthz: body (JSON, taken over; NULL: out of memory) with 200, or 503 if !ok. */
void nodehttp_health(struct http_resp *resp, char *body, bool ok);
/*
 * GET /metrics, once apiauth_node_authorize() let the request in: stats
 * (Prometheus text, taken over; NULL: out of memory) followed by the
 * refusals of the daemon's API (apiauth_metrics).
 */
void nodehttp_metrics(struct http_resp *resp, char *stats, const char *daemon);

/*
 * Register with o->orchestrator and heartbeat (registrar.h), with auth's
 * bearer token when it has a credential and o->http_ca: reg is the
 * registration (taken over; NULL: -ENOMEM), which fill(node, ...)
 * completes now and refreshes before every heartbeat. 0 or -errno (logged).
 */
int nodehttp_register(const struct nodehttp_opts *o, const struct apiauth_node *auth,
		      json_t *reg, registrar_fill_fn fill, void *node, struct registrar **ret);

#endif /* DISAGG_NODEHTTP_H */
