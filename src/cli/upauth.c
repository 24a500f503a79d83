// SPDX-License-Identifier: MIT
/*
 * The API credentials of a cluster made by `disagg up`, and its fabric
 * arguments. See upauth.h.
 */
#include "upauth.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apiauth.h"
#include "auth.h"
#include "grant.h"
#include "macro.h"

int upauth_init(struct upauth *a, const char *dir)
{
	*a = (struct upauth){ 0 };
	if (asprintf(&a->tokens, "%s/api.tokens", dir) < 0)
		a->tokens = NULL;
	if (asprintf(&a->secret, "%s/node.secret", dir) < 0)
		a->secret = NULL;
	return a->tokens && a->secret ? 0 : -ENOMEM;
}

void upauth_clear(struct upauth *a)
{
	free(a->tokens);
	free(a->secret);
	if (a->token)
		explicit_bzero(a->token, strlen(a->token));
	free(a->token);
	*a = (struct upauth){ 0 };
}

char *upauth_node_cred(const struct upauth *a, const char *dir, int64_t id)
{
	uint8_t cred[APIAUTH_CRED_SIZE];
	struct auth_key secret;
	char *path = NULL;
	int r;

	if (asprintf(&path, "%s/node-%" PRId64 ".cred", dir, id) < 0)
		return NULL;
	r = auth_key_load(a->secret, &secret);
	if (r == 0)
		r = apiauth_node_cred(&secret, (uint64_t)id, cred);
	explicit_bzero(&secret, sizeof(secret));
	if (r == 0 && unlink(path) < 0 && errno != ENOENT)
		r = -errno;
	if (r == 0)
		r = apiauth_cred_save(path, (uint64_t)id, cred);
	explicit_bzero(cred, sizeof(cred));
	if (r < 0) {
		fprintf(stderr, "error: cannot make the credential %s: %s\n", path, strerror(-r));
		free(path);
		return NULL;
	}
	return path;
}

int upauth_make_keys(struct upauth *a, const char *key, const char *gkey, const char *gpub)
{
	const char *secret_file = a->secret, *tokens_file = a->tokens;
	char tok[APIAUTH_BEARER_MAX];
	_cleanup_close_ int fd = -1;
	int r;

	r = auth_key_create(key);
	if (r < 0) {
		fprintf(stderr, "error: cannot create the cluster key %s: %s\n", key, strerror(-r));
		return r;
	}
	/* The grant key: its private half for the orchestrator alone, the public for memory nodes. */
	r = grant_key_create(gkey, gpub);
	if (r < 0) {
		fprintf(stderr, "error: cannot create the grant key %s: %s\n", gkey, strerror(-r));
		return r;
	}
	if ((unlink(secret_file) < 0 && errno != ENOENT) ||
	    (unlink(tokens_file) < 0 && errno != ENOENT)) {
		fprintf(stderr, "error: cannot remove an old %s or %s: %s\n", secret_file,
			tokens_file, strerror(errno));
		return -errno;
	}
	r = auth_key_create(secret_file);
	if (r < 0) {
		fprintf(stderr, "error: cannot create the node secret %s: %s\n", secret_file,
			strerror(-r));
		return r;
	}
	r = apiauth_token_new(tok);
	if (r < 0)
		return r;
	fd = open(tokens_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || dprintf(fd, "%s\n", tok) < 0) {
		r = -errno;
		fprintf(stderr, "error: cannot write the API token to %s: %s\n", tokens_file,
			strerror(errno));
		explicit_bzero(tok, sizeof(tok));
		return r;
	}
	a->token = strdup(tok);
	explicit_bzero(tok, sizeof(tok));
	return a->token ? 0 : -ENOMEM;
}

void upauth_fabric_args(bool plaintext, char **argv)
{
	size_t i = 0, n = 0;

	if (!plaintext)
		return;
	while (argv[n])
		n++;
	while (argv[i] && strcmp(argv[i], "--tls-ca"))
		i++;
	if (i + 6 > n)
		return;
	argv[i] = (char *)"--fabric-plaintext";
	memmove(&argv[i + 1], &argv[i + 6], (n - i - 6 + 1) * sizeof(*argv));
}
