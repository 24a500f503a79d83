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

/*
 * The in-flight log of one split queue (vhost-user INFLIGHT_SHMFD, as
 * QEMU's docs/interop/vhost-user.rst lays it out): in a memfd that the
 * back end makes and QEMU keeps, so that a back end that restarts (the
 * agent killed and started again) learns which chains its predecessor
 * took and never answered, and serves them again.
 */
struct vu_inflight_desc {
	uint8_t inflight;        /* taken, not yet on the used ring */
	uint8_t padding[5];
	uint16_t next;           /* packed rings only */
	uint64_t counter;        /* the order chains were taken in */
};

struct vu_inflight_q {
	uint64_t features;
	uint16_t version;        /* 0: new, nothing to resubmit */
	uint16_t desc_num;       /* the queue's size */
	uint16_t last_batch_head;   /* the chain being put on the used ring */
	uint16_t used_idx;       /* the used index once that chain's flag was cleared */
	struct vu_inflight_desc desc[];
};

/* Bytes of one queue's log in the memfd (each queue's starts at a multiple of it). */
uint64_t vu_inflight_q_size(uint16_t queue_size);

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
	struct vu_inflight_q *infl; /* its in-flight log (INFLIGHT_SHMFD), or NULL */
	uint64_t counter;        /* the next chain's order in it */
	uint16_t *resubmit;      /* chains taken before a restart, unanswered: served first */
	unsigned nresubmit, resubmit_pos;
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
/*
 * Map it and start serving it (SET_VRING_KICK): 0, or -EFAULT. With an
 * in-flight log that served before, the chains it shows taken and not
 * answered are served again first, in the order they were taken, and
 * taking goes on after them (*ret_resubmit: how many; a log that does
 * not fit the ring is not used, and -EBADMSG is told in *ret_resubmit).
 */
int vu_ring_start(struct vu_ring *r, const struct vu_mem *mem, int *ret_resubmit);
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
