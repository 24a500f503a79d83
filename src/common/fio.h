/* SPDX-License-Identifier: MIT */
/*
 * Byte I/O of a fabric connection behind a small ops table: plain TCP
 * (readv/sendmsg on the socket, as before) or TLS (SSL_read/SSL_write;
 * this kernel has no kernel TLS). The memory node's connections and the
 * memory-node client both go through it, so the plaintext path keeps its
 * cost: one indirect call per read or write.
 *
 * Results: >0 bytes, -EAGAIN nothing possible now, 0 (reads) end of
 * stream, other <0 -errno (-ECONNRESET, -EPIPE, -EPROTO for a TLS error).
 *
 * TLS writes: small elements are staged (copied) into a buffer of
 * FIO_WBUF bytes and sealed together; an element of FIO_DIRECT bytes or
 * more (a 64 KiB reply) is sealed straight from the caller's memory.
 * After the handshake the sealed records collect in a buffer of FIO_CBUF
 * bytes and leave in one send(), not one write() per record. What a
 * write accepted may still sit in either buffer (fio_wpending());
 * fio_flush() pushes it on. An element SSL_write could not finish is not
 * accepted: the caller must offer the same bytes first on its next write
 * (a queue that keeps unaccepted bytes in place, as every caller does).
 * TLS reads may leave decrypted bytes buffered in the library
 * (fio_rpending()): a caller that sleeps in poll() or epoll must first
 * drain those, since the socket will not signal them.
 */
#ifndef DISAGG_FIO_H
#define DISAGG_FIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/ssl.h>

#define FIO_WBUF (64u << 10)    /* small elements staged for one SSL_write */
#define FIO_DIRECT (16u << 10)  /* elements this large are sealed in place (a full record) */
#define FIO_CBUF (256u << 10)   /* sealed records waiting for one send() */

struct fio;

struct fio_ops {
	/* block: wait up to f->block_ms for the first byte. */
	ssize_t (*readv)(struct fio *f, const struct iovec *iov, int n, bool block);
	ssize_t (*writev)(struct fio *f, const struct iovec *iov, int n);
	int (*flush)(struct fio *f);      /* 0: nothing staged, -EAGAIN, -errno */
};

struct fio {
	const struct fio_ops *ops;
	int fd;
	int block_ms;            /* blocking reads wait this long at most */
	SSL *ssl;                /* TLS only */
	uint8_t *wbuf;           /* TLS: bytes accepted, not yet taken by SSL_write */
	size_t wlen;
	size_t dlen;             /* TLS: a direct SSL_write to retry with these many bytes */
	uint8_t *cbuf;           /* TLS: sealed records not yet sent (after the handshake) */
	size_t coff, cend;
	int werr;                /* TLS: the socket error that stopped the records */
	bool cbio_tried;
	bool rwant;              /* TLS: the last SSL_read wanted more from the socket */
};

extern const struct fio_ops fio_plain_ops;
extern const struct fio_ops fio_tls_ops;

/* Plain: f uses fd (not owned). */
void fio_init_plain(struct fio *f, int fd, int block_ms);
/* TLS over fd with ssl (owned by f from here on; fd must be non-blocking). */
int fio_init_tls(struct fio *f, int fd, SSL *ssl, int block_ms);
/* Free the TLS state (sends close_notify if `notify`); the fd is not closed. */
void fio_done(struct fio *f, bool notify);

static inline ssize_t fio_readv(struct fio *f, const struct iovec *iov, int n, bool block)
{
	return f->ops->readv(f, iov, n, block);
}
static inline ssize_t fio_writev(struct fio *f, const struct iovec *iov, int n)
{
	return f->ops->writev(f, iov, n);
}
static inline int fio_flush(struct fio *f)
{
	return f->ops->flush(f);
}
static inline bool fio_wpending(const struct fio *f)
{
	return f->wlen != 0 || f->cend != f->coff;
}
/*
 * Decrypted bytes or a whole record wait in the library. Not a partial
 * record (SSL_has_pending() counts those too): once SSL_read has asked the
 * socket for the rest, the socket signals it.
 */
static inline bool fio_rpending(const struct fio *f)
{
	return f->ssl && !f->rwant && SSL_has_pending(f->ssl);
}
static inline bool fio_is_tls(const struct fio *f)
{
	return f->ssl != NULL;
}

/*
 * Blocking helpers bounded by `deadline` (CLOCK_MONOTONIC ns) for
 * handshakes: write all of buf (and flush), read exactly len bytes.
 * -ETIMEDOUT when the deadline passes.
 */
int fio_write_full(struct fio *f, const void *buf, size_t len, uint64_t deadline);
int fio_read_full(struct fio *f, void *buf, size_t len, uint64_t deadline);

#endif /* DISAGG_FIO_H */
