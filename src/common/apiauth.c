// SPDX-License-Identifier: MIT
/*
 * Bearer tokens and node credentials of the HTTP control APIs. See apiauth.h.
 */
#include "apiauth.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "hex.h"
#include "log.h"
#include "macro.h"
#include "privfile.h"

#define TOKENS_FILE_MAX (64u << 10)
#define CRED_LABEL "disagg-node-credential"
#define TO_ORCH_LABEL "disagg-api node->orchestrator"
#define TO_NODE_LABEL "disagg-api orchestrator->node"

struct apiauth_tokens {
	size_t n;
	uint8_t (*hash)[SHA256_DIGEST_LENGTH];
};

static _Atomic uint64_t failures[APIAUTH__MAX];
static const char *const reason_names[APIAUTH__MAX] = {
	[APIAUTH_MISSING] = "missing",
	[APIAUTH_INVALID] = "invalid",
	[APIAUTH_WRONG_NODE] = "wrong_node",
	[APIAUTH_FORBIDDEN] = "forbidden",
};

const char *apiauth_file_hint(int r)
{
	if (r == -EPERM)
		return " (group or others may access it; chmod 600 it)";
	if (r == -EINVAL)
		return " (see docs/api.md#authentication for the format)";
	if (r == -EFBIG)
		return " (the file is too large)";
	return "";
}

static bool token_char_ok(char c)
{
	return c > 0x20 && c < 0x7f;
}

static void sha256(const char *s, uint8_t out[SHA256_DIGEST_LENGTH])
{
	SHA256((const unsigned char *)s, strlen(s), out);
}

int apiauth_tokens_load(const char *path, struct apiauth_tokens **ret)
{
	_cleanup_free_ char *text = NULL;
	struct apiauth_tokens *t;
	char *line, *save = NULL;
	int r;

	r = privfile_read(path, TOKENS_FILE_MAX, &text, NULL);
	if (r < 0)
		return r;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t len;
		void *p;

		while (*line == ' ' || *line == '\t')
			line++;
		len = strlen(line);
		while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' ||
			       line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len || line[0] == '#')
			continue;
		if (len < APIAUTH_TOKEN_MIN || len > APIAUTH_TOKEN_MAX)
			goto bad;
		for (size_t i = 0; i < len; i++)
			if (!token_char_ok(line[i]))
				goto bad;
		p = realloc(t->hash, (t->n + 1) * sizeof(*t->hash));
		if (!p) {
			apiauth_tokens_free(t);
			return -ENOMEM;
		}
		t->hash = p;
		sha256(line, t->hash[t->n++]);
	}
	OPENSSL_cleanse(text, strlen(text));
	if (!t->n)
		goto bad;
	*ret = t;
	return 0;
bad:
	OPENSSL_cleanse(text, strlen(text));
	apiauth_tokens_free(t);
	return -EINVAL;
}

void apiauth_tokens_free(struct apiauth_tokens *t)
{
	if (!t)
		return;
	free(t->hash);
	free(t);
}

bool apiauth_tokens_check(const struct apiauth_tokens *t, const char *token)
{
	uint8_t h[SHA256_DIGEST_LENGTH];
	bool ok = false;

	if (!t || !token)
		return false;
	sha256(token, h);
	/* Compare with every entry, so the time does not tell which one matched. */
	for (size_t i = 0; i < t->n; i++)
		ok |= CRYPTO_memcmp(h, t->hash[i], sizeof(h)) == 0;
	return ok;
}

int apiauth_token_new(char ret[APIAUTH_BEARER_MAX])
{
	uint8_t b[32];
	int r;

	r = auth_random(b, sizeof(b));
	if (r < 0)
		return r;
	memcpy(ret, "dgt_", 4);
	hex_encode(b, sizeof(b), ret + 4);
	OPENSSL_cleanse(b, sizeof(b));
	return 0;
}

static int hmac(const uint8_t *key, size_t keylen, const void *msg, size_t len,
		uint8_t out[APIAUTH_CRED_SIZE])
{
	unsigned int outlen = 0;

	if (!HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &outlen) ||
	    outlen != APIAUTH_CRED_SIZE)
		return -EIO;
	return 0;
}

int apiauth_node_cred(const struct auth_key *secret, uint64_t id, uint8_t ret[APIAUTH_CRED_SIZE])
{
	uint8_t msg[sizeof(CRED_LABEL) - 1 + 8];

	memcpy(msg, CRED_LABEL, sizeof(CRED_LABEL) - 1);
	for (int i = 0; i < 8; i++)
		msg[sizeof(CRED_LABEL) - 1 + i] = (uint8_t)(id >> (56 - 8 * i));
	return hmac(secret->bytes, sizeof(secret->bytes), msg, sizeof(msg), ret);
}

int apiauth_cred_save(const char *path, uint64_t id, const uint8_t cred[APIAUTH_CRED_SIZE])
{
	_cleanup_close_ int fd = -1;
	char h[2 * APIAUTH_CRED_SIZE + 1], line[128];
	int n;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	hex_encode(cred, APIAUTH_CRED_SIZE, h);
	n = snprintf(line, sizeof(line), "%" PRIu64 ":%s\n", id, h);
	if (write(fd, line, (size_t)n) != n) {
		int e = errno ? -errno : -EIO;

		unlink(path);
		return e;
	}
	OPENSSL_cleanse(line, sizeof(line));
	OPENSSL_cleanse(h, sizeof(h));
	return 0;
}

int apiauth_cred_load(const char *path, uint64_t *ret_id, uint8_t ret[APIAUTH_CRED_SIZE])
{
	_cleanup_free_ char *text = NULL;
	unsigned long long id;
	size_t len;
	char *end;
	int r;

	r = privfile_read(path, 256, &text, NULL);
	if (r < 0)
		return r;
	len = strlen(text);
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	r = -EINVAL;
	if (text[0] < '1' || text[0] > '9')
		goto out;
	errno = 0;
	id = strtoull(text, &end, 10);
	if (errno || *end != ':' || strlen(end + 1) != 2 * APIAUTH_CRED_SIZE)
		goto out;
	if (hex_decode(end + 1, ret, APIAUTH_CRED_SIZE) < 0)
		goto out;
	*ret_id = id;
	r = 0;
out:
	OPENSSL_cleanse(text, strlen(text));
	return r;
}

static int direction_mac(const uint8_t cred[APIAUTH_CRED_SIZE], bool to_node,
			 uint8_t out[APIAUTH_CRED_SIZE])
{
	const char *label = to_node ? TO_NODE_LABEL : TO_ORCH_LABEL;

	return hmac(cred, APIAUTH_CRED_SIZE, label, strlen(label), out);
}

int apiauth_bearer(const uint8_t cred[APIAUTH_CRED_SIZE], uint64_t id, bool to_node,
		   char ret[APIAUTH_BEARER_MAX])
{
	uint8_t mac[APIAUTH_CRED_SIZE];
	char h[2 * APIAUTH_CRED_SIZE + 1];
	int r;

	r = direction_mac(cred, to_node, mac);
	if (r < 0)
		return r;
	hex_encode(mac, sizeof(mac), h);
	snprintf(ret, APIAUTH_BEARER_MAX, "%s.%" PRIu64 ".%s", to_node ? "orch" : "node", id, h);
	return 0;
}

/* "node.ID.HEX" or "orch.ID.HEX": the id and the MAC. */
static int parse_node_token(const char *token, bool to_node, uint64_t *ret_id,
			    uint8_t mac[APIAUTH_CRED_SIZE])
{
	const char *p = to_node ? "orch." : "node.";
	unsigned long long id;
	char *end;

	if (!token || strncmp(token, p, 5) != 0)
		return -EINVAL;
	token += 5;
	if (*token < '1' || *token > '9')
		return -EINVAL;
	errno = 0;
	id = strtoull(token, &end, 10);
	if (errno || *end != '.' || strlen(end + 1) != 2 * APIAUTH_CRED_SIZE)
		return -EINVAL;
	if (hex_decode(end + 1, mac, APIAUTH_CRED_SIZE) < 0)
		return -EINVAL;
	*ret_id = id;
	return 0;
}

int apiauth_node_check(const struct auth_key *secret, const char *token, bool to_node,
		       uint64_t *ret_id)
{
	uint8_t got[APIAUTH_CRED_SIZE], cred[APIAUTH_CRED_SIZE], want[APIAUTH_CRED_SIZE];
	uint64_t id;
	int r;

	if (!secret || parse_node_token(token, to_node, &id, got) < 0)
		return -EINVAL;
	r = apiauth_node_cred(secret, id, cred);
	if (r == 0)
		r = direction_mac(cred, to_node, want);
	OPENSSL_cleanse(cred, sizeof(cred));
	if (r < 0)
		return r;
	if (CRYPTO_memcmp(got, want, sizeof(want)) != 0)
		return -EINVAL;
	*ret_id = id;
	return 0;
}

bool apiauth_for_me(const uint8_t cred[APIAUTH_CRED_SIZE], uint64_t id, const char *token)
{
	uint8_t got[APIAUTH_CRED_SIZE], want[APIAUTH_CRED_SIZE];
	uint64_t tid;

	if (parse_node_token(token, true, &tid, got) < 0 || tid != id)
		return false;
	if (direction_mac(cred, true, want) < 0)
		return false;
	return CRYPTO_memcmp(got, want, sizeof(want)) == 0;
}

const char *apiauth_bearer_of(const struct http_req *req)
{
	const char *h = http_req_header(req, "Authorization");

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h ? h : NULL;
}

void apiauth_refuse(struct http_resp *resp, enum apiauth_reason why, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	int n;

	if ((unsigned)why >= APIAUTH__MAX)
		why = APIAUTH_INVALID;
	atomic_fetch_add(&failures[why], 1);
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		msg = NULL;
	if (why == APIAUTH_FORBIDDEN) {
		http_resp_error(resp, 403, "forbidden", "%s", msg ? msg : "forbidden");
	} else {
		http_resp_error(resp, 401, "unauthorized", "%s", msg ? msg : "unauthorized");
		resp->www_authenticate = why == APIAUTH_MISSING
			? "Bearer realm=\"disagg\""
			: "Bearer realm=\"disagg\", error=\"invalid_token\"";
	}
}

uint64_t apiauth_failures(enum apiauth_reason why)
{
	return (unsigned)why < APIAUTH__MAX ? atomic_load(&failures[why]) : 0;
}

void apiauth_metrics(struct strbuf *sb, const char *daemon)
{
	char labels[96];

	for (int i = 0; i < APIAUTH__MAX; i++) {
		snprintf(labels, sizeof(labels), "daemon=\"%s\",reason=\"%s\"", daemon,
			 reason_names[i]);
		metrics_counter(sb, "disagg_http_auth_failures_total",
				i ? NULL : "HTTP API requests refused for want of a valid credential",
				labels, atomic_load(&failures[i]));
	}
}

int apiauth_open_check(bool has_credentials, bool open, const char *http_addr,
		       const char *credentials)
{
	if (!http_addr)
		return 0;
	if (has_credentials && open) {
		log_error("--api-open and %s exclude each other", credentials);
		return -EINVAL;
	}
	if (has_credentials)
		return 0;
	if (!open) {
		log_error("the HTTP API on %s needs credentials: give %s, or --api-open to "
			  "serve it open on loopback (development and tests only)", http_addr,
			  credentials);
		return -EINVAL;
	}
	if (!http_addr_is_loopback(http_addr)) {
		log_error("--http %s is not a loopback address: an open API there would let anyone "
			  "who reaches it use it; give %s", http_addr, credentials);
		return -EINVAL;
	}
	log_info("HTTP API on %s is open (--api-open): anyone on this machine may use it",
		 http_addr);
	return 0;
}

int apiauth_node_setup(struct apiauth_node *n, const char *cred_file,
		       const char *metrics_tokens, uint64_t id, const char *http_addr,
		       bool open)
{
	uint64_t cid = 0;
	int r;

	memset(n, 0, sizeof(*n));
	n->id = id;
	if (apiauth_open_check(cred_file != NULL, open, http_addr, "--node-credential") < 0)
		return -EINVAL;
	if (!cred_file) {
		if (metrics_tokens) {
			log_error("--metrics-tokens needs --node-credential");
			return -EINVAL;
		}
		return 0;
	}
	r = apiauth_cred_load(cred_file, &cid, n->cred);
	if (r < 0) {
		log_error("cannot load the node credential %s: %s%s", cred_file, strerror(-r),
			  apiauth_file_hint(r));
		return r;
	}
	if (cid != id) {
		log_error("the node credential %s is node %" PRIu64 "'s, not node %" PRIu64 "'s",
			  cred_file, cid, id);
		apiauth_node_clear(n);
		return -EINVAL;
	}
	if (metrics_tokens) {
		r = apiauth_tokens_load(metrics_tokens, &n->metrics);
		if (r < 0) {
			log_error("cannot load the metrics tokens %s: %s%s", metrics_tokens,
				  strerror(-r), apiauth_file_hint(r));
			apiauth_node_clear(n);
			return r;
		}
	}
	r = apiauth_bearer(n->cred, id, false, n->bearer);
	if (r < 0) {
		apiauth_node_clear(n);
		return r;
	}
	n->on = true;
	return 0;
}

void apiauth_node_clear(struct apiauth_node *n)
{
	apiauth_tokens_free(n->metrics);
	OPENSSL_cleanse(n, sizeof(*n));
}

bool apiauth_node_authorize(const struct apiauth_node *n, const struct http_req *req,
			    struct http_resp *resp)
{
	bool metrics = strcmp(req->path, "/metrics") == 0 && strcmp(req->method, "GET") == 0;
	uint8_t mac[APIAUTH_CRED_SIZE];
	const char *tok;
	uint64_t tid;

	if (!n->on || (strcmp(req->path, "/healthz") == 0 && strcmp(req->method, "GET") == 0))
		return true;
	tok = apiauth_bearer_of(req);
	if (!tok) {
		apiauth_refuse(resp, APIAUTH_MISSING,
			       "this API needs \"Authorization: Bearer TOKEN\" from the orchestrator");
		return false;
	}
	if (apiauth_for_me(n->cred, n->id, tok))
		return true;
	if (metrics && apiauth_tokens_check(n->metrics, tok))
		return true;
	if (parse_node_token(tok, true, &tid, mac) == 0 && tid != n->id) {
		apiauth_refuse(resp, APIAUTH_WRONG_NODE,
			       "a token for node %" PRIu64 ", this is node %" PRIu64, tid, n->id);
		return false;
	}
	apiauth_refuse(resp, APIAUTH_INVALID,
		       "invalid token: this node takes requests from its orchestrator only "
		       "(people go through the orchestrator)");
	return false;
}
