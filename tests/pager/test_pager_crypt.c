// SPDX-License-Identifier: MIT
/*
 * The page cipher and the page-metadata table (crypt.h), without a pager:
 * a sealed page opens only at its own place and version and unchanged;
 * every write-back spends a new version (no nonce twice); a page never
 * stored reads as zeros whatever the memory node returns; the table
 * survives a reopen with its key and is refused with another one.
 */
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypt.h"

#define PS PAGER_PAGE_SIZE

static uint8_t key[PAGER_KEY_BYTES], key2[PAGER_KEY_BYTES];
static uint8_t pt[PS], ct[PS], out[PS], ct2[PS];

int main(void)
{
	uint8_t tag[PAGER_TAG_BYTES], tag2[PAGER_TAG_BYTES];
	struct pager_crypt *c = NULL, *c2 = NULL;
	char path[] = "/tmp/disagg-crypt-XXXXXX", fp[33];
	size_t len;
	int r, fd;

	for (unsigned i = 0; i < sizeof(key); i++) {
		key[i] = (uint8_t)(i * 7 + 1);
		key2[i] = (uint8_t)(i * 7 + 2);
	}
	pat_fill(pt, 5, 1);

	/* The cipher alone. */
	r = pager_page_seal(key, 5, 1, pt, ct, tag);
	ok(r == 0 && memcmp(ct, pt, PS) != 0, "seal: the ciphertext differs from the page");
	r = pager_page_open(key, 5, 1, ct, out, tag);
	ok(r == 0 && memcmp(out, pt, PS) == 0, "round trip at the same place and version");
	ok(pager_page_open(key, 6, 1, ct, out, tag) == -EBADMSG, "another slot page index: EBADMSG");
	ok(pager_page_open(key, 5, 2, ct, out, tag) == -EBADMSG, "another version: EBADMSG");
	ok(pager_page_open(key2, 5, 1, ct, out, tag) == -EBADMSG, "another key: EBADMSG");
	{
		uint8_t bad[PS];
		bool zero = true;

		memcpy(bad, ct, PS);
		bad[1234] ^= 0x10;
		memset(out, 0xaa, PS);
		ok(pager_page_open(key, 5, 1, bad, out, tag) == -EBADMSG, "one flipped bit: EBADMSG");
		for (unsigned i = 0; i < PS; i++)
			zero &= out[i] == 0;
		ok(zero, "a page that fails leaves zeros, never its would-be plaintext");
		tag[0] ^= 1;
		ok(pager_page_open(key, 5, 1, ct, out, tag) == -EBADMSG, "a changed tag: EBADMSG");
		tag[0] ^= 1;
	}
	ok(pager_page_seal(key, 5, 0, pt, ct2, tag2) == -ERANGE, "version 0 is never sealed");
	ok(pager_page_seal(key, (uint64_t)UINT32_MAX + 1, 1, pt, ct2, tag2) == -ERANGE,
	   "an index beyond 32 bits is refused");

	/* The table: versions, zeros for pages never stored. */
	fd = mkstemp(path);
	close(fd);
	unlink(path);
	r = pager_crypt_new(key, path, 64, &c);
	ok(r == 0, "table created: %s", strerror(-r));
	if (!c)
		return tap_done();
	memset(ct, 0x5a, PS);
	ok(pager_crypt_open(c, 3, ct, out) == 0 && out[0] == 0 && out[PS - 1] == 0,
	   "a page never stored reads as zeros (the node's bytes are not used)");
	ok(pager_crypt_seal(c, 3, pt, ct) == 0 && pager_crypt_stored(c, 3), "seal page 3 (v1)");
	ok(pager_crypt_open(c, 3, ct, out) == 0 && memcmp(out, pt, PS) == 0, "open page 3");
	memcpy(ct2, ct, PS);
	ok(pager_crypt_seal(c, 3, pt, ct) == 0, "seal page 3 again (v2), same content");
	ok(memcmp(ct, ct2, PS) != 0, "the same content under a new version: another ciphertext "
	   "(the nonce never repeats)");
	ok(pager_crypt_open(c, 3, ct2, out) == -EBADMSG, "the older ciphertext (a replay): EBADMSG");
	ok(pager_crypt_open(c, 4, ct, out) == 0 && out[0] == 0,
	   "page 3's ciphertext at page 4 (never stored) is not used: zeros");
	ok(pager_crypt_seal(c, 4, pt, ct2) == 0 && pager_crypt_open(c, 4, ct, out) == -EBADMSG,
	   "page 3's ciphertext moved onto page 4 (stored): EBADMSG");
	ok(pager_crypt_seal(c, 64, pt, ct2) == -ERANGE, "a page outside the table: ERANGE");
	{
		const struct pager_meta_entry *e = pager_crypt_table(c, &len);

		ok(len == 64 * PAGER_META_ENTRY && (e[3].ver & ~PAGER_META_STORED) == 2 &&
		   (e[3].ver & PAGER_META_STORED), "the table says page 3 is at version 2, stored");
	}
	pager_crypt_forget(c, 3, 1);
	ok(!pager_crypt_stored(c, 3), "forget: page 3 not stored");
	ok(pager_crypt_seal(c, 3, pt, ct) == 0, "sealed again after forget");
	{
		const struct pager_meta_entry *e = pager_crypt_table(c, &len);

		ok((e[3].ver & ~PAGER_META_STORED) == 3, "its version went on (3), never back to 1");
	}
	pager_crypt_free(c);
	c = NULL;

	/* Reopen: same key works, another key or size is refused. */
	r = pager_crypt_new(key, path, 64, &c);
	ok(r == 0 && pager_crypt_open(c, 3, ct, out) == 0 && memcmp(out, pt, PS) == 0,
	   "reopened with its key: page 3 opens (%s)", strerror(-r));
	ok(pager_crypt_new(key2, path, 64, &c2) == -EKEYREJECTED, "another key: EKEYREJECTED");
	ok(pager_crypt_new(key, path, 65, &c2) == -EINVAL, "another size: EINVAL");

	/* Hand-over: a second table imports the first. */
	r = pager_crypt_new(key, NULL, 64, &c2);
	if (r == 0) {
		const void *t = pager_crypt_table(c, &len);

		r = pager_crypt_import(c2, t, len);
	}
	ok(r == 0 && pager_crypt_open(c2, 3, ct, out) == 0 && memcmp(out, pt, PS) == 0,
	   "an imported table opens the page");
	ok(pager_crypt_import(c2, pt, 100) == -EINVAL, "an import of another size: EINVAL");
	{
		/* A version at the end of its range refuses to seal: no wrap, no reuse. */
		struct pager_meta_entry e[64];

		memcpy(e, pager_crypt_table(c2, &len), len);
		e[7].ver = PAGER_VERSION_MAX;
		ok(pager_crypt_import(c2, e, len) == 0, "table with page 7 at the last version");
		ok(pager_crypt_seal(c2, 7, pt, ct) == -EOVERFLOW, "the next write-back: EOVERFLOW");
	}
	pager_crypt_fingerprint(key, fp);
	ok(strlen(fp) == 32, "key fingerprint %s", fp);
	pager_crypt_free(c2);
	pager_crypt_free(c);
	unlink(path);
	return tap_done();
}
