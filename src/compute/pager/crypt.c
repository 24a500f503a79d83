// SPDX-License-Identifier: MIT
/*
 * Guest memory at rest (crypt.h): the page cipher (AES-256-GCM through
 * libcrypto) and the slot's page-metadata table, an mmap'd file:
 *   header (64 bytes): magic "DSGPMETA", format 1, npages, key fingerprint
 *   entries: npages x struct pager_meta_entry (24 bytes)
 */
#include "crypt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "macro.h"

#define PAGE 4096
#define META_MAGIC "DSGPMETA"
#define META_FORMAT 1u
#define META_HDR 64u
#define AAD_LABEL "disagg-page-v1"

struct meta_hdr {
	char magic[8];
	uint32_t format, entry;
	uint64_t npages;
	uint8_t fp[16];
	uint8_t pad[META_HDR - 40];
};
_Static_assert(sizeof(struct meta_hdr) == META_HDR, "header layout");

struct pager_crypt {
	uint8_t key[PAGER_KEY_BYTES];
	uint64_t id;                     /* names the key in threads' cached contexts */
	uint64_t npages;
	void *map;                       /* header + entries (file or anonymous) */
	size_t maplen;
	struct pager_meta_entry *e;
};

static EVP_CIPHER *gcm;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

static void gcm_fetch(void)
{
	gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static const EVP_CIPHER *cipher(void)
{
	pthread_once(&gcm_once, gcm_fetch);
	return gcm;
}

/*
 * Each thread keeps one keyed context per direction (sealing on the
 * write-back thread, opening on fault threads): a page then costs one IV
 * set-up, not a context allocation and a key schedule. Keyed for the table
 * `id`; freed when the thread exits.
 */
struct tls_ctx {
	EVP_CIPHER_CTX *ctx[2];          /* 0: open, 1: seal */
	uint64_t id[2];
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t next_id = 1;

static void tls_free(void *arg)
{
	struct tls_ctx *t = arg;

	EVP_CIPHER_CTX_free(t->ctx[0]);
	EVP_CIPHER_CTX_free(t->ctx[1]);
	free(t);
}

static void tls_init(void)
{
	(void)pthread_key_create(&tls_key, tls_free);
}

/* This thread's context for c in direction enc, keyed; NULL if out of memory. */
static EVP_CIPHER_CTX *keyed_ctx(const struct pager_crypt *c, int enc)
{
	struct tls_ctx *t;

	pthread_once(&tls_once, tls_init);
	t = pthread_getspecific(tls_key);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t || pthread_setspecific(tls_key, t)) {
			free(t);
			return NULL;
		}
	}
	if (!t->ctx[enc] && !(t->ctx[enc] = EVP_CIPHER_CTX_new()))
		return NULL;
	if (t->id[enc] != c->id) {
		if (EVP_CipherInit_ex2(t->ctx[enc], cipher(), c->key, NULL, enc, NULL) != 1)
			return NULL;
		t->id[enc] = c->id;
	}
	return t->ctx[enc];
}

static void put64(uint8_t *b, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

/* nonce = idx (32, LE) || ver (64, LE); aad = label || idx (64) || ver (64). */
static int nonce_aad(uint64_t idx, uint64_t ver, uint8_t iv[12], uint8_t aad[sizeof(AAD_LABEL) - 1 + 16])
{
	if (idx > UINT32_MAX || ver == 0 || ver > PAGER_VERSION_MAX)
		return -ERANGE;
	iv[0] = (uint8_t)idx;
	iv[1] = (uint8_t)(idx >> 8);
	iv[2] = (uint8_t)(idx >> 16);
	iv[3] = (uint8_t)(idx >> 24);
	put64(iv + 4, ver);
	memcpy(aad, AAD_LABEL, sizeof(AAD_LABEL) - 1);
	put64(aad + sizeof(AAD_LABEL) - 1, idx);
	put64(aad + sizeof(AAD_LABEL) - 1 + 8, ver);
	return 0;
}

static void ctx_freep(EVP_CIPHER_CTX **c)
{
	EVP_CIPHER_CTX_free(*c);
}

/* Seal with ctx (keyed, or key given here). */
static int seal(EVP_CIPHER_CTX *ctx, const uint8_t *key, uint64_t idx, uint64_t ver,
		const void *in, void *out, uint8_t tag[PAGER_TAG_BYTES])
{
	uint8_t iv[12], aad[sizeof(AAD_LABEL) - 1 + 16];
	int n = 0, r = nonce_aad(idx, ver, iv, aad);

	if (r < 0)
		return r;
	if (EVP_EncryptInit_ex2(ctx, key ? cipher() : NULL, key, iv, NULL) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)sizeof(aad)) != 1 ||
	    EVP_EncryptUpdate(ctx, out, &n, in, PAGE) != 1 || n != PAGE ||
	    EVP_EncryptFinal_ex(ctx, (uint8_t *)out + n, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, PAGER_TAG_BYTES, tag) != 1)
		return -EIO;
	return 0;
}

/* Open with ctx (keyed, or key given here). */
static int open_page(EVP_CIPHER_CTX *ctx, const uint8_t *key, uint64_t idx, uint64_t ver,
		     const void *in, void *out, const uint8_t tag[PAGER_TAG_BYTES])
{
	uint8_t iv[12], aad[sizeof(AAD_LABEL) - 1 + 16], t[PAGER_TAG_BYTES];
	int n = 0, r = nonce_aad(idx, ver, iv, aad);

	if (r < 0)
		return -EBADMSG;
	memcpy(t, tag, sizeof(t));
	if (EVP_DecryptInit_ex2(ctx, key ? cipher() : NULL, key, iv, NULL) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)sizeof(aad)) != 1 ||
	    EVP_DecryptUpdate(ctx, out, &n, in, PAGE) != 1 || n != PAGE ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, PAGER_TAG_BYTES, t) != 1)
		return -EIO;
	if (EVP_DecryptFinal_ex(ctx, (uint8_t *)out + n, &n) != 1) {
		/* Never hand out what failed: the caller's buffer holds no plaintext. */
		explicit_bzero(out, PAGE);
		return -EBADMSG;
	}
	return 0;
}

int pager_page_seal(const uint8_t key[PAGER_KEY_BYTES], uint64_t idx, uint64_t ver,
		    const void *in, void *out, uint8_t tag[PAGER_TAG_BYTES])
{
	__attribute__((cleanup(ctx_freep))) EVP_CIPHER_CTX *ctx = NULL;

	if (!cipher() || !(ctx = EVP_CIPHER_CTX_new()))
		return -ENOMEM;
	return seal(ctx, key, idx, ver, in, out, tag);
}

int pager_page_open(const uint8_t key[PAGER_KEY_BYTES], uint64_t idx, uint64_t ver,
		    const void *in, void *out, const uint8_t tag[PAGER_TAG_BYTES])
{
	__attribute__((cleanup(ctx_freep))) EVP_CIPHER_CTX *ctx = NULL;

	if (!cipher() || !(ctx = EVP_CIPHER_CTX_new()))
		return -ENOMEM;
	return open_page(ctx, key, idx, ver, in, out, tag);
}

void pager_crypt_fingerprint(const uint8_t key[PAGER_KEY_BYTES], char buf[33])
{
	static const char label[] = "disagg page-metadata key fingerprint";
	uint8_t md[32];
	unsigned mdlen = 0;

	if (!HMAC(EVP_sha256(), key, PAGER_KEY_BYTES, (const uint8_t *)label, sizeof(label) - 1,
		  md, &mdlen))
		memset(md, 0, sizeof(md));
	for (unsigned i = 0; i < 16; i++)
		snprintf(buf + 2 * i, 3, "%02x", md[i]);
}

static void fp_bytes(const uint8_t key[PAGER_KEY_BYTES], uint8_t fp[16])
{
	char hex[33];

	pager_crypt_fingerprint(key, hex);
	for (unsigned i = 0; i < 16; i++) {
		unsigned v = 0;

		sscanf(hex + 2 * i, "%2x", &v);
		fp[i] = (uint8_t)v;
	}
}

int pager_crypt_new(const uint8_t key[PAGER_KEY_BYTES], const char *path, uint64_t npages,
		    struct pager_crypt **ret)
{
	struct pager_crypt *c;
	struct meta_hdr *h;
	uint8_t fp[16];
	size_t len;
	int fd = -1, r;
	bool created = false;

	if (!key || !npages || npages > (uint64_t)UINT32_MAX + 1)
		return -EINVAL;
	if (!cipher())
		return -ENOTSUP;
	len = META_HDR + (size_t)npages * PAGER_META_ENTRY;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	memcpy(c->key, key, PAGER_KEY_BYTES);
	c->id = atomic_fetch_add(&next_id, 1);
	c->npages = npages;
	c->maplen = len;
	fp_bytes(key, fp);
	if (path) {
		struct stat sb;

		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno == ENOENT) {
			fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
			created = fd >= 0;
		}
		if (fd < 0) {
			r = -errno;
			goto fail;
		}
		if (fstat(fd, &sb) < 0) {
			r = -errno;
			goto fail;
		}
		if (created && ftruncate(fd, (off_t)len) < 0) {
			r = -errno;
			goto fail;
		}
		if (!created && (uint64_t)sb.st_size != len) {
			r = -EINVAL;   /* another slot size, or a truncated table */
			goto fail;
		}
		c->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	} else {
		created = true;
		c->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	if (c->map == MAP_FAILED) {
		c->map = NULL;
		r = -errno;
		goto fail;
	}
	h = c->map;
	if (created) {
		memcpy(h->magic, META_MAGIC, 8);
		h->format = META_FORMAT;
		h->entry = PAGER_META_ENTRY;
		h->npages = npages;
		memcpy(h->fp, fp, 16);
	} else if (memcmp(h->magic, META_MAGIC, 8) || h->format != META_FORMAT ||
		   h->entry != PAGER_META_ENTRY || h->npages != npages) {
		r = -EINVAL;
		goto fail;
	} else if (memcmp(h->fp, fp, 16)) {
		r = -EKEYREJECTED;   /* a table of another key: never trust it */
		goto fail;
	}
	c->e = (struct pager_meta_entry *)((uint8_t *)c->map + META_HDR);
	if (fd >= 0)
		close(fd);
	*ret = c;
	return 0;
fail:
	if (fd >= 0) {
		if (created)
			(void)unlink(path);
		close(fd);
	}
	pager_crypt_free(c);
	return r;
}

void pager_crypt_free(struct pager_crypt *c)
{
	if (!c)
		return;
	if (c->map)
		munmap(c->map, c->maplen);
	explicit_bzero(c->key, sizeof(c->key));
	free(c);
}

uint64_t pager_crypt_npages(const struct pager_crypt *c)
{
	return c->npages;
}

int pager_crypt_seal(struct pager_crypt *c, uint64_t idx, const void *in, void *out)
{
	struct pager_meta_entry *e;
	uint8_t tag[PAGER_TAG_BYTES];
	uint64_t ver;
	int r;

	if (idx >= c->npages)
		return -ERANGE;
	e = &c->e[idx];
	ver = (__atomic_load_n(&e->ver, __ATOMIC_RELAXED) & ~PAGER_META_STORED) + 1;
	if (ver > PAGER_VERSION_MAX)
		return -EOVERFLOW;
	/*
	 * The version is spent before the page goes out: a write that fails,
	 * or a crash after it, never makes us seal another plaintext under
	 * the same nonce. STORED is off until the tag is in place.
	 */
	__atomic_store_n(&e->ver, ver, __ATOMIC_RELEASE);
	{
		EVP_CIPHER_CTX *ctx = keyed_ctx(c, 1);

		r = ctx ? seal(ctx, NULL, idx, ver, in, out, tag) : -ENOMEM;
	}
	if (r < 0)
		return r;
	memcpy(e->tag, tag, sizeof(tag));
	__atomic_store_n(&e->ver, ver | PAGER_META_STORED, __ATOMIC_RELEASE);
	return 0;
}

int pager_crypt_open(struct pager_crypt *c, uint64_t idx, const void *in, void *out)
{
	struct pager_meta_entry *e;
	uint64_t v;

	if (idx >= c->npages)
		return -ERANGE;
	e = &c->e[idx];
	v = __atomic_load_n(&e->ver, __ATOMIC_ACQUIRE);
	if (!(v & PAGER_META_STORED)) {
		memset(out, 0, PAGE);   /* never written by this slot: zeros, whatever came back */
		return 0;
	}
	{
		EVP_CIPHER_CTX *ctx = keyed_ctx(c, 0);

		if (!ctx)
			return -ENOMEM;
		return open_page(ctx, NULL, idx, v & ~PAGER_META_STORED, in, out, e->tag);
	}
}

void pager_crypt_forget(struct pager_crypt *c, uint64_t idx, uint64_t n)
{
	for (uint64_t i = idx; i < idx + n && i < c->npages; i++)
		__atomic_and_fetch(&c->e[i].ver, ~PAGER_META_STORED, __ATOMIC_RELEASE);
}

bool pager_crypt_stored(const struct pager_crypt *c, uint64_t idx)
{
	return idx < c->npages &&
	       (__atomic_load_n(&c->e[idx].ver, __ATOMIC_ACQUIRE) & PAGER_META_STORED);
}

const void *pager_crypt_table(const struct pager_crypt *c, size_t *ret_len)
{
	*ret_len = (size_t)c->npages * PAGER_META_ENTRY;
	return c->e;
}

int pager_crypt_put(struct pager_crypt *c, uint64_t idx, const struct pager_meta_entry *e)
{
	if (idx >= c->npages || (e->ver & ~PAGER_META_STORED) == 0)
		return -ERANGE;
	memcpy(&c->e[idx], e, sizeof(*e));
	return 0;
}

int pager_crypt_import(struct pager_crypt *c, const void *data, size_t len)
{
	if (len != (size_t)c->npages * PAGER_META_ENTRY)
		return -EINVAL;
	/* The destination sealed nothing yet: its faults wait for this table. */
	memcpy(c->e, data, len);
	return 0;
}
