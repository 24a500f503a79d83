// SPDX-License-Identifier: MIT
/*
 * Unit test of src/common/grant.c: grant key files (the private half 0600,
 * refused when others may read it; the public half alone cannot mint),
 * grants (mint, verify, every way a grant can be wrong: forged, signed by
 * another key, for another memory node, holder or section, expired, short
 * of rights; hex form) and the orchestrator's AUTH proof (bound to both
 * nonces and both ids: a replayed or reflected proof fails). Signatures
 * are also checked here straight from the definition in proto.h with
 * libcrypto and the public key file, so the code and the spec cannot drift
 * apart.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth.h"
#include "grant.h"
#include "macro.h"
#include "tap.h"
#include "wire.h"

static char dir[] = "/tmp/disagg-test-grant-XXXXXX";

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* Verify sig over "disagg-grant" | the first 40 LE bytes of g, with the public key file. */
static bool ref_verify(const char *pubpath, const struct proto_grant *g)
{
	uint8_t msg[12 + 40];
	struct proto_grant le = *g;
	EVP_PKEY *pk = NULL;
	EVP_MD_CTX *ctx;
	FILE *f = fopen(pubpath, "r");
	bool ok = false;

	if (!f)
		return false;
	pk = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (!pk)
		return false;
	wire_grant_swap(&le);
	memcpy(msg, "disagg-grant", 12);
	memcpy(msg + 12, &le, 40);
	ctx = EVP_MD_CTX_new();
	ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
	     EVP_DigestVerify(ctx, g->sig, PROTO_SIG_SIZE, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return ok;
}

static void test_keys(char *priv, char *pub, char *priv2, char *pub2)
{
	struct grant_key *k = NULL, *p = NULL;
	struct proto_grant g;
	struct stat st;
	mode_t old;

	path_of(priv, 256, "grant.key");
	path_of(pub, 256, "grant.pub");
	old = umask(0);
	is(grant_key_create(priv, pub), 0, "grant_key_create under umask 0");
	umask(old);
	ok(stat(priv, &st) == 0 && (st.st_mode & 07777) == 0600, "private key mode 0600 (%o)",
	   (unsigned)(st.st_mode & 07777));
	ok(stat(pub, &st) == 0 && (st.st_mode & 07777) == 0644, "public key mode 0644 (%o)",
	   (unsigned)(st.st_mode & 07777));
	is(grant_key_create(priv, NULL), -EEXIST, "no overwrite");
	is(grant_key_load(priv, true, &k), 0, "load the private key");
	ok(grant_key_private(k), "  it can mint");
	is(grant_key_load(pub, false, &p), 0, "load the public key");
	ok(!grant_key_private(p), "  it cannot mint");
	is(grant_mint(p, 1, 2, 3, 4, 0, PROTO_R_READ, 0, &g), -ENOKEY,
	   "minting with the public half: -ENOKEY");
	grant_key_free(p);
	p = NULL;
	is(grant_key_load(pub, true, &p), -ENOKEY, "the public half where the private is needed");
	chmod(priv, 0640);
	is(grant_key_load(priv, true, &p), -EPERM, "a private key group may read is refused");
	chmod(priv, 0604);
	is(grant_key_load(priv, false, &p), -EPERM, "  also where only the public half is needed");
	chmod(priv, 0600);
	ok(p == NULL, "output untouched on failure");
	{
		char junk[256];
		FILE *f;

		path_of(junk, sizeof(junk), "junk");
		f = fopen(junk, "w");
		fputs("not a key\n", f);
		fclose(f);
		is(grant_key_load(junk, false, &p), -EINVAL, "a file that is no PEM key");
		unlink(junk);
		path_of(junk, sizeof(junk), "missing");
		is(grant_key_load(junk, false, &p), -ENOENT, "a missing file");
		is(grant_key_load(dir, false, &p), -EINVAL, "a directory");
	}
	path_of(priv2, 256, "other.key");
	path_of(pub2, 256, "other.pub");
	is(grant_key_create(priv2, pub2), 0, "a second key pair");
	grant_key_free(k);
}

static void test_grants(const char *pubpath, const struct grant_key *key,
			const struct grant_key *pub, const struct grant_key *other)
{
	const uint64_t now = (uint64_t)time(NULL);
	struct proto_grant g, t, back;
	char hex[GRANT_HEX_LEN + 1], bad[GRANT_HEX_LEN + 2];
	bool all;

	is(grant_mint(key, 10, 20, 5, 6, 0, PROTO_R_READ | PROTO_R_WRITE, now + 100, &g), 0, "mint");
	ok(g.memnode_id == 10 && g.holder_id == 20 && g.section == 5 && g.generation == 6 &&
	   g.rights == (PROTO_R_READ | PROTO_R_WRITE) && g.expiry == now + 100 && g.epoch == 0,
	   "fields as given");
	ok(ref_verify(pubpath, &g), "the signature matches the proto.h definition");
	is(grant_mint(key, 10, 20, 5, 6, 7, PROTO_R_READ, 0, &t), 0, "mint with an epoch");
	ok(t.epoch == 7, "  epoch as given");
	is(grant_verify(pub, &t, 10, 20, PROTO_R_READ, now), 0,
	   "  verifies with the public half (the epoch is the node's to judge)");
	t.epoch = 8;
	is(grant_verify(pub, &t, 10, 20, PROTO_R_READ, now), -EKEYREJECTED, "  a raised epoch does not");
	is(grant_verify(pub, &g, 10, 20, PROTO_R_READ, now), 0, "verify read");
	is(grant_verify(pub, &g, 10, 20, PROTO_R_WRITE, now), 0, "verify write");
	is(grant_verify(key, &g, 10, 20, PROTO_R_READ | PROTO_R_WRITE, now), 0,
	   "verify with the private key file too");
	is(grant_verify(other, &g, 10, 20, PROTO_R_READ, now), -EKEYREJECTED,
	   "a memory node with another grant key");
	is(grant_verify(pub, &g, 11, 20, PROTO_R_READ, now), -EKEYREJECTED, "wrong memnode");
	is(grant_verify(pub, &g, 10, 21, PROTO_R_READ, now), -EKEYREJECTED, "wrong holder");
	t = g;
	t.section = 9;
	is(grant_verify(pub, &t, 10, 20, PROTO_R_READ, now), -EKEYREJECTED,
	   "a grant rewritten for another section");
	is(grant_mint(other, 10, 20, 5, 6, 0, PROTO_R_READ, 0, &t), 0,
	   "a grant minted with another key (a compute node's own)");
	is(grant_verify(pub, &t, 10, 20, PROTO_R_READ, now), -EKEYREJECTED, "  is forged");
	t = g;
	memset(t.sig, 0, sizeof(t.sig));
	is(grant_verify(pub, &t, 10, 20, PROTO_R_READ, now), -EKEYREJECTED, "a zero signature");

	all = true;
	for (size_t i = 0; i < sizeof(g); i++) {
		t = g;
		((uint8_t *)&t)[i] ^= 0x01;
		if (grant_verify(pub, &t, t.memnode_id, t.holder_id, PROTO_R_READ, now) !=
		    -EKEYREJECTED) {
			diag("byte %zu flipped still verifies", i);
			all = false;
		}
	}
	ok(all, "a flipped bit in any of the %zu bytes is rejected", sizeof(g));

	/* Expiry. */
	is(grant_mint(key, 10, 20, 5, 6, 0, PROTO_R_READ, now - 1, &t), 0, "mint expired");
	is(grant_verify(pub, &t, 10, 20, PROTO_R_READ, now), -EKEYEXPIRED, "expired");
	is(grant_verify(pub, &t, 10, 20, PROTO_R_READ, now - 2), 0, "valid before its expiry");
	is(grant_mint(key, 10, 20, 5, 6, 0, PROTO_R_READ, now, &t), 0, "mint expiring now");
	is(grant_verify(pub, &t, 10, 20, PROTO_R_READ, now), -EKEYEXPIRED, "expiry == now is expired");
	is(grant_mint(key, 10, 20, 5, 6, 0, PROTO_R_READ, 0, &t), 0, "mint expiry 0");
	is(grant_verify(pub, &t, 10, 20, PROTO_R_READ, UINT64_MAX), 0, "expiry 0 never expires");

	/* Rights. */
	is(grant_verify(pub, &t, 10, 20, PROTO_R_WRITE, now), -EPERM, "read-only grant used to write");
	is(grant_verify(pub, &t, 10, 20, PROTO_R_FREE, now), -EPERM, "read-only grant used to free");
	is(grant_mint(key, 10, 20, 5, 6, 0, PROTO_R_FREE, 0, &t), 0, "mint free-only");
	is(grant_verify(pub, &t, 10, 20, PROTO_R_FREE, now), 0, "  frees");
	is(grant_verify(pub, &t, 10, 20, PROTO_R_READ, now), -EPERM, "  does not read");
	is(grant_mint(key, 10, 20, 5, 6, 0, 0, 0, &t), -EINVAL, "mint with no rights refused");
	is(grant_mint(key, 10, 20, 5, 6, 0, PROTO_R_ALL | 8, 0, &t), -EINVAL,
	   "mint with unknown rights refused");

	/* Hex. */
	grant_to_hex(&g, hex);
	is(strlen(hex), 2 * sizeof(struct proto_grant), "hex length");
	ok(strspn(hex, "0123456789abcdef") == GRANT_HEX_LEN, "lowercase hex digits");
	ok(strncmp(hex, "0a00000000000000" "1400000000000000" "05000000", 40) == 0,
	   "hex is the little-endian wire encoding");
	memset(&back, 0, sizeof(back));
	is(grant_from_hex(hex, &back), 0, "hex round trip");
	ok(memcmp(&g, &back, sizeof(g)) == 0, "  same grant");
	is(grant_verify(pub, &back, 10, 20, PROTO_R_READ, now), 0, "  still verifies");
	memset(&back, 0x33, sizeof(back));
	t = back;
	strcpy(bad, hex);
	bad[GRANT_HEX_LEN - 1] = '\0';
	is(grant_from_hex(bad, &back), -EINVAL, "one digit short");
	strcpy(bad, hex);
	strcat(bad, "0");
	is(grant_from_hex(bad, &back), -EINVAL, "one digit too many");
	strcpy(bad, hex);
	bad[77] = 'g';
	is(grant_from_hex(bad, &back), -EINVAL, "non-hex digit");
	is(grant_from_hex(NULL, &back), -EINVAL, "NULL");
	ok(memcmp(&t, &back, sizeof(t)) == 0, "output untouched on failure");
}

static void test_orch_proof(const struct grant_key *key, const struct grant_key *pub,
			    const struct grant_key *other)
{
	uint8_t cn[PROTO_NONCE_SIZE], sn[PROTO_NONCE_SIZE], sig[PROTO_SIG_SIZE], s2[PROTO_SIG_SIZE];
	uint64_t cid = 1, sid = 77;

	auth_random(cn, sizeof(cn));
	auth_random(sn, sizeof(sn));
	is(grant_orch_sign(key, cn, sn, cid, sid, sig), 0, "the orchestrator signs its proof");
	is(grant_orch_sign(pub, cn, sn, cid, sid, s2), -ENOKEY, "the public half cannot");
	is(grant_orch_verify(pub, cn, sn, cid, sid, sig), 0, "the memory node verifies it");
	is(grant_orch_verify(pub, sn, cn, cid, sid, sig), -EKEYREJECTED,
	   "reflected (the nonces swapped)");
	is(grant_orch_verify(pub, cn, sn, sid, cid, sig), -EKEYREJECTED, "the ids swapped");
	sn[0] ^= 1;
	is(grant_orch_verify(pub, cn, sn, cid, sid, sig), -EKEYREJECTED,
	   "replayed to a new server challenge");
	sn[0] ^= 1;
	is(grant_orch_verify(pub, cn, sn, cid, sid + 1, sig), -EKEYREJECTED,
	   "replayed to another memory node");
	is(grant_orch_verify(pub, cn, sn, 2, sid, sig), -EKEYREJECTED, "claimed by another node id");
	is(grant_orch_sign(other, cn, sn, cid, sid, s2), 0, "another key's proof");
	is(grant_orch_verify(pub, cn, sn, cid, sid, s2), -EKEYREJECTED, "  is rejected");
}

int main(void)
{
	char priv[256], pub[256], priv2[256], pub2[256];
	_cleanup_grant_key_ struct grant_key *k = NULL, *p = NULL, *o = NULL;

	if (!mkdtemp(dir)) {
		plan_skip_all("mkdtemp failed");
		return 0;
	}
	test_keys(priv, pub, priv2, pub2);
	if (grant_key_load(priv, true, &k) < 0 || grant_key_load(pub, false, &p) < 0 ||
	    grant_key_load(priv2, true, &o) < 0) {
		diag("cannot load the test keys");
		done_testing();
		return tap_exit();
	}
	test_grants(pub, k, p, o);
	test_orch_proof(k, p, o);
	unlink(priv);
	unlink(pub);
	unlink(priv2);
	unlink(pub2);
	rmdir(dir);
	done_testing();
	return tap_exit();
}
