/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 on the fabric (memory-node connections), through libssl.
 *
 * Every daemon that speaks the fabric takes the same options:
 *     --tls-ca FILE --tls-cert FILE --tls-key FILE    (mutual TLS)
 *     --fabric-plaintext                              (explicit opt-out)
 * and refuses to start with neither. Both ends present a certificate of
 * the cluster CA (cert.h) and verify the other's; the identity in the
 * peer's certificate (node id, role) is what the protocol binds to: a
 * memory node refuses a HELLO naming another node id, and the
 * orchestrator's capability to a certificate of another role.
 *
 * Only TLS 1.3, Ed25519 certificates; cipher suites ChaCha20-Poly1305
 * first, then AES-128-GCM and AES-256-GCM, the server's order deciding
 * (TLS_SUITES in tls.c; docs/security.md has the measurement). Kernel
 * TLS is asked for (SSL_OP_ENABLE_KTLS) and used where the kernel has it.
 */
#ifndef DISAGG_TLS_H
#define DISAGG_TLS_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "cert.h"
#include "macro.h"

struct fabric_conf {
	const char *ca;
	const char *cert;
	const char *key;
	bool plaintext;
};

enum {
	FABRIC_OPT_CA = 0x4601,
	FABRIC_OPT_CERT,
	FABRIC_OPT_KEY,
	FABRIC_OPT_PLAINTEXT,
};

#define FABRIC_LONG_OPTIONS                                                  \
	{ "tls-ca", required_argument, NULL, FABRIC_OPT_CA },                \
	{ "tls-cert", required_argument, NULL, FABRIC_OPT_CERT },            \
	{ "tls-key", required_argument, NULL, FABRIC_OPT_KEY },              \
	{ "fabric-plaintext", no_argument, NULL, FABRIC_OPT_PLAINTEXT }

#define FABRIC_HELP                                                                  \
	"  --tls-ca FILE          cluster CA certificate (PEM): fabric peers must be\n" \
	"                         signed by it (mutual TLS 1.3)\n"                     \
	"  --tls-cert FILE        this node's certificate (disagg-cert --issue)\n"      \
	"  --tls-key FILE         its private key (PEM, mode 0600)\n"                   \
	"  --fabric-plaintext     no TLS on the fabric: only on a trusted network\n"    \
	"                         (one of the two is required)\n"

/* getopt_long helper: true if `opt` is a fabric option (its value stored). */
bool fabric_opt(int opt, const char *arg, struct fabric_conf *f);
/*
 * For command-line tools: fill what the options left unset from the
 * environment (DISAGG_TLS_CA, DISAGG_TLS_CERT, DISAGG_TLS_KEY,
 * DISAGG_FABRIC_PLAINTEXT=1). Daemons take options only.
 */
void fabric_conf_env(struct fabric_conf *f);
/* After the options: 0, or -EINVAL after logging what is wrong. */
int fabric_conf_check(const struct fabric_conf *f);

struct tls_ctx;

/*
 * Load the CA, certificate and key of f and check that the certificate
 * says role `role` (CERT_ROLE_NONE: any) and (when self_id is nonzero) node id self_id. With
 * --fabric-plaintext *ret is NULL and 0 is returned. Errors are logged.
 */
int tls_ctx_new(const struct fabric_conf *f, enum cert_role role, uint64_t self_id,
		struct tls_ctx **ret);
void tls_ctx_free(struct tls_ctx *t);
DEFINE_CLEANUP_FUNC(struct tls_ctx, tls_ctx_free)
const struct cert_id *tls_ctx_self(const struct tls_ctx *t);
/* A new SSL on fd in client or server mode. NULL on failure. */
SSL *tls_ssl_new(struct tls_ctx *t, int fd, bool server);
/* After the handshake: the identity of the peer's verified certificate. */
int tls_peer_identity(SSL *ssl, struct cert_id *ret);
/* Log once which record layer a finished handshake got (kernel or userspace). */
void tls_note_ktls(SSL *ssl);

/* Why a handshake failed, for counters: "no_cert", "bad_cert", "protocol". */
const char *tls_fail_reason(SSL *ssl, unsigned long err);

/*
 * Client handshake on fd (non-blocking) until `deadline` (ns): verifies
 * the server's certificate chain and that it is of role `server` (a
 * memory node's, a device node's). *ret_ssl is the connection's.
 * -ETIMEDOUT, -EKEYREJECTED (certificate refused), -EPROTO, -errno.
 */
int tls_client_handshake(struct tls_ctx *t, int fd, uint64_t deadline, enum cert_role server,
			 SSL **ret_ssl, struct cert_id *ret_peer);
/*
 * Server handshake on fd (non-blocking) until `deadline`: the client's
 * certificate must be of the cluster CA and carry a node identity
 * (*ret_peer). -ETIMEDOUT, -EKEYREJECTED (no or a bad certificate, or no
 * identity), -EPROTO (not TLS 1.3, broken), -errno. The reason is logged.
 */
int tls_server_handshake(struct tls_ctx *t, int fd, uint64_t deadline, SSL **ret_ssl,
			 struct cert_id *ret_peer);

/*
 * The same, then the connection's byte I/O over it (fd made non-blocking;
 * blocking reads wait block_ms at most).
 */
struct fio;
int tls_client_fio(struct tls_ctx *t, int fd, uint64_t deadline, enum cert_role server,
		   int block_ms, struct fio *io, struct cert_id *ret_peer);
/* The process's default context for fabric clients (NULL: plaintext). */
void tls_set_default(struct tls_ctx *t);
struct tls_ctx *tls_default(void);

#endif /* DISAGG_TLS_H */
