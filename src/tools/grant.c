// SPDX-License-Identifier: MIT
/*
 * disagg-grant: create a cluster key or a grant key, or mint a section
 * grant with the grant key (as the orchestrator does).
 *
 *   disagg-grant --new-key FILE
 *   disagg-grant --new-grant-key FILE [--public FILE]
 *   disagg-grant --node-secret FILE --node ID --node-credential OUT
 *   disagg-grant --node-secret FILE --node ID --orchestrator-token
 *   disagg-grant --new-api-token FILE
 *   disagg-grant --grant-key FILE --memnode ID --holder ID --section N
 *                --generation G --rights [r][w][f] [--epoch E]
 *                [--ttl SECONDS | --expiry UNIX]
 *
 * --epoch is the holder's ownership epoch of the section (default 0): a
 * memory node refuses writes through grants of an epoch older than the
 * newest it has seen for the section.
 * A grant is printed as 208 hex digits (its wire encoding), the form the
 * orchestrator and the command-line tools pass around. Rights: r read, w
 * write, f free (the holder may free the section with the grant).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apiauth.h"
#include "auth.h"
#include "grant.h"
#include "toolutil.h"

static void usage(FILE *f)
{
	fputs("usage: disagg-grant --new-key FILE                      (a cluster key)\n"
	      "       disagg-grant --new-grant-key FILE [--public FILE]  (a grant key pair)\n"
	      "       disagg-grant --grant-key FILE --memnode ID --holder ID --section N\n"
	      "                    --generation G --rights [r][w][f] [--epoch E]\n"
	      "                    [--ttl SECONDS|--expiry UNIX]\n"
	      "       disagg-grant --node-secret FILE --node ID --node-credential OUT\n"
	      "       disagg-grant --node-secret FILE --node ID --orchestrator-token\n"
	      "       disagg-grant --new-api-token FILE        (adds one, prints it)\n",
	      f);
}

static int new_api_token(const char *path)
{
	char tok[APIAUTH_BEARER_MAX], line[APIAUTH_BEARER_MAX + 1];
	_cleanup_close_ int fd = -1;
	struct stat st;
	int n;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "disagg-grant: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IRWXG | S_IRWXO))) {
		fprintf(stderr, "disagg-grant: %s must be a regular file only its owner may "
				"access (chmod 600 it)\n", path);
		return 1;
	}
	if (apiauth_token_new(tok) < 0) {
		fprintf(stderr, "disagg-grant: no random bytes\n");
		return 1;
	}
	n = snprintf(line, sizeof(line), "%s\n", tok);
	if (write(fd, line, (size_t)n) != n) {
		fprintf(stderr, "disagg-grant: cannot write %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("%s\n", tok);
	OPENSSL_cleanse(tok, sizeof(tok));
	OPENSSL_cleanse(line, sizeof(line));
	return 0;
}

static int node_cred(const char *secret_file, uint64_t id, const char *out, bool token)
{
	uint8_t cred[APIAUTH_CRED_SIZE];
	char bearer[APIAUTH_BEARER_MAX];
	struct auth_key secret;
	int r;

	if (id == 0) {
		fprintf(stderr, "disagg-grant: --node ID (nonzero) is required\n");
		return 1;
	}
	r = auth_key_load(secret_file, &secret);
	if (r < 0) {
		fprintf(stderr, "disagg-grant: cannot load the node secret %s: %s%s\n", secret_file,
			strerror(-r), auth_key_hint(r));
		return 1;
	}
	r = apiauth_node_cred(&secret, id, cred);
	OPENSSL_cleanse(&secret, sizeof(secret));
	if (r == 0 && token) {
		r = apiauth_bearer(cred, id, true, bearer);
		if (r == 0)
			printf("%s\n", bearer);
	} else if (r == 0) {
		r = apiauth_cred_save(out, id, cred);
		if (r < 0)
			fprintf(stderr, "disagg-grant: cannot write %s: %s\n", out, strerror(-r));
	}
	OPENSSL_cleanse(cred, sizeof(cred));
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "new-key", required_argument, NULL, 'n' },
		{ "new-grant-key", required_argument, NULL, 'N' },
		{ "public", required_argument, NULL, 'P' },
		{ "grant-key", required_argument, NULL, 'k' },
		{ "memnode", required_argument, NULL, 'm' },
		{ "holder", required_argument, NULL, 'H' },
		{ "section", required_argument, NULL, 's' },
		{ "generation", required_argument, NULL, 'g' },
		{ "rights", required_argument, NULL, 'r' },
		{ "ttl", required_argument, NULL, 't' },
		{ "expiry", required_argument, NULL, 'e' },
		{ "epoch", required_argument, NULL, 'E' },
		{ "node-secret", required_argument, NULL, 'S' },
		{ "node", required_argument, NULL, 'i' },
		{ "node-credential", required_argument, NULL, 'C' },
		{ "orchestrator-token", no_argument, NULL, 'O' },
		{ "new-api-token", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *new_key = NULL, *new_gkey = NULL, *pubfile = NULL, *keyfile = NULL,
		   *rights_s = NULL, *node_secret = NULL, *cred_out = NULL, *tokens = NULL;
	bool orch_token = false;
	uint64_t node = 0;
	uint64_t memnode = 0, holder = 0, section = 0, generation = 0, ttl = 0, expiry = 0;
	uint64_t epoch = 0;
	bool have_m = false, have_h = false, have_s = false, have_g = false, have_ttl = false,
	     have_exp = false;
	_cleanup_grant_key_ struct grant_key *key = NULL;
	struct proto_grant g;
	char hex[GRANT_HEX_LEN + 1];
	uint32_t rights = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': new_key = optarg; break;
		case 'N': new_gkey = optarg; break;
		case 'P': pubfile = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'm': have_m = true; r = tool_u64("--memnode", optarg, &memnode); goto num;
		case 'H': have_h = true; r = tool_u64("--holder", optarg, &holder); goto num;
		case 's': have_s = true; r = tool_u64("--section", optarg, &section); goto num;
		case 'g': have_g = true; r = tool_u64("--generation", optarg, &generation); goto num;
		case 't': have_ttl = true; r = tool_u64("--ttl", optarg, &ttl); goto num;
		case 'e': have_exp = true; r = tool_u64("--expiry", optarg, &expiry); goto num;
		case 'E': r = tool_u64("--epoch", optarg, &epoch); goto num;
		case 'r': rights_s = optarg; break;
		case 'S': node_secret = optarg; break;
		case 'i': r = tool_u64("--node", optarg, &node); goto num;
		case 'C': cred_out = optarg; break;
		case 'O': orch_token = true; break;
		case 'T': tokens = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
		continue;
num:
		if (r < 0)
			return 1;
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}

	if (tokens)
		return new_api_token(tokens);
	if (node_secret) {
		if (!cred_out == !orch_token) {
			fprintf(stderr, "disagg-grant: --node-secret goes with --node-credential OUT or "
					"--orchestrator-token\n");
			return 1;
		}
		return node_cred(node_secret, node, cred_out, orch_token);
	}
	if (new_key) {
		r = auth_key_create(new_key);
		if (r < 0) {
			fprintf(stderr, "disagg-grant: cannot create key %s: %s\n", new_key, strerror(-r));
			return 1;
		}
		return 0;
	}
	if (new_gkey) {
		r = grant_key_create(new_gkey, pubfile);
		if (r < 0) {
			fprintf(stderr, "disagg-grant: cannot create grant key %s: %s\n", new_gkey,
				strerror(-r));
			return 1;
		}
		return 0;
	}

	if (!keyfile || !have_m || !have_h || !have_s || !have_g || !rights_s) {
		fprintf(stderr, "disagg-grant: --grant-key, --memnode, --holder, --section, --generation "
				"and --rights are required\n");
		usage(stderr);
		return 1;
	}
	if (section > UINT32_MAX || generation > UINT32_MAX || epoch > UINT32_MAX) {
		fprintf(stderr, "disagg-grant: section, generation and epoch are 32-bit numbers\n");
		return 1;
	}
	if (have_ttl && have_exp) {
		fprintf(stderr, "disagg-grant: --ttl and --expiry exclude each other\n");
		return 1;
	}
	r = tool_rights(rights_s, &rights);
	if (r < 0)
		return 1;
	if (have_ttl) {
		uint64_t now = (uint64_t)time(NULL);

		if (ttl > UINT64_MAX - now) {
			fprintf(stderr, "disagg-grant: --ttl %" PRIu64 " is too large\n", ttl);
			return 1;
		}
		expiry = now + ttl;
	}

	r = grant_key_load(keyfile, true, &key);
	if (r < 0) {
		fprintf(stderr, "disagg-grant: cannot load grant key %s: %s%s\n", keyfile,
			strerror(-r), grant_key_hint(r));
		return 1;
	}
	r = grant_mint(key, memnode, holder, (uint32_t)section, (uint32_t)generation,
		       (uint32_t)epoch, rights, expiry, &g);
	if (r < 0) {
		fprintf(stderr, "disagg-grant: cannot mint grant: %s\n", strerror(-r));
		return 1;
	}
	grant_to_hex(&g, hex);
	printf("%s\n", hex);
	return 0;
}
