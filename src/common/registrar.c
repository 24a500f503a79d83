// SPDX-License-Identifier: MIT
/*
 * Registrar: registration and heartbeats of a daemon with the
 * orchestrator, in one background thread over libcurl. See registrar.h.
 *
 * The thread owns one curl easy handle (so the connection to the
 * orchestrator is kept alive between heartbeats) and waits on a condition
 * variable between attempts, so registrar_stop() interrupts any wait at
 * once; a request in flight is bounded by a 5-second timeout.
 */
#include "registrar.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "log.h"
#include "metrics.h"
#include "thread.h"

#define REG_TIMEOUT_MS 5000
#define REG_BACKOFF_MIN_MS 500
#define REG_BACKOFF_MAX_MS 10000

struct registrar {
	char *base;                 /* "http://host:port" without a trailing slash */
	json_t *reg;
	char *authz;                /* "Authorization: Bearer ..." or NULL */
	char *cafile;
	uint64_t node_id;
	registrar_fill_fn refresh;
	void *opaque;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	bool kicked;                /* registrar_kick(): heartbeat now */
	atomic_int registered;
	CURL *curl;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *opaque)
{
	struct strbuf *sb = opaque;
	size_t n = size * nmemb;

	if (sb->len + n > 65536 || strbuf_printf(sb, "%.*s", (int)n, ptr) < 0)
		return 0;
	return n;
}

/* POST body to base+path with handle `curl`: HTTP status, or -errno when there was no answer. */
static int post_with(struct registrar *r, CURL *curl, const char *path, json_t *body,
		     long timeout_ms, json_t **ret)
{
	struct curl_slist *hdrs = NULL;
	char *url = NULL, *text;
	struct strbuf sb;
	long status = 0;
	CURLcode c;

	text = json_dumps(body, JSON_COMPACT);
	if (!text || !curl || asprintf(&url, "%s%s", r->base, path) < 0) {
		free(text);
		return -ENOMEM;
	}
	curl_easy_reset(curl);
	strbuf_init(&sb);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (r->authz)
		hdrs = curl_slist_append(hdrs, r->authz);
	if (r->cafile)
		curl_easy_setopt(curl, CURLOPT_CAINFO, r->cafile);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sb);
	c = curl_easy_perform(curl);
	if (c == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	else
		log_debug("registrar: POST %s: %s", url, curl_easy_strerror(c));
	curl_slist_free_all(hdrs);
	free(text);
	free(url);
	if (c == CURLE_OK && ret && sb.buf)
		*ret = json_loads(sb.buf, 0, NULL);
	strbuf_free(&sb);
	if (c != CURLE_OK)
		return c == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
	return (int)status;
}

/* The registrar thread's own POST (its handle). */
static int post(struct registrar *r, const char *path, json_t *body, json_t **ret)
{
	if (!r->curl)
		r->curl = curl_easy_init();
	return post_with(r, r->curl, path, body, REG_TIMEOUT_MS, ret);
}

int registrar_post(struct registrar *r, const char *path, json_t *body, int timeout_ms,
		   json_t **ret)
{
	CURL *curl;
	int st;

	if (!r || !path || !body)
		return -EINVAL;
	curl = curl_easy_init();
	st = post_with(r, curl, path, body, timeout_ms > 0 ? timeout_ms : REG_TIMEOUT_MS, ret);
	if (curl)
		curl_easy_cleanup(curl);
	return st;
}

/* Wait up to ms, or until stopped. Returns true when stopping. Lock held. */
static bool wait_ms(struct registrar *r, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!r->stopping && !r->kicked)
		if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
			break;
	r->kicked = false;
	return r->stopping;
}

void registrar_kick(struct registrar *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->kicked = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static int do_register(struct registrar *r, long *interval_ms)
{
	json_t *body = json_deep_copy(r->reg), *ans = NULL;
	int st;

	if (!body)
		return -ENOMEM;
	if (r->refresh)
		r->refresh(r->opaque, body);
	st = post(r, "/v1/nodes/register", body, &ans);
	json_decref(body);
	if (st == 200 || st == 201) {
		json_t *iv = json_object_get(ans, "heartbeat_interval_s");

		if (json_is_integer(iv) && json_integer_value(iv) > 0 &&
		    json_integer_value(iv) <= 3600)
			*interval_ms = (long)json_integer_value(iv) * 1000;
	} else if (st > 0) {
		const char *m = json_string_value(
			json_object_get(json_object_get(ans, "error"), "message"));

		log_warn("the orchestrator refused the registration (HTTP %d): %s", st,
			 m ? m : "");
	}
	json_decref(ans);
	return st;
}

static int do_heartbeat(struct registrar *r)
{
	json_t *body = json_object();
	char path[64];
	int st;

	if (!body)
		return -ENOMEM;
	if (r->refresh)
		r->refresh(r->opaque, body);
	snprintf(path, sizeof(path), "/v1/nodes/%" PRIu64 "/heartbeat", r->node_id);
	st = post(r, path, body, NULL);
	json_decref(body);
	return st;
}

static void *registrar_main(void *arg)
{
	struct registrar *r = arg;
	long backoff = REG_BACKOFF_MIN_MS, interval = 5000;
	bool registered = false, failing = false;

	thread_name("registrar");
	pthread_mutex_lock(&r->mu);
	while (!r->stopping) {
		int st;

		pthread_mutex_unlock(&r->mu);
		st = registered ? do_heartbeat(r) : do_register(r, &interval);
		pthread_mutex_lock(&r->mu);
		if (r->stopping)
			break;
		if (registered && st == 404) {
			log_info("the orchestrator does not know us: registering again");
			registered = false;
			atomic_store(&r->registered, 0);
			continue;
		}
		if (st == 200 || st == 201) {
			if (!registered || failing)
				log_info("%s with the orchestrator at %s",
					 registered ? "heartbeats reach" : "registered", r->base);
			registered = true;
			failing = false;
			atomic_store(&r->registered, 1);
			backoff = REG_BACKOFF_MIN_MS;
			wait_ms(r, interval);
			continue;
		}
		if (!failing)
			log_debug("registrar: orchestrator at %s: %s", r->base,
				  st < 0 ? strerror(-st) : "refused");
		failing = true;
		atomic_store(&r->registered, 0);
		if (registered) {
			wait_ms(r, interval);
		} else {
			wait_ms(r, backoff);
			backoff = backoff * 2 > REG_BACKOFF_MAX_MS ? REG_BACKOFF_MAX_MS : backoff * 2;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int registrar_start(const char *url, json_t *registration, registrar_fill_fn refresh,
		    void *opaque, struct registrar **ret)
{
	return registrar_start_auth(url, registration, refresh, opaque, NULL, NULL, ret);
}

static void registrar_free(struct registrar *r)
{
	json_decref(r->reg);
	free(r->base);
	free(r->cafile);
	if (r->authz)
		explicit_bzero(r->authz, strlen(r->authz));
	free(r->authz);
	free(r);
}

int registrar_start_auth(const char *url, json_t *registration, registrar_fill_fn refresh,
			 void *opaque, const char *bearer, const char *cafile,
			 struct registrar **ret)
{
	pthread_condattr_t ca;
	struct registrar *r;
	json_t *id;
	size_t n;
	int e;

	if (!url || !*url || !json_is_object(registration))
		return -EINVAL;
	id = json_object_get(registration, "node_id");
	if (!json_is_integer(id) || json_integer_value(id) <= 0)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (strstr(url, "://"))
		r->base = strdup(url);
	else if (asprintf(&r->base, "http://%s", url) < 0)
		r->base = NULL;
	r->reg = json_deep_copy(registration);
	if (bearer && asprintf(&r->authz, "Authorization: Bearer %s", bearer) < 0)
		r->authz = NULL;
	if (cafile)
		r->cafile = strdup(cafile);
	if (!r->base || !r->reg || (bearer && !r->authz) || (cafile && !r->cafile)) {
		registrar_free(r);
		return -ENOMEM;
	}
	n = strlen(r->base);
	while (n > 0 && r->base[n - 1] == '/')
		r->base[--n] = '\0';
	r->node_id = (uint64_t)json_integer_value(id);
	r->refresh = refresh;
	r->opaque = opaque;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	e = pthread_create(&r->thread, NULL, registrar_main, r);
	if (e) {
		curl_global_cleanup();
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		registrar_free(r);
		return -e;
	}
	*ret = r;
	return 0;
}

void registrar_stop(struct registrar *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	if (r->curl)
		curl_easy_cleanup(r->curl);
	curl_global_cleanup();
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	registrar_free(r);
}

int registrar_registered(const struct registrar *r)
{
	return r ? atomic_load(&((struct registrar *)r)->registered) : 0;
}
