/* SPDX-License-Identifier: MIT */
/*
 * Cluster key, HELLO challenge-response MACs and section grants
 * (HMAC-SHA256 through libcrypto).
 *
 * The cluster key is a file of exactly PROTO_KEY_SIZE random bytes, mode
 * 0600 or stricter: auth_key_load() refuses a key that group or others can
 * read. Every node of a cluster holds the same key.
 */
#ifndef DISAGG_AUTH_H
#define DISAGG_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disagg/proto.h"

struct auth_key {
	uint8_t bytes[PROTO_KEY_SIZE];
};

/* Load a key file. -EPERM if its mode lets others read it, -EINVAL if its size is wrong. */
int auth_key_load(const char *path, struct auth_key *ret);
/* What to tell a user about a key that auth_key_load refused with r: " (hint)" or "". */
const char *auth_key_hint(int r);
/* Create a new key file (mode 0600, fails with -EEXIST if it exists). */
int auth_key_create(const char *path);
/* Fill buf with cryptographically random bytes. */
int auth_random(void *buf, size_t len);
/* Constant-time comparison of two MACs. */
bool auth_mac_equal(const uint8_t a[PROTO_MAC_SIZE], const uint8_t b[PROTO_MAC_SIZE]);

/*
 * HELLO MACs (see proto.h). `server` selects the server's proof
 * ("disagg-hello-srv", nonces client|server) or the client's
 * ("disagg-hello-cli", nonces server|client). Both sides compute both.
 */
int auth_hello_mac(const struct auth_key *key, bool server,
		   const uint8_t client_nonce[PROTO_NONCE_SIZE],
		   const uint8_t server_nonce[PROTO_NONCE_SIZE], uint64_t client_id,
		   uint64_t server_id, uint8_t ret_mac[PROTO_MAC_SIZE]);

/* Mint a grant (all fields in host byte order, MAC over the LE encoding), of epoch 0. */
int grant_mint(const struct auth_key *key, uint64_t memnode_id, uint64_t holder_id,
	       uint32_t section, uint32_t generation, uint32_t rights, uint64_t expiry,
	       struct proto_grant *ret);
/* The same for ownership epoch `epoch` (proto.h: writes of older epochs are refused). */
int grant_mint_epoch(const struct auth_key *key, uint64_t memnode_id, uint64_t holder_id,
		     uint32_t section, uint32_t generation, uint32_t epoch, uint32_t rights,
		     uint64_t expiry, struct proto_grant *ret);

/*
 * Check a grant presented by `holder_id` to memory node `memnode_id` for an
 * access needing `rights`, at time `now` (seconds since the epoch).
 * -EKEYREJECTED: bad MAC, other memnode, other holder, unknown rights bits;
 * -EKEYEXPIRED: expired; -EPERM: rights missing.
 * The generation and the epoch are the caller's to compare with the section's.
 */
int grant_verify(const struct auth_key *key, const struct proto_grant *g,
		 uint64_t memnode_id, uint64_t holder_id, uint32_t rights, uint64_t now);

/* Grants as text: 144 lowercase hex digits of the wire encoding. */
#define GRANT_HEX_LEN (2 * sizeof(struct proto_grant))
void grant_to_hex(const struct proto_grant *g, char ret[GRANT_HEX_LEN + 1]);
int grant_from_hex(const char *hex, struct proto_grant *ret);

#endif /* DISAGG_AUTH_H */
