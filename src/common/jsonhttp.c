// SPDX-License-Identifier: MIT
/*
 * Strict JSON request bodies, JSON responses and size strings for the
 * daemons' control APIs. See jsonhttp.h.
 */
#include "jsonhttp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int u64_parse(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int size_parse(const char *s, uint64_t *ret)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret = (uint64_t)v << shift;
	return 0;
}

int json_size(json_t *v, uint64_t *ret)
{
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -EINVAL;
		*ret = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v))
		return size_parse(json_string_value(v), ret);
	return -EINVAL;
}

int json_check_keys(json_t *obj, const char *const *allowed, const char **ret_bad)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		bool ok = false;

		for (const char *const *a = allowed; *a && !ok; a++)
			ok = strcmp(*a, k) == 0;
		if (!ok) {
			*ret_bad = k;
			return -EINVAL;
		}
	}
	return 0;
}

json_t *http_json_body(const struct http_req *req, struct http_resp *resp)
{
	json_error_t jerr;
	json_t *j;

	j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		http_resp_error(resp, 400, "bad_json", "invalid JSON: %s (line %d)", jerr.text,
				jerr.line);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		http_resp_error(resp, 400, "bad_json", "the body must be a JSON object");
		return NULL;
	}
	return j;
}

void http_resp_json(struct http_resp *resp, int status, json_t *j)
{
	char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!body) {
		http_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	http_resp_text(resp, status, "application/json", body);
}

int http_check_keys(json_t *obj, const char *const *allowed, struct http_resp *resp)
{
	const char *bad = NULL;

	if (json_check_keys(obj, allowed, &bad) == 0)
		return 0;
	http_resp_error(resp, 400, "unknown_field", "unknown field \"%s\"", bad ? bad : "?");
	return -EINVAL;
}

json_t *http_json_args(const struct http_req *req, struct http_resp *resp,
		       const char *const *allowed)
{
	json_t *j = http_json_body(req, resp);

	if (j && http_check_keys(j, allowed, resp) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}


bool http_json_int(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *val,
		   struct http_resp *resp)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		http_resp_error(resp, 400, "bad_request", "\"%s\" must be %" PRId64 "..%" PRId64,
				key, min, max);
		return false;
	}
	*val = json_integer_value(v);
	return true;
}
