// SPDX-License-Identifier: MIT
/*
 * TLS 1.3 contexts and handshakes for the fabric. See tls.h.
 */
#include "tls.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "fio.h"
#include "log.h"
#include "macro.h"
#include "net.h"

/*
 * The server's preference decides (SSL_OP_CIPHER_SERVER_PREFERENCE).
 * Measured here, OpenSSL 3.0 (openssl speed -evp, CPU time, three runs
 * each): ChaCha20-Poly1305 3.5-3.6 GB/s on 4 KiB and 16 KiB blocks,
 * AES-128-GCM 2.3-2.7 GB/s on 4 KiB and 2.7-3.7 GB/s on 16 KiB, AES-256-GCM
 * 2.3-2.5 and 3.0-3.3. On the data path itself (disagg-memnode-bench, CPU
 * time of client and memory node per 64 KiB READ at QD32) ChaCha20 cost
 * 131-143 µs a request and AES-128-GCM 170-197: ChaCha20 first
 * (docs/security.md).
 */
#define TLS_SUITES "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"

struct tls_ctx {
	SSL_CTX *ctx;
	struct cert_id self;
};

bool fabric_opt(int opt, const char *arg, struct fabric_conf *f)
{
	switch (opt) {
	case FABRIC_OPT_CA: f->ca = arg; return true;
	case FABRIC_OPT_CERT: f->cert = arg; return true;
	case FABRIC_OPT_KEY: f->key = arg; return true;
	case FABRIC_OPT_PLAINTEXT: f->plaintext = true; return true;
	default: return false;
	}
}

void fabric_conf_env(struct fabric_conf *f)
{
	const char *p;

	if (f->plaintext || f->ca || f->cert || f->key)
		return;
	p = getenv("DISAGG_FABRIC_PLAINTEXT");
	if (p && strcmp(p, "1") == 0) {
		f->plaintext = true;
		return;
	}
	f->ca = getenv("DISAGG_TLS_CA");
	f->cert = getenv("DISAGG_TLS_CERT");
	f->key = getenv("DISAGG_TLS_KEY");
}

int fabric_conf_check(const struct fabric_conf *f)
{
	bool any = f->ca || f->cert || f->key;

	if (f->plaintext && any) {
		log_error("--fabric-plaintext and --tls-ca/--tls-cert/--tls-key exclude each other");
		return -EINVAL;
	}
	if (f->plaintext)
		return 0;
	if (!any) {
		log_error("the fabric needs TLS (--tls-ca FILE --tls-cert FILE --tls-key FILE, "
			  "made with disagg-cert) or, on a trusted network only, --fabric-plaintext");
		return -EINVAL;
	}
	if (!f->ca || !f->cert || !f->key) {
		log_error("TLS on the fabric needs all of --tls-ca, --tls-cert and --tls-key");
		return -EINVAL;
	}
	return 0;
}

static void log_ssl_errors(const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	log_error("%s %s: %s", what, file, buf);
}

int tls_ctx_new(const struct fabric_conf *f, enum cert_role role, uint64_t self_id,
		struct tls_ctx **ret)
{
	struct tls_ctx *t;
	struct stat st;
	X509 *x;
	int r;

	*ret = NULL;
	if (f->plaintext) {
		log_warn("fabric: plaintext (--fabric-plaintext): no TLS, only for a trusted network");
		return 0;
	}
	if (stat(f->key, &st) < 0) {
		r = -errno;
		log_error("cannot read the TLS key %s: %s", f->key, strerror(-r));
		return r;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		log_error("the TLS key %s may be read by group or others: chmod 600 it", f->key);
		return -EPERM;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ctx = SSL_CTX_new(TLS_method());
	if (!t->ctx) {
		free(t);
		return -ENOMEM;
	}
	r = -EINVAL;
	if (!SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(t->ctx, TLS_SUITES)) {
		log_ssl_errors("TLS setup", "");
		goto fail;
	}
	if (!SSL_CTX_load_verify_locations(t->ctx, f->ca, NULL)) {
		log_ssl_errors("cannot load the TLS CA", f->ca);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(t->ctx, f->cert) != 1) {
		log_ssl_errors("cannot load the TLS certificate", f->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ctx, f->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(t->ctx) != 1) {
		log_ssl_errors("cannot load the TLS key (or it does not match the certificate)",
			       f->key);
		goto fail;
	}
	x = SSL_CTX_get0_certificate(t->ctx);
	r = x ? cert_identity(x, &t->self) : -ENOENT;
	if (r < 0) {
		log_error("the TLS certificate %s carries no disagg node identity (disagg-cert "
			  "--issue makes one)", f->cert);
		r = -EINVAL;
		goto fail;
	}
	if (role != CERT_ROLE_NONE && t->self.role != role) {
		log_error("the TLS certificate %s is for a %s node, not a %s node", f->cert,
			  cert_role_name(t->self.role), cert_role_name(role));
		r = -EINVAL;
		goto fail;
	}
	if (self_id && t->self.node_id != self_id) {
		log_error("the TLS certificate %s is for node %" PRIu64 ", not this node (%" PRIu64 ")",
			  f->cert, t->self.node_id, self_id);
		r = -EINVAL;
		goto fail;
	}
	/* A self-signed or foreign certificate must not pass as our own CA's. */
	{
		X509_STORE_CTX *sc = X509_STORE_CTX_new();
		int ok = sc && X509_STORE_CTX_init(sc, SSL_CTX_get_cert_store(t->ctx), x, NULL) &&
			 X509_verify_cert(sc) == 1;

		X509_STORE_CTX_free(sc);
		if (!ok) {
			ERR_clear_error();
			log_error("the TLS certificate %s is not signed by the CA %s", f->cert, f->ca);
			r = -EINVAL;
			goto fail;
		}
	}
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(t->ctx, 2);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Read whole socket buffers, not a record header then its body. */
	SSL_CTX_set_read_ahead(t->ctx, 1);
	SSL_CTX_set_default_read_buffer_len(t->ctx, 64u << 10);
	SSL_CTX_set_options(t->ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET | SSL_OP_ENABLE_KTLS);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(t->ctx, 0);
	log_info("fabric: TLS 1.3 as %s node %" PRIu64 " (CA %s)", cert_role_name(t->self.role),
		 t->self.node_id, f->ca);
	*ret = t;
	return 0;
fail:
	SSL_CTX_free(t->ctx);
	free(t);
	return r;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

const struct cert_id *tls_ctx_self(const struct tls_ctx *t)
{
	return &t->self;
}

SSL *tls_ssl_new(struct tls_ctx *t, int fd, bool server)
{
	SSL *s = SSL_new(t->ctx);

	if (!s)
		return NULL;
	if (!SSL_set_fd(s, fd)) {
		SSL_free(s);
		return NULL;
	}
	if (server)
		SSL_set_accept_state(s);
	else
		SSL_set_connect_state(s);
	return s;
}

int tls_peer_identity(SSL *ssl, struct cert_id *ret)
{
	X509 *x = SSL_get0_peer_certificate(ssl);

	if (!x || SSL_get_verify_result(ssl) != X509_V_OK)
		return -EKEYREJECTED;
	return cert_identity(x, ret);
}

void tls_note_ktls(SSL *ssl)
{
	static atomic_bool said;
	bool ktls = BIO_get_ktls_send(SSL_get_wbio(ssl)) > 0 ||
		    BIO_get_ktls_recv(SSL_get_rbio(ssl)) > 0;

	if (atomic_exchange(&said, true))
		return;
	log_info("fabric: TLS records in %s (%s)", ktls ? "the kernel" : "userspace",
		 ktls ? "kTLS" : "no kernel TLS here");
}

const char *tls_fail_reason(SSL *ssl, unsigned long err)
{
	int reason = ERR_GET_REASON(err);

	if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		return "no_cert";
	if (SSL_get_verify_result(ssl) != X509_V_OK || reason == SSL_R_CERTIFICATE_VERIFY_FAILED)
		return "bad_cert";
	return "protocol";
}

/*
 * Drive s's handshake on fd until it is done (1), TLS failed (0, *ret_err:
 * SSL_get_error's answer; the error queue says why) or the wait failed
 * (-ETIMEDOUT, -errno).
 */
static int handshake_run(SSL *s, int fd, uint64_t deadline, int *ret_err)
{
	ERR_clear_error();
	for (;;) {
		int ret = SSL_do_handshake(s), e, r;

		if (ret == 1)
			return 1;
		e = SSL_get_error(s, ret);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			*ret_err = e;
			return 0;
		}
		r = net_wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
		if (r < 0)
			return r;
	}
}

int tls_client_handshake(struct tls_ctx *t, int fd, uint64_t deadline, enum cert_role server,
			 SSL **ret_ssl, struct cert_id *ret_peer)
{
	SSL *s = tls_ssl_new(t, fd, false);
	int r, e = 0;

	if (!s)
		return -ENOMEM;
	r = handshake_run(s, fd, deadline, &e);
	if (r == 0) {
		unsigned long err = ERR_peek_error();
		long v = SSL_get_verify_result(s);
		char buf[200] = "";

		if (err)
			ERR_error_string_n(err, buf, sizeof(buf));
		r = v != X509_V_OK ? -EKEYREJECTED :
		    e == SSL_ERROR_SYSCALL && !err ? -ECONNRESET : -EPROTO;
		log_debug("TLS handshake failed: %s%s%s", buf, v != X509_V_OK ? ": " : "",
			  v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
		ERR_clear_error();
	}
	if (r < 0)
		goto fail;
	r = tls_peer_identity(s, ret_peer);
	if (r < 0 || ret_peer->role != server) {
		log_debug("TLS: the server's certificate is %s %s's",
			  r < 0 ? "without a node identity" : "not a", cert_role_name(server));
		r = -EKEYREJECTED;
		goto fail;
	}
	tls_note_ktls(s);
	*ret_ssl = s;
	return 0;
fail:
	SSL_free(s);
	return r;
}

int tls_server_handshake(struct tls_ctx *t, int fd, uint64_t deadline, SSL **ret_ssl,
			 struct cert_id *ret_peer)
{
	SSL *s = tls_ssl_new(t, fd, true);
	int r, e = 0;

	if (!s)
		return -ENOMEM;
	r = handshake_run(s, fd, deadline, &e);
	if (r == 0) {
		unsigned long err = ERR_peek_error();
		const char *why = e == SSL_ERROR_SYSCALL && !err ? "protocol" : tls_fail_reason(s, err);
		char buf[200] = "connection closed";

		if (err)
			ERR_error_string_n(err, buf, sizeof(buf));
		log_info("TLS handshake refused (%s): %s", why, buf);
		r = strcmp(why, "protocol") ? -EKEYREJECTED : -EPROTO;
		ERR_clear_error();
	}
	if (r < 0)
		goto fail;
	r = tls_peer_identity(s, ret_peer);
	if (r < 0) {
		log_info("TLS: a client certificate without a disagg node identity: closing");
		r = -EKEYREJECTED;
		goto fail;
	}
	tls_note_ktls(s);
	*ret_ssl = s;
	return 0;
fail:
	SSL_free(s);
	return r;
}

int tls_client_fio(struct tls_ctx *t, int fd, uint64_t deadline, enum cert_role server,
		   int block_ms, struct fio *io, struct cert_id *ret_peer)
{
	SSL *ssl = NULL;
	int r = net_set_nonblock(fd, true);

	if (r == 0)
		r = tls_client_handshake(t, fd, deadline, server, &ssl, ret_peer);
	return r < 0 ? r : fio_init_tls(io, fd, ssl, block_ms);
}

static struct tls_ctx *default_ctx;

void tls_set_default(struct tls_ctx *t)
{
	default_ctx = t;
}

struct tls_ctx *tls_default(void)
{
	return default_ctx;
}
