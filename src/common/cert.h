/* SPDX-License-Identifier: MIT */
/*
 * Cluster CA and node certificates (X.509, Ed25519, through libcrypto).
 *
 * A node certificate binds one node id and one role into its subject
 * alternative names, as two URIs:
 *     disagg://node/ID      (decimal, nonzero)
 *     disagg://role/ROLE    (compute, memory or orchestrator)
 * A certificate with no or more than one of either has no identity and is
 * refused on the fabric. Keys are written mode 0600, certificates 0644;
 * existing files are never overwritten (-EEXIST).
 *
 * A CA directory holds ca.key (private, 0600) and ca.pem.
 */
#ifndef DISAGG_CERT_H
#define DISAGG_CERT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

enum cert_role {
	CERT_ROLE_NONE = 0,
	CERT_ROLE_COMPUTE,
	CERT_ROLE_MEMORY,
	CERT_ROLE_ORCH,
	CERT_ROLE_DEVICE,            /* a device node */
};

struct cert_id {
	uint64_t node_id;
	enum cert_role role;
};

#define CERT_CA_KEY "ca.key"
#define CERT_CA_PEM "ca.pem"
#define CERT_DEFAULT_DAYS 825

const char *cert_role_name(enum cert_role r);
/* "compute", "memory", "orchestrator" (also "orch"): -EINVAL otherwise. */
int cert_role_parse(const char *s, enum cert_role *ret);

/* Make a CA in dir (created 0700 if missing): dir/ca.key and dir/ca.pem. */
int cert_new_ca(const char *dir, const char *name, unsigned days);
/*
 * Issue a certificate for (id, role) signed by the CA in cadir, with a new
 * key: cert_path (PEM) and key_path (PEM, 0600).
 */
int cert_issue(const char *cadir, const struct cert_id *id, unsigned days,
	       const char *cert_path, const char *key_path);
/* The identity in a certificate: -ENOENT without one, -EBADMSG if ambiguous. */
int cert_identity(X509 *x, struct cert_id *ret);
/* Load a PEM certificate. */
int cert_load(const char *path, X509 **ret);

#endif /* DISAGG_CERT_H */
