// SPDX-License-Identifier: MIT
/*
 * Unit test of src/common/auth.c: cluster key files (mode and size checks,
 * creation with mode 0600 and no overwrite) and the HELLO
 * challenge-response MACs. MACs are also recomputed here straight from the
 * definitions in proto.h with libcrypto, so the code and the spec cannot
 * drift apart. Grants: test_grant.c.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "macro.h"
#include "tap.h"
#include "wire.h"

static char dir[] = "/tmp/disagg-test-auth-XXXXXX";

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0)
		return -errno;
	return write(fd, data, len) == (ssize_t)len ? 0 : -EIO;
}

/* HMAC-SHA256 of label | a | b | c | d, independent of auth.c. */
static void ref_mac(const struct auth_key *k, const char *label, const void *a, size_t al,
		    const void *b, size_t bl, const void *c, size_t cl, const void *d, size_t dl,
		    uint8_t out[32])
{
	uint8_t msg[512];
	size_t off = 0;
	unsigned int olen = 0;

	memcpy(msg + off, label, strlen(label));
	off += strlen(label);
	memcpy(msg + off, a, al);
	off += al;
	if (b) {
		memcpy(msg + off, b, bl);
		off += bl;
	}
	if (c) {
		memcpy(msg + off, c, cl);
		off += cl;
	}
	if (d) {
		memcpy(msg + off, d, dl);
		off += dl;
	}
	HMAC(EVP_sha256(), k->bytes, sizeof(k->bytes), msg, off, out, &olen);
}

static void test_keys(void)
{
	char p[256], p2[256];
	struct auth_key k1, k2;
	struct stat st;
	uint8_t bytes[40] = { 1, 2, 3 };
	mode_t old;

	path_of(p, sizeof(p), "key");
	old = umask(0);
	is(auth_key_create(p), 0, "auth_key_create under umask 0");
	umask(old);
	ok(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600, "key file mode is 0600 (%o)",
	   (unsigned)(st.st_mode & 07777));
	is(st.st_size, PROTO_KEY_SIZE, "key file size");
	is(auth_key_create(p), -EEXIST, "auth_key_create refuses to overwrite");
	is(auth_key_load(p, &k1), 0, "load the new key");
	path_of(p2, sizeof(p2), "key2");
	is(auth_key_create(p2), 0, "second key");
	is(auth_key_load(p2, &k2), 0, "load it");
	ok(memcmp(&k1, &k2, sizeof(k1)) != 0, "two keys differ");

	memset(&k2, 0x11, sizeof(k2));
	chmod(p, 0644);
	is(auth_key_load(p, &k2), -EPERM, "mode 0644 refused");
	chmod(p, 0640);
	is(auth_key_load(p, &k2), -EPERM, "mode 0640 refused");
	chmod(p, 0604);
	is(auth_key_load(p, &k2), -EPERM, "mode 0604 refused");
	chmod(p, 0601);
	is(auth_key_load(p, &k2), -EPERM, "mode 0601 refused");
	ok(k2.bytes[0] == 0x11 && k2.bytes[31] == 0x11, "output untouched on failure");
	chmod(p, 0400);
	is(auth_key_load(p, &k2), 0, "mode 0400 accepted");
	ok(memcmp(&k1, &k2, sizeof(k1)) == 0, "same key read back");

	path_of(p, sizeof(p), "short");
	write_file(p, bytes, 31, 0600);
	is(auth_key_load(p, &k2), -EINVAL, "31-byte key refused");
	path_of(p, sizeof(p), "long");
	write_file(p, bytes, 33, 0600);
	is(auth_key_load(p, &k2), -EINVAL, "33-byte key refused");
	path_of(p, sizeof(p), "empty");
	write_file(p, bytes, 0, 0600);
	is(auth_key_load(p, &k2), -EINVAL, "empty key refused");
	path_of(p, sizeof(p), "missing");
	is(auth_key_load(p, &k2), -ENOENT, "missing key file");
	is(auth_key_load(dir, &k2), -EINVAL, "a directory is not a key");
	path_of(p, sizeof(p), "nodir/key");
	is(auth_key_create(p), -ENOENT, "create in a missing directory");
}

static void test_hello(const struct auth_key *key, const struct auth_key *other)
{
	uint8_t cn[PROTO_NONCE_SIZE], sn[PROTO_NONCE_SIZE], cn2[PROTO_NONCE_SIZE];
	uint8_t srv[32], cli[32], ref[32], m[32];
	uint64_t cid = 0x1111, sid = 0x2222, lc = htole64(cid), ls = htole64(sid);

	is(auth_random(cn, sizeof(cn)), 0, "client nonce");
	is(auth_random(sn, sizeof(sn)), 0, "server nonce");
	ok(memcmp(cn, sn, sizeof(cn)) != 0, "nonces differ");

	is(auth_hello_mac(key, true, cn, sn, cid, sid, srv), 0, "server proof");
	is(auth_hello_mac(key, false, cn, sn, cid, sid, cli), 0, "client proof");
	ok(!auth_mac_equal(srv, cli), "client and server proofs differ");
	ref_mac(key, "disagg-hello-srv", cn, 32, sn, 32, &ls, 8, &lc, 8, ref);
	ok(auth_mac_equal(srv, ref), "server proof matches proto.h");
	ref_mac(key, "disagg-hello-cli", sn, 32, cn, 32, &lc, 8, &ls, 8, ref);
	ok(auth_mac_equal(cli, ref), "client proof matches proto.h");
	auth_hello_mac(key, true, cn, sn, cid, sid, m);
	ok(auth_mac_equal(srv, m), "deterministic");

	memcpy(cn2, cn, sizeof(cn));
	cn2[31] ^= 1;
	auth_hello_mac(key, true, cn2, sn, cid, sid, m);
	ok(!auth_mac_equal(srv, m), "server proof depends on the client nonce");
	auth_hello_mac(key, false, cn2, sn, cid, sid, m);
	ok(!auth_mac_equal(cli, m), "client proof depends on the client nonce");
	auth_hello_mac(key, true, cn, cn2, cid, sid, m);
	ok(!auth_mac_equal(srv, m), "server proof depends on the server nonce");
	auth_hello_mac(key, false, cn, cn2, cid, sid, m);
	ok(!auth_mac_equal(cli, m), "client proof depends on the server nonce");
	auth_hello_mac(key, true, cn, sn, cid + 1, sid, m);
	ok(!auth_mac_equal(srv, m), "server proof depends on the client id");
	auth_hello_mac(key, false, cn, sn, cid + 1, sid, m);
	ok(!auth_mac_equal(cli, m), "client proof depends on the client id");
	auth_hello_mac(key, true, cn, sn, cid, sid + 1, m);
	ok(!auth_mac_equal(srv, m), "server proof depends on the server id");
	auth_hello_mac(key, false, cn, sn, cid, sid + 1, m);
	ok(!auth_mac_equal(cli, m), "client proof depends on the server id");
	auth_hello_mac(key, true, cn, sn, sid, cid, m);
	ok(!auth_mac_equal(srv, m), "swapping the ids changes the proof");
	auth_hello_mac(key, true, sn, cn, cid, sid, m);
	ok(!auth_mac_equal(srv, m), "swapping the nonces changes the proof");
	auth_hello_mac(key, false, sn, cn, sid, cid, m);
	ok(!auth_mac_equal(srv, m), "a client proof with roles swapped is not a server proof");
	auth_hello_mac(other, true, cn, sn, cid, sid, m);
	ok(!auth_mac_equal(srv, m), "proof depends on the key");
	memcpy(m, srv, 32);
	m[0] ^= 1;
	ok(!auth_mac_equal(srv, m) && auth_mac_equal(srv, srv), "auth_mac_equal");
}

int main(void)
{
	struct auth_key key, other;
	char p[256];

	if (!mkdtemp(dir)) {
		plan_skip_all("mkdtemp failed");
		return 0;
	}
	test_keys();
	path_of(p, sizeof(p), "key2");
	chmod(p, 0600);
	if (auth_key_load(p, &key) < 0 || auth_random(&other, sizeof(other)) < 0) {
		diag("cannot load the test key");
		memset(&key, 1, sizeof(key));
		memset(&other, 2, sizeof(other));
	}
	test_hello(&key, &other);

	{
		static const char *const names[] = { "key", "key2", "short", "long", "empty" };

		for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
			path_of(p, sizeof(p), names[i]);
			unlink(p);
		}
		rmdir(dir);
	}
	done_testing();
	return tap_exit();
}
