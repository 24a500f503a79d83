/* SPDX-License-Identifier: MIT */
/*
 * Cluster key and HELLO challenge-response MACs (HMAC-SHA256 through
 * libcrypto). Section grants are signed with the orchestrator's grant key
 * instead (grant.h).
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

#endif /* DISAGG_AUTH_H */
