// SPDX-License-Identifier: MIT
/*
 * Cluster key handling and HELLO MACs. See auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "macro.h"
#include "privfile.h"
#include "wire.h"

int auth_key_load(const char *path, struct auth_key *ret)
{
	char *buf = NULL;
	size_t n = 0;
	int r = privfile_read(path, PROTO_KEY_SIZE, &buf, &n);

	if (r == -EFBIG || (r == 0 && n != PROTO_KEY_SIZE))
		r = -EINVAL;
	if (r == 0)
		memcpy(ret->bytes, buf, PROTO_KEY_SIZE);
	if (buf) {
		OPENSSL_cleanse(buf, n);
		free(buf);
	}
	return r;
}

const char *auth_key_hint(int r)
{
	if (r == -EPERM)
		return " (group or others may access it; chmod 600 it)";
	if (r == -EINVAL)
		return " (a key is a regular file of exactly 32 bytes)";
	return "";
}

int auth_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int auth_key_create(const char *path)
{
	_cleanup_close_ int fd = -1;
	uint8_t key[PROTO_KEY_SIZE];
	int r;

	r = auth_random(key, sizeof(key));
	if (r < 0)
		return r;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return -errno;
	/* Enforce the mode even under a permissive umask. */
	errno = 0; /* a short write leaves errno alone */
	if (fchmod(fd, 0600) < 0 || write(fd, key, sizeof(key)) != (ssize_t)sizeof(key)) {
		r = errno ? -errno : -EIO;
		unlink(path);
		OPENSSL_cleanse(key, sizeof(key));
		return r;
	}
	OPENSSL_cleanse(key, sizeof(key));
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

bool auth_mac_equal(const uint8_t a[PROTO_MAC_SIZE], const uint8_t b[PROTO_MAC_SIZE])
{
	return CRYPTO_memcmp(a, b, PROTO_MAC_SIZE) == 0;
}

/* HMAC-SHA256 over the concatenation of `n` (pointer, length) parts. */
static int hmac_parts(const struct auth_key *key, const void *const *parts,
		      const size_t *lens, size_t n, uint8_t ret[PROTO_MAC_SIZE])
{
	uint8_t msg[256];
	unsigned int outlen = 0;
	size_t off = 0;

	for (size_t i = 0; i < n; i++) {
		if (lens[i] > sizeof(msg) - off)
			return -E2BIG;
		memcpy(msg + off, parts[i], lens[i]);
		off += lens[i];
	}
	if (!HMAC(EVP_sha256(), key->bytes, sizeof(key->bytes), msg, off, ret, &outlen) ||
	    outlen != PROTO_MAC_SIZE)
		return -EIO;
	return 0;
}

int auth_hello_mac(const struct auth_key *key, bool server,
		   const uint8_t client_nonce[PROTO_NONCE_SIZE],
		   const uint8_t server_nonce[PROTO_NONCE_SIZE], uint64_t client_id,
		   uint64_t server_id, uint8_t ret_mac[PROTO_MAC_SIZE])
{
	static const char srv_label[] = "disagg-hello-srv";
	static const char cli_label[] = "disagg-hello-cli";
	uint64_t cid = htole64(client_id), sid = htole64(server_id);
	const void *parts[5];
	size_t lens[5] = { 16, PROTO_NONCE_SIZE, PROTO_NONCE_SIZE, 8, 8 };

	if (server) {
		parts[0] = srv_label;
		parts[1] = client_nonce;
		parts[2] = server_nonce;
		parts[3] = &sid;
		parts[4] = &cid;
	} else {
		parts[0] = cli_label;
		parts[1] = server_nonce;
		parts[2] = client_nonce;
		parts[3] = &cid;
		parts[4] = &sid;
	}
	return hmac_parts(key, parts, lens, ARRAY_SIZE(parts), ret_mac);
}
