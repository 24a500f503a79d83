// SPDX-License-Identifier: MIT
/*
 * Strict migration URIs. See miguri.h.
 */
#include "miguri.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-';
}

static bool v6_char(char c)
{
	return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') ||
	       c == ':' || c == '.';
}

int miguri_parse(const char *uri, char *ret_host, size_t hostlen, uint16_t *ret_port)
{
	const char *h, *p;
	size_t hl, pl;
	unsigned long port = 0;

	if (!uri || strncmp(uri, "tcp:", 4) != 0)
		return -EINVAL;
	h = uri + 4;
	if (*h == '[') {
		const char *close = strchr(h, ']');

		if (!close || close == h + 1 || close[1] != ':')
			return -EINVAL;
		for (const char *c = h + 1; c < close; c++)
			if (!v6_char(*c))
				return -EINVAL;
		hl = (size_t)(close - h) + 1;
	} else {
		hl = strcspn(h, ":");
		if (hl == 0 || h[hl] != ':' || h[0] == '-' || h[0] == '.')
			return -EINVAL;
		for (size_t i = 0; i < hl; i++)
			if (!name_char(h[i]))
				return -EINVAL;
	}
	if (hl > 253 || hl >= hostlen)
		return -EINVAL;
	p = h + hl + 1;
	pl = strlen(p);
	if (pl == 0 || pl > 5)
		return -EINVAL;
	for (size_t i = 0; i < pl; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		port = port * 10 + (unsigned long)(p[i] - '0');
	}
	if (port == 0 || port > 65535)
		return -EINVAL;
	memcpy(ret_host, h, hl);
	ret_host[hl] = '\0';
	*ret_port = (uint16_t)port;
	return 0;
}

bool miguri_valid(const char *uri)
{
	char host[256];
	uint16_t port;

	return miguri_parse(uri, host, sizeof(host), &port) == 0;
}

void miguri_listen(const char *http, char *buf, size_t len)
{
	const char *colon = strrchr(http, ':');
	size_t hl = colon ? (size_t)(colon - http) : strlen(http);

	snprintf(buf, len, "%.*s:0", (int)hl, http);
}

int miguri_target(const char *answered, const char *dst_http, char *buf, size_t len)
{
	const char *colon = strrchr(dst_http, ':');
	char host[256];
	uint16_t port;
	int n;

	if (!colon || miguri_parse(answered, host, sizeof(host), &port) < 0)
		return -EINVAL;
	n = snprintf(buf, len, "tcp:%.*s:%u", (int)(colon - dst_http), dst_http, (unsigned)port);
	if (n < 0 || (size_t)n >= len || miguri_parse(buf, host, sizeof(host), &port) < 0)
		return -EINVAL;
	return 0;
}
