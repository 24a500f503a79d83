/* SPDX-License-Identifier: MIT */
/*
 * Small HTTP server on libmicrohttpd for the control APIs of every daemon.
 *
 * A daemon registers a table of routes (method + path, exact or prefix)
 * and handlers that fill a response. The server runs its own threads
 * (a small pool); handlers must be thread-safe. Request bodies are capped
 * (HTTP_MAX_BODY) and answered with 413 past the cap. Unknown paths get
 * 404 and a wrong method 405, both with a JSON error body. Connections are
 * capped in all and per address, and time out when inactive (http.c).
 */
#ifndef DISAGG_HTTP_H
#define DISAGG_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define HTTP_MAX_BODY (4u << 20)
#define HTTP_MAX_CONNS 256        /* connections in all */
#define HTTP_MAX_CONNS_PER_IP 64  /* ... from one address */
#define HTTP_HEADER_TIMEOUT_S 10  /* inactivity before a connection's first header is complete */
#define HTTP_IDLE_TIMEOUT_S 60    /* inactivity after it */

struct http_server;

struct http_req {
	const char *method;       /* "GET", "POST", ... */
	const char *path;         /* without the query string */
	const char *body;         /* NUL-terminated, may be "" */
	size_t body_len;
	void *conn;               /* for http_req_query() */
};

struct http_resp {
	int status;               /* default 200 */
	char *body;               /* malloc'd, freed by the server; NULL = empty */
	size_t body_len;          /* bytes of body; 0: strlen(body) (text) */
	const char *content_type; /* default "application/json" */
	const char *hdr_name;     /* optional extra header (e.g. "X-Request-Id") */
	char *hdr_value;          /* its value: malloc'd, freed by the server */
	const char *www_authenticate; /* static: a WWW-Authenticate header (401 answers) */
	const char *const *headers; /* static: more headers, name, value, ..., NULL */
};

/* Value of a query parameter, or NULL. */
const char *http_req_query(const struct http_req *req, const char *key);
/* Numeric query parameter key: absent, def; else 0..max (-EINVAL otherwise). */
int http_req_query_num(const struct http_req *req, const char *key, int64_t def, int64_t max,
		       int64_t *ret);
/* Value of a request header (case-insensitive name), or NULL. */
const char *http_req_header(const struct http_req *req, const char *name);

typedef void (*http_handler_fn)(void *opaque, const struct http_req *req,
				struct http_resp *resp);

struct http_route {
	const char *method;       /* NULL = any */
	const char *path;
	bool prefix;              /* match path as a prefix */
	http_handler_fn fn;
};

/*
 * The route for method and path, as the server picks it: NULL when none
 * matches, with *ret_allow listing the methods the path takes ("" if the
 * path is unknown: 404, else 405).
 */
const struct http_route *http_route_find(const struct http_route *routes, size_t nroutes,
					 const char *method, const char *path, char *ret_allow,
					 size_t allow_len);

/* Listen on "host:port" (port 0 picks one; see http_server_addr()). */
int http_server_start(const char *addr, const struct http_route *routes, size_t nroutes,
		      void *opaque, struct http_server **ret);
/*
 * The same over TLS when cert_file and key_file (PEM) are given, plain
 * HTTP when both are NULL. -EINVAL if only one is, -ENOENT/-EACCES if a
 * file cannot be read.
 */
int http_server_start_tls(const char *addr, const struct http_route *routes, size_t nroutes,
			  void *opaque, const char *cert_file, const char *key_file,
			  struct http_server **ret);
/* Is the server speaking TLS? */
bool http_server_tls(const struct http_server *s);
/* Is "host:port" a loopback address (127.0.0.0/8, ::1, localhost)? */
bool http_addr_is_loopback(const char *addr);
const char *http_server_addr(const struct http_server *s);   /* NULL for NULL */
void http_server_stop(struct http_server *s);   /* accepts NULL */

/* Helpers for handlers: a JSON error body {"error":{"code":..,"message":..}}. */
void http_resp_error(struct http_resp *resp, int status, const char *code,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void http_resp_text(struct http_resp *resp, int status, const char *content_type,
		    char *body);
/* A binary answer: len bytes of body (malloc'd, taken over; len > 0). */
void http_resp_bytes(struct http_resp *resp, int status, const char *content_type,
		     void *body, size_t len);

#endif /* DISAGG_HTTP_H */
