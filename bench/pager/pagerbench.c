// SPDX-License-Identifier: MIT
/*
 * disagg-pagerbench: the pager measured in its own process (no QEMU).
 *
 * Maps N MiB (default 256) of a memfd, registered with a uffd and served by
 * the pager, and runs four workloads with verification - sequential read,
 * sequential write, random 4 KiB read (cold faults: one access per
 * untouched 16-page cluster, each one a fault) and random read/write - in
 * three setups:
 *   local   plain local memory (prefaulted), no pager: the ceiling
 *   floor   the pager with the "local" backend: the uffd floor, the same
 *           fault path without a network
 *   remote  the pager with the "memnode" backend against a disagg-memnode
 *           started here (temporary key, loopback, port 0), sections
 *           allocated and grants minted for this process's node id
 *   sealed  the same memory node with guest memory at rest: pages sealed
 *           with a slot key (AES-256-GCM, pager/crypt.h) on write-back and
 *           authenticated on fetch; sealed_fault_cost_us and
 *           seq_read_sealed_ratio compare it with `remote` of the same run
 * at cache budgets 100%, 50% and 25% of the mapping. Every workload starts
 * cold (budget 0, then the target budget). Prints a table; --json writes
 * the summary that `make bench-pager` stores in build/bench/pager.json.
 *
 * In the same run, the bare mechanisms under a remote fault (baseline.h):
 * the raw userfaultfd floor (a handler answering each fault at once with
 * one ready page) and the TCP loopback round trip with a fetch's frame
 * sizes (1 and 16 pages). pager_overhead_us = remote fault - raw floor -
 * round trip: what the pager and the memory node add, for the default
 * 16-page cluster and for a remote pager fetching one page per fault.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "baseline.h"
#include "hostprobe.h"
#include "grant.h"
#include "log.h"
#include "mnadmin.h"
#include "mnclient.h"
#include "mnspawn.h"
#include "net.h"
#include "pager.h"

#define PS PAGER_PAGE_SIZE

struct opts {
	uint64_t size, section;
	const char *json, *memnode;
	unsigned spin_us, net_spin_us, rand_ops, threads, pcluster, cluster;
	bool pin, no_remote;
	struct pager_crypt *crypt;    /* the sealed setup */
};

struct result {
	char setup[16];
	int budget_pct;
	double seq_read_MBps, seq_write_MBps, fault_us, randrw_ops;
	uint64_t mismatches, faults, evicted, written_back;
};

static uint64_t rs = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

/* Cheap pattern: word i of page pg at version v. */
static inline uint64_t pw(uint64_t pg, uint32_t v, unsigned i)
{
	return v ? (pg * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)v << 48) ^ i : 0;
}

static void fill_page(uint8_t *p, uint64_t pg, uint32_t v)
{
	uint64_t *w = (uint64_t *)p;

	for (unsigned i = 0; i < PS / 8; i++)
		w[i] = pw(pg, v, i);
}

static unsigned check_page(const uint8_t *p, uint64_t pg, uint32_t v)
{
	const uint64_t *w = (const uint64_t *)p;

	return w[0] != pw(pg, v, 0) || w[PS / 16] != pw(pg, v, PS / 16) ||
	       w[PS / 8 - 1] != pw(pg, v, PS / 8 - 1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- a mapping served by a pager ---------------------------------------- */

struct bmap {
	int memfd, uffd;
	uint8_t *mem;
	uint64_t len;
	struct pager *p;
	struct pager_backend *be;
	struct pager_section *secs;
	uint32_t *ver;
};

static int bmap_fill(struct bmap *b, uint64_t secsize, struct pager_crypt *crypt)
{
	const struct pager_backend_ops *ops = b->be->ops;
	uint64_t spp = secsize / PS, n = b->len / secsize;
	uint8_t *buf = malloc(256 * PS);
	void *conn = NULL;
	int r = ops->conn_open(b->be->priv, &conn);

	for (uint64_t s = 0; s < n && r >= 0; s++)
		for (uint64_t p0 = 0; p0 < spp && r >= 0;) {
			uint32_t cnt = (uint32_t)MIN(spp - p0, (uint64_t)MIN(ops->max_pages(conn), 256u));
			struct proto_extent e = { (uint32_t)p0, cnt };

			for (uint32_t i = 0; i < cnt && r >= 0; i++) {
				fill_page(buf + (size_t)i * PS, s * spp + p0 + i, 1);
				/* What the pager would have written back: sealed at its place. */
				if (crypt)
					r = pager_crypt_seal(crypt, s * spp + p0 + i, buf + (size_t)i * PS,
							     buf + (size_t)i * PS);
			}
			if (r < 0)
				break;
			r = ops->write_submit(conn, &b->secs[s], &e, 1, buf);
			if (r >= 0)
				r = ops->write_wait(conn);
			p0 += cnt;
		}
	ops->conn_close(conn);
	free(buf);
	for (uint64_t pg = 0; pg < b->len / PS; pg++)
		b->ver[pg] = 1;
	return r < 0 ? r : 0;
}

static int bmap_setup(struct bmap *b, const struct opts *o, struct pager_backend *be,
		      struct pager_section *secs)
{
	struct pager_config cfg = {
		.name = "bench",
		.backend = be,
		.section_size = o->section,
		.budget = UINT64_MAX,
		.spin_us = o->spin_us,
		.fault_threads = o->threads,
		.cpu_mask = o->pin ? 1ul : 0,
		.pressure_cluster_pages = o->pcluster,
		.cluster_pages = o->cluster,
		.crypt = o->crypt,
	};
	struct pager_region_config rc = { 0 };
	uint64_t feat;
	int r;

	memset(b, 0, sizeof(*b));
	b->len = o->size;
	b->be = be;
	b->secs = secs;
	b->ver = calloc(b->len / PS, sizeof(*b->ver));
	b->memfd = memfd_create("pagerbench", MFD_CLOEXEC);
	if (!b->ver || b->memfd < 0 || ftruncate(b->memfd, (off_t)b->len) < 0)
		return -errno;
	b->mem = mmap(NULL, b->len, PROT_READ | PROT_WRITE, MAP_SHARED, b->memfd, 0);
	if (b->mem == MAP_FAILED)
		return -errno;
	r = pager_uffd_open(PAGER_DIRTY_SYNC_WP, &b->uffd, &feat);
	if (r < 0)
		return r;
	r = pager_uffd_register(b->uffd, (uintptr_t)b->mem, b->len);
	if (r < 0)
		return r;
	r = pager_new(&cfg, &b->p);
	if (r < 0)
		return r;
	rc = (struct pager_region_config){ .uffd = b->uffd, .uffd_features = feat,
					   .file_fd = b->memfd, .base = (uintptr_t)b->mem,
					   .length = b->len, .sections = secs, .pagemap_fd = -1 };
	r = pager_add_region(b->p, &rc);
	if (r < 0)
		return r;
	r = bmap_fill(b, o->section, o->crypt);
	if (r < 0)
		return r;
	return pager_start(b->p);
}

static void bmap_free(struct bmap *b)
{
	pager_free(b->p);
	if (b->mem && b->mem != MAP_FAILED)
		munmap(b->mem, b->len);
	if (b->uffd > 0)
		close(b->uffd);
	if (b->memfd > 0)
		close(b->memfd);
	free(b->ver);
}

/* Drop every resident page, then allow `pct` percent. */
static int cold(struct bmap *b, int pct)
{
	int r = pager_flush(b->p);

	if (r >= 0)
		r = pager_set_budget(b->p, 0);
	if (r >= 0)
		r = pager_wait_budget(b->p, 60000);
	if (r >= 0)
		r = pager_set_budget(b->p, pct >= 100 ? UINT64_MAX : b->len / 100 * (uint64_t)pct);
	return r;
}

/* ---- workloads ------------------------------------------------------------ */

static double seq_read(uint8_t *mem, uint64_t len, const uint32_t *ver, uint64_t *mism)
{
	uint64_t t0 = now_ns(), sum = 0;

	for (uint64_t pg = 0; pg < len / PS; pg++) {
		const uint64_t *w = (const uint64_t *)(mem + pg * PS);

		for (unsigned i = 0; i < PS / 8; i += 8)
			sum += w[i];
		if (ver)
			*mism += check_page(mem + pg * PS, pg, ver[pg]);
	}
	__asm__ volatile("" : : "r"(sum));
	return (double)len / 1e6 / ((double)(now_ns() - t0) / 1e9);
}

static double seq_write(uint8_t *mem, uint64_t len, uint32_t *ver)
{
	uint64_t t0 = now_ns();

	for (uint64_t pg = 0; pg < len / PS; pg++) {
		uint32_t v = ver ? ++ver[pg] : 2;

		fill_page(mem + pg * PS, pg, v);
	}
	return (double)len / 1e6 / ((double)(now_ns() - t0) / 1e9);
}

/* One read in each of n distinct untouched 16-page clusters: each is a cold fault. */
static double cold_faults(uint8_t *mem, uint64_t len, const uint32_t *ver, unsigned n,
			  uint64_t *mism)
{
	uint64_t nclu = len / PS / 16, *lat;
	uint64_t *perm;
	double med;

	n = (unsigned)MIN((uint64_t)n, nclu);
	lat = calloc(n, sizeof(*lat));
	perm = malloc(nclu * sizeof(*perm));
	for (uint64_t i = 0; i < nclu; i++)
		perm[i] = i;
	for (uint64_t i = nclu - 1; i > 0; i--) {
		uint64_t j = rnd() % (i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (unsigned i = 0; i < n; i++) {
		uint64_t pg = perm[i] * 16 + rnd() % 16, t0 = now_ns();
		volatile uint64_t v = *(volatile uint64_t *)(mem + pg * PS);

		lat[i] = now_ns() - t0;
		(void)v;
		if (ver)
			*mism += check_page(mem + pg * PS, pg, ver[pg]);
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	med = n ? (double)lat[n / 2] / 1000.0 : 0;
	free(lat);
	free(perm);
	return med;
}

static double rand_rw(uint8_t *mem, uint64_t len, uint32_t *ver, unsigned ops, uint64_t *mism)
{
	uint64_t t0 = now_ns(), npg = len / PS;

	for (unsigned i = 0; i < ops; i++) {
		uint64_t pg = rnd() % npg;

		if (rnd() & 1) {
			uint32_t v = ver ? ++ver[pg] : 3;
			fill_page(mem + pg * PS, pg, v);
		} else if (ver) {
			*mism += check_page(mem + pg * PS, pg, ver[pg]);
		} else {
			(void)*(volatile uint64_t *)(mem + pg * PS);
		}
	}
	return ops / ((double)(now_ns() - t0) / 1e9);
}

/*
 * Where a sealed page's time goes, per 4 KiB page: opening it with the
 * thread's keyed context (what the fault path does), with a new context and
 * key schedule each time (pager_page_open), and a plain 4 KiB copy.
 */
static void cipher_costs(double *keyed_us, double *fresh_us, double *copy_us, uint64_t *mism)
{
	static uint8_t plain[PS], ct[PS], out[PS];
	const struct pager_meta_entry *e;
	struct pager_crypt *c = NULL;
	uint8_t key[PAGER_KEY_BYTES];
	size_t len;
	uint64_t t0;
	unsigned n = 20000;

	*keyed_us = *fresh_us = *copy_us = 0;
	for (unsigned i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)rnd();
	fill_page(plain, 3, 1);
	if (pager_crypt_new(key, NULL, 16, &c) < 0 || pager_crypt_seal(c, 3, plain, ct) < 0) {
		(*mism)++;
		pager_crypt_free(c);
		return;
	}
	e = (const struct pager_meta_entry *)pager_crypt_table(c, &len) + 3;
	t0 = now_ns();
	for (unsigned i = 0; i < n; i++)
		*mism += pager_crypt_open(c, 3, ct, out) != 0;
	*keyed_us = (double)(now_ns() - t0) / 1000.0 / n;
	*mism += memcmp(out, plain, PS) != 0;
	t0 = now_ns();
	for (unsigned i = 0; i < n / 10; i++)
		*mism += pager_page_open(key, 3, e->ver & ~PAGER_META_STORED, ct, out, e->tag) != 0;
	*fresh_us = (double)(now_ns() - t0) / 1000.0 / (n / 10);
	t0 = now_ns();
	for (unsigned i = 0; i < n; i++) {
		memcpy(out, ct, PS);
		__asm__ volatile("" : : "r"(out) : "memory");
	}
	*copy_us = (double)(now_ns() - t0) / 1000.0 / n;
	pager_crypt_free(c);
}

static void run_pager(struct bmap *b, const char *setup, int pct, const struct opts *o,
		      struct result *res)
{
	struct pager_stats st;
	int r;

	memset(res, 0, sizeof(*res));
	snprintf(res->setup, sizeof(res->setup), "%s", setup);
	res->budget_pct = pct;
	if ((r = cold(b, pct)) < 0)
		goto fail;
	res->seq_read_MBps = seq_read(b->mem, b->len, b->ver, &res->mismatches);
	if ((r = cold(b, pct)) < 0)
		goto fail;
	res->seq_write_MBps = seq_write(b->mem, b->len, b->ver);
	if ((r = cold(b, pct)) < 0)
		goto fail;
	res->fault_us = cold_faults(b->mem, b->len, b->ver, 4000, &res->mismatches);
	if ((r = cold(b, pct)) < 0)
		goto fail;
	res->randrw_ops = rand_rw(b->mem, b->len, b->ver, o->rand_ops, &res->mismatches);
	/* Everything written must come back: flush, drop all, read every page. */
	if ((r = cold(b, 100)) < 0)
		goto fail;
	seq_read(b->mem, b->len, b->ver, &res->mismatches);
	pager_stats(b->p, &st);
	res->faults = st.faults;
	res->evicted = st.pages_evicted;
	res->written_back = st.pages_written_back;
	if (st.failed) {
		fprintf(stderr, "pagerbench: %s pager failed: %s\n", setup, strerror(-st.failed));
		res->mismatches++;
	}
	return;
fail:
	fprintf(stderr, "pagerbench: %s %d%%: %s\n", setup, pct, strerror(-r));
	res->mismatches++;
}

static void run_local(const struct opts *o, struct result *res)
{
	uint8_t *mem = mmap(NULL, o->size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	uint32_t *ver = calloc(o->size / PS, sizeof(*ver));

	memset(res, 0, sizeof(*res));
	snprintf(res->setup, sizeof(res->setup), "local");
	res->budget_pct = 100;
	for (uint64_t pg = 0; pg < o->size / PS; pg++) {
		fill_page(mem + pg * PS, pg, 1);
		ver[pg] = 1;
	}
	res->seq_read_MBps = seq_read(mem, o->size, ver, &res->mismatches);
	res->seq_write_MBps = seq_write(mem, o->size, ver);
	res->fault_us = cold_faults(mem, o->size, ver, 4000, &res->mismatches);
	res->randrw_ops = rand_rw(mem, o->size, ver, o->rand_ops, &res->mismatches);
	seq_read(mem, o->size, ver, &res->mismatches);
	munmap(mem, o->size);
	free(ver);
}

static void print_row(const struct result *r)
{
	printf("%-7s %5d%% %10.0f %10.0f %10.2f %11.0f %10llu %9llu %10llu\n", r->setup,
	       r->budget_pct, r->seq_read_MBps, r->seq_write_MBps, r->fault_us, r->randrw_ops,
	       (unsigned long long)r->mismatches, (unsigned long long)r->evicted,
	       (unsigned long long)r->written_back);
	fflush(stdout);
}

static int setup_remote(const struct opts *o, const char *argv0, struct mnspawn *mn,
			struct pager_section *secs, struct pager_backend **ret_be)
{
	char exe[4096];
	uint64_t my_id = 0x1000 + (uint64_t)getpid();
	struct mnc_opts mo = { 0 };
	_cleanup_mnc_ struct mnc *c = NULL;
	int r;

	if (o->memnode)
		snprintf(exe, sizeof(exe), "%s", o->memnode);
	else if ((r = mnspawn_find(argv0, exe, sizeof(exe))) < 0)
		return r;
	r = mnspawn_start(mn, exe, o->size + o->section, o->section, 77);
	if (r < 0)
		return r;
	mo.addr = mn->addr;
	mo.key = &mn->key;
	mo.orch_key = mn->gkey;
	mo.node_id = my_id;
	r = mnc_connect(&mo, &c);
	if (r < 0)
		return r;
	for (uint64_t i = 0; i < o->size / o->section; i++) {
		struct proto_section s;

		r = mnc_alloc(c, my_id, &s);
		if (r < 0)
			return r;
		secs[i].kind = PAGER_SEC_REMOTE;
		snprintf(secs[i].addr, sizeof(secs[i].addr), "%s", mn->addr);
		r = grant_mint(mn->gkey, mnc_info(c)->node_id, my_id, s.section, s.generation, 0,
			       PROTO_R_ALL, 0, &secs[i].grant);
		if (r < 0)
			return r;
	}
	return pager_backend_memnode_new(&mn->key, my_id, 5000, o->net_spin_us, ret_be);
}

static void usage(void)
{
	printf("Usage: disagg-pagerbench [options]\n"
	       "  --size MIB          mapping size (default 256)\n"
	       "  --section MIB       section size (default 32)\n"
	       "  --json PATH         write the summary as JSON\n"
	       "  --memnode PATH      disagg-memnode binary (default: next to this one)\n"
	       "  --ops N             random read/write operations (default 50000)\n"
	       "  --spin US           fault thread spins on the uffd (default 0)\n"
	       "  --net-spin US       busy-poll for fetch replies (default 0)\n"
	       "  --threads N         fault threads (default 1)\n"
	       "  --pin               pin the fault thread to CPU 0 with the workload\n"
	       "  --pressure-cluster N  pages per random fault while over budget (default 4)\n"
	       "  --no-remote         skip the memory node runs\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "size", 1, 0, 's' },    { "section", 1, 0, 'S' }, { "json", 1, 0, 'j' },
		{ "memnode", 1, 0, 'm' }, { "ops", 1, 0, 'o' },     { "spin", 1, 0, 'p' },
		{ "net-spin", 1, 0, 'n' }, { "threads", 1, 0, 't' }, { "pin", 0, 0, 'P' },
		{ "no-remote", 0, 0, 'R' }, { "pressure-cluster", 1, 0, 'C' }, { "help", 0, 0, 'h' },   { 0 } };
	struct opts o = { .size = 256ull << 20, .section = 32ull << 20, .rand_ops = 50000,
			  .threads = 1 };
	struct result res[16];
	unsigned nres = 0;
	static const int budgets[] = { 100, 50, 25 };
	struct mnspawn mn = { .pid = -1 };
	uint64_t mism = 0;
	double raw_us, rtt1_us, rtt16_us, remote1_us = 0, sealed1_us = 0;
	double open_us, open_fresh_us, copy_us;
	struct host_probe host;
	int c;

	log_init("disagg-pagerbench");
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': o.size = strtoull(optarg, NULL, 0) << 20; break;
		case 'S': o.section = strtoull(optarg, NULL, 0) << 20; break;
		case 'j': o.json = optarg; break;
		case 'm': o.memnode = optarg; break;
		case 'o': o.rand_ops = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'p': o.spin_us = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'n': o.net_spin_us = (unsigned)strtoul(optarg, NULL, 0); break;
		case 't': o.threads = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'P': o.pin = true; break;
		case 'R': o.no_remote = true; break;
		case 'C': o.pcluster = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (!o.section || o.size % o.section || o.section % (2u << 20)) {
		fprintf(stderr, "pagerbench: --size must be a multiple of --section (>= 2 MiB)\n");
		return 2;
	}
	{
		int fd;
		uint64_t f;
		int r = pager_uffd_open(PAGER_DIRTY_SYNC_WP, &fd, &f);

		if (r < 0) {
			fprintf(stderr, "pagerbench: userfaultfd with WP on shmem unavailable: %s\n",
				strerror(-r));
			return 77;
		}
		close(fd);
	}
	if (o.pin) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(0, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}

	printf("disagg-pagerbench: %llu MiB, sections %llu MiB, spin %u us, net spin %u us, %u fault thread(s)%s\n",
	       (unsigned long long)(o.size >> 20), (unsigned long long)(o.section >> 20), o.spin_us,
	       o.net_spin_us, o.threads, o.pin ? ", pinned" : "");
	printf("%-7s %6s %10s %10s %10s %11s %10s %9s %10s\n", "setup", "budget", "seqrd MB/s",
	       "seqwr MB/s", "fault us", "randrw op/s", "mismatch", "evicted", "written");
	run_local(&o, &res[nres]);
	print_row(&res[nres++]);
	raw_us = baseline_uffd_fault_us(o.size, 4000, o.pin);
	rtt1_us = baseline_tcp_rtt_us(120, 32 + PS, 2000, o.pin);
	rtt16_us = baseline_tcp_rtt_us(120, 32 + 16 * PS, 2000, o.pin);
	cipher_costs(&open_us, &open_fresh_us, &copy_us, &mism);
	if (raw_us < 0 || rtt1_us < 0 || rtt16_us < 0) {
		fprintf(stderr, "pagerbench: baselines: %s\n",
			strerror((int)-(raw_us < 0 ? raw_us : rtt1_us < 0 ? rtt1_us : rtt16_us)));
		return 1;
	}
	printf("baselines: raw uffd fault %.2f us, TCP loopback round trip %.2f us (1 page), "
	       "%.2f us (16 pages)\n", raw_us, rtt1_us, rtt16_us);
	if (host_probe_run(&host, o.pin) < 0) {
		fprintf(stderr, "pagerbench: host probes failed\n");
		return 1;
	}
	printf("host: system call %.0f ns, pipe round trip %.1f us between processes, %.1f us "
	       "between threads%s\n", host.syscall_ns, host.pipe_rtt_proc_us,
	       host.pipe_rtt_thread_us, o.pin ? " (CPU 0)" : "");

	{
		uint64_t nsec = o.size / o.section;
		struct pager_section *secs = calloc(nsec, sizeof(*secs));
		struct pager_backend *be = NULL;
		struct bmap b;
		int r;

		for (uint64_t i = 0; i < nsec; i++) {
			secs[i].kind = PAGER_SEC_REMOTE;
			secs[i].grant.memnode_id = 1;
			secs[i].grant.section = (uint32_t)i;
		}
		r = pager_backend_local_new(o.section, &be);
		if (r >= 0)
			r = bmap_setup(&b, &o, be, secs);
		if (r < 0) {
			fprintf(stderr, "pagerbench: floor setup: %s\n", strerror(-r));
			return 1;
		}
		for (unsigned i = 0; i < ARRAY_SIZE(budgets); i++) {
			run_pager(&b, "floor", budgets[i], &o, &res[nres]);
			print_row(&res[nres++]);
		}
		bmap_free(&b);
		pager_backend_free(be);
		be = NULL;

		if (!o.no_remote) {
			r = setup_remote(&o, argv[0], &mn, secs, &be);
			if (r >= 0)
				r = bmap_setup(&b, &o, be, secs);
			if (r < 0) {
				fprintf(stderr, "pagerbench: remote setup: %s\n", strerror(-r));
				mnspawn_stop(&mn, true);
				return 1;
			}
			for (unsigned i = 0; i < ARRAY_SIZE(budgets); i++) {
				run_pager(&b, "remote", budgets[i], &o, &res[nres]);
				print_row(&res[nres++]);
			}
			bmap_free(&b);
			/* The same memory node, pages sealed with a slot key. */
			{
				struct opts os = o;
				uint8_t key[PAGER_KEY_BYTES];

				for (unsigned i = 0; i < sizeof(key); i++)
					key[i] = (uint8_t)rnd();
				r = pager_crypt_new(key, NULL, o.size / PS, &os.crypt);
				if (r >= 0)
					r = bmap_setup(&b, &os, be, secs);
				if (r < 0) {
					fprintf(stderr, "pagerbench: sealed setup: %s\n", strerror(-r));
					mism++;
				} else {
					for (unsigned i = 0; i < ARRAY_SIZE(budgets); i++) {
						run_pager(&b, "sealed", budgets[i], &os, &res[nres]);
						print_row(&res[nres++]);
					}
				}
				bmap_free(&b);
				/* One page per fault: the cipher's cost on the faulting page alone. */
				if (r >= 0) {
					os.cluster = 1;
					r = bmap_setup(&b, &os, be, secs);
					if (r >= 0)
						r = cold(&b, 100);
					if (r >= 0)
						sealed1_us = cold_faults(b.mem, b.len, b.ver, 4000, &mism);
					else
						mism++;
					bmap_free(&b);
				}
				pager_crypt_free(os.crypt);
			}
			/* The same memory node, one page per fault: the fault cost alone. */
			{
				struct opts o1 = o;

				o1.cluster = 1;
				r = bmap_setup(&b, &o1, be, secs);
				if (r >= 0)
					r = cold(&b, 100);
				if (r < 0) {
					fprintf(stderr, "pagerbench: remote 1-page setup: %s\n",
						strerror(-r));
					mism++;
				} else {
					remote1_us = cold_faults(b.mem, b.len, b.ver, 4000, &mism);
				}
				bmap_free(&b);
			}
			pager_backend_free(be);
			mnspawn_stop(&mn, false);
		}
		free(secs);
	}

	for (unsigned i = 0; i < nres; i++)
		mism += res[i].mismatches;
	{
		const struct result *fl = &res[1], *rm = nres > 4 ? &res[4] : NULL;
		const struct result *sl = nres > 7 ? &res[7] : NULL;
		double scost = rm && sl ? sl->fault_us - rm->fault_us : 0;
		double sratio = rm && sl && rm->seq_read_MBps > 0 ? sl->seq_read_MBps / rm->seq_read_MBps
								   : 0;
		double ratio = rm && fl->fault_us > 0 ? rm->fault_us / fl->fault_us : 0;

		double ov16 = rm ? rm->fault_us - raw_us - rtt16_us : 0;
		double ov1 = remote1_us > 0 ? remote1_us - raw_us - rtt1_us : 0;

		printf("floor_fault_us %.2f remote_fault_us %.2f fault_ratio %.2f "
		       "seq_read_floor_MBps %.0f seq_read_remote_MBps %.0f (%.0f%%) mismatches %llu\n",
		       fl->fault_us, rm ? rm->fault_us : 0, ratio, fl->seq_read_MBps,
		       rm ? rm->seq_read_MBps : 0,
		       rm && fl->seq_read_MBps > 0 ? 100 * rm->seq_read_MBps / fl->seq_read_MBps : 0,
		       (unsigned long long)mism);
		printf("sealed_fault_us %.2f sealed_fault_cost_us %.2f seq_read_sealed_MBps %.0f "
		       "seq_read_sealed_ratio %.2f\n", sl ? sl->fault_us : 0, scost,
		       sl ? sl->seq_read_MBps : 0, sratio);
		printf("raw_uffd_fault_us %.2f rtt_16p_us %.2f pager_overhead_us %.2f (16-page "
		       "cluster) | remote_fault_1p_us %.2f rtt_1p_us %.2f pager_overhead_1p_us %.2f\n",
		       raw_us, rtt16_us, ov16, remote1_us, rtt1_us, ov1);
		printf("sealed_fault_1p_us %.2f sealed_fault_1p_cost_us %.2f (one page per fault)\n",
		       sealed1_us, sealed1_us > 0 && remote1_us > 0 ? sealed1_us - remote1_us : 0);
		printf("open_page_us %.2f (keyed context) open_page_fresh_us %.2f (new context and "
		       "key schedule) memcpy_4k_us %.2f (per 4 KiB page)\n", open_us, open_fresh_us,
		       copy_us);
		if (o.json) {
			FILE *f = fopen(o.json, "we");

			if (!f) {
				fprintf(stderr, "pagerbench: %s: %s\n", o.json, strerror(errno));
				return 1;
			}
			fprintf(f, "{\n  \"size_mib\": %llu,\n  \"floor_fault_us\": %.2f,\n"
				   "  \"remote_fault_us\": %.2f,\n  \"fault_ratio\": %.3f,\n"
				   "  \"seq_read_floor_MBps\": %.1f,\n  \"seq_read_remote_MBps\": %.1f,\n"
				   "  \"raw_uffd_fault_us\": %.2f,\n  \"rtt_1p_us\": %.2f,\n"
				   "  \"rtt_16p_us\": %.2f,\n  \"remote_fault_1p_us\": %.2f,\n"
				   "  \"pager_overhead_us\": %.2f,\n  \"pager_overhead_1p_us\": %.2f,\n"
				   "  \"sealed_fault_us\": %.2f,\n  \"sealed_fault_cost_us\": %.2f,\n"
				   "  \"seq_read_sealed_MBps\": %.1f,\n  \"seq_read_sealed_ratio\": %.3f,\n"
				   "  \"sealed_fault_1p_us\": %.2f,\n  \"sealed_fault_1p_cost_us\": %.2f,\n"
				   "  \"open_page_us\": %.3f,\n  \"open_page_fresh_us\": %.3f,\n"
				   "  \"memcpy_4k_us\": %.3f,\n"
				   "  \"host_syscall_ns\": %.1f,\n  \"host_pipe_rtt_proc_us\": %.2f,\n"
				   "  \"host_pipe_rtt_thread_us\": %.2f,\n"
				   "  \"mismatches\": %llu,\n  \"rows\": [\n",
				(unsigned long long)(o.size >> 20), fl->fault_us, rm ? rm->fault_us : 0,
				ratio, fl->seq_read_MBps, rm ? rm->seq_read_MBps : 0, raw_us, rtt1_us,
				rtt16_us, remote1_us, ov16, ov1, sl ? sl->fault_us : 0, scost,
				sl ? sl->seq_read_MBps : 0, sratio, sealed1_us,
				sealed1_us > 0 && remote1_us > 0 ? sealed1_us - remote1_us : 0,
				open_us, open_fresh_us, copy_us, host.syscall_ns,
				host.pipe_rtt_proc_us, host.pipe_rtt_thread_us,
				(unsigned long long)mism);
			for (unsigned i = 0; i < nres; i++)
				fprintf(f, "    {\"setup\": \"%s\", \"budget_pct\": %d, \"seq_read_MBps\": %.1f, "
					   "\"seq_write_MBps\": %.1f, \"fault_us\": %.2f, \"randrw_ops\": %.0f, "
					   "\"mismatches\": %llu, \"evicted\": %llu, \"written_back\": %llu}%s\n",
					res[i].setup, res[i].budget_pct, res[i].seq_read_MBps,
					res[i].seq_write_MBps, res[i].fault_us, res[i].randrw_ops,
					(unsigned long long)res[i].mismatches,
					(unsigned long long)res[i].evicted,
					(unsigned long long)res[i].written_back, i + 1 < nres ? "," : "");
			fprintf(f, "  ]\n}\n");
			fclose(f);
		}
	}
	return mism ? 1 : 0;
}
