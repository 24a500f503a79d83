/* SPDX-License-Identifier: MIT */
/*
 * vhost-user messages (vu_msg.c): the subset of QEMU's vhost-user
 * protocol (docs/interop/vhost-user.rst) that a block back end needs, as
 * docs/devnode.md lists it. QEMU is the front end; we are the back end.
 *
 * A message is a 12-byte header (request, flags, size; host byte order:
 * the protocol runs between processes of one host) and `size` bytes of
 * payload, with up to VU_MAX_FDS file descriptors as SCM_RIGHTS. Every
 * message from QEMU passes through vu_msg_parse() before anything acts on
 * it: it checks the request against the payload size it must have, the
 * fds it must carry, and every count and index.
 */
#ifndef DISAGG_VU_MSG_H
#define DISAGG_VU_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VU_HDR_SIZE      12u
#define VU_MAX_FDS       8u
#define VU_MAX_REGIONS   8u     /* in SET_MEM_TABLE */
#define VU_MAX_CONFIG    256u   /* bytes of device config in GET/SET_CONFIG */
#define VU_MAX_PAYLOAD   (8u + VU_MAX_REGIONS * 32u)  /* the largest: SET_MEM_TABLE */

enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_LOG_FD = 7,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_GET_INFLIGHT_FD = 31,
	VU_SET_INFLIGHT_FD = 32,
	VU_RESET_DEVICE = 34,
	VU_GET_MAX_MEM_SLOTS = 36,
	VU_ADD_MEM_REG = 37,
	VU_REM_MEM_REG = 38,
	VU_REQUEST_MAX = 41,
};

/* Header flags. */
enum {
	VU_F_VERSION = 0x1,          /* bits 0-1: the protocol version, 1 */
	VU_F_VERSION_MASK = 0x3,
	VU_F_REPLY = 1u << 2,
	VU_F_NEED_REPLY = 1u << 3,
};

/* Feature bits of the device (GET/SET_FEATURES). */
enum {
	VU_FEAT_LOG_ALL = 26,             /* VHOST_F_LOG_ALL: the dirty log (vu_log.h) */
	VU_FEAT_PROTOCOL_FEATURES = 30,   /* VHOST_USER_F_PROTOCOL_FEATURES */
};

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
enum {
	VU_PF_MQ = 0,
	VU_PF_LOG_SHMFD = 1,
	VU_PF_REPLY_ACK = 3,
	VU_PF_CONFIG = 9,
	VU_PF_INFLIGHT_SHMFD = 12,
	VU_PF_RESET_DEVICE = 13,
	VU_PF_CONFIGURE_MEM_SLOTS = 15,
};

/* The index byte of SET_VRING_KICK/CALL/ERR, and its "no fd" bit. */
#define VU_VRING_IDX_MASK 0xffu
#define VU_VRING_NOFD     (1u << 8)

struct vu_region {
	uint64_t guest_addr;
	uint64_t size;
	uint64_t user_addr;      /* where QEMU maps it: ring addresses use these */
	uint64_t mmap_offset;
};

struct vu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc, used, avail, log;   /* QEMU's user addresses */
};

/* A parsed message; fds[] are owned by it (vu_msg_close_fds). */
struct vu_msg {
	uint32_t request, flags, size;
	union {
		uint64_t u64;
		struct { uint32_t index, num; } state;
		struct vu_vring_addr addr;
		struct {
			uint32_t n;
			struct vu_region r[VU_MAX_REGIONS];
		} mem;
		struct vu_region region;                       /* ADD/REM_MEM_REG */
		struct { uint32_t offset, size, flags; uint8_t data[VU_MAX_CONFIG]; } config;
		struct { uint64_t mmap_size, mmap_offset; uint16_t num_queues, queue_size; } inflight;
		struct { uint64_t mmap_size, mmap_offset; } log;   /* SET_LOG_BASE, with its fd */
	};
	int fds[VU_MAX_FDS];
	unsigned nfds;
};

/*
 * Check and decode `len` bytes (a header and its payload) and the `nfds`
 * fds that came with them, which *ret takes over (also on failure they
 * are closed). -EBADMSG for a malformed message, -EOPNOTSUPP for a
 * request outside the subset (its fds closed too).
 */
int vu_msg_parse(const void *buf, size_t len, const int *fds, unsigned nfds,
		 struct vu_msg *ret);
/* Close the fds a message still holds. */
void vu_msg_close_fds(struct vu_msg *m);
/* Take fd i out of the message (-1 if it has none). */
int vu_msg_take_fd(struct vu_msg *m, unsigned i);
const char *vu_request_name(uint32_t request);

/*
 * Receive one message from the socket: 1 with *ret filled, 0 on EOF, or
 * -errno (-EBADMSG, -EOPNOTSUPP from vu_msg_parse: the message was read
 * whole, the connection may go on). Blocking.
 */
int vu_msg_recv(int sock, struct vu_msg *ret);
/* Send a reply to request `req`: the header (REPLY set) and `len` payload bytes. */
int vu_msg_reply(int sock, uint32_t req, const void *payload, uint32_t len, int fd);

#endif /* DISAGG_VU_MSG_H */
