// SPDX-License-Identifier: MIT
/*
 * Unit test of src/common/apiauth.c (people tokens, node credentials and
 * their bearer tokens, recomputed here from the definitions in apiauth.h
 * with libcrypto, so code and documentation cannot drift apart) and of
 * src/common/miguri.c (strict migration URIs).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "apiauth.h"
#include "macro.h"
#include "miguri.h"
#include "tap.h"

static char dir[] = "/tmp/disagg-test-apiauth-XXXXXX";

static const char *path_of(const char *name)
{
	static char buf[4][256];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static int write_file(const char *path, const char *text, mode_t mode)
{
	_cleanup_close_ int fd = -1;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0 || fchmod(fd, mode) < 0)
		return -errno;
	return write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -EIO;
}

static void test_tokens(void)
{
	struct apiauth_tokens *t = NULL;
	char tok[APIAUTH_BEARER_MAX];

	ok(write_file(path_of("t"), "# operators\n\n  alice-0123456789abcdef  \r\nbob-0123456789abcdef\n",
		      0600) == 0, "token file written");
	is(apiauth_tokens_load(path_of("t"), &t), 0, "token file loads");
	ok(apiauth_tokens_check(t, "alice-0123456789abcdef"), "first token (blanks trimmed)");
	ok(apiauth_tokens_check(t, "bob-0123456789abcdef"), "second token");
	ok(!apiauth_tokens_check(t, "bob-0123456789abcde"), "a prefix is not a token");
	ok(!apiauth_tokens_check(t, "# operators"), "a comment is not a token");
	ok(!apiauth_tokens_check(t, ""), "empty is not a token");
	ok(!apiauth_tokens_check(NULL, "bob-0123456789abcdef"), "no tokens, no match");
	apiauth_tokens_free(t);

	write_file(path_of("t"), "alice-0123456789abcdef\n", 0644);
	is(apiauth_tokens_load(path_of("t"), &t), -EPERM, "a file others may read is refused");
	write_file(path_of("t"), "short\n", 0600);
	is(apiauth_tokens_load(path_of("t"), &t), -EINVAL, "a token under 16 characters");
	write_file(path_of("t"), "has a blank in it 0123\n", 0600);
	is(apiauth_tokens_load(path_of("t"), &t), -EINVAL, "a token with blanks");
	write_file(path_of("t"), "# nothing\n\n", 0600);
	is(apiauth_tokens_load(path_of("t"), &t), -EINVAL, "no token at all");
	is(apiauth_tokens_load(path_of("none"), &t), -ENOENT, "a missing file");

	is(apiauth_token_new(tok), 0, "a new token");
	ok(strncmp(tok, "dgt_", 4) == 0 && strlen(tok) == 68, "dgt_ and 64 hex digits: %s", tok);
}

static void hmac256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32])
{
	unsigned int n = 0;

	HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &n);
}

static void test_node_credentials(void)
{
	struct auth_key secret, other;
	uint8_t cred[32], want[32], mac[32], got[32];
	char bearer[APIAUTH_BEARER_MAX], hexmac[65], expect[APIAUTH_BEARER_MAX];
	uint8_t msg[22 + 8];
	uint64_t id = 0;

	memset(secret.bytes, 7, sizeof(secret.bytes));
	memset(other.bytes, 8, sizeof(other.bytes));
	is(apiauth_node_cred(&secret, 42, cred), 0, "credential of node 42");
	memcpy(msg, "disagg-node-credential", 22);
	for (int i = 0; i < 8; i++)
		msg[22 + i] = (uint8_t)((uint64_t)42 >> (56 - 8 * i));
	hmac256(secret.bytes, 32, msg, sizeof(msg), want);
	ok(memcmp(cred, want, 32) == 0, "C = HMAC(secret, label || id big-endian)");

	is(apiauth_bearer(cred, 42, true, bearer), 0, "orchestrator -> node token");
	hmac256(cred, 32, "disagg-api orchestrator->node", 29, mac);
	for (int i = 0; i < 32; i++)
		sprintf(hexmac + 2 * i, "%02x", mac[i]);
	snprintf(expect, sizeof(expect), "orch.42.%s", hexmac);
	is_str(bearer, expect, "orch.ID.HEX(HMAC(C, label))");
	ok(apiauth_for_me(cred, 42, bearer), "node 42 takes its orchestrator's token");
	ok(!apiauth_for_me(cred, 43, bearer), "another id does not");
	is(apiauth_node_check(&secret, bearer, true, &id), 0, "the orchestrator recomputes it");
	ok(id == 42, "for node 42");
	is(apiauth_node_check(&other, bearer, true, &id), -EINVAL, "another secret refuses it");
	is(apiauth_node_check(&secret, bearer, false, &id), -EINVAL,
	   "a token of one direction is not one of the other");

	is(apiauth_bearer(cred, 42, false, bearer), 0, "node -> orchestrator token");
	ok(strncmp(bearer, "node.42.", 8) == 0, "node.ID.HEX");
	is(apiauth_node_check(&secret, bearer, false, &id), 0, "checks");
	ok(!apiauth_for_me(cred, 42, bearer), "the node's own token is not the orchestrator's");
	bearer[strlen(bearer) - 1] ^= 1;
	is(apiauth_node_check(&secret, bearer, false, &id), -EINVAL, "one bit changed");
	bearer[5] = '9';
	is(apiauth_node_check(&secret, bearer, false, &id), -EINVAL, "another id, same MAC");
	is(apiauth_node_check(&secret, "node.42.zz", false, &id), -EINVAL, "malformed");
	is(apiauth_node_check(&secret, "node.042.00", false, &id), -EINVAL, "leading zero");
	is(apiauth_node_check(&secret, NULL, false, &id), -EINVAL, "none");

	/* Credential files. */
	unlink(path_of("c"));
	is(apiauth_cred_save(path_of("c"), 42, cred), 0, "credential saved");
	is(apiauth_cred_save(path_of("c"), 42, cred), -EEXIST, "never overwritten");
	{
		struct stat st;

		ok(stat(path_of("c"), &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600");
	}
	is(apiauth_cred_load(path_of("c"), &id, got), 0, "credential loads");
	ok(id == 42 && memcmp(got, cred, 32) == 0, "same id and credential");
	chmod(path_of("c"), 0640);
	is(apiauth_cred_load(path_of("c"), &id, got), -EPERM, "group may read it: refused");
	write_file(path_of("c"), "42:abc\n", 0600);
	is(apiauth_cred_load(path_of("c"), &id, got), -EINVAL, "short credential");
	write_file(path_of("c"), "0:0000000000000000000000000000000000000000000000000000000000000000\n", 0600);
	is(apiauth_cred_load(path_of("c"), &id, got), -EINVAL, "node id 0");
}

static void test_miguri(void)
{
	static const struct {
		const char *uri;
		int r;
		const char *host;
		unsigned port;
	} cases[] = {
		{ "tcp:127.0.0.1:4444", 0, "127.0.0.1", 4444 },
		{ "tcp:node-10.example.org:1", 0, "node-10.example.org", 1 },
		{ "tcp:[::1]:65535", 0, "[::1]", 65535 },
		{ "tcp:[fe80::1]:80", 0, "[fe80::1]", 80 },
		{ "exec:touch /tmp/x", -EINVAL, NULL, 0 },
		{ "unix:/tmp/sock", -EINVAL, NULL, 0 },
		{ "rdma:127.0.0.1:4444", -EINVAL, NULL, 0 },
		{ "tcp:127.0.0.1:0", -EINVAL, NULL, 0 },
		{ "tcp:127.0.0.1:65536", -EINVAL, NULL, 0 },
		{ "tcp:127.0.0.1:", -EINVAL, NULL, 0 },
		{ "tcp::4444", -EINVAL, NULL, 0 },
		{ "tcp:127.0.0.1:4444,ipv4=on", -EINVAL, NULL, 0 },
		{ "tcp:127.0.0.1:4444 ", -EINVAL, NULL, 0 },
		{ "tcp:-x:4444", -EINVAL, NULL, 0 },
		{ "tcp:a b:4444", -EINVAL, NULL, 0 },
		{ "tcp:[::1:4444", -EINVAL, NULL, 0 },
		{ "tcp:[]:4444", -EINVAL, NULL, 0 },
		{ "tcp:[zz::1]:4444", -EINVAL, NULL, 0 },
		{ "tcp:127.0.0.1:+444", -EINVAL, NULL, 0 },
		{ "TCP:127.0.0.1:4444", -EINVAL, NULL, 0 },
		{ "", -EINVAL, NULL, 0 },
	};
	char host[256];
	uint16_t port;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = miguri_parse(cases[i].uri, host, sizeof(host), &port);

		is(r, cases[i].r, "\"%s\"", cases[i].uri);
		if (r == 0 && cases[i].r == 0)
			ok(strcmp(host, cases[i].host) == 0 && port == cases[i].port,
			   "  host %s port %u", host, (unsigned)port);
	}
	ok(miguri_parse(NULL, host, sizeof(host), &port) == -EINVAL, "NULL");
	ok(miguri_parse("tcp:127.0.0.1:4", host, 9, &port) == -EINVAL, "host buffer too small");
}

int main(void)
{
	if (!mkdtemp(dir)) {
		plan_skip_all("mkdtemp failed");
		return 0;
	}
	test_tokens();
	test_node_credentials();
	test_miguri();
	unlink(path_of("t"));
	unlink(path_of("c"));
	rmdir(dir);
	done_testing();
	return tap_exit();
}
