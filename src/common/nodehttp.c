// SPDX-License-Identifier: MIT
/*
 * A storage node's HTTP side (nodehttp.h). The answers' status codes,
 * content types and error bodies are what the orchestrator, Prometheus and
 * the tests expect of either node.
 */
#include "nodehttp.h"

#include <errno.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "metrics.h"

bool nodehttp_opt(int opt, const char *arg, struct nodehttp_opts *o)
{
	switch (opt) {
	case NODEHTTP_OPT_HTTP: o->http = arg; break;
	case NODEHTTP_OPT_CERT: o->http_cert = arg; break;
	case NODEHTTP_OPT_KEY: o->http_key = arg; break;
	case NODEHTTP_OPT_CA: o->http_ca = arg; break;
	case NODEHTTP_OPT_CRED: o->node_cred = arg; break;
	case NODEHTTP_OPT_METRICS_TOKENS: o->metrics_tokens = arg; break;
	case APIAUTH_OPT_OPEN: o->api_open = true; break;
	case NODEHTTP_OPT_ORCH: o->orchestrator = arg; break;
	case NODEHTTP_OPT_NAME: o->name = arg; break;
	case NODEHTTP_OPT_ADVERTISE: o->advertise = arg; break;
	default: return false;
	}
	return true;
}

int nodehttp_start(const struct nodehttp_opts *o, http_handler_fn healthz,
		   http_handler_fn metrics, void *node, struct http_server **ret)
{
	/* Copied by the server. */
	const struct http_route routes[] = {
		{ "GET", "/healthz", false, healthz },
		{ "GET", "/metrics", false, metrics },
	};
	int r;

	*ret = NULL;
	if (!o->http)
		return 0;
	r = http_server_start_tls(o->http, routes, ARRAY_SIZE(routes), node, o->http_cert,
				  o->http_key, ret);
	if (r < 0)
		log_error("cannot serve HTTP%s on %s: %s", o->http_cert ? "S" : "", o->http,
			  strerror(-r));
	return r;
}

void nodehttp_health(struct http_resp *resp, char *body, bool ok)
{
	if (!body) {
		http_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	http_resp_text(resp, ok ? 200 : 503, "application/json", body);
}

void nodehttp_metrics(struct http_resp *resp, char *stats, const char *daemon)
{
	_cleanup_free_ char *s = stats;
	struct strbuf sb;
	char *body;

	strbuf_init(&sb);
	if (s)
		strbuf_printf(&sb, "%s", s);
	apiauth_metrics(&sb, daemon);
	/* Without the daemon's own statistics the answer would mislead: none. */
	body = s ? strbuf_steal(&sb) : NULL;
	strbuf_free(&sb);
	if (!body) {
		http_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	http_resp_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8", body);
}

int nodehttp_register(const struct nodehttp_opts *o, const struct apiauth_node *auth,
		      json_t *reg, registrar_fill_fn fill, void *node, struct registrar **ret)
{
	int r = -ENOMEM;

	if (reg) {
		fill(node, reg);
		r = registrar_start_auth(o->orchestrator, reg, fill, node,
					 auth->on ? auth->bearer : NULL, o->http_ca, ret);
		json_decref(reg);
	}
	if (r < 0)
		log_error("cannot start the registrar: %s", strerror(-r));
	return r;
}
