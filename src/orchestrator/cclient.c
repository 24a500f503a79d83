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
 *
 * Each call carries the agent's own node token (apiauth.h), derived from
 * the node secret, so an agent learns nothing that works against another.
 */
#include "orch.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "apiauth.h"
#include "log.h"
#include "macro.h"
#include "metrics.h"

#define POOL_MAX 16
#define CONNECT_TIMEOUT_MS 5000

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static CURL *pool[POOL_MAX];
static unsigned npool;
static bool use_secret;
static struct auth_key secret;
static char *ca_file;

int cclient_set_auth(const struct auth_key *key, const char *cafile)
{
	use_secret = key != NULL;
	if (key)
		secret = *key;
	free(ca_file);
	ca_file = cafile ? strdup(cafile) : NULL;
	return cafile && !ca_file ? -ENOMEM : 0;
}

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
	free(ca_file);
	ca_file = NULL;
	OPENSSL_cleanse(&secret, sizeof(secret));
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

/* The answer's bytes (binary or text), NUL-terminated, capped at HTTP_MAX_BODY. */
static size_t on_data(char *ptr, size_t size, size_t nmemb, void *opaque)
{
	struct strbuf *sb = opaque;
	size_t n = size * nmemb;

	if (n > HTTP_MAX_BODY - sb->len || strbuf_append(sb, ptr, n) < 0)
		return 0;   /* aborts the transfer */
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

/* "Authorization: Bearer orch.ID.MAC" for node_id. */
static int auth_header(uint64_t node_id, char *buf, size_t len)
{
	uint8_t cred[APIAUTH_CRED_SIZE];
	char bearer[APIAUTH_BEARER_MAX];
	int r;

	r = apiauth_node_cred(&secret, node_id, cred);
	if (r == 0)
		r = apiauth_bearer(cred, node_id, true, bearer);
	OPENSSL_cleanse(cred, sizeof(cred));
	if (r < 0)
		return r;
	snprintf(buf, len, "Authorization: Bearer %s", bearer);
	OPENSSL_cleanse(bearer, sizeof(bearer));
	return 0;
}

int cclient_call(uint64_t node_id, const char *http, const char *method, const char *path,
		 const char *body, int timeout_ms, char **ret_body)
{
	return cclient_call_raw(node_id, http, method, path, "application/json", body,
				body ? strlen(body) : 0, timeout_ms, ret_body, NULL);
}

int cclient_call_raw(uint64_t node_id, const char *http, const char *method, const char *path,
		     const char *ctype, const void *body, size_t len, int timeout_ms,
		     char **ret_body, size_t *ret_len)
{
	struct curl_slist *hdrs = NULL;
	_cleanup_free_ char *url = NULL;
	char authz[160], cth[96];
	struct strbuf sb;
	long status = 0;
	CURLcode c;
	CURL *h;

	if (!http || !*http)
		return -EHOSTUNREACH;
	if (asprintf(&url, "%s://%s%s", ca_file ? "https" : "http", http, path) < 0) {
		url = NULL;
		return -ENOMEM;
	}
	h = handle_get();
	if (!h)
		return -ENOMEM;
	strbuf_init(&sb);
	snprintf(cth, sizeof(cth), "Content-Type: %s", ctype ? ctype : "application/json");
	hdrs = curl_slist_append(hdrs, cth);
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (use_secret) {
		if (auth_header(node_id, authz, sizeof(authz)) < 0) {
			curl_slist_free_all(hdrs);
			handle_put(h);
			strbuf_free(&sb);
			return -EIO;
		}
		hdrs = curl_slist_append(hdrs, authz);
		OPENSSL_cleanse(authz, sizeof(authz));
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, ca_file ? "https" : "http");
	if (ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)MIN(CONNECT_TIMEOUT_MS, timeout_ms));
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sb);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	c = curl_easy_perform(h);
	if (c == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	handle_put(h);
	if (c != CURLE_OK || sb.err) {
		log_debug("%s %s: %s", method, url, curl_easy_strerror(c));
		strbuf_free(&sb);
		return c == CURLE_OK ? -ENOMEM : curl_errno(c);
	}
	if (ret_len)
		*ret_len = sb.len;
	if (ret_body)
		*ret_body = TAKE_PTR(sb.buf);
	strbuf_free(&sb);
	return (int)status;
}
