// SPDX-License-Identifier: MIT
/*
 * Fabric byte I/O: plain sockets or TLS. See fio.h.
 */
#include "fio.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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
		return errno == ECONNRESET ? -ECONNRESET : -EPIPE;
	default:
		ERR_clear_error();
		return -EPROTO;
	}
}

static ssize_t tls_readv(struct fio *f, const struct iovec *iov, int n, bool block)
{
	size_t total = 0;

	if (block && !SSL_has_pending(f->ssl)) {
		struct pollfd p = { .fd = f->fd, .events = POLLIN };
		int r = poll(&p, 1, f->block_ms);

		if (r == 0 || (r < 0 && errno == EINTR))
			return -EAGAIN;
		if (r < 0)
			return -errno;
	}
	ERR_clear_error();
	for (int i = 0; i < n; i++) {
		size_t off = 0;

		while (off < iov[i].iov_len) {
			size_t got = 0;
			int ret = SSL_read_ex(f->ssl, (uint8_t *)iov[i].iov_base + off,
					      iov[i].iov_len - off, &got);

			if (ret <= 0) {
				int r = tls_err(f, ret);

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

/* Push the staged bytes into SSL_write (same buffer and length on a retry). */
static int tls_flush(struct fio *f)
{
	size_t w = 0;
	int ret;

	if (!f->wlen)
		return 0;
	ERR_clear_error();
	ret = SSL_write_ex(f->ssl, f->wbuf, f->wlen, &w);
	if (ret <= 0) {
		int r = tls_err(f, ret);

		return r == 0 ? -EPIPE : r;
	}
	f->wlen = 0;
	return 0;
}

static ssize_t tls_writev(struct fio *f, const struct iovec *iov, int n)
{
	size_t total = 0;
	int r = tls_flush(f);

	if (r < 0)
		return r;
	for (int i = 0; i < n && total < FIO_WBUF; i++) {
		size_t k = MIN(iov[i].iov_len, (size_t)FIO_WBUF - total);

		memcpy(f->wbuf + total, iov[i].iov_base, k);
		total += k;
	}
	if (!total)
		return 0;
	f->wlen = total;
	r = tls_flush(f);
	if (r < 0 && r != -EAGAIN)
		return r;
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
		if (notify)
			(void)SSL_shutdown(f->ssl);
		SSL_free(f->ssl);
		ERR_clear_error();
	}
	free(f->wbuf);
	f->ssl = NULL;
	f->wbuf = NULL;
	f->wlen = 0;
	f->ops = &fio_plain_ops;
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
