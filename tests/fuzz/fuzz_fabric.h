/* SPDX-License-Identifier: MIT */
/*
 * What the targets of fabric servers (fuzz_memnode.c, fuzz_devnode.c)
 * share: writing a frame, reading a reply exactly, HELLO and AUTH as the
 * orchestrator, and pumping a byte stream into a connection while its
 * replies are read and dropped. Header-only, like fuzz_util.h.
 */
#ifndef DISAGG_FUZZ_FABRIC_H
#define DISAGG_FUZZ_FABRIC_H

#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "fuzz_util.h"
#include "grant.h"
#include "wire.h"

#define FZ_IO_TIMEOUT_MS 5000
#define FZ_NONCE "client-nonce-client-nonce-01234"

/* One frame of at most 256 bytes of payload, written whole (or a trap). */
static inline void fz_send_frame(int fd, uint16_t op, uint64_t id, const void *p, size_t len)
{
	uint8_t buf[PROTO_HDR_SIZE + 256];
	struct proto_hdr h = {
		.magic = PROTO_MAGIC,
		.version = PROTO_VERSION,
		.opcode = op,
		.len = (uint32_t)len,
		.req_id = id,
	};

	CHECK(len <= sizeof(buf) - PROTO_HDR_SIZE);
	wire_hdr_encode(&h, buf);
	memcpy(buf + PROTO_HDR_SIZE, p, len);
	CHECK(write(fd, buf, PROTO_HDR_SIZE + len) == (ssize_t)(PROTO_HDR_SIZE + len));
}

/* Read exactly len bytes of a reply (the socket is non-blocking). */
static inline void fz_read_exact(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t k;

		CHECK(fz_poll(&pfd, 1, FZ_IO_TIMEOUT_MS) == 1);
		k = read(fd, p, len);
		if (k < 0 && errno == EAGAIN)
			continue;
		CHECK(k > 0);
		p += k;
		len -= (size_t)k;
	}
}

/*
 * HELLO and AUTH with the orchestrator's proof, as a well-behaved client:
 * the server (node server_id) must accept both and grant `features`.
 */
static inline void fz_handshake(int fd, const struct auth_key *key, const struct grant_key *gk,
				uint32_t features, uint64_t node_id, uint64_t server_id)
{
	struct proto_hello_req hq = {
		.ver_min = PROTO_VERSION,
		.ver_max = PROTO_VERSION,
		.features = features,
		.node_id = node_id,
		.nonce = FZ_NONCE,
	};
	uint8_t hb[PROTO_HDR_SIZE];
	struct proto_hello_rep hr;
	struct proto_auth_orch_req aq;
	struct proto_hdr h;

	wire_hello_req_swap(&hq);
	fz_send_frame(fd, PROTO_OP_HELLO, 1, &hq, sizeof(hq));
	fz_read_exact(fd, hb, sizeof(hb));
	CHECK(wire_hdr_decode(hb, sizeof(hb), &h) == 0);
	CHECK(h.status == PROTO_ST_OK && h.len == sizeof(hr));
	fz_read_exact(fd, &hr, sizeof(hr));
	wire_hello_rep_swap(&hr);
	CHECK(hr.node_id == server_id && hr.features == features);
	CHECK(auth_hello_mac(key, false, (const uint8_t *)FZ_NONCE, hr.nonce, node_id, server_id,
			     aq.mac) == 0);
	CHECK(grant_orch_sign(gk, (const uint8_t *)FZ_NONCE, hr.nonce, node_id, server_id,
			      aq.sig) == 0);
	fz_send_frame(fd, PROTO_OP_AUTH, 2, &aq, sizeof(aq));
	fz_read_exact(fd, hb, sizeof(hb));
	CHECK(wire_hdr_decode(hb, sizeof(hb), &h) == 0);
	CHECK(h.status == PROTO_ST_OK && h.len == 0);
}

/*
 * Write the stream while reading (and dropping) replies, then close our
 * side and read until the server closes the connection. The server must
 * close it: after EOF there is nothing left for it to wait for.
 */
static inline void fz_pump(int fd, const uint8_t *s, size_t n)
{
	static uint8_t sink[1 << 16];
	bool shut = false;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN | (shut ? 0 : POLLOUT) };
		ssize_t k;

		if (!shut && n == 0) {
			CHECK(shutdown(fd, SHUT_WR) == 0);
			shut = true;
			continue;
		}
		CHECK(fz_poll(&pfd, 1, FZ_IO_TIMEOUT_MS) == 1);
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			k = read(fd, sink, sizeof(sink));
			if (k == 0 || (k < 0 && errno == ECONNRESET))
				return;   /* closed by the server */
			CHECK(k > 0 || errno == EAGAIN);
		}
		if (!shut && (pfd.revents & POLLOUT)) {
			k = send(fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k < 0 && (errno == EPIPE || errno == ECONNRESET))
				n = 0;  /* the server closed: nothing more to write */
			else if (k > 0) {
				s += k;
				n -= (size_t)k;
			} else {
				CHECK(errno == EAGAIN);
			}
		}
	}
}

#endif /* DISAGG_FUZZ_FABRIC_H */
