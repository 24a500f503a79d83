// SPDX-License-Identifier: MIT
/*
 * Fabric byte I/O: plain sockets or TLS. See fio.h.
 */
#include "fio.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>

#include "macro.h"
#include "net.h"

/* ---- plain ------------------------------------------------------------------ */

static ssize_t plain_readv(struct fio *f, const struct iovec *iov, int n, bool block)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
	ssize_t got;

	do
		got = recvmsg(f->fd, &msg, block ? 0 : MSG_DONTWAIT);
	while (got < 0 && errno == EINTR);
	if (got >= 0)
		return got;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -EAGAIN;
	return errno == ECONNRESET ? -ECONNRESET : -EPIPE;
}

static ssize_t plain_writev(struct fio *f, const struct iovec *iov, int n)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
	ssize_t w;

	do
		w = sendmsg(f->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w >= 0)
		return w;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -EAGAIN;
	return errno == ECONNRESET ? -ECONNRESET : -EPIPE;
}

static int plain_flush(struct fio *f)
{
	(void)f;
	return 0;
}

const struct fio_ops fio_plain_ops = {
	.readv = plain_readv,
	.writev = plain_writev,
	.flush = plain_flush,
};

void fio_init_plain(struct fio *f, int fd, int block_ms)
{
	*f = (struct fio){ .ops = &fio_plain_ops, .fd = fd, .block_ms = block_ms };
}

/* ---- TLS -------------------------------------------------------------------- */

/*
 * The write side after the handshake: SSL_write seals records into
 * f->cbuf through this BIO instead of one write() per record, and the
 * records go out together in one send() (one wakeup of the peer for up
 * to FIO_CBUF bytes instead of one per 16 KiB record). The handshake and
 * kernel TLS keep the socket BIO of SSL_set_fd.
 */

/* Send what cbuf holds: 0 all sent, -EAGAIN socket full, -errno broken. */
static int cbuf_send(struct fio *f)
{
	while (f->coff < f->cend) {
		ssize_t w = send(f->fd, f->cbuf + f->coff, f->cend - f->coff,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -EAGAIN;
			f->werr = errno == ECONNRESET ? -ECONNRESET : -EPIPE;
			return f->werr;
		}
		f->coff += (size_t)w;
	}
	f->coff = f->cend = 0;
	return 0;
}

static int cbio_write(BIO *b, const char *data, size_t len, size_t *written)
{
	struct fio *f = BIO_get_data(b);
	size_t room;

	BIO_clear_retry_flags(b);
	if (f->werr)
		return 0;
	if (FIO_CBUF - f->cend < len) {
		/* Make room: send what we can, then move the rest to the front. */
		int r = cbuf_send(f);

		if (r < 0 && r != -EAGAIN)
			return 0;
		if (f->coff > 0) {
			memmove(f->cbuf, f->cbuf + f->coff, f->cend - f->coff);
			f->cend -= f->coff;
			f->coff = 0;
		}
	}
	room = FIO_CBUF - f->cend;
	if (!room) {
		BIO_set_retry_write(b);
		return 0;
	}
	len = MIN(len, room);
	memcpy(f->cbuf + f->cend, data, len);
	f->cend += len;
	*written = len;
	return 1;
}

static long cbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct fio *f = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH: {
		int r = cbuf_send(f);

		BIO_clear_retry_flags(b);
		if (r == -EAGAIN)
			BIO_set_retry_write(b);
		return r == 0 ? 1 : 0;
	}
	case BIO_CTRL_WPENDING:
		return (long)(f->cend - f->coff);
	case BIO_CTRL_PENDING:
		return 0;
	default:
		return 0;
	}
}

static int cbio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *cbio_method;

static void cbio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "disagg fabric records");

	if (m && (!BIO_meth_set_write_ex(m, cbio_write) || !BIO_meth_set_ctrl(m, cbio_ctrl) ||
		  !BIO_meth_set_create(m, cbio_create))) {
		BIO_meth_free(m);
		m = NULL;
	}
	cbio_method = m;
}

/*
 * Once the handshake is done: route SSL_write's records through cbuf. Not
 * with kernel TLS (the kernel seals what the socket BIO is given), and
 * not if the memory for it is missing (the socket BIO keeps working).
 */
static void tls_batch_writes(struct fio *f)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	BIO *b;

	if (f->cbio_tried || !SSL_is_init_finished(f->ssl))
		return;
	f->cbio_tried = true;
	if (BIO_get_ktls_send(SSL_get_wbio(f->ssl)) > 0)
		return;
	pthread_once(&once, cbio_method_init);
	if (!cbio_method)
		return;
	f->cbuf = malloc(FIO_CBUF);
	b = f->cbuf ? BIO_new(cbio_method) : NULL;
	if (!b) {
		free(f->cbuf);
		f->cbuf = NULL;
		ERR_clear_error();
		return;
	}
	BIO_set_data(b, f);
	SSL_set0_wbio(f->ssl, b);     /* the socket BIO stays the rbio */
}

/* Map the result of an SSL call that failed: -EAGAIN, 0 (clean EOF) or -errno. */
static int tls_err(struct fio *f, int ret)
{
	int e = SSL_get_error(f->ssl, ret);

	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (f->werr)
			return f->werr;
		return errno == ECONNRESET ? -ECONNRESET : -EPIPE;
	default:
		ERR_clear_error();
		return -EPROTO;
	}
}

static ssize_t tls_readv(struct fio *f, const struct iovec *iov, int n, bool block)
{
	size_t total = 0;

	if (block && !fio_rpending(f)) {
		struct pollfd p = { .fd = f->fd, .events = POLLIN };
		int r = poll(&p, 1, f->block_ms);

		if (r == 0 || (r < 0 && errno == EINTR))
			return -EAGAIN;
		if (r < 0)
			return -errno;
	}
	ERR_clear_error();
	f->rwant = false;
	for (int i = 0; i < n; i++) {
		size_t off = 0;

		while (off < iov[i].iov_len) {
			size_t got = 0;
			int ret = SSL_read_ex(f->ssl, (uint8_t *)iov[i].iov_base + off,
					      iov[i].iov_len - off, &got);

			if (ret <= 0) {
				int r = tls_err(f, ret);

				/* A partial record at most is left: wait for the socket. */
				f->rwant = r == -EAGAIN;
				if (f->cend > f->coff)
					(void)cbuf_send(f);     /* what reading made the library say */
				return total ? (ssize_t)total : r;
			}
			off += got;
			total += got;
			/* Nothing decrypted left: let the caller come back for more. */
			if (off < iov[i].iov_len && !SSL_has_pending(f->ssl))
				return (ssize_t)total;
		}
	}
	return (ssize_t)total;
}

/* SSL_write all of buf (len > 0): 0, or -EAGAIN (retry with the same bytes), -errno. */
static int tls_seal(struct fio *f, const void *buf, size_t len)
{
	size_t w = 0;
	int ret;

	ERR_clear_error();
	ret = SSL_write_ex(f->ssl, buf, len, &w);
	if (ret <= 0) {
		int r = tls_err(f, ret);

		return r == 0 ? -EPIPE : r;
	}
	return 0;
}

/*
 * Push the staged bytes into SSL_write (same buffer and length on a
 * retry), then the sealed records to the socket. 0 when nothing is left.
 */
static int tls_flush(struct fio *f)
{
	int r = 0;

	tls_batch_writes(f);
	if (f->wlen) {
		r = tls_seal(f, f->wbuf, f->wlen);
		while (r == -EAGAIN && f->cend > f->coff && cbuf_send(f) == 0)
			r = tls_seal(f, f->wbuf, f->wlen);
		if (r == 0)
			f->wlen = 0;
	}
	if (f->cend > f->coff) {
		int s = cbuf_send(f);

		if (r == 0 || (s < 0 && s != -EAGAIN))
			r = s;
	}
	return r;
}

/*
 * Stage small elements (copied into wbuf, sealed together); an element
 * of at least FIO_DIRECT bytes is sealed straight from the caller's
 * memory. If SSL_write cannot finish such an element, its bytes are not
 * accepted, the caller still holds them and offers the same bytes first
 * on its next call: that is the retry OpenSSL needs (f->dlen remembers
 * its length; SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets the address move).
 */
static ssize_t tls_writev(struct fio *f, const struct iovec *iov, int n)
{
	size_t total = 0, skip = 0;
	bool any = false;
	int r;

	r = tls_flush(f);
	if (r < 0 && (r != -EAGAIN || f->wlen))
		return r;
	if (f->dlen) {
		size_t d = f->dlen;

		if (n < 1 || iov[0].iov_len < d)
			return -EPROTO;      /* the caller broke the retry rule */
		r = tls_seal(f, iov[0].iov_base, d);
		if (r < 0)
			return r;
		f->dlen = 0;
		total = skip = d;
	}
	r = 0;
	for (int i = 0; i < n && r == 0; i++, skip = 0) {
		const uint8_t *p = (const uint8_t *)iov[i].iov_base + skip;
		size_t len = iov[i].iov_len - skip;

		if (!len)
			continue;
		any = true;
		/* Big: straight from the caller. Small: staged (FIO_DIRECT <= FIO_WBUF). */
		if (f->wlen && (len >= FIO_DIRECT || len > FIO_WBUF - f->wlen)) {
			r = tls_seal(f, f->wbuf, f->wlen);
			if (r < 0)
				break;
			f->wlen = 0;
		}
		if (len >= FIO_DIRECT) {
			r = tls_seal(f, p, len);
			if (r == -EAGAIN)
				f->dlen = len;
			if (r == 0)
				total += len;
			continue;
		}
		memcpy(f->wbuf + f->wlen, p, len);
		f->wlen += len;
		total += len;
	}
	if (r < 0 && r != -EAGAIN && !total)
		return r;
	r = tls_flush(f);
	if (r < 0 && r != -EAGAIN && !total)
		return r;
	if (!total)
		return any || f->dlen ? -EAGAIN : 0;
	return (ssize_t)total;     /* accepted: sent, or staged for the next flush */
}

const struct fio_ops fio_tls_ops = {
	.readv = tls_readv,
	.writev = tls_writev,
	.flush = tls_flush,
};

int fio_init_tls(struct fio *f, int fd, SSL *ssl, int block_ms)
{
	*f = (struct fio){ .ops = &fio_tls_ops, .fd = fd, .block_ms = block_ms, .ssl = ssl };
	f->wbuf = malloc(FIO_WBUF);
	if (!f->wbuf) {
		SSL_free(ssl);
		f->ssl = NULL;
		return -ENOMEM;
	}
	return 0;
}

void fio_done(struct fio *f, bool notify)
{
	if (f->ssl) {
		if (notify) {
			(void)SSL_shutdown(f->ssl);
			if (f->cend > f->coff)
				(void)cbuf_send(f);     /* the close_notify, if the socket takes it */
		}
		SSL_free(f->ssl);
		ERR_clear_error();
	}
	free(f->wbuf);
	free(f->cbuf);
	*f = (struct fio){ .ops = &fio_plain_ops, .fd = f->fd, .block_ms = f->block_ms };
}

/* ---- blocking helpers ------------------------------------------------------------ */

int fio_write_full(struct fio *f, const void *buf, size_t len, uint64_t deadline)
{
	const uint8_t *p = buf;

	while (len > 0 || fio_wpending(f)) {
		ssize_t w;
		int r;

		if (len > 0) {
			struct iovec iov = { (void *)p, len };

			w = fio_writev(f, &iov, 1);
		} else {
			w = fio_flush(f);
		}
		if (w > 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		if (w == 0 && len == 0)
			continue;
		if (w != -EAGAIN)
			return w < 0 ? (int)w : -EPIPE;
		r = net_wait_fd(f->fd, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

int fio_read_full(struct fio *f, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;

	while (len > 0) {
		struct iovec iov = { p, len };
		ssize_t n = fio_readv(f, &iov, 1, false);
		int r;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (n != -EAGAIN)
			return (int)n;
		r = net_wait_fd(f->fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}
