// SPDX-License-Identifier: MIT
/*
 * HTTP server for the control APIs, on libmicrohttpd. See http.h.
 *
 * We create the listening socket ourselves (net_listen_tcp, so "host:port"
 * parsing, port 0 and IPv6 work as everywhere else) and hand it to MHD,
 * which then owns and closes it. MHD runs one thread per connection
 * (handlers may block for a while, e.g. the orchestrator waiting for a
 * compute node, without stalling /metrics or /healthz) with poll(), so
 * descriptor numbers above FD_SETSIZE are fine.
 *
 * The body of a request is collected across MHD's callbacks into a
 * per-connection buffer, capped at HTTP_MAX_BODY: a Content-Length over the
 * cap is refused with 413 before any body is read; a chunked body that
 * grows past it is discarded and answered with 413 at the end.
 *
 * Listener limits: HTTP_MAX_CONNS connections in all and
 * HTTP_MAX_CONNS_PER_IP from one address (MHD accepts and at once closes
 * the excess), so that one peer cannot take every connection. MHD's
 * timeouts are inactivity timeouts: a new connection is closed after
 * HTTP_HEADER_TIMEOUT_S without a byte until its first request's header is
 * complete, any connection after HTTP_IDLE_TIMEOUT_S without a byte. A
 * header is at most MHD's per-connection memory (32 KiB) long, so a peer
 * that trickles one is bounded as well, and held to its address's cap.
 */
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "macro.h"
#include "net.h"

struct http_server {
	struct MHD_Daemon *daemon;
	struct http_route *routes;
	size_t nroutes;
	void *opaque;
	char addr[128];             /* "host:port" actually bound */
	bool tls;
	char *cert, *key;           /* PEM text, kept for MHD's lifetime */
};

/* Per-request state, from the first callback to MHD's completion notice. */
struct http_conn {
	char *body;
	size_t len, cap;
	bool too_big;
};

const char *http_req_query(const struct http_req *req, const char *key)
{
	if (!req || !req->conn || !key)
		return NULL;
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

int http_req_query_num(const struct http_req *req, const char *key, int64_t def, int64_t max,
		       int64_t *ret)
{
	const char *v = http_req_query(req, key);
	char *end;
	long long x;

	if (!v) {
		*ret = def;
		return 0;
	}
	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < 0 || x > max)
		return -EINVAL;
	*ret = x;
	return 0;
}

const char *http_req_header(const struct http_req *req, const char *name)
{
	if (!req || !req->conn || !name)
		return NULL;
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

/* ---- response helpers -------------------------------------------------- */

/* jansson wants UTF-8: replace anything else by '?' so the message survives. */
static json_t *json_string_lossy(const char *s)
{
	json_t *j = json_string(s);
	char *copy;

	if (j)
		return j;
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (unsigned char *p = (unsigned char *)copy; *p; p++)
		if (*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static char *json_error_body(const char *code, const char *msg)
{
	json_t *root;
	char *out;

	root = json_pack("{s:{s:o*,s:o*}}", "error", "code", json_string_lossy(code),
			 "message", json_string_lossy(msg));
	if (!root)
		return NULL;
	out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return out;
}

void http_resp_error(struct http_resp *resp, int status, const char *code,
		     const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		msg = NULL;
	free(resp->body);
	resp->status = status;
	resp->content_type = "application/json";
	resp->body_len = 0;
	resp->body = json_error_body(code ? code : "error", msg ? msg : "");
}

void http_resp_text(struct http_resp *resp, int status, const char *content_type,
		    char *body)
{
	if (resp->body != body)
		free(resp->body);
	resp->status = status;
	resp->content_type = content_type;
	resp->body = body;
	resp->body_len = 0;
}

void http_resp_bytes(struct http_resp *resp, int status, const char *content_type,
		     void *body, size_t len)
{
	if (!len && body != resp->body) {
		free(body);
		body = NULL;    /* an empty answer */
	}
	http_resp_text(resp, status, content_type, body);
	resp->body_len = body ? len : 0;
}

/* ---- request handling -------------------------------------------------- */

static enum MHD_Result send_resp(struct MHD_Connection *conn, struct http_resp *r,
				 const char *allow)
{
	struct MHD_Response *mr;
	enum MHD_Result ret;
	char *body = TAKE_PTR(r->body);
	_cleanup_free_ char *hdr_value = TAKE_PTR(r->hdr_value);

	if (body)
		mr = MHD_create_response_from_buffer(r->body_len ? r->body_len : strlen(body), body,
						     MHD_RESPMEM_MUST_FREE);
	else
		mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!mr) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
				r->content_type ? r->content_type : "application/json");
	if (allow)
		MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, allow);
	if (r->hdr_name && hdr_value)
		MHD_add_response_header(mr, r->hdr_name, hdr_value);
	if (r->www_authenticate)
		MHD_add_response_header(mr, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->www_authenticate);
	for (const char *const *h = r->headers; h && h[0] && h[1]; h += 2)
		MHD_add_response_header(mr, h[0], h[1]);
	ret = MHD_queue_response(conn, r->status > 0 ? (unsigned)r->status : MHD_HTTP_OK, mr);
	MHD_destroy_response(mr);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int status, const char *code,
				  const char *msg, const char *allow)
{
	struct http_resp r = { 0 };

	http_resp_error(&r, status, code, "%s", msg);
	return send_resp(conn, &r, allow);
}

static bool route_path_match(const struct http_route *rt, const char *path)
{
	if (rt->prefix)
		return strncmp(path, rt->path, strlen(rt->path)) == 0;
	return strcmp(path, rt->path) == 0;
}

const struct http_route *http_route_find(const struct http_route *routes, size_t nroutes,
					 const char *method, const char *path, char *ret_allow,
					 size_t allow_len)
{
	size_t off = 0;

	ret_allow[0] = '\0';
	for (size_t i = 0; i < nroutes; i++) {
		const struct http_route *rt = &routes[i];
		int n;

		if (!route_path_match(rt, path))
			continue;
		if (!rt->method || strcmp(rt->method, method) == 0)
			return rt;
		n = snprintf(ret_allow + off, allow_len - off, "%s%s", off ? ", " : "",
			     rt->method);
		if (n > 0 && (size_t)n < allow_len - off)
			off += (size_t)n;
	}
	return NULL;
}

static bool body_over_cap(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long v;
	char *end;

	if (!cl)
		return false;
	errno = 0;
	v = strtoull(cl, &end, 10);
	return errno == ERANGE || (end != cl && v > HTTP_MAX_BODY);
}

static int conn_append(struct http_conn *c, const char *data, size_t n)
{
	size_t cap;
	char *p;

	if (c->too_big || n > HTTP_MAX_BODY - c->len) {
		c->too_big = true;
		return 0;
	}
	if (c->len + n + 1 > c->cap) {
		cap = c->cap ? c->cap : 4096;
		while (cap < c->len + n + 1)
			cap *= 2;
		p = realloc(c->body, cap);
		if (!p)
			return -ENOMEM;
		c->body = p;
		c->cap = cap;
	}
	memcpy(c->body + c->len, data, n);
	c->len += n;
	c->body[c->len] = '\0';
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http_server *s = cls;
	struct http_conn *c = *con_cls;
	const struct http_route *rt;
	char allow[128];

	if (!c) {
		/* The header is complete: from now on, the idle timeout. */
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
					  (unsigned int)HTTP_IDLE_TIMEOUT_S);
		/* First call: headers only. Refuse a declared oversized body now. */
		if (body_over_cap(conn))
			return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
					  "request body over the limit", NULL);
		c = calloc(1, sizeof(*c));
		if (!c)
			return MHD_NO;
		*con_cls = c;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (conn_append(c, upload_data, *upload_data_size) < 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (c->too_big)
		return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
				  "request body over the limit", NULL);

	rt = http_route_find(s->routes, s->nroutes, method, url, allow, sizeof(allow));
	if (!rt) {
		if (allow[0])
			return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
					  "method not allowed for this path", allow);
		return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such path", NULL);
	}

	struct http_req req = {
		.method = method,
		.path = url,
		.body = c->body ? c->body : "",
		.body_len = c->len,
		.conn = conn,
	};
	struct http_resp resp = { .status = MHD_HTTP_OK };

	rt->fn(s->opaque, &req, &resp);
	return send_resp(conn, &resp, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_conn *c = *con_cls;

	if (c) {
		free(c->body);
		free(c);
		*con_cls = NULL;
	}
}

/* A new connection: until its first header is complete, the shorter timeout. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
					  (unsigned int)HTTP_HEADER_TIMEOUT_S);
}

/* ---- server lifecycle -------------------------------------------------- */

/* A whole PEM file, NUL-terminated (MHD wants the text, not a path). */
static int read_pem(const char *path, char **ret)
{
	_cleanup_fclose_ FILE *f = NULL;
	char *buf;
	long n;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0)
		return -EIO;
	if (n == 0 || n > (1 << 20))
		return -EINVAL;
	buf = calloc(1, (size_t)n + 1);
	if (!buf)
		return -ENOMEM;
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		return -EIO;
	}
	*ret = buf;
	return 0;
}

bool http_addr_is_loopback(const char *addr)
{
	if (!addr)
		return false;
	return strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]:", 6) == 0 ||
	       strncmp(addr, "localhost:", 10) == 0;
}

bool http_server_tls(const struct http_server *s)
{
	return s && s->tls;
}

int http_server_start(const char *addr, const struct http_route *routes, size_t nroutes,
		      void *opaque, struct http_server **ret)
{
	return http_server_start_tls(addr, routes, nroutes, opaque, NULL, NULL, ret);
}

int http_server_start_tls(const char *addr, const struct http_route *routes, size_t nroutes,
			  void *opaque, const char *cert_file, const char *key_file,
			  struct http_server **ret)
{
	_cleanup_free_ char *cert = NULL, *key = NULL;
	_cleanup_close_ int fd = -1;
	struct http_server *s;
	int r;

	if (!addr || (nroutes && !routes) || !ret || !cert_file != !key_file)
		return -EINVAL;
	if (cert_file) {
		r = read_pem(cert_file, &cert);
		if (r == 0)
			r = read_pem(key_file, &key);
		if (r < 0)
			return r;
	}
	fd = net_listen_tcp(addr, true);
	if (fd < 0)
		return fd;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = net_local_addr(fd, s->addr, sizeof(s->addr));
	if (r < 0)
		goto fail;
	if (nroutes) {
		s->routes = calloc(nroutes, sizeof(*routes));
		if (!s->routes) {
			r = -ENOMEM;
			goto fail;
		}
		memcpy(s->routes, routes, nroutes * sizeof(*routes));
	}
	s->nroutes = nroutes;
	s->opaque = opaque;

	s->tls = cert != NULL;
	s->cert = TAKE_PTR(cert);
	s->key = TAKE_PTR(key);
	s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
				     MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
				     (s->tls ? MHD_USE_TLS : 0),
				     0, NULL, NULL, on_request, s,
				     MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				     MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
				     MHD_OPTION_CONNECTION_TIMEOUT,
				     (unsigned int)HTTP_IDLE_TIMEOUT_S,
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned int)HTTP_MAX_CONNS,
				     MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				     (unsigned int)HTTP_MAX_CONNS_PER_IP,
				     s->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->cert,
				     MHD_OPTION_HTTPS_MEM_KEY, s->key,
				     MHD_OPTION_END);
	if (!s->daemon) {
		r = -EIO;
		goto fail;
	}
	fd = -1; /* MHD owns it now and closes it in MHD_stop_daemon() */
	*ret = s;
	return 0;
fail:
	free(s->routes);
	free(s->cert);
	if (s->key)
		explicit_bzero(s->key, strlen(s->key));
	free(s->key);
	free(s);
	return r;
}

const char *http_server_addr(const struct http_server *s)
{
	return s ? s->addr : NULL;
}

void http_server_stop(struct http_server *s)
{
	if (!s)
		return;
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	free(s->routes);
	free(s->cert);
	if (s->key)
		explicit_bzero(s->key, strlen(s->key));
	free(s->key);
	free(s);
}
