/* SPDX-License-Identifier: MIT */
/*
 * The server side of a fabric TLS handshake on a non-blocking socket
 * (tlsaccept.c), one step per readiness event of the worker's loop: what
 * to wait for next, or the verified peer identity, or why it failed.
 */
#ifndef DISAGG_MEMNODE_TLSACCEPT_H
#define DISAGG_MEMNODE_TLSACCEPT_H

#include <openssl/ssl.h>

#include "cert.h"

enum mn_tls_step {
	MN_TLS_DONE,        /* *ret_id is the client certificate's identity */
	MN_TLS_WANT_READ,
	MN_TLS_WANT_WRITE,
	MN_TLS_FAILED,      /* *ret_fail says why (logged) */
};

/* Why a handshake failed: the label of disagg_memnode_tls_failures_total. */
enum mn_tls_fail {
	MN_TLS_NO_CERT,     /* the client offered none */
	MN_TLS_BAD_CERT,    /* not of the cluster CA: self-signed, foreign, expired */
	MN_TLS_IDENTITY,    /* of the CA, but no disagg node identity in it */
	MN_TLS_PROTOCOL,    /* not TLS 1.3, plaintext, or the peer went away */
	MN_TLS_FAIL_MAX,
};

enum mn_tls_step mn_tls_accept_step(SSL *ssl, struct cert_id *ret_id,
				    enum mn_tls_fail *ret_fail);
const char *mn_tls_fail_name(enum mn_tls_fail f);

struct fio;
struct tls_ctx;
/* A new connection's byte I/O: plain (t NULL, returns 0) or TLS server (1). */
int mn_tls_conn_init(struct fio *io, struct tls_ctx *t, int fd);

#endif /* DISAGG_MEMNODE_TLSACCEPT_H */
