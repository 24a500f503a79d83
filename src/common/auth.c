// SPDX-License-Identifier: MIT
/*
 * Cluster key handling, HELLO MACs and grants. See auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "macro.h"
#include "wire.h"

int auth_key_load(const char *path, struct auth_key *ret)
{
	_cleanup_close_ int fd = -1;
	struct auth_key key;
	struct stat st;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return -EPERM;
	if (st.st_size != PROTO_KEY_SIZE)
		return -EINVAL;
	n = read(fd, key.bytes, sizeof(key.bytes));
	if (n < 0)
		return -errno;
	if (n != PROTO_KEY_SIZE)
		return -EINVAL;
	*ret = key;
	OPENSSL_cleanse(&key, sizeof(key));
	return 0;
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

/* MAC of a grant whose fields are in host byte order. */
static int grant_mac(const struct auth_key *key, const struct proto_grant *g,
		     uint8_t ret[PROTO_MAC_SIZE])
{
	static const char label[] = "disagg-grant";
	struct proto_grant le = *g;
	const void *parts[2] = { label, &le };
	size_t lens[2] = { sizeof(label) - 1, offsetof(struct proto_grant, mac) };

	wire_grant_swap(&le);
	return hmac_parts(key, parts, lens, 2, ret);
}

int grant_mint(const struct auth_key *key, uint64_t memnode_id, uint64_t holder_id,
	       uint32_t section, uint32_t generation, uint32_t rights, uint64_t expiry,
	       struct proto_grant *ret)
{
	return grant_mint_epoch(key, memnode_id, holder_id, section, generation, 0, rights,
				expiry, ret);
}

int grant_mint_epoch(const struct auth_key *key, uint64_t memnode_id, uint64_t holder_id,
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
	};
	int r;

	if (rights == 0 || (rights & ~(uint32_t)PROTO_R_ALL))
		return -EINVAL;
	r = grant_mac(key, &g, g.mac);
	if (r < 0)
		return r;
	*ret = g;
	return 0;
}

int grant_verify(const struct auth_key *key, const struct proto_grant *g,
		 uint64_t memnode_id, uint64_t holder_id, uint32_t rights, uint64_t now)
{
	uint8_t mac[PROTO_MAC_SIZE];
	int r;

	r = grant_mac(key, g, mac);
	if (r < 0)
		return r;
	if (!auth_mac_equal(mac, g->mac) || (g->rights & ~(uint32_t)PROTO_R_ALL))
		return -EKEYREJECTED;
	if (g->memnode_id != memnode_id || g->holder_id != holder_id)
		return -EKEYREJECTED;
	if (g->expiry != 0 && g->expiry <= now)
		return -EKEYEXPIRED;
	if ((g->rights & rights) != rights)
		return -EPERM;
	return 0;
}

void grant_to_hex(const struct proto_grant *g, char ret[GRANT_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	struct proto_grant le = *g;
	const uint8_t *p = (const uint8_t *)&le;

	wire_grant_swap(&le);
	for (size_t i = 0; i < sizeof(le); i++) {
		ret[2 * i] = digits[p[i] >> 4];
		ret[2 * i + 1] = digits[p[i] & 15];
	}
	ret[GRANT_HEX_LEN] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int grant_from_hex(const char *hex, struct proto_grant *ret)
{
	struct proto_grant g;
	uint8_t *p = (uint8_t *)&g;

	if (!hex || strlen(hex) != GRANT_HEX_LEN)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(g); i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		p[i] = (uint8_t)(hi << 4 | lo);
	}
	wire_grant_swap(&g);
	*ret = g;
	return 0;
}
