// SPDX-License-Identifier: MIT
/*
 * Unit test of the device node's io_uring block I/O (src/devnode/blkio.c)
 * on a real volume: a full ring of writes then reads, each answered once
 * with its cookie; the depth bound (-EAGAIN); a flush; discard and
 * write-zeroes that read back as zeros and keep the size (on ext4 and on
 * tmpfs, which has no zero-range: $TMPDIR picks); a read past the end
 * (-EIO) and a bad fd (-EBADF) answered per request while the ring goes on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blkio.h"
#include "tap.h"
#include "volume.h"

#define DEPTH 8
#define BLK   (64u << 10)
#define VOL   (4ull << 20)

/* Reap until n answers are in; each cookie must come once (bit set in *seen). */
static bool reap_all(struct dn_blkio *b, unsigned n, int *res_by_cookie, uint64_t *seen)
{
	struct dn_blk_done d[DEPTH];
	unsigned got = 0;

	while (got < n) {
		int k = dn_blkio_reap(b, d, DEPTH, true);

		if (k <= 0)
			return false;
		for (int i = 0; i < k; i++) {
			if (d[i].cookie >= 64 || (*seen & (1ull << d[i].cookie)))
				return false;
			*seen |= 1ull << d[i].cookie;
			res_by_cookie[d[i].cookie] = d[i].res;
		}
		got += (unsigned)k;
	}
	return true;
}

static bool all_are(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

int main(void)
{
	char dir[64];
	struct dn_volumes *vs = NULL;
	struct dn_blkio *b = NULL;
	uint8_t *wbuf = malloc(DEPTH * BLK), *rbuf = malloc(DEPTH * BLK);
	int res[64], fd = -1, r;
	uint64_t seen = 0, size = 0;
	struct stat st;
	bool good = true;

	snprintf(dir, sizeof(dir), "%s/dn-blkio-XXXXXX",
		 getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	r = dn_blkio_new(DEPTH, &b);
	if (r == -ENOSYS) {
		plan_skip_all("io_uring is disabled on this kernel");
		return 0;
	}
	is(r, 0, "a ring of depth %d", DEPTH);
	ok(mkdtemp(dir) && dn_volumes_open(dir, &vs) == 0 && dn_volume_create(vs, "v", VOL) == 0 &&
	   dn_volume_open(vs, "v", 0, &fd, &size) == 0, "a 4 MiB volume");
	is(dn_blkio_new(0, &(struct dn_blkio *){ NULL }), -EINVAL, "depth 0: -EINVAL");

	for (unsigned i = 0; i < DEPTH * BLK; i++)
		wbuf[i] = (uint8_t)(i * 7 + i / BLK);
	for (unsigned i = 0; i < DEPTH; i++)
		r |= dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_WRITE, fd, (uint64_t)i * BLK * 3,
							     BLK, wbuf + i * BLK, i });
	is(r, 0, "%d writes of 64 KiB queued", DEPTH);
	is(dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_FLUSH, fd, 0, 0, NULL, 60 }), -EAGAIN,
	   "one more while %d are in flight: -EAGAIN", DEPTH);
	is((int)dn_blkio_inflight(b), DEPTH, "  %d in flight", DEPTH);
	is(dn_blkio_submit(b), 0, "submitted");
	ok(reap_all(b, DEPTH, res, &seen), "each answered once, by its cookie");
	for (unsigned i = 0; i < DEPTH; i++)
		good &= res[i] == (int)BLK;
	ok(good, "  every write moved 64 KiB");
	is((int)dn_blkio_inflight(b), 0, "  none in flight");

	seen = 0;
	is(dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_FLUSH, fd, 0, 0, NULL, 40 }), 0,
	   "a flush");
	dn_blkio_submit(b);
	ok(reap_all(b, 1, res, &seen) && res[40] == 0, "  done (fdatasync)");

	seen = 0;
	memset(rbuf, 0xee, DEPTH * BLK);
	for (unsigned i = 0; i < DEPTH; i++)
		dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_READ, fd, (uint64_t)i * BLK * 3, BLK,
							rbuf + i * BLK, 10 + i });
	dn_blkio_submit(b);
	good = reap_all(b, DEPTH, res, &seen);
	for (unsigned i = 0; i < DEPTH; i++)
		good &= res[10 + i] == (int)BLK;
	ok(good && memcmp(rbuf, wbuf, DEPTH * BLK) == 0, "read back: every byte as written");

	/* Block 1 (at 192 KiB) discarded, block 2 (at 384 KiB) zeroed in place. */
	seen = 0;
	dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_DISCARD, fd, 3 * BLK, BLK, NULL, 20 });
	dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_WRITE_ZEROES, fd, 6 * BLK, BLK, NULL, 21 });
	dn_blkio_submit(b);
	ok(reap_all(b, 2, res, &seen) && res[20] == 0 && res[21] == 0,
	   "discard and write-zeroes done (%d, %d)", res[20], res[21]);
	ok(pread(fd, rbuf, BLK, 3 * BLK) == (ssize_t)BLK && all_are(rbuf, BLK, 0) &&
	   pread(fd, rbuf + BLK, BLK, 6 * BLK) == (ssize_t)BLK && all_are(rbuf + BLK, BLK, 0),
	   "  both ranges read as zeros");
	ok(fstat(fd, &st) == 0 && (uint64_t)st.st_size == VOL, "  the size stayed");
	ok(pread(fd, rbuf, BLK, 0) == BLK && memcmp(rbuf, wbuf, BLK) == 0, "  block 0 untouched");

	seen = 0;
	dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_READ, fd, VOL - 4096, 8192, rbuf, 30 });
	dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_READ, 1000, 0, 4096, rbuf, 31 });
	dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_READ, fd, 0, 4096, rbuf + 8192, 32 });
	dn_blkio_submit(b);
	ok(reap_all(b, 3, res, &seen), "three reads answered");
	is(res[30], -EIO, "  one past the end of the volume: -EIO");
	is(res[31], -EBADF, "  one on a bad fd: -EBADF");
	ok(res[32] == 4096 && memcmp(rbuf + 8192, wbuf, 4096) == 0, "  the good one: its data");
	is(dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_WRITE, fd, 0, 4096, NULL, 33 }), -EINVAL,
	   "a write with no buffer: -EINVAL");
	is(dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_READ, fd, UINT64_MAX - 10, 4096, rbuf,
						  34 }), -EINVAL, "an offset that overflows: -EINVAL");
	{
		struct dn_blk_done d[1];

		is(dn_blkio_reap(b, d, 1, true), 0, "reap with nothing in flight returns at once");
	}

	close(fd);
	dn_volume_put(vs, "v");
	dn_volume_delete(vs, "v");
	dn_volumes_close(vs);
	rmdir(dir);
	dn_blkio_free(b);
	free(wbuf);
	free(rbuf);
	done_testing();
	return tap_exit();
}
