// SPDX-License-Identifier: MIT
/*
 * The vhost-user dirty log (vu_log.h): bits for exactly the pages written,
 * bounds, the SET_LOG_BASE message's checks, and the used ring's entries
 * logged at the address SET_VRING_ADDR gave (only with the log flag).
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"
#include "vu_log.h"
#include "vu_msg.h"
#include "vu_ring.h"

#define PG VU_LOG_PAGE

static unsigned bits_set(const struct vu_log *l)
{
	unsigned n = 0;

	for (uint64_t i = 0; i < l->len; i++)
		n += (unsigned)__builtin_popcount(l->bits[i]);
	return n;
}

static bool bit(const struct vu_log *l, uint64_t pg)
{
	return l->bits[pg / 8] & (1u << (pg % 8));
}

static int log_fd(size_t size)
{
	int fd = memfd_create("log", MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_bits(void)
{
	struct vu_log l = { 0 };
	int fd = log_fd(4096);

	is(vu_log_set(&l, fd, 16, 64), 0, "a 16-byte log at offset 64 of the file");
	vu_log_write(&l, 5 * PG + 100, 10);
	ok(bit(&l, 5) && bits_set(&l) == 1, "a write inside one page sets its bit only");
	vu_log_write(&l, 9 * PG - 1, 2);
	ok(bit(&l, 8) && bit(&l, 9) && bits_set(&l) == 3, "a write across a page boundary sets both");
	vu_log_write(&l, 20 * PG, 3 * PG);
	ok(bit(&l, 20) && bit(&l, 21) && bit(&l, 22) && !bit(&l, 23) && bits_set(&l) == 6,
	   "three whole pages: three bits");
	vu_log_write(&l, 127 * PG, 4 * PG);
	ok(bit(&l, 127) && bits_set(&l) == 7, "pages past the bitmap are ignored");
	vu_log_write(&l, UINT64_MAX - 10, 100);
	vu_log_write(&l, 0, 0);
	ok(bits_set(&l) == 7, "an overflowing range or an empty one changes nothing");
	{
		uint8_t *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);

		ok(m != MAP_FAILED && m[64] == (1u << 5) && m[65] == 3,
		   "the bits are in the file, where QEMU reads them");
		if (m != MAP_FAILED)
			munmap(m, 4096);
	}
	is(vu_log_set(&l, fd, 8192, 0), -EINVAL, "a log past the file's end: -EINVAL");
	is(vu_log_set(&l, fd, 0, 0), -EINVAL, "an empty log: -EINVAL");
	is(vu_log_set(&l, -1, 16, 0), -EINVAL, "no fd: -EINVAL");
	ok(l.bits != NULL, "a refused log leaves the one in use");
	vu_log_clear(&l);
	ok(!l.bits, "cleared");
	vu_log_write(&l, 0, PG);   /* no log: nothing, no crash */
	close(fd);
}

static int parse(uint32_t size, unsigned nfds, struct vu_msg *m)
{
	uint8_t buf[12 + 16] = { 0 };
	uint32_t req = VU_SET_LOG_BASE, flags = VU_F_VERSION;
	uint64_t msize = 4096, moff = 0;
	int fds[2] = { log_fd(4096), log_fd(4096) };

	memcpy(buf, &req, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &size, 4);
	memcpy(buf + 12, &msize, 8);
	memcpy(buf + 20, &moff, 8);
	for (unsigned i = nfds; i < 2; i++)
		close(fds[i]);
	return vu_msg_parse(buf, 12 + size, fds, nfds, m);
}

static void test_message(void)
{
	struct vu_msg m;

	is(parse(16, 1, &m), 0, "SET_LOG_BASE: size and offset, one fd");
	ok(m.log.mmap_size == 4096 && m.log.mmap_offset == 0 && m.nfds == 1, "decoded");
	vu_msg_close_fds(&m);
	is(parse(8, 1, &m), -EBADMSG, "a short payload: -EBADMSG");
	is(parse(16, 0, &m), -EBADMSG, "no fd: -EBADMSG");
	is(parse(16, 2, &m), -EBADMSG, "two fds: -EBADMSG");
}

static void test_used_ring(void)
{
	struct vu_log l = { 0 };
	struct vu_ring r;
	uint64_t used[64] = { 0 };
	int fd = log_fd(4096);

	vu_ring_init(&r);
	r.num = 8;
	r.used = (struct vring_used_le *)used;
	r.inflight = 2;
	r.addr.log = 7 * PG + 4064;      /* the used ring's guest address, near a page end */
	is(vu_log_set(&l, fd, 4096, 0), 0, "a log");
	r.log = &l;
	vu_ring_push(&r, 3, 512);
	ok(bits_set(&l) == 0, "without the log flag, the used ring is not logged");
	r.addr.flags = 1;
	vu_ring_push(&r, 4, 512);
	ok(bit(&l, 7) && bits_set(&l) == 1, "with it, the entry and the index are (page 7)");
	r.used_idx = 12;              /* entry 12 % 8 = 4: at 4064 + 4 + 32, on page 8 */
	r.inflight = 1;
	vu_ring_push(&r, 5, 512);
	ok(bit(&l, 8) && bits_set(&l) == 2, "an entry on the next page logs that page");
	vu_log_clear(&l);
	close(fd);
}

int main(void)
{
	test_bits();
	test_message();
	test_used_ring();
	done_testing();
	return tap_exit();
}
