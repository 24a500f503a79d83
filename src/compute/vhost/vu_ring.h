/* SPDX-License-Identifier: MIT */
/*
 * A split virtqueue served by a vhost-user back end (vu_ring.c): taking
 * the descriptor chains the guest made available, and handing them back
 * as used. The rings live in guest memory (vu_mem.h); everything read from
 * them is checked: descriptor indices, chain lengths (no loops), indirect
 * tables, and that every buffer lies in guest memory.
 */
#ifndef DISAGG_VU_RING_H
#define DISAGG_VU_RING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vu_log.h"
#include "vu_mem.h"

#define VU_RING_MAX     1024u   /* the largest queue size taken */
#define VU_MAX_SEGS     130u    /* buffers in one chain: seg_max + header + status */

/* Ring feature bits offered to the guest (virtio 1.x). */
enum {
	VU_F_INDIRECT_DESC = 28,
	VU_F_VERSION_1 = 32,
};

struct vu_ring {
	unsigned num;            /* 0 until SET_VRING_NUM */
	struct vu_vring_addr addr;
	bool addr_set;
	struct vring_desc_le *desc;     /* our pointers into guest memory */
	struct vring_avail_le *avail;
	struct vring_used_le *used;
	uint16_t last_avail;     /* the next chain to take */
	uint16_t used_idx;       /* the next used slot to fill */
	int kick_fd, call_fd, err_fd;
	bool enabled;            /* SET_VRING_ENABLE (rings start disabled with protocol features) */
	bool started;            /* SET_VRING_KICK came: serve it */
	unsigned inflight;       /* chains taken, not yet used */
	bool notify;             /* chains used since the last call */
	const struct vu_log *log;   /* logging the used ring's writes (addr.flags bit 0), or NULL */
};

/* One chain: the guest's buffers, readable ones first, then writable ones. */
struct vu_chain {
	uint16_t head;
	unsigned nout, nin;      /* device-readable, device-writable */
	struct iovec iov[VU_MAX_SEGS];   /* [0, nout) readable, [nout, nout + nin) writable */
	uint64_t gpa[VU_MAX_SEGS];       /* their guest-physical addresses (the dirty log) */
};

void vu_ring_init(struct vu_ring *r);
/* Close its fds and forget its addresses (GET_VRING_BASE, reset). */
void vu_ring_stop(struct vu_ring *r);
/* Translate the ring's addresses through mem: -EFAULT if a ring is not in guest memory. */
int vu_ring_map(struct vu_ring *r, const struct vu_mem *mem);
/* Map it and start serving it (SET_VRING_KICK): -EFAULT. */
int vu_ring_start(struct vu_ring *r, const struct vu_mem *mem);
/*
 * Take the next available chain: 1 with *c filled, 0 if none, -EFAULT or
 * -EBADMSG if the guest's ring or chain is broken (the device should then
 * stop serving this queue).
 */
int vu_ring_pop(struct vu_ring *r, const struct vu_mem *mem, struct vu_chain *c);
/* Hand chain `head` back, `len` bytes written into its writable buffers. */
void vu_ring_push(struct vu_ring *r, uint16_t head, uint32_t len);
/* Signal the guest if chains were used since the last call and it wants to know. */
void vu_ring_kick_guest(struct vu_ring *r);

#endif /* DISAGG_VU_RING_H */
