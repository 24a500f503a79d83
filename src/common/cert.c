// SPDX-License-Identifier: MIT
/*
 * Cluster CA and node certificates. See cert.h.
 */
#include "cert.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "auth.h"
#include "macro.h"

#define URI_NODE "disagg://node/"
#define URI_ROLE "disagg://role/"

static const char *const role_names[] = {
	[CERT_ROLE_NONE] = "none",
	[CERT_ROLE_COMPUTE] = "compute",
	[CERT_ROLE_MEMORY] = "memory",
	[CERT_ROLE_ORCH] = "orchestrator",
	[CERT_ROLE_DEVICE] = "device",
};

const char *cert_role_name(enum cert_role r)
{
	return (unsigned)r < ARRAY_SIZE(role_names) ? role_names[r] : "none";
}

int cert_role_parse(const char *s, enum cert_role *ret)
{
	for (unsigned i = CERT_ROLE_COMPUTE; i < ARRAY_SIZE(role_names); i++)
		if (strcmp(s, role_names[i]) == 0) {
			*ret = (enum cert_role)i;
			return 0;
		}
	if (strcmp(s, "orch") == 0) {
		*ret = CERT_ROLE_ORCH;
		return 0;
	}
	return -EINVAL;
}

DEFINE_CLEANUP_FUNC(EVP_PKEY, EVP_PKEY_free)
DEFINE_CLEANUP_FUNC(X509, X509_free)

/* Write a PEM file that must not exist yet, with `mode`. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *x)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, mode);
	_cleanup_fclose_ FILE *f = NULL;
	int ok;

	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0) {
		int r = -errno;

		close(fd);
		unlink(path);
		return r;
	}
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(path);
		return -ENOMEM;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) :
		   PEM_write_X509(f, x);
	if (!ok || fflush(f) != 0 || fsync(fileno(f)) < 0) {
		unlink(path);
		return -EIO;
	}
	return 0;
}

static int new_key(EVP_PKEY **ret)
{
	*ret = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return *ret ? 0 : -ENOMEM;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -ENOMEM;
}

/* A certificate for key with subject CN=cn, valid `days` from an hour ago. */
static int new_cert(EVP_PKEY *key, const char *cn, unsigned days, X509 **ret)
{
	_cleanup_(X509_freep) X509 *x = X509_new();
	X509_NAME *name;
	uint8_t serial[16];
	BIGNUM *bn;
	int r;

	if (!x)
		return -ENOMEM;
	r = auth_random(serial, sizeof(serial));
	if (r < 0)
		return r;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
		BN_free(bn);
		return -ENOMEM;
	}
	BN_free(bn);
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, 2) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"disagg",
					-1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
					-1, 0) ||
	    !X509_set_pubkey(x, key))
		return -ENOMEM;
	*ret = TAKE_PTR(x);
	return 0;
}

int cert_new_ca(const char *dir, const char *name, unsigned days)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_(X509_freep) X509 *x = NULL;
	_cleanup_free_ char *kpath = NULL, *cpath = NULL;
	int r;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (asprintf(&kpath, "%s/%s", dir, CERT_CA_KEY) < 0 ||
	    asprintf(&cpath, "%s/%s", dir, CERT_CA_PEM) < 0)
		return -ENOMEM;
	if (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0)
		return -EEXIST;
	r = new_key(&key);
	if (r < 0)
		return r;
	r = new_cert(key, name && *name ? name : "disagg cluster CA", days ? days : 3650, &x);
	if (r < 0)
		return r;
	if (!X509_set_issuer_name(x, X509_get_subject_name(x)))
		return -ENOMEM;
	if ((r = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) < 0 ||
	    (r = add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
	    (r = add_ext(x, x, NID_subject_key_identifier, "hash")) < 0)
		return r;
	if (!X509_sign(x, key, NULL))
		return -EINVAL;
	r = write_pem(kpath, 0600, key, NULL);
	if (r < 0)
		return r;
	r = write_pem(cpath, 0644, NULL, x);
	if (r < 0)
		unlink(kpath);
	return r;
}

/* Load the CA's key (refused if others may read it) and certificate. */
static int load_ca(const char *dir, EVP_PKEY **ret_key, X509 **ret_x)
{
	_cleanup_free_ char *kpath = NULL, *cpath = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	struct stat st;
	int r;

	if (asprintf(&kpath, "%s/%s", dir, CERT_CA_KEY) < 0 ||
	    asprintf(&cpath, "%s/%s", dir, CERT_CA_PEM) < 0)
		return -ENOMEM;
	f = fopen(kpath, "re");
	if (!f)
		return -errno;
	if (fstat(fileno(f), &st) < 0)
		return -errno;
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return -EPERM;
	*ret_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	if (!*ret_key)
		return -EBADMSG;
	r = cert_load(cpath, ret_x);
	if (r < 0) {
		EVP_PKEY_free(*ret_key);
		*ret_key = NULL;
	}
	return r;
}

int cert_issue(const char *cadir, const struct cert_id *id, unsigned days,
	       const char *cert_path, const char *key_path)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *cakey = NULL, *key = NULL;
	_cleanup_(X509_freep) X509 *ca = NULL, *x = NULL;
	char cn[64], san[128];
	int r;

	if (!id->node_id || id->role == CERT_ROLE_NONE || (unsigned)id->role >= ARRAY_SIZE(role_names))
		return -EINVAL;
	if (access(cert_path, F_OK) == 0 || access(key_path, F_OK) == 0)
		return -EEXIST;
	r = load_ca(cadir, &cakey, &ca);
	if (r < 0)
		return r;
	r = new_key(&key);
	if (r < 0)
		return r;
	snprintf(cn, sizeof(cn), "%s-%" PRIu64, cert_role_name(id->role), id->node_id);
	r = new_cert(key, cn, days ? days : CERT_DEFAULT_DAYS, &x);
	if (r < 0)
		return r;
	if (!X509_set_issuer_name(x, X509_get_subject_name(ca)))
		return -ENOMEM;
	snprintf(san, sizeof(san), "URI:" URI_NODE "%" PRIu64 ",URI:" URI_ROLE "%s", id->node_id,
		 cert_role_name(id->role));
	if ((r = add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
	    (r = add_ext(x, ca, NID_key_usage, "critical,digitalSignature")) < 0 ||
	    (r = add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth")) < 0 ||
	    (r = add_ext(x, ca, NID_authority_key_identifier, "keyid:always")) < 0 ||
	    (r = add_ext(x, ca, NID_subject_alt_name, san)) < 0)
		return r;
	if (!X509_sign(x, cakey, NULL))
		return -EINVAL;
	r = write_pem(key_path, 0600, key, NULL);
	if (r < 0)
		return r;
	r = write_pem(cert_path, 0644, NULL, x);
	if (r < 0)
		unlink(key_path);
	return r;
}

int cert_load(const char *path, X509 **ret)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	*ret = PEM_read_X509(f, NULL, NULL, NULL);
	return *ret ? 0 : -EBADMSG;
}

/* Parse a decimal nonzero u64 that is the whole string. */
static int parse_id(const char *s, size_t len, uint64_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || len > 20 || s[0] == '0')
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*ret = v;
	return 0;
}

int cert_identity(X509 *x, struct cert_id *ret)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	struct cert_id id = { 0 };
	int nnode = 0, nrole = 0, bad = 0;

	if (!names)
		return -ENOENT;
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const char *s;
		size_t len;

		if (g->type != GEN_URI)
			continue;
		s = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		len = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
		if (len > strlen(URI_NODE) && strncmp(s, URI_NODE, strlen(URI_NODE)) == 0) {
			nnode++;
			if (parse_id(s + strlen(URI_NODE), len - strlen(URI_NODE), &id.node_id) < 0)
				bad++;
		} else if (len > strlen(URI_ROLE) && strncmp(s, URI_ROLE, strlen(URI_ROLE)) == 0) {
			char role[32];
			size_t rl = len - strlen(URI_ROLE);

			nrole++;
			if (rl >= sizeof(role)) {
				bad++;
				continue;
			}
			memcpy(role, s + strlen(URI_ROLE), rl);
			role[rl] = 0;
			if (strlen(role) != rl || cert_role_parse(role, &id.role) < 0)
				bad++;
		}
	}
	GENERAL_NAMES_free(names);
	if (nnode == 0 && nrole == 0)
		return -ENOENT;
	if (nnode != 1 || nrole != 1 || bad)
		return -EBADMSG;
	*ret = id;
	return 0;
}
