// SPDX-License-Identifier: MIT
/*
 * The vhost-user in-flight log (vu_ring.h, INFLIGHT_SHMFD): chains are
 * flagged when taken and unflagged once used; a ring started again on the
 * same log (a back end that restarted) serves the chains taken and never
 * answered first, in the order they were taken, then goes on after them;
 * a crash between the used index and the flag is repaired; a log that
 * does not fit the ring is refused; the two messages' checks, and the
 * memfd made at GET_INFLIGHT_FD and mapped again at SET_INFLIGHT_FD.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"
#include "vu_inflight.h"
#include "vu_mem.h"
#include "vu_msg.h"
#include "vu_ring.h"

#define QSIZE 8u
#define MEM (64u * 1024)
#define DESC 0x1000u       /* guest addresses of the rings and buffers */
#define AVAIL 0x2000u
#define USED 0x3000u
#define BUFS 0x8000u

#define BAIL_OUT(what)                                  \
	do {                                            \
		printf("Bail out! %s\n", what);       \
		exit(1);                                \
	} while (0)

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct guest {
	int fd;
	uint8_t *mem;            /* the guest's view: the same file */
	struct vu_mem vm;
	void *log;               /* the in-flight log, QEMU's memfd */
};

static uint16_t *avail_idx(struct guest *g)
{
	return (uint16_t *)(g->mem + AVAIL + 2);
}

static uint16_t *used_idx(struct guest *g)
{
	return (uint16_t *)(g->mem + USED + 2);
}

/* The guest makes chain `head` (one writable buffer) available. */
static void offer(struct guest *g, uint16_t head)
{
	struct desc *d = (struct desc *)(g->mem + DESC);
	uint16_t *ring = (uint16_t *)(g->mem + AVAIL + 4);

	d[head] = (struct desc){ BUFS + head * 512u, 512, 2 /* WRITE */, 0 };
	ring[*avail_idx(g) % QSIZE] = head;
	__atomic_store_n(avail_idx(g), (uint16_t)(*avail_idx(g) + 1), __ATOMIC_RELEASE);
}

static void guest_init(struct guest *g)
{
	struct vu_region r = { .guest_addr = 0, .size = MEM, .user_addr = 0x7f0000000000ull,
			       .mmap_offset = 0 };

	memset(g, 0, sizeof(*g));
	g->fd = memfd_create("guest", MFD_CLOEXEC);
	if (g->fd < 0 || ftruncate(g->fd, MEM) < 0)
		BAIL_OUT("memfd");
	g->mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
	if (g->mem == MAP_FAILED || vu_mem_add(&g->vm, &r, g->fd) < 0)
		BAIL_OUT("guest memory");
	g->log = calloc(1, vu_inflight_q_size(QSIZE));
	((struct vu_inflight_q *)g->log)->desc_num = QSIZE;
}

/* A back end's ring on the guest's queue and log (SET_VRING_NUM/ADDR/KICK). */
static int ring_start(struct guest *g, struct vu_ring *r, uint16_t base)
{
	int again = 0;

	vu_ring_init(r);
	r->num = QSIZE;
	r->addr = (struct vu_vring_addr){ .desc = 0x7f0000000000ull + DESC,
					  .avail = 0x7f0000000000ull + AVAIL,
					  .used = 0x7f0000000000ull + USED };
	r->addr_set = true;
	r->last_avail = base;
	r->infl = g->log;
	if (vu_ring_start(r, &g->vm, &again) < 0)
		BAIL_OUT("ring start");
	return again;
}

static int pop(struct guest *g, struct vu_ring *r)
{
	struct vu_chain c;
	int k = vu_ring_pop(r, &g->vm, &c);

	return k == 1 ? c.head : k == 0 ? -1 : k;
}

static void test_restart(void)
{
	struct vu_inflight_q *q;
	struct guest g;
	struct vu_ring r;

	guest_init(&g);
	q = g.log;
	is(ring_start(&g, &r, 0), 0, "a new log: nothing to serve again");
	is(q->version, 1, "and it is marked used");
	offer(&g, 6);
	offer(&g, 1);
	offer(&g, 4);
	is(pop(&g, &r), 6, "chain 6 taken");
	is(pop(&g, &r), 1, "chain 1 taken");
	is(pop(&g, &r), 4, "chain 4 taken");
	ok(q->desc[6].inflight == 1 && q->desc[1].inflight == 1 && q->desc[4].inflight == 1,
	   "all three are flagged");
	ok(q->desc[6].counter < q->desc[1].counter && q->desc[1].counter < q->desc[4].counter,
	   "in the order they were taken");
	vu_ring_push(&r, 1, 1);
	ok(q->desc[1].inflight == 0 && q->used_idx == 1 && q->last_batch_head == 1,
	   "chain 1 answered: unflagged, the log's used index follows the ring's");
	offer(&g, 3);
	vu_ring_stop(&r);           /* the back end dies: 6 and 4 are lost to it */

	/* QEMU saw the back end go: it restores last_avail to the used index (1). */
	is(ring_start(&g, &r, 1), 2, "a new back end: two chains to serve again");
	is(r.last_avail, 3, "taking goes on after the three taken before");
	is(pop(&g, &r), 6, "6 first (taken first)");
	is(pop(&g, &r), 4, "then 4");
	is(pop(&g, &r), 3, "then the new chain 3");
	is(pop(&g, &r), -1, "and nothing else: 1 is not served twice");
	ok(q->desc[3].counter > q->desc[4].counter, "new chains are counted after the old ones");
	vu_ring_push(&r, 4, 1);
	vu_ring_push(&r, 6, 1);
	vu_ring_push(&r, 3, 1);
	ok(!q->desc[6].inflight && !q->desc[4].inflight && !q->desc[3].inflight && q->used_idx == 4,
	   "all answered");
	vu_ring_stop(&r);
	is(ring_start(&g, &r, 4), 0, "started again with nothing in flight: nothing to serve");
	is(r.last_avail, 4, "from the used index");
	vu_ring_stop(&r);

	/* Killed after the used index moved and before the flag was cleared. */
	offer(&g, 2);
	is(ring_start(&g, &r, 4), 0, "started");
	is(pop(&g, &r), 2, "chain 2 taken");
	q->last_batch_head = 2;
	((uint32_t *)(g.mem + USED + 4))[2 * (4 % QSIZE)] = 2;
	__atomic_store_n(used_idx(&g), 5, __ATOMIC_RELEASE);
	vu_ring_stop(&r);
	is(ring_start(&g, &r, 5), 0, "the last batch's head is not served again");
	ok(q->desc[2].inflight == 0 && q->used_idx == 5, "its flag is cleared, the log repaired");
	is(pop(&g, &r), -1, "nothing to take");
	vu_ring_stop(&r);

	/* Logs that do not fit. */
	q->desc[0].inflight = q->desc[5].inflight = q->desc[7].inflight = 1;
	is(ring_start(&g, &r, 5), -EBADMSG, "more flagged than the guest ever offered: refused");
	ok(r.infl == NULL && r.last_avail == 5, "the ring goes on without it, from QEMU's base");
	vu_ring_stop(&r);
	q->desc[0].inflight = q->desc[5].inflight = q->desc[7].inflight = 0;
	q->desc_num = QSIZE * 2;
	is(ring_start(&g, &r, 5), -EBADMSG, "a log of another queue size: refused");
	vu_ring_stop(&r);
	q->desc_num = QSIZE;
	q->last_batch_head = QSIZE;
	is(ring_start(&g, &r, 5), -EBADMSG, "a last batch head past the ring: refused");
	vu_ring_stop(&r);

	vu_mem_clear(&g.vm);
	munmap(g.mem, MEM);
	close(g.fd);
	free(g.log);
}

static int parse(uint32_t req, uint32_t size, unsigned nfds, struct vu_msg *m)
{
	uint8_t buf[12 + 24] = { 0 };
	uint32_t flags = VU_F_VERSION;
	uint64_t msize = 4096;
	uint16_t nq = 2, qs = 128;
	int fds[2] = { memfd_create("a", MFD_CLOEXEC), memfd_create("b", MFD_CLOEXEC) };

	memcpy(buf, &req, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &size, 4);
	memcpy(buf + 12, &msize, 8);
	memcpy(buf + 28, &nq, 2);
	memcpy(buf + 30, &qs, 2);
	for (unsigned i = nfds; i < 2; i++)
		close(fds[i]);
	return vu_msg_parse(buf, 12 + size, fds, nfds, m);
}

static void test_messages(void)
{
	struct vu_msg m;

	is(parse(VU_GET_INFLIGHT_FD, 24, 0, &m), 0, "GET_INFLIGHT_FD as QEMU sends it");
	ok(m.inflight.num_queues == 2 && m.inflight.queue_size == 128, "queues and their size");
	is(parse(VU_GET_INFLIGHT_FD, 20, 0, &m), 0, "without the padding too");
	is(parse(VU_GET_INFLIGHT_FD, 24, 1, &m), -EBADMSG, "GET with an fd: -EBADMSG");
	is(parse(VU_SET_INFLIGHT_FD, 24, 1, &m), 0, "SET_INFLIGHT_FD with its memfd");
	ok(m.inflight.mmap_size == 4096 && m.nfds == 1, "decoded");
	vu_msg_close_fds(&m);
	is(parse(VU_SET_INFLIGHT_FD, 24, 0, &m), -EBADMSG, "SET without an fd: -EBADMSG");
	is(parse(VU_SET_INFLIGHT_FD, 16, 1, &m), -EBADMSG, "a short payload: -EBADMSG");
	is(parse(VU_SET_INFLIGHT_FD, 24, 2, &m), -EBADMSG, "two fds: -EBADMSG");
	ok(vu_inflight_q_size(128) == 2112 && vu_inflight_q_size(1) == 64,
	   "a queue's log: header and descriptors, in 64-byte steps");
}

static void test_memfd(void)
{
	struct vu_inflight f = { 0 }, f2 = { 0 };
	struct vu_msg m = { .request = VU_GET_INFLIGHT_FD };
	uint8_t rep[VU_INFLIGHT_REPLY];
	uint64_t size;
	int fd = -1;

	m.inflight.num_queues = 2;
	m.inflight.queue_size = 128;
	is(vu_inflight_new(&f, &m, 8, rep, &fd), 0, "GET_INFLIGHT_FD: new logs for 2 queues");
	memcpy(&size, rep, 8);
	ok(fd >= 0 && size == 2 * 2112 && f.nq == 2, "one memfd, a log per queue");
	ok(vu_inflight_queue(&f, 1, 128) && vu_inflight_queue(&f, 1, 128)->desc_num == 128 &&
	   vu_inflight_queue(&f, 1, 128)->version == 0, "each names its size and is new");
	ok(!vu_inflight_queue(&f, 2, 128) && !vu_inflight_queue(&f, 0, 256),
	   "no log for a third queue, nor for a ring of another size");
	vu_inflight_queue(&f, 1, 128)->desc[5].inflight = 1;
	m.request = VU_SET_INFLIGHT_FD;
	m.inflight.mmap_size = size;
	is(vu_inflight_map(&f2, &m, fd, 8), 0, "SET_INFLIGHT_FD maps the same memfd");
	is(vu_inflight_queue(&f2, 1, 128)->desc[5].inflight, 1, "and sees what was written");
	m.inflight.mmap_size = size - 1;
	is(vu_inflight_map(&f2, &m, fd, 8), -EINVAL, "a memfd too small for its queues: refused");
	m.inflight.mmap_size = size;
	is(vu_inflight_map(&f2, &m, fd, 1), -EINVAL, "more queues than the device has: refused");
	m.inflight.queue_size = 0;
	is(vu_inflight_map(&f2, &m, fd, 8), -EINVAL, "a queue size of 0: refused");
	m.inflight.queue_size = 128;
	m.inflight.mmap_offset = 100;
	is(vu_inflight_map(&f2, &m, fd, 8), -EINVAL, "an offset off a page: refused");
	ok(f2.addr && f2.nq == 2, "a refused SET keeps the logs it had");
	vu_inflight_unmap(&f2);
	vu_inflight_unmap(&f);
	close(fd);
}

int main(void)
{
	test_restart();
	test_messages();
	test_memfd();
	done_testing();
	return tap_exit();
}
