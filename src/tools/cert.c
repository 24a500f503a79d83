// SPDX-License-Identifier: MIT
/*
 * disagg-cert: the cluster CA and node certificates for TLS on the fabric.
 *
 *   disagg-cert --new-ca DIR [--name CN] [--days N]
 *   disagg-cert --ca DIR --issue ID --role ROLE --cert FILE --key FILE [--days N]
 *   disagg-cert --show FILE
 *
 * --new-ca writes DIR/ca.key (0600) and DIR/ca.pem. --issue makes a new
 * Ed25519 key (FILE, 0600) and a certificate signed by the CA that binds
 * the node id and its role (compute, memory, orchestrator, device) as the URIs
 * disagg://node/ID and disagg://role/ROLE. --show prints a certificate's
 * identity. Nothing existing is overwritten.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cert.h"
#include "macro.h"
#include "toolutil.h"

static void usage(FILE *f)
{
	fputs("usage: disagg-cert --new-ca DIR [--name CN] [--days N]\n"
	      "       disagg-cert --ca DIR --issue ID --role compute|memory|orchestrator|device\n"
	      "                   --cert FILE --key FILE [--days N]\n"
	      "       disagg-cert --show FILE\n"
	      "\n"
	      "  --new-ca DIR   make a cluster CA: DIR/ca.key (mode 0600) and DIR/ca.pem\n"
	      "  --ca DIR       the CA that signs (--issue)\n"
	      "  --issue ID     issue a certificate for node ID with a new Ed25519 key\n"
	      "  --role ROLE    the node's role, bound into the certificate\n"
	      "  --cert FILE    where the certificate goes (PEM)\n"
	      "  --key FILE     where its private key goes (PEM, mode 0600)\n"
	      "  --days N       validity (CA: 3650, nodes: 825)\n"
	      "  --show FILE    print a certificate's node id, role, subject and expiry\n",
	      f);
}

static int show(const char *path)
{
	X509 *x = NULL;
	struct cert_id id;
	char subj[256], issuer[256];
	BIO *b;
	int r = cert_load(path, &x);

	if (r < 0) {
		fprintf(stderr, "disagg-cert: cannot read certificate %s: %s\n", path, strerror(-r));
		return 1;
	}
	X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
	X509_NAME_oneline(X509_get_issuer_name(x), issuer, sizeof(issuer));
	r = cert_identity(x, &id);
	if (r == 0)
		printf("node %" PRIu64 "\nrole %s\n", id.node_id, cert_role_name(id.role));
	else
		printf("node none\nrole none\n");
	printf("subject %s\nissuer %s\n", subj, issuer);
	b = BIO_new_fp(stdout, BIO_NOCLOSE);
	if (b) {
		BIO_puts(b, "not_after ");
		ASN1_TIME_print(b, X509_get0_notAfter(x));
		BIO_puts(b, "\n");
		BIO_free(b);
	}
	X509_free(x);
	if (r < 0) {
		fprintf(stderr, "disagg-cert: %s carries no disagg node identity%s\n", path,
			r == -EBADMSG ? " (more than one, or malformed)" : "");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "new-ca", required_argument, NULL, 'N' },
		{ "name", required_argument, NULL, 'n' },
		{ "ca", required_argument, NULL, 'c' },
		{ "issue", required_argument, NULL, 'i' },
		{ "role", required_argument, NULL, 'r' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'k' },
		{ "days", required_argument, NULL, 'd' },
		{ "show", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *new_ca = NULL, *name = NULL, *ca = NULL, *role_s = NULL, *certf = NULL,
		   *keyf = NULL, *showf = NULL;
	uint64_t node = 0, days = 0;
	struct cert_id id = { 0 };
	int c, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'N': new_ca = optarg; break;
		case 'n': name = optarg; break;
		case 'c': ca = optarg; break;
		case 'i':
			if (tool_u64("--issue", optarg, &node) < 0)
				return 2;
			if (node == 0) {
				fprintf(stderr, "disagg-cert: --issue: a node id is nonzero\n");
				return 2;
			}
			break;
		case 'r': role_s = optarg; break;
		case 'C': certf = optarg; break;
		case 'k': keyf = optarg; break;
		case 'd':
			if (tool_u64("--days", optarg, &days) < 0)
				return 2;
			if (days == 0 || days > 36500) {
				fprintf(stderr, "disagg-cert: --days: 1 to 36500\n");
				return 2;
			}
			break;
		case 's': showf = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || (!!new_ca + !!node + !!showf) != 1) {
		usage(stderr);
		return 2;
	}
	if (showf)
		return show(showf);
	if (new_ca) {
		r = cert_new_ca(new_ca, name, (unsigned)days);
		if (r < 0) {
			fprintf(stderr, "disagg-cert: cannot make a CA in %s: %s\n", new_ca,
				r == -EEXIST ? "it already holds one" : strerror(-r));
			return 1;
		}
		printf("%s/%s\n%s/%s\n", new_ca, CERT_CA_KEY, new_ca, CERT_CA_PEM);
		return 0;
	}
	if (!ca || !role_s || !certf || !keyf) {
		fprintf(stderr, "disagg-cert: --issue needs --ca DIR --role ROLE --cert FILE --key FILE\n");
		return 2;
	}
	if (cert_role_parse(role_s, &id.role) < 0) {
		fprintf(stderr, "disagg-cert: invalid --role '%s': compute, memory or orchestrator\n",
			role_s);
		return 2;
	}
	id.node_id = node;
	r = cert_issue(ca, &id, (unsigned)days, certf, keyf);
	if (r < 0) {
		fprintf(stderr, "disagg-cert: cannot issue a certificate for node %" PRIu64 ": %s%s\n",
			node, r == -EEXIST ? "the certificate or key file exists" : strerror(-r),
			r == -EPERM ? " (the CA key may be read by group or others; chmod 600 it)" :
			r == -ENOENT ? " (no ca.key/ca.pem in --ca DIR?)" : "");
		return 1;
	}
	printf("%s\n%s\n", certf, keyf);
	return 0;
}
