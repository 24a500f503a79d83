// SPDX-License-Identifier: MIT
/*
 * The HTTP client of the disagg command (libcurl, one easy handle per
 * request). It finds the orchestrator (--url, $DISAGG_URL, the local
 * cluster's cluster.json), sends JSON, parses JSON answers and turns the
 * API's error bodies into messages.
 *
 * Mutating requests (everything but GET) carry a random X-Request-Id; when
 * the connection is reset or closed without an answer, the request is sent
 * once more with the same id, which the orchestrator answers with the
 * result of the first attempt instead of acting twice (docs/api.md); if
 * the first attempt still runs, the repeat is answered 409 busy, and the
 * client asks again (same id) until the first one's answer comes.
 * While a long operation waits, curl's progress callback drives the
 * spinner of output.c.
 *
 * Every request carries "Authorization: Bearer TOKEN" when a token is
 * known ($DISAGG_TOKEN, or the local cluster's token file named in
 * cluster.json); an https:// orchestrator is verified against $DISAGG_CA
 * or cluster.json's "ca" when given, else the system's CAs.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "cli.h"
#include "privfile.h"
#include "net.h"

#define CONNECT_TIMEOUT_MS 5000L
#define GET_TIMEOUT_MS 60000L
#define MUTATE_TIMEOUT_MS 900000L /* a slot create under TCG can take minutes */


struct cli_auth {
	const char *token;      /* NULL: no Authorization header */
	const char *ca;         /* NULL: the system's CAs */
};

struct xfer {
	struct cli_resp *resp;
	size_t cap;
	struct progress *progress;
	bool overflow;
};

void cli_resp_clear(struct cli_resp *r)
{
	free(r->body);
	json_decref(r->json);
	*r = (struct cli_resp){ 0 };
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *opaque)
{
	struct xfer *x = opaque;
	struct cli_resp *r = x->resp;
	size_t n = size * nmemb;

	if (r->len + n + 1 > x->cap) {
		size_t cap = MAX(x->cap * 2, r->len + n + 1);
		char *b;

		if (cap > (64u << 20)) {
			x->overflow = true;
			return 0;
		}
		b = realloc(r->body, MAX(cap, (size_t)4096));
		if (!b)
			return 0;
		r->body = b;
		x->cap = MAX(cap, (size_t)4096);
	}
	memcpy(r->body + r->len, ptr, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *opaque)
{
	struct xfer *x = opaque;
	size_t n = size * nitems;
	static const char name[] = "x-request-id:";

	if (n > sizeof(name) - 1 && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
		const char *v = buf + sizeof(name) - 1;
		size_t vl = n - (sizeof(name) - 1);

		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		vl = MIN(vl, sizeof(x->resp->request_id) - 1);
		memcpy(x->resp->request_id, v, vl);
		x->resp->request_id[vl] = '\0';
	}
	return n;
}

/* Set by cli_cancel_on(): a transfer under way ends when *cancel is non-zero. */
static volatile sig_atomic_t *cancel;

void cli_cancel_on(volatile sig_atomic_t *flag)
{
	cancel = flag;
}

static bool cancelled(void)
{
	return cancel && *cancel;
}

static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = opaque;

	if (x->progress)
		progress_tick(x->progress, NULL);
	return cancelled();   /* non-zero: curl ends the transfer (a long poll on Ctrl-C) */
}

int cli_resolve_url(const struct cli_args *a, char **ret_url, const char **ret_source)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_(json_decrefp) json_t *cluster = NULL;
	const char *env = getenv("DISAGG_URL"), *u;
	int r;

	if (a->url) {
		u = a->url;
		*ret_source = "--url";
	} else if (env && *env) {
		u = env;
		*ret_source = "DISAGG_URL";
	} else {
		r = cluster_data_dir(a, &dir);
		if (r < 0)
			return r;
		r = cluster_load(dir, &cluster);
		if (r < 0)
			return r;
		u = jstr(cluster, "url");
		if (!u)
			return -ENOENT;
		*ret_source = "cluster.json";
	}
	/* Accept "host:port" as well as a URL. */
	if (strstr(u, "://")) {
		size_t l = strlen(u);

		*ret_url = strndup(u, l && u[l - 1] == '/' ? l - 1 : l);
	} else if (asprintf(ret_url, "http://%s", u) < 0)
		*ret_url = NULL;
	return *ret_url ? 0 : -ENOMEM;
}

int cli_read_token_file(const char *path, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	char *line, *end;
	size_t n = 0;
	int r = privfile_read(path, 64 << 10, &buf, &n);

	if (r == -EFBIG)
		r = -EINVAL;
	if (r < 0)
		return r;
	for (line = buf; *line; line = end + (*end != '\0')) {
		end = line + strcspn(line, "\n");
		while (*line == ' ' || *line == '\t')
			line++;
		if (line == end || *line == '#')
			continue;
		while (end > line && (end[-1] == ' ' || end[-1] == '\r' || end[-1] == '\t'))
			end--;
		*ret = strndup(line, (size_t)(end - line));
		explicit_bzero(buf, n);
		return *ret ? 0 : -ENOMEM;
	}
	explicit_bzero(buf, n);
	return -EINVAL;
}

int cli_resolve_token(const struct cli_args *a, const char *url_source, char **ret,
		      const char **ret_source)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_(json_decrefp) json_t *cluster = NULL;
	const char *env = getenv("DISAGG_TOKEN"), *file;
	int r;

	*ret = NULL;
	*ret_source = NULL;
	if (env && *env) {
		*ret_source = "DISAGG_TOKEN";
		*ret = strdup(env);
		return *ret ? 0 : -ENOMEM;
	}
	if (!url_source || strcmp(url_source, "cluster.json") != 0)
		return 0;
	if (cluster_data_dir(a, &dir) < 0 || cluster_load(dir, &cluster) < 0)
		return 0;
	file = jstr(cluster, "token_file");
	if (!file)
		return 0;
	*ret_source = file;
	r = cli_read_token_file(file, ret);
	if (r < 0)
		cli_err("cannot read the API token from %s: %s%s", file, strerror(-r),
			r == -EPERM ? " (group or others may access it; chmod 600 it)" : "");
	return r;
}

/* The CA to verify an https:// orchestrator with: $DISAGG_CA, else cluster.json's "ca". */
static char *resolve_ca(const struct cli_args *a, const char *url_source)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_(json_decrefp) json_t *cluster = NULL;
	const char *env = getenv("DISAGG_CA");

	if (env && *env)
		return strdup(env);
	if (!url_source || strcmp(url_source, "cluster.json") != 0)
		return NULL;
	if (cluster_data_dir(a, &dir) < 0 || cluster_load(dir, &cluster) < 0)
		return NULL;
	return jstr(cluster, "ca") ? strdup(jstr(cluster, "ca")) : NULL;
}

static void new_request_id(char *buf, size_t len)
{
	uint8_t b[12];

	if (auth_random(b, sizeof(b)) < 0) {
		snprintf(buf, len, "cli-%ld-%ld", (long)getpid(), (long)now_ns());
		return;
	}
	snprintf(buf, len, "cli-");
	for (size_t i = 0; i < sizeof(b) && 4 + 2 * i + 2 < len; i++)
		snprintf(buf + 4 + 2 * i, len - 4 - 2 * i, "%02x", b[i]);
}

/* A request's body: len bytes of type (JSON text, or the bytes of an upload). */
struct body {
	const char *data;
	size_t len;
	const char *type;       /* "Content-Type: ..." */
};

/* One attempt. Returns the curl result; *resp holds whatever came back. */
static CURLcode perform(const char *method, const char *url, const struct body *body,
			const char *reqid,
			const struct cli_auth *auth, long timeout_ms, struct progress *prog,
			struct cli_resp *resp, char *errbuf)
{
	struct xfer x = { .resp = resp, .progress = prog };
	struct curl_slist *hdrs = NULL;
	_cleanup_free_ char *authz = NULL;
	char hdr[128];
	CURL *h = curl_easy_init();
	CURLcode rc;

	if (!h)
		return CURLE_OUT_OF_MEMORY;
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (body)
		hdrs = curl_slist_append(hdrs, body->type);
	if (reqid) {
		snprintf(hdr, sizeof(hdr), "X-Request-Id: %s", reqid);
		hdrs = curl_slist_append(hdrs, hdr);
	}
	if (auth && auth->token) {
		if (asprintf(&authz, "Authorization: Bearer %s", auth->token) < 0)
			authz = NULL;
		if (authz)
			hdrs = curl_slist_append(hdrs, authz);
	}
	if (auth && auth->ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, auth->ca);
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "disagg-cli/" DISAGG_VERSION);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (prog || cancel) {
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	errbuf[0] = '\0';
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	else if (x.overflow)
		snprintf(errbuf, CURL_ERROR_SIZE, "answer larger than 64 MiB");
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	if (authz)
		explicit_bzero(authz, strlen(authz));
	if (rc == CURLE_OK && resp->len > 0)
		resp->json = json_loadb(resp->body, resp->len, 0, NULL);
	return rc;
}

/* The connection broke before an answer: worth one retry with the same request id. */
static bool is_reset(CURLcode rc)
{
	return rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
	       rc == CURLE_PARTIAL_FILE;
}

static bool is_busy(const struct cli_resp *r)
{
	const json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
	const char *code = e ? jstr(e, "code") : NULL;

	return r->status == 409 && code && strcmp(code, "busy") == 0;
}

static int report_curl_error(CURLcode rc, const char *errbuf, const char *url, const char *source,
			     long timeout_ms)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);

	if (rc == CURLE_OPERATION_TIMEDOUT) {
		cli_err("no answer from the orchestrator at %s within %lds (%s); the operation may still "
			"complete: check its state before retrying",
			url, timeout_ms / 1000, detail);
		return -ETIMEDOUT;
	}
	cli_err("cannot reach the orchestrator at %s (from %s): %s", url, source, detail);
	if (rc == CURLE_COULDNT_CONNECT && strcmp(source, "cluster.json") == 0)
		fputs("hint: is the local cluster running? `disagg status` shows it, `disagg up` "
		      "starts one\n",
		      stderr);
	return rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EHOSTUNREACH;
}

/* The URL of path at base (found at source), its token and CA: 0 or -errno. */
static int request_target(const struct cli_args *a, const char *base, const char *source,
			  const char *path, char **ret_url, char **ret_token,
			  const char **ret_token_source, char **ret_ca)
{
	int r = cli_resolve_token(a, source, ret_token, ret_token_source);

	if (r < 0)
		return r;
	*ret_ca = resolve_ca(a, source);
	if (asprintf(ret_url, "%s%s", base, path) < 0) {
		*ret_url = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* cli_http with a body of any type (NULL: none). */
static int http_do(const struct cli_args *a, const char *method, const char *path,
		   const struct body *payload, const char *progress, struct cli_resp *ret)
{
	_cleanup_free_ char *base = NULL, *url = NULL, *token = NULL, *ca = NULL;
	const char *source = NULL, *token_source = NULL;
	struct cli_auth auth;
	char reqid[64], errbuf[CURL_ERROR_SIZE];
	bool mutating = strcmp(method, "GET") != 0;
	long timeout_ms = mutating ? MUTATE_TIMEOUT_MS : GET_TIMEOUT_MS;
	struct progress prog, *pp = NULL;
	CURLcode rc;
	int r;

	*ret = (struct cli_resp){ 0 };
	r = cli_resolve_url(a, &base, &source);
	if (r == -ENOENT) {
		_cleanup_free_ char *dir = NULL;

		cluster_data_dir(a, &dir);
		cli_err("cannot reach the orchestrator: no --url, no DISAGG_URL, and no cluster "
			"running in %s (start one with `disagg up`)",
			dir ? dir : "the data directory");
		return -ENOENT;
	}
	if (r < 0) {
		cli_err("cannot find the orchestrator: %s", strerror(-r));
		return r;
	}
	r = request_target(a, base, source, path, &url, &token, &token_source, &ca);
	if (r < 0)
		return r;
	auth = (struct cli_auth){ .token = token, .ca = ca };
	if (mutating)
		new_request_id(reqid, sizeof(reqid));
	if (progress) {
		progress_start(&prog, progress);
		pp = &prog;
	}

	uint64_t start = now_ns();
	bool retried = false;

	for (;;) {
		if (a->verbose)
			fprintf(stderr, "> %s %s%s%s\n", method, url, mutating ? " X-Request-Id: " : "",
				mutating ? reqid : "");
		rc = perform(method, url, payload, mutating ? reqid : NULL, &auth, timeout_ms, pp,
			     ret, errbuf);
		/*
		 * The repeat of a request whose first attempt still runs gets 409 busy
		 * (docs/api.md): wait for the first one's answer under the same id.
		 */
		if (rc == CURLE_OK && retried && is_busy(ret) &&
		    now_ns() - start < (uint64_t)timeout_ms * 1000000) {
			if (a->verbose)
				fprintf(stderr, "< 409 busy: the first attempt still runs; asking again\n");
			cli_resp_clear(ret);
			for (int i = 0; i < 10; i++) {
				if (pp)
					progress_tick(pp, NULL);
				usleep(100 * 1000);
			}
			continue;
		}
		if (rc == CURLE_OK || retried || !is_reset(rc) || cancelled())
			break;
		if (a->verbose)
			fprintf(stderr, "< connection reset (%s); retrying with the same request id\n",
				errbuf[0] ? errbuf : curl_easy_strerror(rc));
		cli_resp_clear(ret);
		retried = true;
	}
	if (rc != CURLE_OK) {
		if (pp)
			progress_end(pp, false, NULL);
		if (rc == CURLE_ABORTED_BY_CALLBACK && cancelled())
			return -ECANCELED;   /* the caller asked for it: nothing to report */
		return report_curl_error(rc, errbuf, base, source, timeout_ms);
	}
	if (a->verbose)
		fprintf(stderr, "< %ld (%zu bytes)%s%s\n", ret->status, ret->len,
			ret->request_id[0] ? " X-Request-Id: " : "", ret->request_id);
	if (pp)
		progress_end(pp, ret->status >= 200 && ret->status < 300, NULL);
	if (ret->status == 401 && !token)
		fputs("hint: the orchestrator wants an API token: set DISAGG_TOKEN (a line of its "
		      "--api-tokens file); `disagg up` keeps its cluster's in DIR/api.tokens\n",
		      stderr);
	else if (ret->status == 401)
		fprintf(stderr, "hint: the orchestrator refused the token from %s\n", token_source);
	if (token)
		explicit_bzero(token, strlen(token));
	return 0;
}

int cli_http(const struct cli_args *a, const char *method, const char *path, json_t *body,
	     const char *progress, struct cli_resp *ret)
{
	_cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct body b = { text, text ? strlen(text) : 0, "Content-Type: application/json" };

	*ret = (struct cli_resp){ 0 };
	if (body && !text)
		return -ENOMEM;
	return http_do(a, method, path, body ? &b : NULL, progress, ret);
}

int cli_http_bytes(const struct cli_args *a, const char *method, const char *path,
		   const void *data, size_t len, struct cli_resp *ret)
{
	struct body b = { data, len, "Content-Type: application/octet-stream" };

	return http_do(a, method, path, &b, NULL, ret);
}

int cli_http_plain(const struct cli_args *a, const char *method, const char *path,
		   const char *body, long timeout_ms, struct cli_resp *ret)
{
	_cleanup_free_ char *base = NULL, *url = NULL, *token = NULL, *ca = NULL;
	const char *source = NULL, *token_source = NULL;
	char errbuf[CURL_ERROR_SIZE];
	struct body b = { body, body ? strlen(body) : 0, "Content-Type: application/json" };
	struct cli_auth auth;
	CURLcode rc;
	int r;

	*ret = (struct cli_resp){ 0 };
	r = cli_resolve_url(a, &base, &source);
	if (r >= 0)
		r = request_target(a, base, source, path, &url, &token, &token_source, &ca);
	if (r < 0)
		return r;
	auth = (struct cli_auth){ .token = token, .ca = ca };
	rc = perform(method, url, body ? &b : NULL, NULL, &auth, timeout_ms, NULL, ret, errbuf);
	if (token)
		explicit_bzero(token, strlen(token));
	if (rc != CURLE_OK)
		return rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH;
	return 0;
}

int cli_server_error(const struct cli_resp *r)
{
	const json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
	const char *code = e ? jstr(e, "code") : NULL, *msg = e ? jstr(e, "message") : NULL;

	if (msg) {
		fprintf(stderr, "error: %s (%ld %s)\n", msg, r->status, code ? code : "error");
		return CLI_EXIT_ERROR;
	}
	/* Not an API error body: show the beginning of whatever came back. */
	fprintf(stderr, "error: the orchestrator answered %ld", r->status);
	if (r->len) {
		int n = (int)MIN(r->len, (size_t)300);

		while (n > 0 && (r->body[n - 1] == '\n' || r->body[n - 1] == '\r'))
			n--;
		fprintf(stderr, ": %.*s", n, r->body);
	}
	fputc('\n', stderr);
	return CLI_EXIT_ERROR;
}

int cli_http_get_url(const char *url, const char *token, long timeout_ms, struct cli_resp *ret)
{
	char errbuf[CURL_ERROR_SIZE];
	struct cli_auth auth = { .token = token };
	CURLcode rc;

	*ret = (struct cli_resp){ 0 };
	rc = perform("GET", url, NULL, NULL, &auth, timeout_ms, NULL, ret, errbuf);
	if (rc != CURLE_OK) {
		cli_resp_clear(ret);
		return rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
	}
	return 0;
}
