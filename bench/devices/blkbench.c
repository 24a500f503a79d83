// SPDX-License-Identifier: MIT
/*
 * disagg-blkbench: the device node's block I/O (src/devnode/blkio.c)
 * against the bare system call, on one volume, in the same run
 * (bench/README.md, "disagg-blkbench"). A volume of --size MiB is filled
 * with data (so reads meet blocks, not holes), then:
 *   - 4 KiB random reads at QD1: pread (the baseline) and blkio, in
 *     alternating rounds so that both see the same host;
 *   - 4 KiB random reads at QD32 through blkio: operations per second.
 * Reads come from the page cache, as a device node's do once warm.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchutil.h"
#include "blkio.h"
#include "net.h"
#include "volume.h"

#define PS      4096u
#define ROUNDS  10
#define PER     2000u            /* reads per round and method */
#define QD      32u

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_block(uint64_t nblk)
{
	return bench_next(&rng, nblk);
}

static int fill(int fd, uint64_t size)
{
	uint8_t *buf = malloc(1 << 20);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; off < size && r == 0; off += 1 << 20) {
		for (size_t i = 0; i < (1 << 20) / 8; i++)
			((uint64_t *)buf)[i] = next_block(UINT64_MAX) | 1;
		if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20)
			r = -EIO;
	}
	free(buf);
	return r == 0 && fdatasync(fd) < 0 ? -errno : r;
}

/* One QD1 read through the ring: its latency in ns, or 0 on error. */
static uint64_t ring_read(struct dn_blkio *b, int fd, uint64_t off, void *buf)
{
	struct dn_blk_done d;
	uint64_t t0 = now_ns();

	if (dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_READ, fd, off, PS, buf, 1 }) < 0 ||
	    dn_blkio_submit(b) < 0 || dn_blkio_reap(b, &d, 1, true) != 1 || d.res != (int)PS)
		return 0;
	return now_ns() - t0;
}

static double qd32_iops(struct dn_blkio *b, int fd, uint64_t nblk, uint8_t *bufs, unsigned ops)
{
	struct dn_blk_done d[QD];
	unsigned issued = 0, done = 0;
	uint64_t t0 = now_ns();

	while (done < ops) {
		while (issued < ops && dn_blkio_inflight(b) < QD) {
			unsigned slot = issued % QD;

			if (dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_READ, fd,
								    next_block(nblk) * PS, PS,
								    bufs + slot * PS, slot }) < 0)
				return -1;
			issued++;
		}
		if (dn_blkio_submit(b) < 0)
			return -1;
		int n = dn_blkio_reap(b, d, QD, true);

		if (n <= 0)
			return -1;
		for (int i = 0; i < n; i++)
			if (d[i].res != (int)PS)
				return -1;
		done += (unsigned)n;
	}
	return ops / ((double)(now_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "size", 1, 0, 's' }, { "dir", 1, 0, 'd' },
					     { "json", 1, 0, 'j' }, { 0 } };
	const char *json = NULL, *base = "/var/tmp";
	uint64_t size = 256ull << 20, vsize = 0, nblk, *lp, *lu;
	char dir[128];
	struct dn_volumes *vs = NULL;
	struct dn_blkio *b = NULL;
	uint8_t *bufs;
	double pread_us, uring_us, iops;
	int c, fd = -1, r;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 's')
			size = strtoull(optarg, NULL, 0) << 20;
		else if (c == 'd')
			base = optarg;
		else if (c == 'j')
			json = optarg;
		else {
			fprintf(stderr, "usage: disagg-blkbench [--size MIB] [--dir DIR] [--json PATH]\n");
			return 2;
		}
	}
	snprintf(dir, sizeof(dir), "%s/disagg-blkbench-XXXXXX", base);
	bufs = aligned_alloc(PS, QD * PS);
	lp = calloc(ROUNDS * PER, sizeof(*lp));
	lu = calloc(ROUNDS * PER, sizeof(*lu));
	if (!bufs || !lp || !lu || !mkdtemp(dir)) {
		fprintf(stderr, "blkbench: setup: %s\n", strerror(errno));
		return 1;
	}
	r = dn_blkio_new(QD, &b);
	if (r == -ENOSYS) {
		fprintf(stderr, "blkbench: io_uring is disabled here\n");
		rmdir(dir);
		return 77;
	}
	if (r == 0)
		r = dn_volumes_open(dir, &vs);
	if (r == 0)
		r = dn_volume_create(vs, "bench", size);
	if (r == 0)
		r = dn_volume_open(vs, "bench", 0, &fd, &vsize);
	if (r == 0)
		r = fill(fd, size);
	if (r < 0) {
		fprintf(stderr, "blkbench: %s\n", strerror(-r));
		return 1;
	}
	nblk = size / PS;
	for (unsigned round = 0; round < ROUNDS; round++) {
		for (unsigned i = 0; i < PER; i++) {
			uint64_t off = next_block(nblk) * PS, t0 = now_ns();

			if (pread(fd, bufs, PS, (off_t)off) != (ssize_t)PS)
				return 1;
			lp[round * PER + i] = now_ns() - t0;
		}
		for (unsigned i = 0; i < PER; i++)
			if (!(lu[round * PER + i] = ring_read(b, fd, next_block(nblk) * PS, bufs)))
				return 1;
	}
	pread_us = bench_median_us(lp, ROUNDS * PER);
	uring_us = bench_median_us(lu, ROUNDS * PER);
	iops = qd32_iops(b, fd, nblk, bufs, 200000);
	printf("disagg-blkbench: %llu MiB volume in %s (page cache)\n",
	       (unsigned long long)(size >> 20), base);
	printf("4K random read QD1: pread %.2f us, blkio (io_uring) %.2f us; QD32 through blkio: "
	       "%.0f op/s\n", pread_us, uring_us, iops);
	if (json) {
		FILE *f = fopen(json, "we");

		if (!f)
			return 1;
		fprintf(f, "{\n  \"size_mib\": %llu,\n  \"pread_4k_us\": %.2f,\n"
			   "  \"uring_read_4k_us\": %.2f,\n  \"uring_read_4k_qd32_iops\": %.0f\n}\n",
			(unsigned long long)(size >> 20), pread_us, uring_us, iops);
		fclose(f);
	}
	close(fd);
	dn_volume_put(vs, "bench");
	dn_volume_delete(vs, "bench");
	dn_volumes_close(vs);
	dn_blkio_free(b);
	rmdir(dir);
	free(bufs);
	free(lp);
	free(lu);
	return iops > 0 ? 0 : 1;
}
