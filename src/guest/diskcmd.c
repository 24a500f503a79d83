// SPDX-License-Identifier: MIT
/*
 * Disk commands of disagg-guest (diskcmd.h): the guest's block devices,
 * written and verified with O_DIRECT.
 */
#include "diskcmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CHUNK (256u << 10)

static void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static void freep(void *p)
{
	free(*(void **)p);
}

static void cmd_disks(char **av, int ac)
{
	char list[1024] = "", path[300], buf[64], serial[64];
	size_t off = 0;
	struct dirent *de;
	DIR *d = opendir("/sys/block");

	(void)av;
	if (ac != 1)
		return guest_reply("ERR usage: DISKS");
	if (!d)
		return guest_reply("ERR /sys/block: %s", strerror(errno));
	while ((de = readdir(d)) && off < sizeof(list) - 100) {
		uint64_t sectors = 0;

		if (strncmp(de->d_name, "vd", 2))
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/size", de->d_name);
		if (guest_read_file(path, buf, sizeof(buf)) < 0 ||
		    guest_parse_u64(buf, 0, UINT64_MAX / 512, &sectors) < 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/serial", de->d_name);
		if (guest_read_file(path, serial, sizeof(serial)) < 0 || !serial[0])
			snprintf(serial, sizeof(serial), "-");
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s:%" PRIu64 ":%s",
					off ? "," : "", de->d_name, sectors * 512, serial);
	}
	closedir(d);
	guest_reply("OK disks=%s", list);
}

/* "CMD DEV OFFSET BYTES [SEED]": the open device and the numbers, or -1 after ERR. */
static int disk_args(char **av, int ac, int want, int flags, uint64_t *off, uint64_t *bytes,
		     uint64_t *seed)
{
	char path[64];
	int fd;

	if (ac != want)
		return guest_reply("ERR usage: %s DEV OFFSET BYTES%s", av[0], want == 5 ? " SEED" : ""),
		       -1;
	if (strchr(av[1], '/') || strlen(av[1]) > 32)
		return guest_reply("ERR bad device name"), -1;
	if (guest_parse_u64(av[2], 0, UINT64_MAX / 2, off) < 0 ||
	    guest_parse_u64(av[3], 1, UINT64_MAX / 2, bytes) < 0 || *off % PAGE || *bytes % PAGE ||
	    (want == 5 && guest_parse_u64(av[4], 0, UINT64_MAX, seed) < 0))
		return guest_reply("ERR OFFSET and BYTES are multiples of 4096, SEED a number"), -1;
	snprintf(path, sizeof(path), "/dev/%s", av[1]);
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return guest_reply("ERR %s: %s", path, strerror(errno)), -1;
	return fd;
}

static void fill(uint64_t *w, uint64_t seed, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len / 8; i++)
		w[i] = guest_pattern_word(seed, (off + i * 8) / PAGE, (i * 8 % PAGE) / 8);
}

static void cmd_dwrite(char **av, int ac)
{
	_cleanup_(closep) int fd = -1;
	_cleanup_(freep) void *buf = NULL;
	uint64_t off, bytes, seed, t0 = guest_now_ns();

	fd = disk_args(av, ac, 5, O_WRONLY | O_DIRECT, &off, &bytes, &seed);
	if (fd < 0)
		return;
	if (posix_memalign(&buf, PAGE, CHUNK))
		return guest_reply("ERR out of memory");
	for (uint64_t done = 0; done < bytes;) {
		size_t n = (size_t)MIN_U64(CHUNK, bytes - done);

		fill(buf, seed, off + done, n);
		if (pwrite(fd, buf, n, (off_t)(off + done)) != (ssize_t)n)
			return guest_reply("ERR write at %" PRIu64 ": %s", off + done,
					   strerror(errno ? errno : EIO));
		done += n;
	}
	guest_reply("OK bytes=%" PRIu64 " ms=%llu", bytes, guest_ms_since(t0));
}

static void cmd_dverify(char **av, int ac)
{
	_cleanup_(closep) int fd = -1;
	_cleanup_(freep) void *buf = NULL;
	_cleanup_(freep) void *want = NULL;
	uint64_t off, bytes, seed, bad = 0, t0 = guest_now_ns();
	int64_t first = -1;

	fd = disk_args(av, ac, 5, O_RDONLY | O_DIRECT, &off, &bytes, &seed);
	if (fd < 0)
		return;
	if (posix_memalign(&buf, PAGE, CHUNK) || posix_memalign(&want, PAGE, CHUNK))
		return guest_reply("ERR out of memory");
	for (uint64_t done = 0; done < bytes;) {
		size_t n = (size_t)MIN_U64(CHUNK, bytes - done);

		if (pread(fd, buf, n, (off_t)(off + done)) != (ssize_t)n)
			return guest_reply("ERR read at %" PRIu64 ": %s", off + done,
					   strerror(errno ? errno : EIO));
		fill(want, seed, off + done, n);
		for (size_t p = 0; p < n; p += PAGE)
			if (memcmp((uint8_t *)buf + p, (uint8_t *)want + p, PAGE)) {
				if (first < 0)
					first = (int64_t)(off + done + p);
				bad++;
			}
		done += n;
	}
	guest_reply("OK bytes=%" PRIu64 " mismatches=%" PRIu64 " first=%" PRId64 " ms=%llu", bytes,
		    bad, first, guest_ms_since(t0));
}

static void cmd_dflush(char **av, int ac)
{
	_cleanup_(closep) int fd = -1;
	uint64_t t0 = guest_now_ns();
	char path[64];

	if (ac != 2 || strchr(av[1], '/') || strlen(av[1]) > 32)
		return guest_reply("ERR usage: DFLUSH DEV");
	snprintf(path, sizeof(path), "/dev/%s", av[1]);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return guest_reply("ERR %s: %s", path, strerror(errno));
	if (fsync(fd) < 0)
		return guest_reply("ERR fsync: %s", strerror(errno));
	guest_reply("OK ms=%llu", guest_ms_since(t0));
}

/* DZERO and DDISCARD: the block layer's ioctls, so virtio-blk's own requests go out. */
static void range_ioctl(char **av, int ac, unsigned long req)
{
	_cleanup_(closep) int fd = -1;
	uint64_t off, bytes, range[2], t0 = guest_now_ns();

	fd = disk_args(av, ac, 4, O_RDWR, &off, &bytes, NULL);
	if (fd < 0)
		return;
	range[0] = off;
	range[1] = bytes;
	if (ioctl(fd, req, range) < 0)
		return guest_reply("ERR %s: %s", av[0], strerror(errno));
	guest_reply("OK ms=%llu", guest_ms_since(t0));
}

static void cmd_dzero(char **av, int ac)
{
	range_ioctl(av, ac, BLKZEROOUT);
}

static void cmd_ddiscard(char **av, int ac)
{
	range_ioctl(av, ac, BLKDISCARD);
}

/* ---- DBENCH ---------------------------------------------------------------- */

#define DB_MAX_QD 64

struct db_job {
	int fd;
	bool write, random;
	uint64_t bs, span, end_ns, seed, ops;
	uint64_t next;               /* sequential: the next offset (per thread) */
	int err;
};

static void *db_thread(void *arg)
{
	struct db_job *j = arg;
	void *buf = NULL;
	uint64_t x = j->seed | 1;

	if (posix_memalign(&buf, PAGE, j->bs)) {
		j->err = ENOMEM;
		return NULL;
	}
	memset(buf, 0x5a, j->bs);
	while (guest_now_ns() < j->end_ns) {
		uint64_t off;
		ssize_t k;

		if (j->random) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			off = x % (j->span / j->bs) * j->bs;
		} else {
			off = j->next;
			j->next = (j->next + j->bs) % j->span;
		}
		k = j->write ? pwrite(j->fd, buf, j->bs, (off_t)off) : pread(j->fd, buf, j->bs, (off_t)off);
		if (k != (ssize_t)j->bs) {
			j->err = k < 0 ? errno : EIO;
			break;
		}
		j->ops++;
	}
	free(buf);
	return NULL;
}

/*
 * DBENCH DEV MODE BS QD SECONDS SPAN: QD threads do O_DIRECT I/O of BS
 * bytes (randread, randwrite: random BS-aligned offsets in the first SPAN
 * bytes; read, write: sequential, each thread its own stretch) for
 * SECONDS. OK ops=N iops=X MBps=Y ms=T.
 */
static void cmd_dbench(char **av, int ac)
{
	struct db_job jobs[DB_MAX_QD];
	pthread_t th[DB_MAX_QD];
	_cleanup_(closep) int fd = -1;
	uint64_t bs, qd, secs, span, ops = 0, t0;
	bool write, random;
	char path[64];
	double s;

	if (ac != 7)
		return guest_reply("ERR usage: DBENCH DEV randread|randwrite|read|write BS QD SECONDS SPAN");
	write = !strcmp(av[2], "randwrite") || !strcmp(av[2], "write");
	random = !strncmp(av[2], "rand", 4);
	if ((!write && strcmp(av[2], "randread") && strcmp(av[2], "read")) || strchr(av[1], '/') ||
	    strlen(av[1]) > 32 || guest_parse_u64(av[3], PAGE, 16u << 20, &bs) < 0 || bs % PAGE ||
	    guest_parse_u64(av[4], 1, DB_MAX_QD, &qd) < 0 ||
	    guest_parse_u64(av[5], 1, 600, &secs) < 0 ||
	    guest_parse_u64(av[6], PAGE, UINT64_MAX / 2, &span) < 0 || span < bs * qd)
		return guest_reply("ERR bad DBENCH arguments");
	snprintf(path, sizeof(path), "/dev/%s", av[1]);
	fd = open(path, (write ? O_WRONLY : O_RDONLY) | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return guest_reply("ERR %s: %s", path, strerror(errno));
	t0 = guest_now_ns();
	for (unsigned i = 0; i < qd; i++) {
		jobs[i] = (struct db_job){ .fd = fd, .write = write, .random = random, .bs = bs,
					   .span = span, .end_ns = t0 + secs * 1000000000ull,
					   .seed = 0x9e3779b97f4a7c15ull * (i + 1),
					   .next = span / qd / bs * bs * i };
		if (pthread_create(&th[i], NULL, db_thread, &jobs[i])) {
			qd = i;
			break;
		}
	}
	for (unsigned i = 0; i < qd; i++) {
		pthread_join(th[i], NULL);
		ops += jobs[i].ops;
		if (jobs[i].err)
			return guest_reply("ERR I/O: %s", strerror(jobs[i].err));
	}
	s = (double)(guest_now_ns() - t0) / 1e9;
	guest_reply("OK ops=%" PRIu64 " iops=%.0f MBps=%.1f ms=%llu", ops, (double)ops / s,
		    (double)ops * (double)bs / s / 1e6, guest_ms_since(t0));
}

/* "DFIND DEV BYTES TEXT": is TEXT in the first BYTES bytes of DEV? (a seed's content) */
static void cmd_dfind(char **av, int ac)
{
	_cleanup_(closep) int fd = -1;
	_cleanup_(freep) char *buf = NULL;
	uint64_t bytes;
	char path[64];
	ssize_t n;
	size_t tl;

	if (ac != 4 || strchr(av[1], '/') || strlen(av[1]) > 32 ||
	    guest_parse_u64(av[2], 1, 16u << 20, &bytes) < 0 || !(tl = strlen(av[3])))
		return guest_reply("ERR usage: DFIND DEV BYTES TEXT (BYTES at most 16 MiB)");
	snprintf(path, sizeof(path), "/dev/%s", av[1]);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return guest_reply("ERR %s: %s", path, strerror(errno));
	buf = malloc(bytes);
	if (!buf)
		return guest_reply("ERR out of memory");
	n = pread(fd, buf, bytes, 0);
	if (n < 0)
		return guest_reply("ERR read %s: %s", path, strerror(errno));
	for (size_t i = 0; i + tl <= (size_t)n; i++)
		if (!memcmp(buf + i, av[3], tl))
			return guest_reply("OK found=1 offset=%zu", i);
	guest_reply("OK found=0 read=%zd", n);
}

const struct guest_cmd disk_cmds[] = {
	{ "DFIND", cmd_dfind },
	{ "DBENCH", cmd_dbench },
	{ "DISKS", cmd_disks },
	{ "DWRITE", cmd_dwrite },
	{ "DVERIFY", cmd_dverify },
	{ "DFLUSH", cmd_dflush },
	{ "DZERO", cmd_dzero },
	{ "DDISCARD", cmd_ddiscard },
	{ NULL, NULL },
};
