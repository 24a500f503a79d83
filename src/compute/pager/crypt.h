// SPDX-License-Identifier: MIT
/*
 * Guest memory at rest: every page that leaves this node for a memory node
 * is sealed with AES-256-GCM under the slot's key, which memory nodes never
 * see. The ciphertext is 4096 bytes like the page, so the wire protocol and
 * the memory node do not change; the 16-byte tag and the page's version
 * stay here, in the page-metadata table.
 *
 * A page is bound to its place and its version:
 *   nonce (96 bits) = slot page index (32 bits, LE) || version (64 bits, LE)
 *   AAD             = "disagg-page-v1" || slot page index (64, LE) || version (64, LE)
 * The slot page index is the page's place in the slot's guest memory
 * (section index in the slot x pages per section + page), not the memory
 * node's section: a memory migration copies ciphertext as it is. The
 * version increases on every write-back and never goes back (also when a
 * section is released and its place used again), so a (key, nonce) pair is
 * never used for two plaintexts; a version that would wrap refuses the
 * write-back (-EOVERFLOW) instead.
 *
 * The table has one 24-byte entry per page of the slot: the version of the
 * last write-back with a STORED bit (the memory node holds that ciphertext),
 * and its tag. A page without STORED was never written back by this slot
 * (or its section was released since): it is zeros, and what the memory
 * node returns for it is never decrypted. The table lives in a file of the
 * VM's run directory (mmap'd), so that it survives an agent restart like
 * the RAM files; its header carries a fingerprint of the key, so a table
 * of another key is refused rather than trusted.
 *
 * pager_crypt_seal() runs under the pager's io_lock (one write-back batch
 * at a time); pager_crypt_open() runs on fault threads for pages they own
 * (BUSY, absent), whose entries no write-back touches meanwhile.
 */
#ifndef DISAGG_PAGER_CRYPT_H
#define DISAGG_PAGER_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGER_KEY_BYTES   32
#define PAGER_TAG_BYTES   16
#define PAGER_META_ENTRY  24u
#define PAGER_VERSION_MAX ((UINT64_C(1) << 63) - 1)

struct pager_crypt;

/* One entry of the table (also the unit of an export). */
struct pager_meta_entry {
	uint64_t ver;                   /* bit 63: STORED; bits 0..62: last version used */
	uint8_t tag[PAGER_TAG_BYTES];
};
_Static_assert(sizeof(struct pager_meta_entry) == PAGER_META_ENTRY, "entry layout");

#define PAGER_META_STORED (UINT64_C(1) << 63)

/* ---- the page cipher (no state: unit-testable) ---------------------------------- */

/* Seal one 4 KiB page (in may equal out). 0 or -errno. */
int pager_page_seal(const uint8_t key[PAGER_KEY_BYTES], uint64_t idx, uint64_t ver,
		    const void *in, void *out, uint8_t tag[PAGER_TAG_BYTES]);
/* Open one page sealed at (idx, ver) with tag: 0, or -EBADMSG if it fails authentication. */
int pager_page_open(const uint8_t key[PAGER_KEY_BYTES], uint64_t idx, uint64_t ver,
		    const void *in, void *out, const uint8_t tag[PAGER_TAG_BYTES]);

/* ---- the slot's key and table ------------------------------------------------- */

/*
 * Open the table at `path` for `npages` pages of the slot, or create it
 * (mode 0600) if it does not exist. An existing table must be of this key
 * and this size (-EKEYREJECTED, -EINVAL otherwise). path NULL: in memory
 * only (tests, benchmarks).
 */
int pager_crypt_new(const uint8_t key[PAGER_KEY_BYTES], const char *path, uint64_t npages,
		    struct pager_crypt **ret);
void pager_crypt_free(struct pager_crypt *c);
uint64_t pager_crypt_npages(const struct pager_crypt *c);

/*
 * Seal page idx for a write-back: the next version, into out and the
 * table. -ERANGE (idx outside the table), -EOVERFLOW (version would wrap).
 */
int pager_crypt_seal(struct pager_crypt *c, uint64_t idx, const void *in, void *out);
/*
 * Open page idx as fetched (in may equal out): zeros if the slot never
 * stored it, else the plaintext, or -EBADMSG (fails authentication: a
 * memory node changed, moved or replayed it).
 */
int pager_crypt_open(struct pager_crypt *c, uint64_t idx, const void *in, void *out);
/* Pages [idx, idx+n) are not stored any more (their section was released); versions stay. */
void pager_crypt_forget(struct pager_crypt *c, uint64_t idx, uint64_t n);
/* Was page idx stored? */
bool pager_crypt_stored(const struct pager_crypt *c, uint64_t idx);

/*
 * The table as bytes, for a compute migration's destination: the entries
 * in order (npages x 24 bytes, little-endian). import replaces the whole
 * table (sizes must match: -EINVAL).
 */
const void *pager_crypt_table(const struct pager_crypt *c, size_t *ret_len);
int pager_crypt_import(struct pager_crypt *c, const void *data, size_t len);
/* Set one entry (a hand-over in parts). -ERANGE: outside the table or a bad version. */
int pager_crypt_put(struct pager_crypt *c, uint64_t idx, const struct pager_meta_entry *e);

/* The key's fingerprint (first 16 bytes of HMAC-SHA256(key, label)), hex into buf[33]. */
void pager_crypt_fingerprint(const uint8_t key[PAGER_KEY_BYTES], char buf[33]);

#endif /* DISAGG_PAGER_CRYPT_H */
