// SPDX-License-Identifier: MIT
/*
 * Unit test of the HTTP server wrapper (src/common/http.c): starts a server
 * on 127.0.0.1:0 and talks raw HTTP/1.1 to it over a socket, checking route
 * matching (exact and prefix), 404 and 405 with their JSON error bodies,
 * request body accumulation, the 413 body cap (declared and chunked), query
 * parameters, JSON escaping in http_resp_error, and a clean stop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <jansson.h>

#include "http.h"
#include "macro.h"
#include "net.h"
#include "tap.h"

static void h_health(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	http_resp_text(resp, 200, "text/plain", strdup("ok\n"));
}

static void h_echo(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	char *b = malloc(req->body_len + 1);

	if (b) {
		memcpy(b, req->body, req->body_len + 1);
	}
	resp->body = b; /* status and content type left to the defaults */
	(*(int *)opaque)++;
}

static void h_items(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	const char *x = http_req_query(req, "x");
	char *s = NULL;

	if (asprintf(&s, "%s|%s|%s", req->method, req->path, x ? x : "(none)") < 0)
		s = NULL;
	http_resp_text(resp, 201, "text/plain", s);
}

static void h_fail(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	resp->body = strdup("dropped"); /* http_resp_error must free this */
	http_resp_error(resp, 409, "conflict", "bad \"%s\"\n\\ \x01 \xff", "thing");
}

static void h_empty(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	resp->status = 204;
}

static const struct http_route routes[] = {
	{ "GET", "/healthz", false, h_health },
	{ "POST", "/echo", false, h_echo },
	{ "PUT", "/echo", false, h_echo },
	{ NULL, "/v1/items/", true, h_items },
	{ "GET", "/fail", false, h_fail },
	{ "DELETE", "/empty", false, h_empty },
};

struct reply {
	int status;
	char *head; /* status line + headers */
	char *body;
	size_t body_len;
};

static void reply_free(struct reply *r)
{
	free(r->head);
	free(r->body);
	*r = (struct reply){ 0 };
}

/* Send `req` (and then `extra` bytes of 'a' if extra > 0), read to EOF. */
static int http_raw(const char *addr, const char *req, size_t extra, struct reply *ret)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct timeval tv = { .tv_sec = 20 };
	size_t len = 0, cap = 0;
	char *sep;
	int r;

	fd = net_connect_tcp(addr, 5000);
	if (fd < 0)
		return fd;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	r = net_write_full(fd, req, strlen(req));
	if (r < 0)
		return r;
	if (extra) {
		_cleanup_free_ char *chunk = malloc(65536);

		if (!chunk)
			return -ENOMEM;
		memset(chunk, 'a', 65536);
		while (extra > 0) {
			size_t n = MIN(extra, (size_t)65536);

			r = net_write_full(fd, chunk, n);
			if (r < 0)
				return r;
			extra -= n;
		}
	}
	for (;;) {
		ssize_t n;

		if (cap - len < 65536) {
			char *p = realloc(buf, cap + 65536 + 1);

			if (!p)
				return -ENOMEM;
			buf = p;
			cap += 65536;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNRESET && len > 0)
			break;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (!buf)
		return -EPROTO;
	buf[len] = '\0';
	sep = strstr(buf, "\r\n\r\n");
	if (!sep || sscanf(buf, "HTTP/1.%*d %d", &ret->status) != 1)
		return -EPROTO;
	ret->head = strndup(buf, (size_t)(sep - buf) + 2);
	ret->body_len = len - (size_t)(sep + 4 - buf);
	ret->body = malloc(ret->body_len + 1);
	if (!ret->head || !ret->body)
		return -ENOMEM;
	memcpy(ret->body, sep + 4, ret->body_len + 1);
	return 0;
}

static bool has_header(const struct reply *r, const char *line)
{
	return r->head && strcasestr(r->head, line) != NULL;
}

/* Check a JSON error body; returns true if code matches. */
static bool json_error_is(const struct reply *r, const char *code, char **ret_msg)
{
	json_error_t err;
	json_t *root = json_loads(r->body ? r->body : "", 0, &err);
	const char *c = NULL, *m = NULL;
	bool match;

	if (!root)
		return false;
	match = json_unpack(root, "{s:{s:s,s:s}}", "error", "code", &c, "message", &m) == 0 &&
		strcmp(c, code) == 0;
	if (match && ret_msg)
		*ret_msg = strdup(m);
	json_decref(root);
	return match;
}

int main(void)
{
	struct http_server *srv = NULL;
	struct reply r = { 0 };
	char req[512];
	const char *addr;
	char *msg = NULL;
	int echoes = 0;

	plan(49);

	is(http_server_start("127.0.0.1:0", routes, ARRAY_SIZE(routes), &echoes, &srv), 0,
	   "server starts on 127.0.0.1:0");
	if (!srv)
		return tap_exit();
	addr = http_server_addr(srv);
	ok(addr && strncmp(addr, "127.0.0.1:", 10) == 0 && strcmp(addr, "127.0.0.1:0") != 0,
	   "bound address reported: %s", addr ? addr : "(null)");

	is(http_raw(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, &r),
	   0, "GET /healthz");
	is(r.status, 200, "  200");
	is_str(r.body, "ok\n", "  body");
	ok(has_header(&r, "Content-Type: text/plain"), "  content type from the handler");
	reply_free(&r);

	is(http_raw(addr, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, &r), 0,
	   "GET /nope");
	is(r.status, 404, "  404");
	ok(json_error_is(&r, "not_found", NULL), "  JSON not_found");
	ok(has_header(&r, "Content-Type: application/json"), "  JSON content type");
	reply_free(&r);

	is(http_raw(addr, "GET /healthzz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, &r),
	   0, "exact route does not match a longer path");
	is(r.status, 404, "  404");
	reply_free(&r);

	is(http_raw(addr, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, &r), 0,
	   "GET on a POST route");
	is(r.status, 405, "  405");
	ok(json_error_is(&r, "method_not_allowed", NULL), "  JSON method_not_allowed");
	ok(has_header(&r, "Allow: POST, PUT"), "  Allow header lists the methods");
	reply_free(&r);

	is(http_raw(addr,
		    "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		    "Content-Length: 11\r\n\r\nhello world",
		    0, &r),
	   0, "POST /echo");
	is(r.status, 200, "  default status 200");
	is_str(r.body, "hello world", "  body echoed");
	ok(has_header(&r, "Content-Type: application/json"), "  default content type");
	reply_free(&r);

	snprintf(req, sizeof(req),
		 "PUT /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		 "Content-Length: %u\r\n\r\n", HTTP_MAX_BODY);
	is(http_raw(addr, req, HTTP_MAX_BODY, &r), 0, "PUT a body of exactly HTTP_MAX_BODY");
	is(r.status, 200, "  200");
	is(r.body_len, HTTP_MAX_BODY, "  whole body echoed");
	reply_free(&r);

	snprintf(req, sizeof(req),
		 "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		 "Content-Length: %u\r\n\r\n", HTTP_MAX_BODY + 1);
	is(http_raw(addr, req, 0, &r), 0, "declared body over the cap");
	is(r.status, 413, "  413 before the body is sent");
	ok(json_error_is(&r, "too_large", NULL), "  JSON too_large");
	reply_free(&r);

	snprintf(req, sizeof(req),
		 "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		 "Content-Length: 99999999999999999999999\r\n\r\n");
	is(http_raw(addr, req, 0, &r), 0, "absurd Content-Length");
	ok(r.status == 413 || r.status == 400, "  refused (%d)", r.status);
	reply_free(&r);

	/* Chunked: one chunk of HTTP_MAX_BODY + 1 bytes, then the terminator. */
	{
		_cleanup_free_ char *big = NULL;
		size_t n = HTTP_MAX_BODY + 1;
		int hl = snprintf(req, sizeof(req),
				  "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
				  "Transfer-Encoding: chunked\r\n\r\n%zx\r\n", n);

		big = malloc((size_t)hl + n + 16);
		memcpy(big, req, (size_t)hl);
		memset(big + hl, 'b', n);
		memcpy(big + hl + n, "\r\n0\r\n\r\n", 8);
		is(http_raw(addr, big, 0, &r), 0, "chunked body over the cap");
		is(r.status, 413, "  413");
		ok(json_error_is(&r, "too_large", NULL), "  JSON too_large");
		reply_free(&r);
	}

	is(http_raw(addr,
		    "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
		    0, &r),
	   0, "chunked body under the cap");
	is(r.status, 200, "  200");
	is_str(r.body, "abcdefg", "  chunks joined");
	reply_free(&r);

	is(http_raw(addr, "DELETE /v1/items/42?x=a%20b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		    0, &r),
	   0, "prefix route, any method, query");
	is(r.status, 201, "  handler status");
	is_str(r.body, "DELETE|/v1/items/42|a b", "  method, path without query, decoded parameter");
	reply_free(&r);

	is(http_raw(addr, "GET /fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, &r), 0,
	   "http_resp_error");
	is(r.status, 409, "  status");
	ok(json_error_is(&r, "conflict", &msg), "  valid JSON with code");
	is_str(msg, "bad \"thing\"\n\\ \x01 ?", "  message survives escaping (invalid UTF-8 replaced)");
	free(msg);
	reply_free(&r);

	is(http_raw(addr, "DELETE /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, &r),
	   0, "NULL body");
	is(r.status, 204, "  204");
	is(r.body_len, 0, "  empty");
	reply_free(&r);

	is(echoes, 3, "echo handler ran three times (never for refused bodies)");

	snprintf(req, sizeof(req), "%s", addr);
	http_server_stop(srv);
	http_server_stop(NULL);
	ok(net_connect_tcp(req, 1000) < 0, "stopped server no longer accepts");
	ok(http_server_start("256.0.0.1:0", routes, 1, NULL, &srv) < 0, "bad address refused");

	/* IPv6 loopback, where the machine has it. */
	srv = NULL;
	if (http_server_start("[::1]:0", routes, ARRAY_SIZE(routes), &echoes, &srv) < 0) {
		skip("no IPv6 loopback");
		skip("no IPv6 loopback");
	} else {
		addr = http_server_addr(srv);
		ok(strncmp(addr, "[::1]:", 6) == 0, "IPv6 address reported: %s", addr);
		ok(http_raw(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			    0, &r) == 0 && r.status == 200, "GET over IPv6");
		reply_free(&r);
		http_server_stop(srv);
	}

	return tap_exit();
}
