// SPDX-License-Identifier: MIT
/*
 * disagg-memnode-bench: page I/O against a real disagg-memnode over
 * loopback, next to a bare TCP ping-pong baseline measured in the same run.
 *
 * It starts a memory node (a temporary key, a 1 GiB anonymous pool of
 * 128 MiB sections, port 0), allocates and fills a section, then measures
 * READ and WRITE of 4 KiB and 64 KiB page vectors with 1 and 8 connections
 * (one thread each) at queue depth 1 (the synchronous calls) and 32 (the
 * async calls, resubmitting from the completion callback): median and p99
 * latency per request, and throughput.
 *
 * The baseline is a forked echo server that, per connection, reads a
 * fixed-size request and writes a fixed-size reply with blocking calls,
 * the message sizes being exactly those of the protocol frames (a 4 KiB
 * READ: 120 bytes out, 4128 back). Its client does one blocking write and
 * blocking reads. The ratio READ / baseline therefore isolates what the
 * memory node and the client library add to the transport.
 *
 * Placement matters more than anything else on a small machine: a wakeup
 * on the same CPU costs a few µs, one across CPUs tens of µs, and an
 * unpinned run flips between the two. By default (--placement split) the
 * servers (echo and memory node) run on the last CPU and the client
 * threads on the others, as if they were two hosts; `same` puts everything
 * on CPU 0; `none` leaves it to the scheduler. Both sides of the
 * comparison always get the same placement.
 *
 * Every row also gives the CPU time per request of the client and the
 * memory node together (cpu_us) and of the node alone (srv_cpu): steadier
 * than throughput on a machine shared with other work.
 *
 *   disagg-memnode-bench [--memnode PATH] [--json PATH] [--quick] [--seconds S]
 *                        [--placement split|same|none]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "auth.h"
#include "cert.h"
#include "grant.h"
#include "mnadmin.h"
#include "mnclient.h"
#include "net.h"
#include "tls.h"

#define NODE_ID   900
#define HOLDER    901
#define QD_MAX    32
#define LAT_CAP   (1u << 20)

extern char **environ;

struct row {
	char name[48];
	const char *kind;           /* "baseline", "read", "write" */
	unsigned pages, conns, qd;
	double median_us, p99_us, mbps, ops;
	double cpu_us, srv_cpu_us;   /* CPU time per request: client and memory node, the node's */
};

struct bench {
	const char *addr;
	struct auth_key key;
	struct grant_key *gkey;      /* we act as the orchestrator: mint and allocate */
	struct proto_grant grant;
	uint32_t section_pages;
	double seconds;
	struct row rows[64];
	const char *tag;             /* "" plaintext, "tls-" over TLS: prefixes row kinds */
	unsigned nrows;
	pid_t server;                /* the memory node measured (its CPU time per request) */
};

/* ---- latency samples ---------------------------------------------------- */

struct worker;
struct slotref {
	struct worker *w;
	unsigned slot;
};

struct worker {
	struct bench *b;
	pthread_t thread;
	bool write;
	unsigned pages, qd, idx;
	int err;
	uint64_t *lat;               /* ns */
	size_t nlat;
	uint64_t ops, t_start, t_end;
	/* qd > 1 */
	struct mnc *c;
	uint8_t *buf;
	uint64_t sent_at[QD_MAX];
	struct slotref ref[QD_MAX];
	uint32_t next_page;
	unsigned pause_us;           /* qd 1: pause between requests (a fault's think time) */
	bool stop;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void record(struct worker *w, uint64_t ns)
{
	if (w->nlat < LAT_CAP)
		w->lat[w->nlat++] = ns;
	w->ops++;
}

static uint32_t next_page(struct worker *w)
{
	uint32_t p = w->next_page;

	w->next_page += w->pages;
	if (w->next_page + w->pages > w->b->section_pages)
		w->next_page = 0;
	return p;
}

/* ---- memory-node workers ------------------------------------------------- */

static int submit_one(struct worker *w, unsigned slot);

static void async_done(void *opaque, int status, size_t len)
{
	struct slotref *ref = opaque;
	struct worker *w = ref->w;
	unsigned slot = ref->slot;

	if (status < 0) {
		if (!w->err)
			w->err = status;
		return;
	}
	record(w, now_ns() - w->sent_at[slot]);
	if (!w->stop && now_ns() < w->t_end)
		(void)submit_one(w, slot);
}

static int submit_one(struct worker *w, unsigned slot)
{
	struct proto_extent e = { next_page(w), w->pages };
	uint8_t *buf = w->buf + (size_t)slot * w->pages * PROTO_PAGE_SIZE;
	void *opaque = &w->ref[slot];
	int r;

	w->sent_at[slot] = now_ns();
	r = w->write ? mnc_write_async(w->c, &w->b->grant, &e, 1, buf, async_done, opaque)
		     : mnc_read_async(w->c, &w->b->grant, &e, 1, buf, async_done, opaque);
	if (r < 0 && !w->err)
		w->err = r;
	return r;
}

static void *mn_worker(void *arg)
{
	struct worker *w = arg;
	struct mnc_opts o = { .addr = w->b->addr, .key = &w->b->key, .node_id = HOLDER };
	int r;

	r = mnc_connect(&o, &w->c);
	if (r < 0) {
		w->err = r;
		return NULL;
	}
	w->next_page = (uint32_t)((w->idx * 997u * w->pages) % (w->b->section_pages - w->pages));
	for (unsigned s = 0; s < QD_MAX; s++)
		w->ref[s] = (struct slotref){ w, s };
	w->t_start = now_ns();
	w->t_end = w->t_start + (uint64_t)(w->b->seconds * 1e9);
	if (w->qd == 1) {
		/* The synchronous calls: one send, one blocking receive. */
		while (now_ns() < w->t_end && !w->err) {
			struct proto_extent e = { next_page(w), w->pages };
			uint64_t t0 = now_ns();

			r = w->write ? mnc_write(w->c, &w->b->grant, &e, 1, w->buf)
				     : mnc_read(w->c, &w->b->grant, &e, 1, w->buf);
			if (r < 0)
				w->err = r;
			else
				record(w, now_ns() - t0);
			if (w->pause_us)
				usleep(w->pause_us);
		}
	} else {
		for (unsigned s = 0; s < w->qd && !w->err; s++)
			(void)submit_one(w, s);
		while (mnc_inflight(w->c) > 0 && !w->err) {
			r = mnc_poll(w->c, 5000);
			if (r <= 0 && !w->err)
				w->err = r < 0 ? r : -ETIMEDOUT;
		}
		w->stop = true;
	}
	w->t_end = now_ns();
	mnc_close(w->c);
	return NULL;
}

/* ---- baseline: echo server and client ------------------------------------ */

struct echo_conn {
	int fd;
};

static void *echo_serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint32_t sz[2];
	uint8_t *req = NULL, *rep = NULL;

	if (net_read_full(fd, sz, sizeof(sz)) < 0 || sz[0] == 0 || sz[1] == 0 ||
	    sz[0] > (8u << 20) || sz[1] > (8u << 20))
		goto out;
	req = malloc(sz[0]);
	rep = calloc(1, sz[1]);
	if (!req || !rep)
		goto out;
	while (net_read_full(fd, req, sz[0]) == 0 && net_write_full(fd, rep, sz[1]) == 0)
		;
out:
	free(req);
	free(rep);
	close(fd);
	return NULL;
}

static void echo_server(int lfd)
{
	for (;;) {
		pthread_t t;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		(void)net_set_nodelay(fd);
		if (pthread_create(&t, NULL, echo_serve, (void *)(intptr_t)fd) == 0)
			pthread_detach(t);
		else
			close(fd);
	}
}

struct bl_worker {
	const char *addr;
	pthread_t thread;
	uint32_t req, rep;
	double seconds;
	uint64_t *lat;
	size_t nlat;
	uint64_t ops, t0, t1;
	int err;
};

static void *bl_worker(void *arg)
{
	struct bl_worker *w = arg;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *req = calloc(1, w->req), *rep = malloc(w->rep);
	uint32_t sz[2] = { w->req, w->rep };
	uint64_t end;

	fd = net_connect_tcp(w->addr, 5000);
	if (fd < 0 || !req || !rep) {
		w->err = fd < 0 ? fd : -ENOMEM;
		return NULL;
	}
	if ((w->err = net_write_full(fd, sz, sizeof(sz))) < 0)
		return NULL;
	w->t0 = now_ns();
	end = w->t0 + (uint64_t)(w->seconds * 1e9);
	while (now_ns() < end) {
		uint64_t t = now_ns();

		if ((w->err = net_write_full(fd, req, w->req)) < 0 ||
		    (w->err = net_read_full(fd, rep, w->rep)) < 0)
			return NULL;
		if (w->nlat < LAT_CAP)
			w->lat[w->nlat++] = now_ns() - t;
		w->ops++;
	}
	w->t1 = now_ns();
	return NULL;
}

/* ---- cases ------------------------------------------------------------- */

/*
 * CPU time (ns) used so far by this process (client) and by `server`: on
 * a shared machine the CPU a request costs is steadier than the throughput.
 */
static uint64_t client_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t server_cpu_ns(pid_t server)
{
	uint64_t t = 0;
	char path[64], buf[1024];
	FILE *f;

	if (server <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)server);
	f = fopen(path, "r");
	if (f) {
		char *p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		unsigned long ut, st;

		/* After "(comm)": fields 3..13, then utime and stime (clock ticks). */
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				&ut, &st) == 2)
			t += (uint64_t)(ut + st) * (1000000000u / (uint64_t)sysconf(_SC_CLK_TCK));
		fclose(f);
	}
	return t;
}

static void finish_row(struct bench *b, struct row *row, uint64_t **lats, size_t *nlats,
		       unsigned n, uint64_t ops, double secs, size_t bytes_per_op)
{
	size_t total = 0, k = 0;
	uint64_t *all;

	for (unsigned i = 0; i < n; i++)
		total += nlats[i];
	all = malloc((total ? total : 1) * sizeof(*all));
	if (!all)
		return;
	for (unsigned i = 0; i < n; i++) {
		memcpy(all + k, lats[i], nlats[i] * sizeof(*all));
		k += nlats[i];
	}
	qsort(all, total, sizeof(*all), cmp_u64);
	row->median_us = total ? (double)all[total / 2] / 1000.0 : 0;
	row->p99_us = total ? (double)all[total * 99 / 100] / 1000.0 : 0;
	row->ops = secs > 0 ? (double)ops / secs : 0;
	row->mbps = row->ops * (double)bytes_per_op / 1e6;
	free(all);
	b->rows[b->nrows++] = *row;
	printf("%-26s %5u %4u %10.1f %10.1f %10.1f %10.0f %8.1f %8.1f\n", row->name, row->conns,
	       row->qd, row->median_us, row->p99_us, row->mbps, row->ops, row->cpu_us,
	       row->srv_cpu_us);
	fflush(stdout);
}

static int run_baseline(struct bench *b, const char *echo_addr, bool write, unsigned pages)
{
	size_t io = sizeof(struct proto_io_req) + sizeof(struct proto_extent);
	size_t data = (size_t)pages * PROTO_PAGE_SIZE;
	struct bl_worker w = {
		.addr = echo_addr, .seconds = b->seconds,
		.req = (uint32_t)(PROTO_HDR_SIZE + io + (write ? data : 0)),
		.rep = (uint32_t)(PROTO_HDR_SIZE + (write ? 0 : data)),
	};
	struct row row = { .kind = "baseline", .pages = pages, .conns = 1, .qd = 1 };

	w.lat = malloc(LAT_CAP * sizeof(uint64_t));
	if (!w.lat)
		return -ENOMEM;
	bl_worker(&w);
	if (w.err < 0) {
		free(w.lat);
		return w.err;
	}
	snprintf(row.name, sizeof(row.name), "baseline %s-sized %uK", write ? "write" : "read",
		 pages * 4);
	finish_row(b, &row, &w.lat, &w.nlat, 1, w.ops, (double)(w.t1 - w.t0) / 1e9, data);
	free(w.lat);
	return 0;
}

static int run_case(struct bench *b, bool write, unsigned pages, unsigned conns, unsigned qd)
{
	struct worker *w = calloc(conns, sizeof(*w));
	uint64_t *lats[8], ops = 0, t0 = UINT64_MAX, t1 = 0;
	size_t nlats[8];
	struct row row = { .kind = write ? "write" : "read", .pages = pages, .conns = conns,
			   .qd = qd };
	char kind[16];

	snprintf(kind, sizeof(kind), "%s%s", b->tag ? b->tag : "", row.kind);
	int err = 0;

	if (!w)
		return -ENOMEM;
	for (unsigned i = 0; i < conns; i++) {
		w[i] = (struct worker){ .b = b, .write = write, .pages = pages, .qd = qd, .idx = i };
		w[i].lat = malloc(LAT_CAP * sizeof(uint64_t));
		w[i].buf = aligned_alloc(4096, (size_t)qd * pages * PROTO_PAGE_SIZE);
		if (!w[i].lat || !w[i].buf)
			return -ENOMEM;
		memset(w[i].buf, 0x5a, (size_t)qd * pages * PROTO_PAGE_SIZE);
	}
	uint64_t ccpu0 = client_cpu_ns(), scpu0 = server_cpu_ns(b->server);

	for (unsigned i = 0; i < conns; i++)
		if (pthread_create(&w[i].thread, NULL, mn_worker, &w[i]) != 0)
			return -EAGAIN;
	for (unsigned i = 0; i < conns; i++) {
		pthread_join(w[i].thread, NULL);
		if (w[i].err < 0 && !err)
			err = w[i].err;
		lats[i] = w[i].lat;
		nlats[i] = w[i].nlat;
		ops += w[i].ops;
		t0 = MIN(t0, w[i].t_start);
		t1 = MAX(t1, w[i].t_end);
	}
	if (ops) {
		row.srv_cpu_us = (double)(server_cpu_ns(b->server) - scpu0) / 1000.0 / (double)ops;
		row.cpu_us = row.srv_cpu_us +
			     (double)(client_cpu_ns() - ccpu0) / 1000.0 / (double)ops;
	}
	if (!err) {
		snprintf(row.name, sizeof(row.name), "%s%s %uK", b->tag ? b->tag : "",
			 write ? "write" : "read", pages * 4);
		row.kind = strcmp(kind, "tls-read") == 0 ? "tls-read" :
			   strcmp(kind, "tls-write") == 0 ? "tls-write" : row.kind;
		finish_row(b, &row, lats, nlats, conns, ops, (double)(t1 - t0) / 1e9,
			   (size_t)pages * PROTO_PAGE_SIZE);
	}
	for (unsigned i = 0; i < conns; i++) {
		free(w[i].lat);
		free(w[i].buf);
	}
	free(w);
	return err;
}

/*
 * A fault's window beside bulk traffic: one connection READs `pages` at
 * queue depth 1 with MIXED_PAUSE_US between requests (a sequential fault's
 * window, then the guest's own work), while `writers` other connections
 * stream WRITEs of as many pages at queue depth 8 (the write-back and a
 * memory migration's COPY). writers = 0 is its baseline: the same reads
 * alone. The row is the reader's; ret_max_us gets its slowest READ, which
 * is what a guest waits for in its longest fault.
 */
#define MIXED_PAUSE_US 20000u
#define MIXED_WRITE_QD 8u

static int run_mixed(struct bench *b, unsigned pages, unsigned writers, double seconds,
		     double *ret_max_us, double *ret_p99_us)
{
	unsigned n = 1 + writers;
	struct worker *w = calloc(n, sizeof(*w));
	struct row row = { .kind = "mixed-read", .pages = pages, .conns = 1, .qd = 1 };
	double saved = b->seconds;
	uint64_t mx = 0;
	int err = 0;

	if (!w)
		return -ENOMEM;
	b->seconds = seconds;
	for (unsigned i = 0; i < n; i++) {
		unsigned qd = i ? MIXED_WRITE_QD : 1;

		w[i] = (struct worker){ .b = b, .write = i > 0, .pages = pages, .qd = qd, .idx = i,
					.pause_us = i ? 0 : MIXED_PAUSE_US };
		w[i].lat = malloc(LAT_CAP * sizeof(uint64_t));
		w[i].buf = aligned_alloc(4096, (size_t)qd * pages * PROTO_PAGE_SIZE);
		if (!w[i].lat || !w[i].buf) {
			err = -ENOMEM;
			n = i + 1;
			goto out;
		}
		memset(w[i].buf, 0x5a, (size_t)qd * pages * PROTO_PAGE_SIZE);
	}
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&w[i].thread, NULL, mn_worker, &w[i]) != 0)
			w[i].err = -EAGAIN;
	for (unsigned i = 0; i < n; i++) {
		if (w[i].err != -EAGAIN)
			pthread_join(w[i].thread, NULL);
		if (w[i].err < 0 && !err)
			err = w[i].err;
	}
	if (!err && !w[0].nlat)
		err = -EIO;
	if (!err) {
		for (size_t k = 0; k < w[0].nlat; k++)
			mx = MAX(mx, w[0].lat[k]);
		snprintf(row.name, sizeof(row.name), "read %uK paused%s", pages * 4,
			 writers ? " +stream" : "");
		finish_row(b, &row, &w[0].lat, &w[0].nlat, 1, w[0].ops,
			   (double)(w[0].t_end - w[0].t_start) / 1e9, (size_t)pages * PROTO_PAGE_SIZE);
		*ret_max_us = (double)mx / 1000.0;
		*ret_p99_us = row.p99_us;
		printf("%-26s %zu reads, slowest %.1f us\n", "", w[0].nlat, *ret_max_us);
	}
out:
	b->seconds = saved;
	for (unsigned i = 0; i < n; i++) {
		free(w[i].lat);
		free(w[i].buf);
	}
	free(w);
	return err;
}

/* ---- memnode process ----------------------------------------------------- */

static int find_memnode(const char *argv0, char *ret, size_t len)
{
	char self[PATH_MAX], a0[PATH_MAX];
	const char *cands[3];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n < 0)
		n = 0;
	self[n] = '\0';
	snprintf(a0, sizeof(a0), "%s", argv0);
	char *d_self = dirname(self), *d_a0 = dirname(a0);
	char c0[PATH_MAX + 32], c1[PATH_MAX + 32], c2[PATH_MAX + 48];
	snprintf(c0, sizeof(c0), "%s/disagg-memnode", d_a0);
	snprintf(c1, sizeof(c1), "%s/disagg-memnode", d_self);
	snprintf(c2, sizeof(c2), "%s/../../src/memnode/disagg-memnode", d_self);
	cands[0] = c0;
	cands[1] = c1;
	cands[2] = c2;
	for (size_t i = 0; i < ARRAY_SIZE(cands); i++) {
		if (access(cands[i], X_OK) == 0) {
			snprintf(ret, len, "%s", cands[i]);
			return 0;
		}
	}
	return -ENOENT;
}

/* Start the node with its log in `logfile`; parse its ready line from stdout. */
static int start_memnode(const char *path, const char *keyfile, const char *gpubfile,
			 const char *logfile, const struct fabric_conf *fc, const char *node_id,
			 pid_t *ret_pid, char *ret_addr, size_t len)
{
	char *argv[] = { (char *)path, "--listen", "127.0.0.1:0", "--pool", "1G",
			 "--section-size", "128M", "--backing", "anon", "--key", (char *)keyfile,
			 "--grant-pubkey", (char *)gpubfile, "--node-id", (char *)node_id,
			 fc->plaintext ? "--fabric-plaintext" : "--tls-ca", (char *)fc->ca,
			 "--tls-cert", (char *)fc->cert, "--tls-key", (char *)fc->key, NULL };
	posix_spawn_file_actions_t fa;
	int pfd[2], r;
	char line[512];
	FILE *f;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, logfile,
					 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	r = posix_spawn(ret_pid, path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r != 0) {
		close(pfd[0]);
		return -r;
	}
	f = fdopen(pfd[0], "r");
	if (!f) {
		close(pfd[0]);
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "listening on ");

		if (p && sscanf(p, "listening on %255s", ret_addr) == 1 && len >= 256)
			return 0; /* f stays open: the node may print more */
	}
	fclose(f);
	return -EIO;
}

/* One section on the node at b->addr, written once so reads touch real pages. */
static int setup_section(struct bench *bp)
{
	struct bench *b_ = bp;
	_cleanup_mnc_ struct mnc *ctl = NULL;
	struct mnc_opts o = { .addr = b_->addr, .key = &b_->key, .orch_key = b_->gkey,
			      .node_id = HOLDER, .timeout_ms = 30000 };
	struct proto_section s;
	_cleanup_free_ uint8_t *fill = NULL;
	int r;

	r = mnc_connect(&o, &ctl);
	if (r >= 0)
		r = mnc_alloc(ctl, HOLDER, &s);
	if (r >= 0)
		r = grant_mint(b_->gkey, mnc_info(ctl)->node_id, HOLDER, s.section, s.generation, 0,
			       PROTO_R_ALL, 0, &b_->grant);
	if (r < 0) {
		fprintf(stderr, "disagg-memnode-bench: setup: %s\n", strerror(-r));
		return r;
	}
	b_->section_pages = (uint32_t)(mnc_info(ctl)->section_size / PROTO_PAGE_SIZE);
	fill = malloc(4u << 20);
	if (!fill)
		return -ENOMEM;
	memset(fill, 0xa5, 4u << 20);
	for (uint32_t p = 0; p < b_->section_pages && r >= 0; p += 1024)
		r = mnc_write_range(ctl, &b_->grant, p, MIN(1024u, b_->section_pages - p), fill);
	if (r < 0)
		fprintf(stderr, "disagg-memnode-bench: fill: %s\n", strerror(-r));
	return r;
}

/* ---- placement ---------------------------------------------------------- */

enum placement { PLACE_SPLIT, PLACE_SAME, PLACE_NONE };

static const char *const place_names[] = { "split", "same", "none" };

/* Pin this process (and what it forks or spawns next) to CPUs [lo, hi]. */
static void pin(int lo, int hi)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int i = lo; i <= hi; i++)
		CPU_SET(i, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

static void place_servers(enum placement pl, int ncpu)
{
	if (pl == PLACE_SPLIT)
		pin(ncpu - 1, ncpu - 1);
	else if (pl == PLACE_SAME)
		pin(0, 0);
}

static void place_clients(enum placement pl, int ncpu)
{
	if (pl == PLACE_SPLIT)
		pin(0, ncpu - 2);
	else if (pl == PLACE_SAME)
		pin(0, 0);
}

/* ---- main -------------------------------------------------------------- */

static json_t *rows_json(const struct bench *b)
{
	json_t *arr = json_array();

	for (unsigned i = 0; i < b->nrows; i++) {
		const struct row *r = &b->rows[i];

		json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f}",
						     "name", r->name, "kind", r->kind, "bytes",
						     (int)(r->pages * PROTO_PAGE_SIZE), "conns",
						     (int)r->conns, "qd", (int)r->qd, "median_us",
						     r->median_us, "p99_us", r->p99_us, "MBps", r->mbps,
						     "ops_per_s", r->ops, "cpu_us_per_op", r->cpu_us,
						     "server_cpu_us_per_op", r->srv_cpu_us));
	}
	return arr;
}

static const struct row *find_row(const struct bench *b, const char *kind, unsigned pages,
				  unsigned conns, unsigned qd)
{
	for (unsigned i = 0; i < b->nrows; i++) {
		const struct row *r = &b->rows[i];

		if (!strcmp(r->kind, kind) && r->pages == pages && r->conns == conns && r->qd == qd)
			return r;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "memnode", required_argument, NULL, 'm' },
		{ "json", required_argument, NULL, 'j' },
		{ "quick", no_argument, NULL, 'q' },
		{ "seconds", required_argument, NULL, 's' },
		{ "placement", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	static struct bench b;
	const char *json_path = NULL, *mn_path = NULL;
	char mn_buf[PATH_MAX + 64], tmpdir[] = "/tmp/disagg-bench-XXXXXX", keyfile[64] = "", logfile[64] = "",
	     gkeyfile[64] = "", gpubfile[64] = "";
	char mn_addr[256], echo_addr[64], tls_addr[256], tlslog[64] = "", cadir[64] = "";
	char capem[80] = "", mncert[80] = "", mnkey[80] = "", clcert[80] = "", clkey[80] = "";
	const struct fabric_conf plain = { .plaintext = true };
	struct fabric_conf mnfc = { 0 }, clfc = { 0 };
	struct tls_ctx *tls = NULL;
	pid_t mn_pid = -1, echo_pid = -1, tls_pid = -1;
	int c, r, lfd, rc = 1, ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	enum placement pl = PLACE_SPLIT;

	b.seconds = 0.9;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': mn_path = optarg; break;
		case 'j': json_path = optarg; break;
		case 'q': b.seconds = 0.15; break;
		case 's': b.seconds = atof(optarg); break;
		case 'p':
			for (pl = 0; pl < ARRAY_SIZE(place_names); pl++)
				if (!strcmp(optarg, place_names[pl]))
					break;
			if (pl == ARRAY_SIZE(place_names)) {
				fprintf(stderr, "disagg-memnode-bench: --placement split|same|none\n");
				return 1;
			}
			break;
		case 'h':
			puts("usage: disagg-memnode-bench [--memnode PATH] [--json PATH] [--quick] "
			     "[--seconds S per case] [--placement split|same|none]");
			return 0;
		default: return 1;
		}
	}
	if (b.seconds <= 0) {
		fprintf(stderr, "disagg-memnode-bench: --seconds must be positive\n");
		return 1;
	}
	if (!mn_path) {
		if (find_memnode(argv[0], mn_buf, sizeof(mn_buf)) < 0) {
			fprintf(stderr, "disagg-memnode-bench: disagg-memnode not found next to me; "
					"use --memnode PATH\n");
			return 1;
		}
		mn_path = mn_buf;
	}
	signal(SIGPIPE, SIG_IGN);
	if (ncpu < 2 && pl == PLACE_SPLIT)
		pl = PLACE_SAME;
	place_servers(pl, ncpu);

	/* The echo server first, before this process has threads. */
	lfd = net_listen_tcp("127.0.0.1:0", false);
	if (lfd < 0 || net_local_addr(lfd, echo_addr, sizeof(echo_addr)) < 0) {
		fprintf(stderr, "disagg-memnode-bench: echo listen: %s\n", strerror(-lfd));
		return 1;
	}
	echo_pid = fork();
	if (echo_pid == 0)
		echo_server(lfd);
	close(lfd);
	if (echo_pid < 0) {
		fprintf(stderr, "disagg-memnode-bench: fork: %s\n", strerror(errno));
		return 1;
	}

	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "disagg-memnode-bench: mkdtemp: %s\n", strerror(errno));
		goto out;
	}
	snprintf(keyfile, sizeof(keyfile), "%s/cluster.key", tmpdir);
	snprintf(gkeyfile, sizeof(gkeyfile), "%s/grant.key", tmpdir);
	snprintf(gpubfile, sizeof(gpubfile), "%s/grant.pub", tmpdir);
	r = auth_key_create(keyfile);
	if (r >= 0)
		r = auth_key_load(keyfile, &b.key);
	if (r >= 0)
		r = grant_key_create(gkeyfile, gpubfile);
	if (r >= 0)
		r = grant_key_load(gkeyfile, true, &b.gkey);
	if (r < 0) {
		fprintf(stderr, "disagg-memnode-bench: key: %s\n", strerror(-r));
		goto out;
	}
	snprintf(logfile, sizeof(logfile), "%s/memnode.log", tmpdir);
	r = start_memnode(mn_path, keyfile, gpubfile, logfile, &plain, "900", &mn_pid, mn_addr,
			  sizeof(mn_addr));
	if (r < 0) {
		fprintf(stderr, "disagg-memnode-bench: cannot start %s: %s\n", mn_path, strerror(-r));
		goto out;
	}
	b.addr = mn_addr;
	b.server = mn_pid;
	place_clients(pl, ncpu);

	r = setup_section(&b);
	if (r < 0)
		goto out;

	printf("disagg-memnode-bench: memnode %s (%s), echo baseline %s, %.2f s per case, "
	       "placement %s (%d CPUs)\n\n", mn_addr, mn_path, echo_addr, b.seconds,
	       place_names[pl], ncpu);
	printf("%-26s %5s %4s %10s %10s %10s %10s %8s %8s\n", "case", "conns", "qd", "median_us",
	       "p99_us", "MB/s", "ops/s", "cpu_us", "srv_cpu");
	static const unsigned sizes[] = { 1, 16 };
	for (unsigned si = 0; si < 2; si++)
		for (int wr = 0; wr < 2; wr++) {
			r = run_baseline(&b, echo_addr, wr, sizes[si]);
			if (r < 0) {
				fprintf(stderr, "disagg-memnode-bench: baseline: %s\n", strerror(-r));
				goto out;
			}
		}
	for (int wr = 0; wr < 2; wr++)
		for (unsigned si = 0; si < 2; si++)
			for (unsigned conns = 1; conns <= 8; conns *= 8)
				for (unsigned qd = 1; qd <= 32; qd *= 32) {
					r = run_case(&b, wr, sizes[si], conns, qd);
					if (r < 0) {
						fprintf(stderr, "disagg-memnode-bench: %s: %s\n",
							wr ? "write" : "read", strerror(-r));
						goto out;
					}
				}

	/* A 1 MiB window alone, then beside a write stream (quick: shorter). */
	double alone_max = 0, alone_p99 = 0, stream_max = 0, stream_p99 = 0;

	if ((r = run_mixed(&b, PROTO_MAX_PAGES, 0, b.seconds < 1 ? 1.0 : 4.0, &alone_max,
			   &alone_p99)) < 0 ||
	    (r = run_mixed(&b, PROTO_MAX_PAGES, 1, b.seconds < 1 ? 1.0 : 4.0, &stream_max,
			   &stream_p99)) < 0) {
		fprintf(stderr, "disagg-memnode-bench: read beside a stream: %s\n", strerror(-r));
		goto out;
	}

	/*
	 * The same cases over TLS 1.3, in the same run: a second memory node
	 * with a certificate of a CA made here, and our client certificate.
	 */
	snprintf(cadir, sizeof(cadir), "%s/ca", tmpdir);
	snprintf(capem, sizeof(capem), "%s/ca.pem", cadir);
	snprintf(mncert, sizeof(mncert), "%s/mn.pem", tmpdir);
	snprintf(mnkey, sizeof(mnkey), "%s/mn.key", tmpdir);
	snprintf(clcert, sizeof(clcert), "%s/client.pem", tmpdir);
	snprintf(clkey, sizeof(clkey), "%s/client.key", tmpdir);
	snprintf(tlslog, sizeof(tlslog), "%s/memnode-tls.log", tmpdir);
	{
		struct cert_id mid = { 902, CERT_ROLE_MEMORY }, cid = { HOLDER, CERT_ROLE_ORCH };

		r = cert_new_ca(cadir, NULL, 1);
		if (r >= 0)
			r = cert_issue(cadir, &mid, 1, mncert, mnkey);
		if (r >= 0)
			r = cert_issue(cadir, &cid, 1, clcert, clkey);
		if (r < 0) {
			fprintf(stderr, "disagg-memnode-bench: certificates: %s\n", strerror(-r));
			goto out;
		}
	}
	mnfc = (struct fabric_conf){ .ca = capem, .cert = mncert, .key = mnkey };
	clfc = (struct fabric_conf){ .ca = capem, .cert = clcert, .key = clkey };
	place_servers(pl, ncpu);
	r = start_memnode(mn_path, keyfile, gpubfile, tlslog, &mnfc, "902", &tls_pid, tls_addr,
			  sizeof(tls_addr));
	place_clients(pl, ncpu);
	if (r < 0) {
		fprintf(stderr, "disagg-memnode-bench: cannot start the TLS memory node: %s\n",
			strerror(-r));
		goto out;
	}
	if (tls_ctx_new(&clfc, CERT_ROLE_ORCH, HOLDER, &tls) < 0)
		goto out;
	mnc_set_tls(tls);
	b.addr = tls_addr;
	b.server = tls_pid;
	b.tag = "tls-";
	r = setup_section(&b);
	if (r < 0)
		goto out;
	if ((r = run_case(&b, false, 1, 1, 1)) < 0 || (r = run_case(&b, false, 16, 1, 32)) < 0 ||
	    (r = run_case(&b, true, 1, 1, 1)) < 0) {
		fprintf(stderr, "disagg-memnode-bench: TLS: %s\n", strerror(-r));
		goto out;
	}
	mnc_set_tls(NULL);

	const struct row *bl4 = find_row(&b, "baseline", 1, 1, 1);
	const struct row *bl4w = NULL;
	for (unsigned i = 0; i < b.nrows; i++)
		if (!strcmp(b.rows[i].kind, "baseline") && b.rows[i].pages == 1 &&
		    strstr(b.rows[i].name, "write"))
			bl4w = &b.rows[i];
	const struct row *rd4 = find_row(&b, "read", 1, 1, 1);
	const struct row *wr4 = find_row(&b, "write", 1, 1, 1);
	const struct row *rd64 = find_row(&b, "read", 16, 1, 32);
	const struct row *rd64x8 = find_row(&b, "read", 16, 8, 32);
	double ratio = rd4->median_us / bl4->median_us;
	double wratio = wr4->median_us / (bl4w ? bl4w->median_us : bl4->median_us);

	printf("\nread 4K qd1: %.1f us vs baseline %.1f us: ratio %.2f (target <= 1.5)\n",
	       rd4->median_us, bl4->median_us, ratio);
	printf("write 4K qd1: %.1f us: ratio %.2f to its baseline\n", wr4->median_us, wratio);
	printf("read 64K qd32: %.0f MB/s on 1 connection, %.0f MB/s on 8 (target >= 1000)\n",
	       rd64->mbps, rd64x8->mbps);
	const struct row *trd4 = find_row(&b, "tls-read", 1, 1, 1);
	const struct row *trd64 = find_row(&b, "tls-read", 16, 1, 32);
	double tls_lat = trd4->median_us / rd4->median_us, tls_tput = trd64->mbps / rd64->mbps;

	printf("TLS read 4K qd1: %.1f us, %.2fx plaintext (target <= 1.3)\n", trd4->median_us,
	       tls_lat);
	printf("TLS read 64K qd32: %.0f MB/s, %.0f%% of plaintext (target >= 60%%)\n",
	       trd64->mbps, tls_tput * 100);

	if (json_path) {
		struct utsname u;
		json_t *j;

		uname(&u);
		j = json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:o, s:o, s:o, s:{s:s, s:s, s:I}}",
			      "bench", "memnode", "placement", place_names[pl],
			      "seconds_per_case", b.seconds,
			      "baseline_rtt_4k_us", bl4->median_us,
			      "read_4k_qd1_median_us", rd4->median_us, "read_4k_ratio", ratio,
			      "write_4k_qd1_median_us", wr4->median_us, "write_4k_ratio", wratio,
			      "read_64k_qd32_MBps", rd64->mbps, "read_64k_qd32_8conn_MBps",
			      rd64x8->mbps,
			      "write_64k_qd32_MBps", find_row(&b, "write", 16, 1, 32)->mbps,
			      "tls", json_pack("{s:f, s:f, s:f, s:f, s:f}",
					       "read_4k_qd1_median_us", trd4->median_us,
					       "read_4k_latency_ratio", tls_lat,
					       "read_64k_qd32_MBps", trd64->mbps,
					       "read_64k_qd32_fraction", tls_tput,
					       "write_4k_qd1_median_us",
					       find_row(&b, "tls-write", 1, 1, 1)->median_us),
			      "read_1m_paused", json_pack("{s:f, s:f, s:f, s:f}",
							  "alone_p99_us", alone_p99,
							  "alone_max_us", alone_max,
							  "beside_stream_p99_us", stream_p99,
							  "beside_stream_max_us", stream_max),
			      "rows", rows_json(&b), "machine", "kernel", u.release, "arch",
			      u.machine, "cpus", (json_int_t)sysconf(_SC_NPROCESSORS_ONLN));
		if (!j || json_dump_file(j, json_path, JSON_INDENT(2)) < 0) {
			fprintf(stderr, "disagg-memnode-bench: cannot write %s\n", json_path);
			json_decref(j);
			goto out;
		}
		json_decref(j);
		printf("results: %s\n", json_path);
	}
	rc = 0;
out:
	mnc_set_tls(NULL);
	tls_ctx_free(tls);
	if (mn_pid > 0) {
		kill(mn_pid, SIGTERM);
		waitpid(mn_pid, NULL, 0);
	}
	if (tls_pid > 0) {
		kill(tls_pid, SIGTERM);
		waitpid(tls_pid, NULL, 0);
	}
	if (capem[0]) {
		const char *files[] = { capem, mncert, mnkey, clcert, clkey };
		char cakey[80];

		snprintf(cakey, sizeof(cakey), "%s/ca.key", cadir);
		unlink(cakey);
		for (size_t i = 0; i < ARRAY_SIZE(files); i++)
			unlink(files[i]);
		rmdir(cadir);
		if (rc == 0)
			unlink(tlslog);
		else
			fprintf(stderr, "disagg-memnode-bench: TLS memory node log kept in %s\n",
				tlslog);
	}
	if (echo_pid > 0) {
		kill(echo_pid, SIGKILL);
		waitpid(echo_pid, NULL, 0);
	}
	if (keyfile[0]) {
		unlink(keyfile);
		unlink(gkeyfile);
		unlink(gpubfile);
		if (rc == 0 && logfile[0])
			unlink(logfile);
		else if (logfile[0])
			fprintf(stderr, "disagg-memnode-bench: memory node log kept in %s\n", logfile);
		rmdir(tmpdir);
	}
	grant_key_free(b.gkey);
	return rc;
}
