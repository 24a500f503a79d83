// SPDX-License-Identifier: MIT
/*
 * disagg-dnbench: a device node's 4 KiB read through the fabric against
 * what it is made of, in the same run (bench/README.md, "bench-devices"):
 *
 *   devnode_read_4k_us   BLK_READ of 4 KiB at QD1 from a running
 *                        disagg-devnode (dnclient, one connection)
 *   uring_read_4k_us     the same volume file read here through the device
 *                        node's own io_uring code (blkio.c), QD1
 *   rtt_us               a bare TCP loopback round trip between two
 *                        processes: a 32-byte request, a 4 KiB + 32-byte
 *                        answer (what a BLK_READ carries)
 *   devnode_overhead_us  devnode - uring - rtt (target <= 15)
 *   devnode_read_4k_qd32_iops   32 BLK_READs in flight on the connection
 *
 * The three QD1 figures alternate in rounds so that each sees the same
 * host; each is the median of every sample.
 *
 * Where the two ends run decides most of a round trip on a small host:
 * waking a thread on an idle CPU costs more than the whole exchange on one
 * CPU. --cpus A,B pins this program to CPU A and the echo server to CPU B;
 * the caller starts the device node on CPU B too (taskset), so that the
 * round trip and the device node's read pay the same placement and their
 * difference is the device node's own work. Without --cpus nothing is
 * pinned and the scheduler may place the two differently.
 *
 *   disagg-dnbench --addr HOST:PORT --key CLUSTERKEY --grant-key GRANTKEY
 *                  --data DIR [--size MIB] [--cpus A,B] [--json PATH]
 *
 * DIR is the device node's --data (its volume file is read there). The
 * volume "dnbench" is made, filled, measured and deleted.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "benchutil.h"
#include "blkio.h"
#include "dnclient.h"
#include "grant.h"
#include "net.h"

#define PS     4096u
#define ROUNDS 10u
#define PER    1000u
#define QD     32u
#define HOLDER 77

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t next_block(uint64_t nblk)
{
	return bench_next(&rng, nblk);
}

static int cpu_client = -1, cpu_server = -1;

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		fprintf(stderr, "disagg-dnbench: pin to CPU %d: %s\n", cpu, strerror(errno));
}

static int die(const char *what, int r)
{
	fprintf(stderr, "disagg-dnbench: %s: %s\n", what, strerror(r < 0 ? -r : r));
	return 1;
}

/* ---- the bare round trip: an echo process on loopback ----------------------- */

static void echo_serve(int lfd)
{
	uint8_t req[32], rep[PS + 32];
	int fd = accept(lfd, NULL, NULL);

	memset(rep, 0x5a, sizeof(rep));
	if (fd < 0)
		_exit(1);
	(void)net_set_nodelay(fd);
	while (net_read_full(fd, req, sizeof(req)) == 0)
		if (net_write_full(fd, rep, sizeof(rep)) < 0)
			break;
	_exit(0);
}

static int echo_start(pid_t *ret_pid)
{
	char addr[64];
	int lfd = net_listen_tcp("127.0.0.1:0", false), fd;
	pid_t pid;

	if (lfd < 0 || net_local_addr(lfd, addr, sizeof(addr)) < 0)
		return -EIO;
	pid = fork();
	if (pid == 0) {
		pin(cpu_server);
		echo_serve(lfd);
	}
	close(lfd);
	if (pid < 0)
		return -errno;
	fd = net_connect_tcp(addr, 5000);
	if (fd >= 0)
		(void)net_set_nodelay(fd);
	*ret_pid = pid;
	return fd;
}

static uint64_t echo_rtt(int fd)
{
	uint8_t req[32] = { 1 }, rep[PS + 32];
	uint64_t t0 = now_ns();

	if (net_write_full(fd, req, sizeof(req)) < 0 || net_read_full(fd, rep, sizeof(rep)) < 0)
		return 0;
	return now_ns() - t0;
}

/* ---- the device node ---------------------------------------------------------- */

static int fill(struct mnc *c, uint32_t h, uint64_t size)
{
	uint8_t *buf = malloc(PROTO_BLK_MAX_IO);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; off < size && r == 0; off += PROTO_BLK_MAX_IO) {
		for (size_t i = 0; i < PROTO_BLK_MAX_IO / 8; i++)
			((uint64_t *)buf)[i] = next_block(UINT64_MAX) | 1;
		r = dnc_write(c, h, off, PROTO_BLK_MAX_IO, buf);
	}
	free(buf);
	return r == 0 ? dnc_flush(c, h) : r;
}

struct qd_state {
	unsigned inflight, done;
	int err;
};

static void qd_done(void *opaque, int status, size_t len)
{
	struct qd_state *s = opaque;

	s->inflight--;
	s->done++;
	if (status < 0 && !s->err)
		s->err = status;
}

static double qd32_iops(struct mnc *c, uint32_t h, uint64_t nblk, uint8_t *bufs, unsigned ops)
{
	struct qd_state s = { 0 };
	unsigned issued = 0;
	uint64_t t0 = now_ns();

	while (s.done < ops && !s.err) {
		while (issued < ops && s.inflight < QD) {
			if (dnc_read_async(c, h, next_block(nblk) * PS, PS, bufs + (issued % QD) * PS,
					   qd_done, &s) < 0)
				return -1;
			s.inflight++;
			issued++;
		}
		if (mnc_poll(c, 1000) < 0)
			return -1;
	}
	return s.err ? -1 : ops / ((double)(now_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "addr", 1, 0, 'a' }, { "key", 1, 0, 'k' }, { "grant-key", 1, 0, 'g' },
		{ "data", 1, 0, 'd' }, { "size", 1, 0, 's' }, { "json", 1, 0, 'j' },
		{ "cpus", 1, 0, 'c' }, { 0 },
	};
	const char *addr = NULL, *keyfile = NULL, *gkeyfile = NULL, *data = NULL, *json = NULL;
	uint64_t size = 64ull << 20, vsize, nblk, *ld, *lu, *lr;
	struct mnc *orch = NULL, *c = NULL;
	struct grant_key *gk = NULL;
	struct dnc_volume v;
	struct auth_key key;
	struct proto_grant g;
	struct dn_blkio *b = NULL;
	double dn_us, ur_us, rtt_us, iops;
	char path[512];
	uint8_t *bufs;
	uint32_t h;
	pid_t echo_pid = -1;
	int ch, r, fd, efd;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'g': gkeyfile = optarg; break;
		case 'd': data = optarg; break;
		case 'j': json = optarg; break;
		case 'c': {
			char extra;

			if (sscanf(optarg, "%d,%d%c", &cpu_client, &cpu_server, &extra) != 2 ||
			    cpu_client < 0 || cpu_server < 0 || cpu_client >= CPU_SETSIZE ||
			    cpu_server >= CPU_SETSIZE)
				return die("--cpus wants A,B (two CPU numbers)", EINVAL);
			break;
		}
		case 's': {
			char *end;

			errno = 0;
			size = strtoull(optarg, &end, 10);
			if (errno || *end || !size || size > (1ull << 20))
				return die("--size wants MiB, 1 to 1048576", EINVAL);
			size <<= 20;
			break;
		}
		default:
			fprintf(stderr, "usage: disagg-dnbench --addr HOST:PORT --key FILE "
					"--grant-key FILE --data DIR [--size MIB] [--cpus A,B] "
					"[--json PATH]\n");
			return 2;
		}
	}
	pin(cpu_client);
	if (!addr || !keyfile || !gkeyfile || !data || !size)
		return die("--addr, --key, --grant-key and --data are required", EINVAL);
	signal(SIGPIPE, SIG_IGN);
	if ((r = auth_key_load(keyfile, &key)) < 0)
		return die(keyfile, r);
	if ((r = grant_key_load(gkeyfile, true, &gk)) < 0)
		return die(gkeyfile, r);
	struct mnc_opts oo = { .addr = addr, .key = &key, .orch_key = gk, .node_id = 1 };
	struct mnc_opts co = { .addr = addr, .key = &key, .node_id = HOLDER, .timeout_ms = 30000 };

	(void)dnc_vol_delete((r = dnc_connect(&oo, &orch)) == 0 ? orch : NULL, "dnbench");
	if (r < 0 || (r = dnc_vol_create(orch, "dnbench", size, &v)) < 0)
		return die("create the volume", r);
	r = grant_mint(gk, mnc_info(orch)->node_id, HOLDER, (uint32_t)v.key, (uint32_t)(v.key >> 32),
		       0, PROTO_R_READ | PROTO_R_WRITE, 0, &g);
	if (r == 0)
		r = dnc_connect(&co, &c);
	if (r == 0)
		r = dnc_open(c, &g, "dnbench", 0, &h, &vsize);
	if (r == 0)
		r = fill(c, h, size);
	if (r < 0)
		return die("open and fill the volume", r);
	snprintf(path, sizeof(path), "%s/dnbench.vol", data);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return die(path, errno);
	if ((r = dn_blkio_new(QD, &b)) < 0)
		return die("io_uring", r);
	efd = echo_start(&echo_pid);
	if (efd < 0)
		return die("loopback echo", efd);
	bufs = aligned_alloc(PS, QD * PS);
	ld = calloc(ROUNDS * PER, sizeof(*ld));
	lu = calloc(ROUNDS * PER, sizeof(*lu));
	lr = calloc(ROUNDS * PER, sizeof(*lr));
	if (!bufs || !ld || !lu || !lr)
		return die("memory", ENOMEM);
	nblk = size / PS;
	for (unsigned round = 0; round < ROUNDS; round++) {
		for (unsigned i = 0; i < PER; i++) {
			uint64_t t0 = now_ns();

			if ((r = dnc_read(c, h, next_block(nblk) * PS, PS, bufs)) < 0)
				return die("BLK_READ", r);
			ld[round * PER + i] = now_ns() - t0;
		}
		for (unsigned i = 0; i < PER; i++) {
			struct dn_blk_done d;
			uint64_t t0 = now_ns();

			if (dn_blkio_queue(b, &(struct dn_blk_req){ DN_BLK_READ, fd,
								    next_block(nblk) * PS, PS, bufs,
								    1 }) < 0 ||
			    dn_blkio_submit(b) < 0 || dn_blkio_reap(b, &d, 1, true) != 1 ||
			    d.res != (int)PS)
				return die("io_uring read", EIO);
			lu[round * PER + i] = now_ns() - t0;
		}
		for (unsigned i = 0; i < PER; i++)
			if (!(lr[round * PER + i] = echo_rtt(efd)))
				return die("loopback round trip", EIO);
	}
	dn_us = bench_median_us(ld, ROUNDS * PER);
	ur_us = bench_median_us(lu, ROUNDS * PER);
	rtt_us = bench_median_us(lr, ROUNDS * PER);
	iops = qd32_iops(c, h, nblk, bufs, 100000);
	printf("disagg-dnbench: 4K random read QD1: device node %.2f us = io_uring %.2f us + "
	       "loopback round trip %.2f us + %.2f us; QD32 through the device node %.0f op/s\n",
	       dn_us, ur_us, rtt_us, dn_us - ur_us - rtt_us, iops);
	if (json) {
		FILE *f = fopen(json, "we");

		if (!f)
			return die(json, errno);
		fprintf(f, "{\n  \"size_mib\": %llu,\n  \"devnode_read_4k_us\": %.2f,\n"
			   "  \"uring_read_4k_us\": %.2f,\n  \"rtt_us\": %.2f,\n"
			   "  \"devnode_overhead_us\": %.2f,\n  \"devnode_read_4k_qd32_iops\": %.0f\n}\n",
			(unsigned long long)(size >> 20), dn_us, ur_us, rtt_us, dn_us - ur_us - rtt_us,
			iops);
		fclose(f);
	}
	close(efd);
	waitpid(echo_pid, NULL, 0);
	close(fd);
	dn_blkio_free(b);
	(void)dnc_close(c, h);
	mnc_close(c);
	(void)dnc_vol_delete(orch, "dnbench");
	mnc_close(orch);
	grant_key_free(gk);
	free(bufs);
	free(ld);
	free(lu);
	free(lr);
	return 0;
}
