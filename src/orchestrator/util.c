// SPDX-License-Identifier: MIT
/*
 * Small helpers of the orchestrator: sizes with binary suffixes, strict
 * JSON body parsing (objects only, unknown fields refused), label
 * matching, time formatting and the mapping of -errno to API errors.
 */
#include "orch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "macro.h"

int orch_parse_size_str(const char *s, uint64_t *ret)
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

int orch_parse_size(json_t *v, uint64_t *ret)
{
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -EINVAL;
		*ret = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v))
		return orch_parse_size_str(json_string_value(v), ret);
	return -EINVAL;
}

int orch_check_keys(json_t *obj, const char *const *allowed, const char **ret_bad)
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

json_t *orch_parse_body(const struct http_req *req, struct http_resp *resp)
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

void orch_reply_json(struct http_resp *resp, int status, json_t *j)
{
	char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!body) {
		http_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	http_resp_text(resp, status, "application/json", body);
}

void orch_fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "1970-01-01T00:00:00Z");
}

bool orch_labels_match(const char *labels_json, json_t *want)
{
	json_t *have;
	const char *k;
	json_t *v;
	bool ok = true;

	if (!want || !json_is_object(want) || json_object_size(want) == 0)
		return true;
	have = json_loads(labels_json, 0, NULL);
	if (!have)
		return false;
	json_object_foreach(want, k, v) {
		json_t *h = json_object_get(have, k);

		if (!h || !json_is_string(h) || !json_is_string(v) ||
		    strcmp(json_string_value(h), json_string_value(v)) != 0) {
			ok = false;
			break;
		}
	}
	json_decref(have);
	return ok;
}

int orch_errno_status(int r, const char **ret_code)
{
	switch (r) {
	case -ENOENT:
		*ret_code = "not_found";
		return 404;
	case -EEXIST:
		*ret_code = "exists";
		return 409;
	case -ENOSPC:
		*ret_code = "capacity";
		return 409;
	case -EBUSY:
		*ret_code = "busy";
		return 409;
	case -EINVAL:
		*ret_code = "bad_request";
		return 400;
	case -ETIMEDOUT:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EPIPE:
	case -EAGAIN:
		*ret_code = "node_unreachable";
		return 503;
	default:
		*ret_code = "internal";
		return 500;
	}
}

bool orch_valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= STORE_NAME_MAX)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return false;
	return s[0] != '.';
}
