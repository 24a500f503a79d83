// SPDX-License-Identifier: MIT
/*
 * One step of the server side of a fabric TLS handshake. See tlsaccept.h.
 */
#include "tlsaccept.h"

#include <errno.h>
#include <string.h>

#include <openssl/err.h>

#include "fio.h"
#include "log.h"
#include "tls.h"

const char *mn_tls_fail_name(enum mn_tls_fail f)
{
	static const char *const names[MN_TLS_FAIL_MAX] = {
		[MN_TLS_NO_CERT] = "no_cert",
		[MN_TLS_BAD_CERT] = "bad_cert",
		[MN_TLS_IDENTITY] = "identity",
		[MN_TLS_PROTOCOL] = "protocol",
	};

	return (unsigned)f < MN_TLS_FAIL_MAX ? names[f] : "protocol";
}

enum mn_tls_step mn_tls_accept_step(SSL *ssl, struct cert_id *ret_id,
				    enum mn_tls_fail *ret_fail)
{
	char buf[200] = "connection closed";
	unsigned long err;
	const char *reason;
	int ret, e;

	ERR_clear_error();
	ret = SSL_do_handshake(ssl);
	if (ret == 1) {
		if (tls_peer_identity(ssl, ret_id) < 0) {
			log_info("TLS: a client certificate without a disagg node identity: closing");
			*ret_fail = MN_TLS_IDENTITY;
			return MN_TLS_FAILED;
		}
		tls_note_ktls(ssl);
		return MN_TLS_DONE;
	}
	e = SSL_get_error(ssl, ret);
	if (e == SSL_ERROR_WANT_READ)
		return MN_TLS_WANT_READ;
	if (e == SSL_ERROR_WANT_WRITE)
		return MN_TLS_WANT_WRITE;
	err = ERR_peek_error();
	reason = e == SSL_ERROR_SYSCALL && !err ? "protocol" : tls_fail_reason(ssl, err);
	*ret_fail = strcmp(reason, "no_cert") == 0 ? MN_TLS_NO_CERT :
		    strcmp(reason, "bad_cert") == 0 ? MN_TLS_BAD_CERT : MN_TLS_PROTOCOL;
	if (err)
		ERR_error_string_n(err, buf, sizeof(buf));
	log_info("TLS handshake refused (%s): %s", reason, buf);
	ERR_clear_error();
	return MN_TLS_FAILED;
}

int mn_tls_conn_init(struct fio *io, struct tls_ctx *t, int fd)
{
	SSL *ssl;

	fio_init_plain(io, fd, 0);
	if (!t)
		return 0;
	ssl = tls_ssl_new(t, fd, true);
	if (!ssl || fio_init_tls(io, fd, ssl, 0) < 0)
		return -ENOMEM;
	return 1;
}
