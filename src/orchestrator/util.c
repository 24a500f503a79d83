// SPDX-License-Identifier: MIT
/*
 * Small helpers of the orchestrator: sizes with binary suffixes, strict
 * JSON body parsing (objects only, unknown fields refused), label
 * matching, time formatting, the mapping of -errno to API errors, and
 * what the collections of named things (regions, volumes) share: their
 * paths and refusals inside a transaction.
 */
#include "orch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "macro.h"

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

int orch_refuse(struct orch *o, struct http_resp *resp, int status, const char *code,
		const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	o->store->ops->rollback(o->store);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_resp_error(resp, status, code, "%s", msg);
	return -EINVAL;
}

int orch_path_item(const char *rest, char name[STORE_NAME_MAX], const char **ret_tail)
{
	size_t n;

	if (*rest == '\0' || strcmp(rest, "/") == 0)
		return 0;
	rest++;
	n = strcspn(rest, "/");
	if (n == 0 || n >= STORE_NAME_MAX)
		return -ENOENT;
	memcpy(name, rest, n);
	name[n] = '\0';
	*ret_tail = rest + n;
	return 1;
}
