/* SPDX-License-Identifier: MIT */
/*
 * The grant key and section grants (Ed25519 through libcrypto).
 *
 * Only the orchestrator holds the private half of the grant key: it signs
 * grants, and it proves at AUTH that a connection is the orchestrator's
 * (the capability for SECTION_ALLOC, SECTION_LIST, COPY, and FREE without
 * a grant). Memory nodes hold the public half and verify. Compute nodes
 * hold neither: they present the grants the orchestrator gave them.
 *
 * Key files are PEM: the private key as PKCS#8 ("PRIVATE KEY", mode 0600
 * or stricter, refused otherwise), the public key as SubjectPublicKeyInfo
 * ("PUBLIC KEY"). grant_key_load() accepts either where only the public
 * half is needed.
 */
#ifndef DISAGG_GRANT_H
#define DISAGG_GRANT_H

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "disagg/proto.h"

struct grant_key;

/*
 * Load a grant key file. With need_private, the file must hold the
 * private key (-ENOKEY if it holds only the public one). -EPERM: a private
 * key file that group or others may read; -EINVAL: not an Ed25519 PEM key.
 */
int grant_key_load(const char *path, bool need_private, struct grant_key **ret);
/* What to tell a user about a key file that grant_key_load refused with r. */
const char *grant_key_hint(int r);
/* A new key pair in memory only (tests and fuzzers). */
int grant_key_generate(struct grant_key **ret);
/* A new key pair: the private key at priv_path (0600), the public at pub_path (0644). -EEXIST. */
int grant_key_create(const char *priv_path, const char *pub_path);
void grant_key_free(struct grant_key *k);              /* accepts NULL */
DEFINE_CLEANUP_FUNC(struct grant_key, grant_key_free);
#define _cleanup_grant_key_ _cleanup_(grant_key_freep)
bool grant_key_private(const struct grant_key *k);

/*
 * Mint a grant for ownership epoch `epoch` (fields in host byte order; the
 * signature covers "disagg-grant" | the first 40 bytes of the LE encoding).
 * -ENOKEY without the private key, -EINVAL for bad rights.
 */
int grant_mint(const struct grant_key *k, uint64_t memnode_id, uint64_t holder_id,
	       uint32_t section, uint32_t generation, uint32_t epoch, uint32_t rights,
	       uint64_t expiry, struct proto_grant *ret);

/*
 * Check a grant presented by `holder_id` to memory node `memnode_id` for an
 * access needing `rights`, at time `now` (seconds since the epoch).
 * -EKEYREJECTED: bad signature, other memnode, other holder, unknown rights
 * bits; -EKEYEXPIRED: expired; -EPERM: rights missing. The generation and
 * the epoch are the caller's to compare with the section's.
 */
int grant_verify(const struct grant_key *k, const struct proto_grant *g, uint64_t memnode_id,
		 uint64_t holder_id, uint32_t rights, uint64_t now);
/* grant_verify without the signature: for a grant whose signature verified before. */
int grant_check_fields(const struct proto_grant *g, uint64_t memnode_id, uint64_t holder_id,
		       uint32_t rights, uint64_t now);

/*
 * The orchestrator's proof at AUTH (proto.h, struct proto_auth_orch_req):
 * a signature over "disagg-orch" | server_nonce | client_nonce |
 * le64(client id) | le64(server id).
 */
int grant_orch_sign(const struct grant_key *k, const uint8_t client_nonce[PROTO_NONCE_SIZE],
		    const uint8_t server_nonce[PROTO_NONCE_SIZE], uint64_t client_id,
		    uint64_t server_id, uint8_t ret_sig[PROTO_SIG_SIZE]);
/* 0 if sig is the orchestrator's proof for this handshake, else -EKEYREJECTED. */
int grant_orch_verify(const struct grant_key *k, const uint8_t client_nonce[PROTO_NONCE_SIZE],
		      const uint8_t server_nonce[PROTO_NONCE_SIZE], uint64_t client_id,
		      uint64_t server_id, const uint8_t sig[PROTO_SIG_SIZE]);

/* Grants as text: the lowercase hex digits of the wire encoding. */
#define GRANT_HEX_LEN (2 * sizeof(struct proto_grant))
void grant_to_hex(const struct proto_grant *g, char ret[GRANT_HEX_LEN + 1]);
int grant_from_hex(const char *hex, struct proto_grant *ret);

#endif /* DISAGG_GRANT_H */
