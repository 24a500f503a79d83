/* SPDX-License-Identifier: MIT */
/*
 * The in-flight logs of a vhost-user device's queues (vu_inflight.c;
 * INFLIGHT_SHMFD): one memfd that the back end makes at QEMU's
 * GET_INFLIGHT_FD and QEMU hands back with SET_INFLIGHT_FD, each time the
 * device starts, also to a back end that restarted. Each queue's log is
 * a struct vu_inflight_q (vu_ring.h) at a multiple of vu_inflight_q_size.
 */
#ifndef DISAGG_VU_INFLIGHT_H
#define DISAGG_VU_INFLIGHT_H

#include <stdint.h>

#include "vu_msg.h"
#include "vu_ring.h"

#define VU_INFLIGHT_REPLY 24u   /* bytes of GET_INFLIGHT_FD's answer */

struct vu_inflight {
	uint8_t *addr;           /* the memfd, mapped; NULL: none */
	uint64_t size, qsize;    /* mapped bytes; bytes per queue */
	unsigned nq;
	uint16_t queue_size;
};

/*
 * SET_INFLIGHT_FD: map fd as the logs of the queues m names (at most
 * max_queues), in place of what f had: 0, -EINVAL (sizes), -errno.
 */
int vu_inflight_map(struct vu_inflight *f, const struct vu_msg *m, int fd, unsigned max_queues);
/*
 * GET_INFLIGHT_FD: new, empty logs for m's queues, mapped into f; the
 * memfd in *ret_fd (the caller sends and closes it) and the answer in rep.
 */
int vu_inflight_new(struct vu_inflight *f, const struct vu_msg *m, unsigned max_queues,
		    uint8_t rep[VU_INFLIGHT_REPLY], int *ret_fd);
void vu_inflight_unmap(struct vu_inflight *f);
/* Queue q's log, if f has one for a ring of num entries; else NULL. */
struct vu_inflight_q *vu_inflight_queue(const struct vu_inflight *f, unsigned q, unsigned num);

#endif /* DISAGG_VU_INFLIGHT_H */
