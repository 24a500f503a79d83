// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the vhost-user-blk back end (src/compute/vhost/):
 * QEMU's messages (vu_msg.c) and what the device does with them (vu_blk.c),
 * and the virtqueues a guest fills (vu_ring.c) with the virtio-blk
 * requests on them, down to a disk (the file store on a memfd).
 *
 * Each input gets a fresh device on a socketpair, served on a thread of its
 * own as QEMU would see it. The input is:
 *   - 2 bytes: how many of the next bytes are guest memory (at most 64 KiB),
 *     copied to the start of a 1 MiB memfd that stands for guest RAM;
 *   - then records: a kind byte, and
 *       0: a message: 2 bytes of length, then the message as QEMU sends it.
 *          The target attaches the fds the request needs, as QEMU does: the
 *          guest RAM memfd for SET_MEM_TABLE (one per region),
 *          ADD_MEM_REG and SET_INFLIGHT_FD, an eventfd for SET_VRING_KICK/CALL/ERR (unless the
 *          message says "no fd"). Replies are read and dropped;
 *       1: a kick of queue (next byte % 8): the guest notifies;
 *       2: 2 bytes offset, 2 bytes length, bytes: the guest writes its memory
 *          (rings, descriptors, requests) while the device runs.
 * Then the socket is closed: the device must return from vu_blk_run, and
 * vu_blk_free must leave no fd and no mapping behind.
 *
 * Seed inputs: tests/fuzz/corpus/vhost/ (made by gen_corpus.py).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "log.h"
#include "vu_blk.h"
#include "vu_file.h"
#include "vu_msg.h"

#define RAM_SIZE (1u << 20)
#define DISK_SIZE (1u << 20)

struct run {
	struct vu_blk *d;
	pthread_t thread;
};

static void *serve(void *arg)
{
	struct run *r = arg;

	(void)vu_blk_run(r->d);
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_LVL_ERROR);
	return 0;
}

/* Read and drop whatever the device answered so far. */
static void drain_replies(int fd)
{
	static uint8_t sink[4096];

	while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
}

static void send_msg(int fd, const uint8_t *m, size_t len, int ram, int kicks[8])
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
	} cm;
	struct iovec iov = { (void *)m, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[VU_MAX_FDS];
	unsigned nfds = 0;
	uint32_t req = 0, n = 0;
	uint64_t u = 0;

	if (len >= VU_HDR_SIZE)
		memcpy(&req, m, 4);
	if (req == VU_SET_MEM_TABLE && len >= VU_HDR_SIZE + 4) {
		memcpy(&n, m + VU_HDR_SIZE, 4);
		for (uint32_t i = 0; i < n && nfds < VU_MAX_FDS; i++)
			fds[nfds++] = ram;
	} else if (req == VU_ADD_MEM_REG || req == VU_SET_INFLIGHT_FD) {
		fds[nfds++] = ram;   /* SET_INFLIGHT_FD: guest RAM as the logs, whatever it holds */
	} else if ((req == VU_SET_VRING_KICK || req == VU_SET_VRING_CALL ||
		    req == VU_SET_VRING_ERR) && len >= VU_HDR_SIZE + 8) {
		memcpy(&u, m + VU_HDR_SIZE, 8);
		if (!(u & VU_VRING_NOFD))
			fds[nfds++] = kicks[u & 7];
	}
	if (nfds) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), fds, sizeof(int) * nfds);
	}
	/* The device may have hung up (a malformed message): EPIPE is an answer too. */
	(void)sendmsg(fd, &mh, MSG_NOSIGNAL);
	drain_replies(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct vu_blk_conf conf = { .capacity = DISK_SIZE, .num_queues = 2, .serial = "fuzz",
				    .discard = true, .write_zeroes = true };
	int fds0 = test_open_fds(), sv[2], ram, kicks[8];
	struct vu_file disk;
	struct run r;
	uint8_t *mem;
	size_t n;

	ram = memfd_create("fuzz-ram", MFD_CLOEXEC);
	disk.fd = memfd_create("fuzz-disk", MFD_CLOEXEC);
	CHECK(ram >= 0 && disk.fd >= 0 && ftruncate(ram, RAM_SIZE) == 0 &&
	      ftruncate(disk.fd, DISK_SIZE) == 0);
	mem = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram, 0);
	CHECK(mem != MAP_FAILED);
	n = fz_u16(&in) % (64u << 10);
	fz_bytes(&in, mem, n);
	for (unsigned i = 0; i < 8; i++) {
		kicks[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		CHECK(kicks[i] >= 0);
	}
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(vu_blk_new(sv[1], &conf, &vu_file_ops, &disk, &r.d) == 0);
	CHECK(pthread_create(&r.thread, NULL, serve, &r) == 0);
	while (in.n) {
		uint8_t kind = fz_u8(&in) % 3;

		if (kind == 0) {
			uint8_t msg[VU_HDR_SIZE + VU_MAX_PAYLOAD + VU_MAX_CONFIG];
			size_t len = fz_u16(&in) % sizeof(msg);

			len = fz_bytes(&in, msg, len);
			send_msg(sv[0], msg, len, ram, kicks);
		} else if (kind == 1) {
			uint64_t one = 1;

			(void)!write(kicks[fz_u8(&in) % 8], &one, sizeof(one));
		} else {
			size_t off = fz_u16(&in), len = fz_u16(&in) % 512;

			if (off + len <= RAM_SIZE)
				fz_bytes(&in, mem + off, len);
		}
	}
	/* EOF for the device once it has read everything; its replies are read meanwhile. */
	CHECK(shutdown(sv[0], SHUT_WR) == 0);
	while (pthread_tryjoin_np(r.thread, NULL) == EBUSY) {
		drain_replies(sv[0]);
		usleep(100);
	}
	vu_blk_free(r.d);        /* closes sv[1] */
	close(sv[0]);
	for (unsigned i = 0; i < 8; i++)
		close(kicks[i]);
	munmap(mem, RAM_SIZE);
	close(ram);
	close(disk.fd);
	CHECK(test_open_fds() == fds0);
	return 0;
}
