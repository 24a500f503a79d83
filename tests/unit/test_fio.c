// SPDX-License-Identifier: MIT
/*
 * Unit test of the TLS byte I/O in src/common/fio.c over a real loopback
 * TCP connection with real certificates (a CA made here, a memory node's
 * and an orchestrator's certificate):
 *
 *  - partial writes: the writer's SO_SNDBUF is tiny and the reader slow,
 *    so SSL_write stops in the middle of staged and of directly sealed
 *    elements again and again; the writer keeps its unaccepted bytes in
 *    place like the memory node's output queue, and every byte of a
 *    mixed stream (32-byte headers, 4 KiB and 64 KiB frames, odd sizes)
 *    must arrive in order;
 *  - the reader goes away mid-stream: the writer gets an error, no hang;
 *  - the writer goes away mid-record: the reader gets the bytes of the
 *    whole records, then an error (not a clean end of stream), no hang;
 *  - half a record on the wire is not pending input (a caller would spin
 *    on it instead of waiting for the socket); the whole record is.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cert.h"
#include "fio.h"
#include "net.h"
#include "tap.h"
#include "tls.h"

#define DEADLINE_S 60

static struct tls_ctx *srv_ctx, *cl_ctx;
static char dir[] = "/tmp/disagg-test-fio-XXXXXX";

/* The stream's byte at offset k: no period a lost or repeated chunk could hide in. */
static uint8_t stream_byte(uint64_t k)
{
	uint64_t x = k * 0x9E3779B97F4A7C15ull;

	return (uint8_t)(x >> 56) ^ (uint8_t)k;
}

static const size_t sizes[] = { 32, 4128, 65568, 100, 16384, 20000, 7, 32, 65536, 3 };
#define NMSG 120

static size_t stream_len(unsigned nmsg)
{
	size_t t = 0;

	for (unsigned i = 0; i < nmsg; i++)
		t += sizes[i % ARRAY_SIZE(sizes)];
	return t;
}

struct writer {
	struct fio io;
	int fd;
	unsigned nmsg;
	bool close_early;        /* close the socket after the first frame was accepted */
	int result;              /* 0 all written and flushed, or the -errno seen */
	unsigned eagain, direct_retries;
};

static int server_handshake(int fd, struct fio *io)
{
	SSL *ssl = tls_ssl_new(srv_ctx, fd, true);
	uint64_t deadline = now_ns() + 10ull * 1000000000;
	int r;

	if (!ssl)
		return -ENOMEM;
	for (;;) {
		int ret = SSL_do_handshake(ssl), e;

		if (ret == 1)
			break;
		e = SSL_get_error(ssl, ret);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			SSL_free(ssl);
			return -EPROTO;
		}
		r = net_wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
		if (r < 0) {
			SSL_free(ssl);
			return r;
		}
	}
	return fio_init_tls(io, fd, ssl, 100);
}

/* Write the stream as a queue of frames, keeping what was not accepted in place. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t deadline = now_ns() + (uint64_t)DEADLINE_S * 1000000000;
	size_t total = stream_len(w->nmsg), sent = 0;
	uint8_t *buf = malloc(total);
	unsigned head = 0;       /* first frame not wholly accepted */
	size_t head_off = 0, frame_start = 0;

	if (!buf) {
		w->result = -ENOMEM;
		return NULL;
	}
	for (size_t k = 0; k < total; k++)
		buf[k] = stream_byte(k);
	while (sent < total || fio_wpending(&w->io)) {
		struct iovec iov[8];
		size_t off = frame_start + head_off;
		int n = 0;
		ssize_t k;

		if (now_ns() > deadline) {
			w->result = -ETIMEDOUT;
			break;
		}
		if (sent == total) {
			k = fio_flush(&w->io);
		} else {
			for (unsigned i = head; i < w->nmsg && n < 8; i++) {
				size_t len = sizes[i % ARRAY_SIZE(sizes)] - (i == head ? head_off : 0);

				iov[n++] = (struct iovec){ buf + off, len };
				off += len;
			}
			k = fio_writev(&w->io, iov, n);
			if (w->io.dlen)
				w->direct_retries++;
		}
		if (k == -EAGAIN) {
			w->eagain++;
			if (net_wait_fd(w->fd, POLLOUT, deadline) < 0) {
				w->result = -ETIMEDOUT;
				break;
			}
			continue;
		}
		if (k < 0) {
			w->result = (int)k;
			break;
		}
		if (sent == total)
			continue;
		sent += (size_t)k;
		/* Advance the queue past what was accepted. */
		while (k > 0) {
			size_t left = sizes[head % ARRAY_SIZE(sizes)] - head_off;

			if ((size_t)k < left) {
				head_off += (size_t)k;
				break;
			}
			k -= (ssize_t)left;
			frame_start += sizes[head % ARRAY_SIZE(sizes)];
			head++;
			head_off = 0;
		}
		if (w->close_early && head > 0) {
			/* Gone mid-record: no close_notify, records still in our buffers. */
			shutdown(w->fd, SHUT_RDWR);
			w->result = 0;
			break;
		}
	}
	free(buf);
	return NULL;
}

struct pair {
	int lfd, cfd, sfd;
	struct fio cio;
	struct writer w;
	int srv_r;
};

static void *server_hs_main(void *arg)
{
	struct pair *p = arg;

	p->srv_r = server_handshake(p->sfd, &p->w.io);
	return NULL;
}

/* A TLS connection over loopback: the server side writes, the client side reads. */
static int pair_open(struct pair *p, int sndbuf)
{
	char addr[64];
	struct cert_id peer;
	pthread_t t;
	int r;

	memset(p, 0, sizeof(*p));
	p->cfd = p->sfd = -1;
	p->lfd = net_listen_tcp("127.0.0.1:0", false);
	if (p->lfd < 0 || net_local_addr(p->lfd, addr, sizeof(addr)) < 0)
		return -EIO;
	p->cfd = net_connect_tcp(addr, 5000);
	if (p->cfd < 0)
		return p->cfd;
	p->sfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (p->sfd < 0)
		return -errno;
	if (sndbuf)
		(void)setsockopt(p->sfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	r = net_set_nonblock(p->sfd, true);
	if (r < 0)
		return r;
	p->w.fd = p->sfd;
	if (pthread_create(&t, NULL, server_hs_main, p) != 0)
		return -EAGAIN;
	r = tls_client_fio(cl_ctx, p->cfd, now_ns() + 10ull * 1000000000, CERT_ROLE_MEMORY, 100,
			   &p->cio, &peer);
	pthread_join(t, NULL);
	if (r < 0)
		return r;
	return p->srv_r;
}

static void pair_close(struct pair *p)
{
	fio_done(&p->cio, false);
	fio_done(&p->w.io, false);
	if (p->cfd >= 0)
		close(p->cfd);
	if (p->sfd >= 0)
		close(p->sfd);
	if (p->lfd >= 0)
		close(p->lfd);
}

/*
 * Read (slowly: small reads, a pause now and then) and check the stream
 * until `want` bytes, an error or the deadline; stop early after `stop_at`
 * bytes if nonzero. Returns the bytes read; *ret_end the last result (0
 * end of stream, <0 error, 1 stopped or complete), *ret_bad true if a
 * byte differed.
 */
static size_t read_stream(struct fio *io, size_t want, size_t stop_at, bool slow, int *ret_end,
			  bool *ret_bad)
{
	uint64_t deadline = now_ns() + (uint64_t)DEADLINE_S * 1000000000;
	uint8_t buf[3000];
	size_t got = 0;
	unsigned reads = 0;

	*ret_end = 1;
	*ret_bad = false;
	while (got < want && (!stop_at || got < stop_at)) {
		size_t chunk = 1 + (reads * 7919) % sizeof(buf);
		struct iovec iov = { buf, MIN(chunk, want - got) };
		ssize_t n;

		if (now_ns() > deadline) {
			*ret_end = -ETIMEDOUT;
			break;
		}
		n = fio_readv(io, &iov, 1, true);
		if (n == -EAGAIN)
			continue;
		if (n <= 0) {
			*ret_end = (int)n;
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != stream_byte(got + (size_t)i))
				*ret_bad = true;
		got += (size_t)n;
		if (slow && ++reads % 16 == 0)
			usleep(300);
	}
	return got;
}

static void test_partial_writes(void)
{
	struct pair p;
	pthread_t t;
	size_t total = stream_len(NMSG), got;
	int end;
	bool bad;
	int r = pair_open(&p, 4096);

	is(r, 0, "TLS connection with a tiny send buffer");
	if (r < 0) {
		pair_close(&p);
		return;
	}
	p.w.nmsg = NMSG;
	pthread_create(&t, NULL, writer_main, &p.w);
	got = read_stream(&p.cio, total, 0, true, &end, &bad);
	pthread_join(t, NULL);
	is(p.w.result, 0, "the writer wrote and flushed the whole stream");
	ok(got == total && end == 1, "every byte arrived (%zu of %zu, end %d)", got, total, end);
	ok(!bad, "in order and unchanged");
	ok(p.w.eagain > 0, "the writer was stopped by a full socket (%u times)", p.w.eagain);
	ok(p.w.direct_retries > 0, "a directly sealed element had to be retried (%u times)",
	   p.w.direct_retries);
	pair_close(&p);
}

static void test_reader_gone(void)
{
	struct pair p;
	pthread_t t;
	size_t got;
	int end;
	bool bad;
	int r = pair_open(&p, 4096);

	is(r, 0, "TLS connection (reader goes away)");
	if (r < 0) {
		pair_close(&p);
		return;
	}
	p.w.nmsg = NMSG;
	pthread_create(&t, NULL, writer_main, &p.w);
	got = read_stream(&p.cio, stream_len(NMSG), 100000, false, &end, &bad);
	ok(got >= 100000 && !bad, "the reader got the start of the stream intact");
	/* Gone with records unread: the kernel answers the writer with a reset. */
	shutdown(p.cfd, SHUT_RDWR);
	close(p.cfd);
	p.cfd = -1;
	pthread_join(t, NULL);
	ok(p.w.result == -EPIPE || p.w.result == -ECONNRESET,
	   "the writer ends with a connection error (%d), not a hang", p.w.result);
	pair_close(&p);
}

static void test_writer_gone(void)
{
	struct pair p;
	pthread_t t;
	size_t got, total = stream_len(NMSG);
	int end;
	bool bad;
	int r = pair_open(&p, 4096);

	is(r, 0, "TLS connection (writer goes away mid-record)");
	if (r < 0) {
		pair_close(&p);
		return;
	}
	p.w.nmsg = NMSG;
	p.w.close_early = true;
	pthread_create(&t, NULL, writer_main, &p.w);
	pthread_join(t, NULL);
	got = read_stream(&p.cio, total, 0, false, &end, &bad);
	ok(got < total && !bad, "the reader got an intact part of the stream (%zu bytes)", got);
	ok(end < 0 && end != -ETIMEDOUT,
	   "then a connection error (%d), not a clean end and not a hang", end);
	pair_close(&p);
}

static void test_partial_record(void)
{
	struct pair p;
	uint8_t msg[16384], got[16384];
	BIO *mem = BIO_new(BIO_s_mem());
	char *rec = NULL;
	long len;
	size_t have = 0;
	ssize_t n;
	int r = pair_open(&p, 0);

	is(r, 0, "TLS connection (half a record)");
	if (r < 0 || !mem) {
		BIO_free(mem);
		pair_close(&p);
		return;
	}
	/* Seal one record into memory, then put half of it on the wire. */
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = stream_byte(i);
	SSL_set0_wbio(p.w.io.ssl, mem);
	r = SSL_write(p.w.io.ssl, msg, (int)sizeof(msg));
	len = BIO_get_mem_data(mem, &rec);
	ok(r == (int)sizeof(msg) && len > (long)sizeof(msg), "one record sealed (%ld bytes)", len);
	if (len <= 0) {
		pair_close(&p);
		return;
	}
	ok(write(p.sfd, rec, (size_t)len / 2) == len / 2, "half of it sent");
	usleep(50000);
	n = fio_readv(&p.cio, &(struct iovec){ got, sizeof(got) }, 1, false);
	ok(n == -EAGAIN && !fio_rpending(&p.cio),
	   "half a record: nothing read (%zd) and nothing pending: wait for the socket", n);
	ok(write(p.sfd, rec + len / 2, (size_t)(len - len / 2)) == len - len / 2, "the rest sent");
	for (int tries = 0; tries < 50 && have < sizeof(got); tries++) {
		n = fio_readv(&p.cio, &(struct iovec){ got + have, sizeof(got) - have }, 1, true);
		if (n > 0)
			have += (size_t)n;
		else if (n != -EAGAIN)
			break;
	}
	ok(have == sizeof(got) && memcmp(got, msg, sizeof(got)) == 0,
	   "then the whole record is read (%zu bytes)", have);
	pair_close(&p);
}

static int make_ctx(const char *cadir, uint64_t id, enum cert_role role, struct tls_ctx **ret)
{
	char cert[256], key[256];
	struct cert_id cid = { id, role };
	struct fabric_conf fc;
	int r;

	snprintf(cert, sizeof(cert), "%s/%llu.pem", dir, (unsigned long long)id);
	snprintf(key, sizeof(key), "%s/%llu.key", dir, (unsigned long long)id);
	r = cert_issue(cadir, &cid, 1, cert, key);
	if (r < 0)
		return r;
	fc = (struct fabric_conf){ .ca = NULL, .cert = cert, .key = key };
	static char capem[256];
	snprintf(capem, sizeof(capem), "%s/ca.pem", cadir);
	fc.ca = capem;
	return tls_ctx_new(&fc, role, id, ret);
}

int main(void)
{
	char cadir[128];
	int r;

	signal(SIGPIPE, SIG_IGN);
	plan(19);
	if (!mkdtemp(dir)) {
		diag("mkdtemp: %s", strerror(errno));
		return 1;
	}
	snprintf(cadir, sizeof(cadir), "%s/ca", dir);
	r = cert_new_ca(cadir, NULL, 1);
	if (r >= 0)
		r = make_ctx(cadir, 7, CERT_ROLE_MEMORY, &srv_ctx);
	if (r >= 0)
		r = make_ctx(cadir, 8, CERT_ROLE_ORCH, &cl_ctx);
	is(r, 0, "certificates and TLS contexts");
	if (r < 0)
		return tap_exit();
	test_partial_writes();
	test_reader_gone();
	test_writer_gone();
	test_partial_record();
	tls_ctx_free(srv_ctx);
	tls_ctx_free(cl_ctx);
	{
		char cmd[200];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			diag("cannot remove %s", dir);
	}
	return tap_exit();
}
