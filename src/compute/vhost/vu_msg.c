// SPDX-License-Identifier: MIT
/*
 * vhost-user messages: reading them off the socket with their fds, and
 * checking each one against what its request must carry (vu_msg.h).
 */
#include "vu_msg.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "macro.h"

/* What each request must carry: its payload size (or a minimum) and its fds. */
enum shape {
	SH_NONE,                 /* not in the subset */
	SH_EMPTY,                /* no payload (or, from some front ends, a u64 that is ignored) */
	SH_U64,
	SH_STATE,
	SH_ADDR,
	SH_VRING_FD,             /* u64 index (+ NOFD), and an fd unless NOFD */
	SH_MEM_TABLE,
	SH_MEM_REG,
	SH_CONFIG,
	SH_LOG,                  /* u64 size, u64 offset, and the log's fd */
	SH_INFLIGHT,             /* u64 size, u64 offset, u16 queues, u16 queue size (+ fd: SET) */
};

static const struct {
	const char *name;
	enum shape shape;
} reqs[VU_REQUEST_MAX] = {
	[VU_GET_FEATURES] = { "GET_FEATURES", SH_EMPTY },
	[VU_SET_FEATURES] = { "SET_FEATURES", SH_U64 },
	[VU_SET_OWNER] = { "SET_OWNER", SH_EMPTY },
	[VU_RESET_OWNER] = { "RESET_OWNER", SH_EMPTY },
	[VU_SET_MEM_TABLE] = { "SET_MEM_TABLE", SH_MEM_TABLE },
	[VU_SET_LOG_BASE] = { "SET_LOG_BASE", SH_LOG },
	[VU_SET_LOG_FD] = { "SET_LOG_FD", SH_NONE },
	[VU_SET_VRING_NUM] = { "SET_VRING_NUM", SH_STATE },
	[VU_SET_VRING_ADDR] = { "SET_VRING_ADDR", SH_ADDR },
	[VU_SET_VRING_BASE] = { "SET_VRING_BASE", SH_STATE },
	[VU_GET_VRING_BASE] = { "GET_VRING_BASE", SH_STATE },
	[VU_SET_VRING_KICK] = { "SET_VRING_KICK", SH_VRING_FD },
	[VU_SET_VRING_CALL] = { "SET_VRING_CALL", SH_VRING_FD },
	[VU_SET_VRING_ERR] = { "SET_VRING_ERR", SH_VRING_FD },
	[VU_GET_PROTOCOL_FEATURES] = { "GET_PROTOCOL_FEATURES", SH_EMPTY },
	[VU_SET_PROTOCOL_FEATURES] = { "SET_PROTOCOL_FEATURES", SH_U64 },
	[VU_GET_QUEUE_NUM] = { "GET_QUEUE_NUM", SH_EMPTY },
	[VU_SET_VRING_ENABLE] = { "SET_VRING_ENABLE", SH_STATE },
	[VU_GET_CONFIG] = { "GET_CONFIG", SH_CONFIG },
	[VU_SET_CONFIG] = { "SET_CONFIG", SH_CONFIG },
	[VU_GET_INFLIGHT_FD] = { "GET_INFLIGHT_FD", SH_INFLIGHT },
	[VU_SET_INFLIGHT_FD] = { "SET_INFLIGHT_FD", SH_INFLIGHT },
	[VU_RESET_DEVICE] = { "RESET_DEVICE", SH_NONE },
	[VU_GET_MAX_MEM_SLOTS] = { "GET_MAX_MEM_SLOTS", SH_EMPTY },
	[VU_ADD_MEM_REG] = { "ADD_MEM_REG", SH_MEM_REG },
	[VU_REM_MEM_REG] = { "REM_MEM_REG", SH_MEM_REG },
};

const char *vu_request_name(uint32_t request)
{
	return request < VU_REQUEST_MAX && reqs[request].name ? reqs[request].name : "unknown";
}

void vu_msg_close_fds(struct vu_msg *m)
{
	for (unsigned i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->nfds = 0;
}

int vu_msg_take_fd(struct vu_msg *m, unsigned i)
{
	int fd;

	if (i >= m->nfds)
		return -1;
	fd = m->fds[i];
	m->fds[i] = -1;
	return fd;
}

static void get_region(const uint8_t *p, struct vu_region *r)
{
	memcpy(&r->guest_addr, p, 8);
	memcpy(&r->size, p + 8, 8);
	memcpy(&r->user_addr, p + 16, 8);
	memcpy(&r->mmap_offset, p + 24, 8);
}

static bool region_ok(const struct vu_region *r)
{
	return r->size && r->guest_addr + r->size > r->guest_addr &&
	       r->user_addr + r->size > r->user_addr && r->mmap_offset + r->size > r->mmap_offset;
}

static int decode(struct vu_msg *m, const uint8_t *p)
{
	uint32_t sz = m->size;

	switch (reqs[m->request].shape) {
	case SH_EMPTY:
		/* QEMU sends GET_* with no payload; accept a u64 of zeros as well. */
		return sz == 0 || sz == 8 ? (m->nfds ? -EBADMSG : 0) : -EBADMSG;
	case SH_U64:
		if (sz != 8 || m->nfds)
			return -EBADMSG;
		memcpy(&m->u64, p, 8);
		return 0;
	case SH_STATE:
		if (sz != 8 || m->nfds)
			return -EBADMSG;
		memcpy(&m->state.index, p, 4);
		memcpy(&m->state.num, p + 4, 4);
		return 0;
	case SH_ADDR:
		if (sz != 40 || m->nfds)
			return -EBADMSG;
		memcpy(&m->addr.index, p, 4);
		memcpy(&m->addr.flags, p + 4, 4);
		memcpy(&m->addr.desc, p + 8, 8);
		memcpy(&m->addr.used, p + 16, 8);
		memcpy(&m->addr.avail, p + 24, 8);
		memcpy(&m->addr.log, p + 32, 8);
		return 0;
	case SH_VRING_FD:
		if (sz != 8)
			return -EBADMSG;
		memcpy(&m->u64, p, 8);
		if (m->u64 & ~(uint64_t)(VU_VRING_IDX_MASK | VU_VRING_NOFD))
			return -EBADMSG;
		return m->nfds == (m->u64 & VU_VRING_NOFD ? 0u : 1u) ? 0 : -EBADMSG;
	case SH_MEM_TABLE:
		if (sz < 8)
			return -EBADMSG;
		memcpy(&m->mem.n, p, 4);
		if (m->mem.n == 0 || m->mem.n > VU_MAX_REGIONS || sz != 8 + m->mem.n * 32 ||
		    m->nfds != m->mem.n)
			return -EBADMSG;
		for (uint32_t i = 0; i < m->mem.n; i++) {
			get_region(p + 8 + i * 32, &m->mem.r[i]);
			if (!region_ok(&m->mem.r[i]))
				return -EBADMSG;
		}
		return 0;
	case SH_MEM_REG:
		/* A u64 of padding, then one region; ADD carries its fd, REM may. */
		if (sz != 40 || m->nfds > 1 || (m->request == VU_ADD_MEM_REG && m->nfds != 1))
			return -EBADMSG;
		get_region(p + 8, &m->region);
		return region_ok(&m->region) ? 0 : -EBADMSG;
	case SH_CONFIG:
		if (sz < 12)
			return -EBADMSG;
		memcpy(&m->config.offset, p, 4);
		memcpy(&m->config.size, p + 4, 4);
		memcpy(&m->config.flags, p + 8, 4);
		if (m->nfds || m->config.size > VU_MAX_CONFIG || sz != 12 + m->config.size ||
		    m->config.offset > VU_MAX_CONFIG - m->config.size)
			return -EBADMSG;
		memcpy(m->config.data, p + 12, m->config.size);
		return 0;
	case SH_LOG:
		if (sz != 16 || m->nfds != 1)
			return -EBADMSG;
		memcpy(&m->log.mmap_size, p, 8);
		memcpy(&m->log.mmap_offset, p + 8, 8);
		return 0;
	case SH_INFLIGHT:
		/* QEMU sends the struct with its padding (24 bytes); 20 are enough. */
		if ((sz != 20 && sz != 24) ||
		    m->nfds != (m->request == VU_SET_INFLIGHT_FD ? 1u : 0u))
			return -EBADMSG;
		memcpy(&m->inflight.mmap_size, p, 8);
		memcpy(&m->inflight.mmap_offset, p + 8, 8);
		memcpy(&m->inflight.num_queues, p + 16, 2);
		memcpy(&m->inflight.queue_size, p + 18, 2);
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

int vu_msg_parse(const void *buf, size_t len, const int *fds, unsigned nfds,
		 struct vu_msg *ret)
{
	const uint8_t *b = buf;
	int r;

	memset(ret, 0, offsetof(struct vu_msg, fds));
	ret->nfds = MIN(nfds, VU_MAX_FDS);
	for (unsigned i = 0; i < ret->nfds; i++)
		ret->fds[i] = fds[i];
	for (unsigned i = ret->nfds; i < nfds; i++)
		close(fds[i]);
	if (len < VU_HDR_SIZE)
		r = -EBADMSG;
	else {
		memcpy(&ret->request, b, 4);
		memcpy(&ret->flags, b + 4, 4);
		memcpy(&ret->size, b + 8, 4);
		if ((ret->flags & VU_F_VERSION_MASK) != VU_F_VERSION || (ret->flags & VU_F_REPLY) ||
		    (ret->flags & ~(uint32_t)(VU_F_VERSION_MASK | VU_F_REPLY | VU_F_NEED_REPLY)) ||
		    ret->size != len - VU_HDR_SIZE || ret->size > VU_MAX_PAYLOAD + VU_MAX_CONFIG)
			r = -EBADMSG;
		else if (ret->request == 0 || ret->request >= VU_REQUEST_MAX)
			r = -EOPNOTSUPP;
		else
			r = decode(ret, b + VU_HDR_SIZE);
	}
	if (r < 0)
		vu_msg_close_fds(ret);
	return r;
}

int vu_msg_recv(int sock, struct vu_msg *ret)
{
	uint8_t buf[VU_HDR_SIZE + VU_MAX_PAYLOAD + VU_MAX_CONFIG];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
	} cm;
	struct iovec iov = { buf, VU_HDR_SIZE };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
			     .msg_controllen = sizeof(cm.b) };
	int fds[VU_MAX_FDS];
	unsigned nfds = 0;
	uint32_t size;
	ssize_t k;
	size_t got;
	int r;

	do
		k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	while (k < 0 && errno == EINTR);
	if (k == 0)
		return 0;
	if (k < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfds < VU_MAX_FDS)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	got = (size_t)k;
	if (got < VU_HDR_SIZE || (mh.msg_flags & MSG_CTRUNC)) {
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		return -EBADMSG;    /* the stream is out of step: the caller hangs up */
	}
	memcpy(&size, buf + 8, 4);
	if (size > sizeof(buf) - VU_HDR_SIZE) {
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		return -E2BIG;      /* cannot skip it safely: hang up */
	}
	while (got < VU_HDR_SIZE + size) {
		k = recv(sock, buf + got, VU_HDR_SIZE + size - got, MSG_WAITALL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			for (unsigned i = 0; i < nfds; i++)
				close(fds[i]);
			return k == 0 ? -ECONNRESET : -errno;
		}
		got += (size_t)k;
	}
	r = vu_msg_parse(buf, got, fds, nfds, ret);
	return r < 0 ? r : 1;
}

int vu_msg_reply(int sock, uint32_t req, const void *payload, uint32_t len, int fd)
{
	uint8_t buf[VU_HDR_SIZE + VU_MAX_PAYLOAD + VU_MAX_CONFIG];
	uint32_t flags = VU_F_VERSION | VU_F_REPLY;
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { buf, VU_HDR_SIZE + len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t k;

	if (len > sizeof(buf) - VU_HDR_SIZE)
		return -E2BIG;
	memcpy(buf, &req, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &len, 4);
	if (len)
		memcpy(buf + VU_HDR_SIZE, payload, len);
	if (fd >= 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.b;
		mh.msg_controllen = sizeof(cm.b);
		CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), &fd, sizeof(int));
	}
	do
		k = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	return (size_t)k == VU_HDR_SIZE + len ? 0 : -EIO;
}
