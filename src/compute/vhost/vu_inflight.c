// SPDX-License-Identifier: MIT
/*
 * The in-flight logs' memfd (vu_inflight.h). Its sizes come from QEMU's
 * message and are checked; what is inside is checked by the ring that
 * reads it (vu_ring.c).
 */
#include "vu_inflight.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_BYTES (64ull << 20)

void vu_inflight_unmap(struct vu_inflight *f)
{
	if (f->addr)
		munmap(f->addr, f->size);
	memset(f, 0, sizeof(*f));
}

int vu_inflight_map(struct vu_inflight *f, const struct vu_msg *m, int fd, unsigned max_queues)
{
	uint64_t qsize = vu_inflight_q_size(m->inflight.queue_size);
	void *p;

	if (!m->inflight.num_queues || m->inflight.num_queues > max_queues ||
	    !m->inflight.queue_size || m->inflight.queue_size > VU_RING_MAX ||
	    m->inflight.mmap_size < qsize * m->inflight.num_queues ||
	    m->inflight.mmap_size > MAX_BYTES || m->inflight.mmap_offset % 4096 ||
	    m->inflight.mmap_offset > MAX_BYTES)
		return -EINVAL;
	p = mmap(NULL, m->inflight.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)m->inflight.mmap_offset);
	if (p == MAP_FAILED)
		return -errno;
	vu_inflight_unmap(f);
	f->addr = p;
	f->size = m->inflight.mmap_size;
	f->qsize = qsize;
	f->nq = m->inflight.num_queues;
	f->queue_size = m->inflight.queue_size;
	return 0;
}

int vu_inflight_new(struct vu_inflight *f, const struct vu_msg *m, unsigned max_queues,
		    uint8_t rep[VU_INFLIGHT_REPLY], int *ret_fd)
{
	struct vu_msg want = *m;
	int fd = memfd_create("vu-inflight", MFD_CLOEXEC), k;

	if (fd < 0)
		return -errno;
	want.inflight.mmap_size = vu_inflight_q_size(m->inflight.queue_size) *
				  m->inflight.num_queues;
	want.inflight.mmap_offset = 0;
	k = ftruncate(fd, (off_t)want.inflight.mmap_size) < 0 ? -errno
							       : vu_inflight_map(f, &want, fd, max_queues);
	if (k < 0) {
		close(fd);
		return k;
	}
	/* Zeros from the file; each log names its queue's size (version 0: new). */
	for (unsigned q = 0; q < f->nq; q++)
		((struct vu_inflight_q *)(f->addr + q * f->qsize))->desc_num = f->queue_size;
	memcpy(rep, &want.inflight.mmap_size, 8);
	memcpy(rep + 8, &want.inflight.mmap_offset, 8);
	memcpy(rep + 16, &want.inflight.num_queues, 2);
	memcpy(rep + 18, &want.inflight.queue_size, 2);
	memset(rep + 20, 0, 4);
	*ret_fd = fd;
	return 0;
}

struct vu_inflight_q *vu_inflight_queue(const struct vu_inflight *f, unsigned q, unsigned num)
{
	if (!f->addr || q >= f->nq || f->queue_size != num)
		return NULL;
	return (struct vu_inflight_q *)(f->addr + q * f->qsize);
}
