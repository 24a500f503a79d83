// SPDX-License-Identifier: MIT
/*
 * The grant key (Ed25519), section grants and the orchestrator's proof at
 * AUTH. See grant.h.
 */
#include "grant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "hex.h"
#include "wire.h"

struct grant_key {
	EVP_PKEY *pkey;
	bool priv;
};

void grant_key_free(struct grant_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

bool grant_key_private(const struct grant_key *k)
{
	return k && k->priv;
}

int grant_key_load(const char *path, bool need_private, struct grant_key **ret)
{
	_cleanup_close_ int fd = -1;
	_cleanup_fclose_ FILE *f = NULL;
	struct grant_key *k;
	EVP_PKEY *pkey;
	struct stat st;
	bool priv = true;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size > 4096)
		return -EINVAL;
	f = fdopen(fd, "r");
	if (!f)
		return -errno;
	TAKE_FD(fd);
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	if (pkey && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		EVP_PKEY_free(pkey);
		return -EPERM;
	}
	if (!pkey) {
		ERR_clear_error();
		priv = false;
		rewind(f);
		pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	}
	if (!pkey) {
		ERR_clear_error();
		return -EINVAL;
	}
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		return -EINVAL;
	}
	if (need_private && !priv) {
		EVP_PKEY_free(pkey);
		return -ENOKEY;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		EVP_PKEY_free(pkey);
		return -ENOMEM;
	}
	k->pkey = pkey;
	k->priv = priv;
	*ret = k;
	return 0;
}

const char *grant_key_hint(int r)
{
	if (r == -EPERM)
		return " (a private key that group or others may access; chmod 600 it)";
	if (r == -EINVAL)
		return " (not an Ed25519 key in PEM: make one with disagg-grant --new-grant-key)";
	if (r == -ENOKEY)
		return " (this is the public half; the private key is needed here)";
	return "";
}

/* Write a PEM file with `mode` (created, never replaced): the private or the public half. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *pkey, bool priv)
{
	_cleanup_close_ int fd = -1;
	FILE *f;
	int ok;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, mode);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0)
		goto fail;
	f = fdopen(fd, "w");
	if (!f)
		goto fail;
	TAKE_FD(fd);
	ok = priv ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL)
		  : PEM_write_PUBKEY(f, pkey);
	if (!ok || fflush(f) != 0 || fsync(fileno(f)) < 0) {
		fclose(f);
		unlink(path);
		return ok ? -errno : -EIO;
	}
	if (fclose(f) != 0) {
		unlink(path);
		return -errno;
	}
	return 0;
fail:
	unlink(path);
	return -errno;
}

int grant_key_generate(struct grant_key **ret)
{
	struct grant_key *k = calloc(1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!k->pkey) {
		free(k);
		return -EIO;
	}
	k->priv = true;
	*ret = k;
	return 0;
}

int grant_key_create(const char *priv_path, const char *pub_path)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	int r;

	if (!pkey)
		return -EIO;
	r = write_pem(priv_path, 0600, pkey, true);
	if (r == 0 && pub_path) {
		r = write_pem(pub_path, 0644, pkey, false);
		if (r < 0)
			unlink(priv_path);
	}
	EVP_PKEY_free(pkey);
	return r;
}

/* The message of a signature: n parts end to end in msg (256 bytes). -E2BIG. */
static int concat_parts(const void *const *parts, const size_t *lens, size_t n,
			uint8_t msg[256], size_t *ret_len)
{
	size_t off = 0;

	for (size_t i = 0; i < n; i++) {
		if (lens[i] > 256 - off)
			return -E2BIG;
		memcpy(msg + off, parts[i], lens[i]);
		off += lens[i];
	}
	*ret_len = off;
	return 0;
}

/* Ed25519 over the concatenation of n parts. */
static int sign_parts(const struct grant_key *k, const void *const *parts, const size_t *lens,
		      size_t n, uint8_t ret[PROTO_SIG_SIZE])
{
	uint8_t msg[256];
	size_t len, siglen = PROTO_SIG_SIZE;
	EVP_MD_CTX *ctx;
	int ok, r;

	if (!k || !k->priv)
		return -ENOKEY;
	r = concat_parts(parts, lens, n, msg, &len);
	if (r < 0)
		return r;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestSign(ctx, ret, &siglen, msg, len) == 1 && siglen == PROTO_SIG_SIZE;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

static int verify_parts(const struct grant_key *k, const void *const *parts,
			const size_t *lens, size_t n, const uint8_t sig[PROTO_SIG_SIZE])
{
	uint8_t msg[256];
	size_t len;
	EVP_MD_CTX *ctx;
	int ok, r;

	if (!k)
		return -ENOKEY;
	r = concat_parts(parts, lens, n, msg, &len);
	if (r < 0)
		return r;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestVerify(ctx, sig, PROTO_SIG_SIZE, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EKEYREJECTED;
}

static const char grant_label[] = "disagg-grant";

int grant_mint(const struct grant_key *k, uint64_t memnode_id, uint64_t holder_id,
	       uint32_t section, uint32_t generation, uint32_t epoch, uint32_t rights,
	       uint64_t expiry, struct proto_grant *ret)
{
	struct proto_grant g = {
		.memnode_id = memnode_id,
		.holder_id = holder_id,
		.section = section,
		.generation = generation,
		.rights = rights,
		.epoch = epoch,
		.expiry = expiry,
	}, le;
	const void *parts[2] = { grant_label, &le };
	size_t lens[2] = { sizeof(grant_label) - 1, offsetof(struct proto_grant, sig) };
	int r;

	if (rights == 0 || (rights & ~(uint32_t)PROTO_R_ALL))
		return -EINVAL;
	le = g;
	wire_grant_swap(&le);
	r = sign_parts(k, parts, lens, 2, g.sig);
	if (r < 0)
		return r;
	*ret = g;
	return 0;
}

int grant_verify(const struct grant_key *k, const struct proto_grant *g, uint64_t memnode_id,
		 uint64_t holder_id, uint32_t rights, uint64_t now)
{
	struct proto_grant le = *g;
	const void *parts[2] = { grant_label, &le };
	size_t lens[2] = { sizeof(grant_label) - 1, offsetof(struct proto_grant, sig) };

	wire_grant_swap(&le);
	if (verify_parts(k, parts, lens, 2, g->sig) < 0)
		return -EKEYREJECTED;
	return grant_check_fields(g, memnode_id, holder_id, rights, now);
}

int grant_check_fields(const struct proto_grant *g, uint64_t memnode_id, uint64_t holder_id,
		       uint32_t rights, uint64_t now)
{
	if (g->rights & ~(uint32_t)PROTO_R_ALL)
		return -EKEYREJECTED;
	if (g->memnode_id != memnode_id || g->holder_id != holder_id)
		return -EKEYREJECTED;
	if (g->expiry != 0 && g->expiry <= now)
		return -EKEYEXPIRED;
	if ((g->rights & rights) != rights)
		return -EPERM;
	return 0;
}

/* The parts of the orchestrator's AUTH proof; cid/sid are filled in LE. */
static void orch_parts(const uint8_t *client_nonce, const uint8_t *server_nonce,
		       const uint64_t *cid, const uint64_t *sid, const void *parts[5],
		       size_t lens[5])
{
	static const char label[] = "disagg-orch";

	parts[0] = label;
	lens[0] = sizeof(label) - 1;
	parts[1] = server_nonce;
	lens[1] = PROTO_NONCE_SIZE;
	parts[2] = client_nonce;
	lens[2] = PROTO_NONCE_SIZE;
	parts[3] = cid;
	lens[3] = 8;
	parts[4] = sid;
	lens[4] = 8;
}

int grant_orch_sign(const struct grant_key *k, const uint8_t client_nonce[PROTO_NONCE_SIZE],
		    const uint8_t server_nonce[PROTO_NONCE_SIZE], uint64_t client_id,
		    uint64_t server_id, uint8_t ret_sig[PROTO_SIG_SIZE])
{
	uint64_t cid = htole64(client_id), sid = htole64(server_id);
	const void *parts[5];
	size_t lens[5];

	orch_parts(client_nonce, server_nonce, &cid, &sid, parts, lens);
	return sign_parts(k, parts, lens, 5, ret_sig);
}

int grant_orch_verify(const struct grant_key *k, const uint8_t client_nonce[PROTO_NONCE_SIZE],
		      const uint8_t server_nonce[PROTO_NONCE_SIZE], uint64_t client_id,
		      uint64_t server_id, const uint8_t sig[PROTO_SIG_SIZE])
{
	uint64_t cid = htole64(client_id), sid = htole64(server_id);
	const void *parts[5];
	size_t lens[5];

	orch_parts(client_nonce, server_nonce, &cid, &sid, parts, lens);
	return verify_parts(k, parts, lens, 5, sig) < 0 ? -EKEYREJECTED : 0;
}

void grant_to_hex(const struct proto_grant *g, char ret[GRANT_HEX_LEN + 1])
{
	struct proto_grant le = *g;

	wire_grant_swap(&le);
	hex_encode((const uint8_t *)&le, sizeof(le), ret);
}

int grant_from_hex(const char *hex, struct proto_grant *ret)
{
	struct proto_grant g;

	if (!hex || strlen(hex) != GRANT_HEX_LEN || hex_decode(hex, (uint8_t *)&g, sizeof(g)) < 0)
		return -EINVAL;
	wire_grant_swap(&g);
	*ret = g;
	return 0;
}
