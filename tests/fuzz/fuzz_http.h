/* SPDX-License-Identifier: MIT */
/*
 * Requests for the HTTP API targets, read from the input and handed to a
 * daemon's route table the way src/common/http.c does (http_route_find),
 * without sockets: a fake struct http_req (no connection, so no query
 * string and no headers) and a struct http_resp that is checked and freed
 * after each call.
 *
 * One request in the input: a method byte (index into fz_methods), the
 * path up to a NUL, a little-endian 16-bit body length, the body.
 */
#ifndef DISAGG_FUZZ_HTTP_H
#define DISAGG_FUZZ_HTTP_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "http.h"

static const char *const fz_methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH" };

/* Take the next request out of the input: 0, or -1 when the input is used up. */
static inline int fz_http_next(struct fz_in *in, struct http_req *req, char **ret_path,
			       char **ret_body)
{
	const uint8_t *nul;
	size_t plen, blen;

	if (!in->n)
		return -1;
	req->method = fz_methods[fz_u8(in) % (sizeof(fz_methods) / sizeof(fz_methods[0]))];
	nul = memchr(in->p, '\0', in->n);
	plen = nul ? (size_t)(nul - in->p) : in->n;
	*ret_path = strndup((const char *)in->p, plen);
	CHECK(*ret_path);
	in->p += plen + (nul ? 1 : 0);
	in->n -= plen + (nul ? 1 : 0);
	blen = fz_u16(in);
	blen = blen < in->n ? blen : in->n;
	*ret_body = malloc(blen + 1);
	CHECK(*ret_body);
	fz_bytes(in, *ret_body, blen);
	(*ret_body)[blen] = '\0';
	req->path = *ret_path;
	req->body = *ret_body;
	req->body_len = blen;
	req->conn = NULL;
	return 0;
}

/* What every answer must be: a status, and a JSON body when it says JSON. */
static inline void fz_http_check(struct http_resp *resp)
{
	CHECK(resp->status >= 100 && resp->status <= 599);
	if (resp->body && (!resp->content_type || !strcmp(resp->content_type, "application/json"))) {
		json_t *j = json_loads(resp->body, JSON_DECODE_ANY, NULL);

		CHECK(j != NULL);
		json_decref(j);
	}
	free(resp->body);
	free(resp->hdr_value);
}

/* Route one request through `routes` and answer it, as the server would. */
static inline void fz_http_serve(const struct http_route *routes, size_t n, void *opaque,
				 const struct http_req *req)
{
	struct http_resp resp = { .status = 200 };
	const struct http_route *rt;
	char allow[128];

	rt = http_route_find(routes, n, req->method, req->path, allow, sizeof(allow));
	if (!rt)
		return;   /* 404 or 405 from the server itself */
	rt->fn(opaque, req, &resp);
	fz_http_check(&resp);
}

#endif /* DISAGG_FUZZ_HTTP_H */
