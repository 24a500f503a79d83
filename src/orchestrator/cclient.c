// SPDX-License-Identifier: MIT
/*
 * HTTP client for the compute agents' control API (docs/compute.md), on
 * libcurl's easy interface.
 *
 * Calls are synchronous and run in the request thread that needs them.
 * Easy handles are kept in a small pool and reused, so their connection
 * caches keep connections to the agents alive between calls. A node that
 * does not answer in time, refuses the connection or cannot be reached
 * maps to -ETIMEDOUT, -ECONNREFUSED or -EHOSTUNREACH; any HTTP answer,
 * even an error, is returned as its status code.
 */
#include "orch.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <curl/curl.h>

#include "log.h"
#include "macro.h"
#include "metrics.h"

#define POOL_MAX 16
#define CONNECT_TIMEOUT_MS 5000

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static CURL *pool[POOL_MAX];
static unsigned npool;

int cclient_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void cclient_global_cleanup(void)
{
	pthread_mutex_lock(&pool_mu);
	while (npool)
		curl_easy_cleanup(pool[--npool]);
	pthread_mutex_unlock(&pool_mu);
	curl_global_cleanup();
}

static CURL *handle_get(void)
{
	CURL *h = NULL;

	pthread_mutex_lock(&pool_mu);
	if (npool)
		h = pool[--npool];
	pthread_mutex_unlock(&pool_mu);
	if (h) {
		curl_easy_reset(h);
		return h;
	}
	return curl_easy_init();
}

static void handle_put(CURL *h)
{
	pthread_mutex_lock(&pool_mu);
	if (npool < POOL_MAX) {
		pool[npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&pool_mu);
	if (h)
		curl_easy_cleanup(h);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *opaque)
{
	struct strbuf *sb = opaque;
	size_t n = size * nmemb;

	if (sb->len + n > HTTP_MAX_BODY)
		return 0;   /* aborts the transfer */
	if (strbuf_printf(sb, "%.*s", (int)n, ptr) < 0)
		return 0;
	return n;
}

static int curl_errno(CURLcode c)
{
	switch (c) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		return -ECONNRESET;
	default:
		return -EHOSTUNREACH;
	}
}

int cclient_call(const char *http, const char *method, const char *path, const char *body,
		 int timeout_ms, char **ret_body)
{
	struct curl_slist *hdrs = NULL;
	_cleanup_free_ char *url = NULL;
	struct strbuf sb;
	long status = 0;
	CURLcode c;
	CURL *h;

	if (!http || !*http)
		return -EHOSTUNREACH;
	if (asprintf(&url, "http://%s%s", http, path) < 0) {
		url = NULL;
		return -ENOMEM;
	}
	h = handle_get();
	if (!h)
		return -ENOMEM;
	strbuf_init(&sb);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)MIN(CONNECT_TIMEOUT_MS, timeout_ms));
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sb);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	c = curl_easy_perform(h);
	if (c == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	handle_put(h);
	if (c != CURLE_OK || sb.err) {
		log_debug("%s http://%s%s: %s", method, http, path, curl_easy_strerror(c));
		strbuf_free(&sb);
		return c == CURLE_OK ? -ENOMEM : curl_errno(c);
	}
	if (ret_body)
		*ret_body = sb.buf ? strbuf_steal(&sb) : NULL;
	strbuf_free(&sb);
	return (int)status;
}
