// SPDX-License-Identifier: MIT
/*
 * disagg-guest: the helper that runs inside test and demo guests (PID 1's
 * successor in the guest initramfs). It is a static binary with no
 * dependency on the rest of the project.
 *
 * - Onlines hot-added memory blocks as movable (the kernel command line
 *   also sets memhp_default_state=online_movable; this catches the rest).
 * - Answers a line protocol on a dedicated host channel: the virtio-serial
 *   port named "org.disagg.guest" when present, else /dev/ttyS1. Tests and
 *   the compute agent use this channel, never the human console.
 *
 * Protocol (docs/guest.md): the host sends one command per line; the guest
 * answers each with one line starting "OK" or "ERR". Unsolicited lines
 * start with an upper-case word of their own ("READY", "HB").
 *
 *   PING                     OK pong
 *   MEMINFO                  OK memtotal_kb=N memfree_kb=N block_bytes=N
 *                               online=N offline=N movable=N
 *   ONLINE                   OK onlined=N         (offline blocks -> online_movable)
 *   FILL ID SEED MB          OK id=ID mb=MB ms=T  (allocate MB MiB, write a pattern)
 *   VERIFY ID                OK id=ID mismatches=0 ms=T | ERR id=ID mismatches=N first=PAGE
 *   REWRITE ID SEED          OK ...               (write a new pattern over region ID)
 *   FREE ID                  OK id=ID
 *   DSAVE DEV OFFSET ID      OK id=ID bytes=N ms=T  region ID's pages written to disk DEV
 *                                                 at OFFSET (O_DIRECT, straight from them)
 *   DLOAD DEV OFFSET ID SEED OK id=ID bytes=N ms=T  disk DEV from OFFSET read straight into
 *                                                 region ID's pages; its pattern is SEED's
 *   LAYOUT                   OK blocks=<index:state:zone,...>
 *   HEARTBEAT MS             OK                   then "HB SEQ NS" every MS ms (0 stops)
 *   WRITELOOP ID MBPS        OK id=ID mbps=N      a thread rewrites region ID (same pattern)
 *                                                 at MBPS MiB/s until STOP
 *   STOP                     OK id=ID mb=N ms=T   stop it: MiB written, time it ran
 *   RANDOM ID SECONDS WPCT SEED
 *                            OK id=ID ops=N ms=T ops_per_s=X mismatches=0
 *                                                 touch random pages of region ID for
 *                                                 SECONDS: WPCT% write a word of the
 *                                                 region's pattern, the rest read and check one
 *   POWEROFF                 OK, then the guest powers off
 *
 * Shared regions (ivshmem-plain BAR2, named by PCI address or #N) have
 * their own files: REGIONS RFILL RVERIFY RPEEK RRELEASE RACQUIRE in regioncmd.c, the
 * background jobs RPOKE RCOUNTER RJOB in rjob.c and RLITMUS in litmus.c,
 * over rmap.c (finding and mapping a region); guestutil.c holds what they
 * all share. This file keeps RAM, memory blocks, the channel and dispatch.
 */
#include "guestutil.h"
#include "litmus.h"
#include "rbench.h"
#include "diskcmd.h"
#include "netcmd.h"
#include "regioncmd.h"
#include "rjob.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_REGIONS 64
#define PORT_NAME "org.disagg.guest"
#define MEMDIR "/sys/devices/system/memory"

struct region {
	uint8_t *mem;
	size_t bytes;
	uint64_t seed;
};

static struct region regions[MAX_REGIONS];
static int chan = -1; /* the host channel */

/* ---- memory blocks ----------------------------------------------------- */

struct block_counts {
	int online, offline, movable;
};

/* Walk memory blocks; with `online`, bring offline ones up as movable. */
static int scan_blocks(int online, struct block_counts *ret, char *layout, size_t laylen)
{
	DIR *d = opendir(MEMDIR);
	struct dirent *de;
	struct block_counts c = { 0 };
	int onlined = 0;
	size_t off = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char path[512], state[64], zones[128];

		if (strncmp(de->d_name, "memory", 6) || !isdigit((unsigned char)de->d_name[6]))
			continue;
		snprintf(path, sizeof(path), MEMDIR "/%s/state", de->d_name);
		if (guest_read_file(path, state, sizeof(state)) < 0)
			continue;
		if (online && strcmp(state, "offline") == 0) {
			if (guest_write_file(path, "online_movable") == 0 ||
			    guest_write_file(path, "online") == 0) {
				onlined++;
				(void)guest_read_file(path, state, sizeof(state));
			}
		}
		/*
		 * valid_zones of a block that is not online can oops the 6.1
		 * kernel while the block is still being added (NULL node data in
		 * valid_zones_show, seen with virtio-mem): read it only for
		 * online blocks, and only when someone asked for zones.
		 */
		strcpy(zones, strcmp(state, "online") == 0 ? "?" : "none");
		if ((ret || layout) && strcmp(state, "online") == 0) {
			snprintf(path, sizeof(path), MEMDIR "/%s/valid_zones", de->d_name);
			if (guest_read_file(path, zones, sizeof(zones)) < 0)
				strcpy(zones, "?");
		}
		if (strcmp(state, "online") == 0) {
			c.online++;
			if (strstr(zones, "Movable") == zones)
				c.movable++;
		} else {
			c.offline++;
		}
		if (layout && off < laylen) {
			char *sp = strchr(zones, ' ');

			if (sp)
				*sp = '\0';
			off += (size_t)snprintf(layout + off, laylen - off, "%s%s:%s:%s",
						off ? "," : "", de->d_name + 6, state, zones);
		}
	}
	closedir(d);
	if (ret)
		*ret = c;
	return onlined;
}

static long meminfo_kb(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long v = -1;
	size_t kl = strlen(key);

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* ---- patterns ---------------------------------------------------------- */

static void fill_region(struct region *r)
{
	size_t pages = r->bytes / PAGE;

	for (size_t p = 0; p < pages; p++) {
		uint64_t *w = (uint64_t *)(r->mem + p * PAGE);

		for (size_t i = 0; i < PAGE / 8; i++)
			w[i] = guest_pattern_word(r->seed, p, i);
	}
}

static size_t verify_region(const struct region *r, size_t *ret_first)
{
	size_t pages = r->bytes / PAGE, bad = 0;

	for (size_t p = 0; p < pages; p++) {
		const uint64_t *w = (const uint64_t *)(r->mem + p * PAGE);

		for (size_t i = 0; i < PAGE / 8; i++)
			if (w[i] != guest_pattern_word(r->seed, p, i)) {
				if (!bad)
					*ret_first = p;
				bad++;
				break;
			}
	}
	return bad;
}

/* ---- commands ---------------------------------------------------------- */

static long hb_interval_ms;
static uint64_t hb_seq, hb_next_ns;

/*
 * WRITELOOP: a thread rewrites a region with its own pattern (so VERIFY
 * stays valid) at a steady rate, page after page, wrapping around, while
 * the main loop goes on answering commands and sending heartbeats.
 * REWRITE and FREE of that region are refused until STOP.
 */
struct writeloop {
	pthread_t thread;
	bool running;
	atomic_bool stop;
	int id;
	long mbps;
	uint64_t t0, bytes;
};

static struct writeloop wl;

static void *writeloop_main(void *arg)
{
	struct region *r = &regions[wl.id];
	size_t pages = r->bytes / PAGE, p = 0;
	const uint64_t chunk = 256 * PAGE; /* 1 MiB between rate checks */

	(void)arg;
	while (!atomic_load(&wl.stop)) {
		uint64_t due;

		for (uint64_t done = 0; done < chunk; done += PAGE, p = (p + 1) % pages) {
			uint64_t *w = (uint64_t *)(r->mem + p * PAGE);

			for (size_t i = 0; i < PAGE / 8; i++)
				w[i] = guest_pattern_word(r->seed, p, i);
		}
		wl.bytes += chunk;
		/* Where the schedule says we should be: sleep until then. */
		due = wl.t0 + wl.bytes * 1000000000ull / ((uint64_t)wl.mbps << 20);
		for (uint64_t now = guest_now_ns(); now < due && !atomic_load(&wl.stop);
		     now = guest_now_ns()) {
			uint64_t ns = MIN_U64(due - now, 10000000ull);
			struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ns };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static bool writeloop_busy(int id)
{
	return wl.running && wl.id == id;
}

static struct region *region_arg(const char *s, int *ret_id)
{
	char *end;
	long id = strtol(s ? s : "", &end, 10);

	if (!s || *end || id < 0 || id >= MAX_REGIONS)
		return NULL;
	*ret_id = (int)id;
	return &regions[id];
}

static void cmd_fill(char **av, int ac)
{
	struct region *r;
	int id;
	uint64_t t0;
	long mb;

	if (ac != 4 || !(r = region_arg(av[1], &id)))
		return guest_reply("ERR usage: FILL ID SEED MB");
	mb = strtol(av[3], NULL, 10);
	if (mb <= 0 || mb > (1L << 20))
		return guest_reply("ERR bad size");
	if (r->mem)
		return guest_reply("ERR id=%d in use", id);
	/* Never push the guest into the OOM killer: PID 1 cannot be killed. */
	if ((mb << 10) + 16384 > meminfo_kb("MemAvailable"))
		return guest_reply("ERR not enough memory: %ld MiB asked, %ld MiB available", mb,
				   meminfo_kb("MemAvailable") >> 10);
	t0 = guest_now_ns();
	r->bytes = (size_t)mb << 20;
	r->seed = strtoull(av[2], NULL, 10);
	r->mem = mmap(NULL, r->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->mem == MAP_FAILED) {
		r->mem = NULL;
		return guest_reply("ERR mmap: %s", strerror(errno));
	}
	fill_region(r);
	guest_reply("OK id=%d mb=%ld ms=%llu", id, mb, guest_ms_since(t0));
}

static void cmd_rewrite(char **av, int ac)
{
	struct region *r;
	int id;
	uint64_t t0 = guest_now_ns();

	if (ac != 3 || !(r = region_arg(av[1], &id)) || !r->mem)
		return guest_reply("ERR usage: REWRITE ID SEED (an existing region)");
	if (writeloop_busy(id))
		return guest_reply("ERR id=%d busy: WRITELOOP runs on it (STOP first)", id);
	r->seed = strtoull(av[2], NULL, 10);
	fill_region(r);
	guest_reply("OK id=%d ms=%llu", id, guest_ms_since(t0));
}

static void cmd_verify(char **av, int ac)
{
	struct region *r;
	size_t bad, first = 0;
	uint64_t t0 = guest_now_ns();
	int id;

	if (ac != 2 || !(r = region_arg(av[1], &id)) || !r->mem)
		return guest_reply("ERR usage: VERIFY ID (an existing region)");
	bad = verify_region(r, &first);
	if (bad)
		return guest_reply("ERR id=%d mismatches=%zu first=%zu", id, bad, first);
	guest_reply("OK id=%d mismatches=0 ms=%llu", id,
		    guest_ms_since(t0));
}

/*
 * DSAVE and DLOAD: I/O between a disk and region ID's own pages, in 1 MiB
 * requests (the device reads or writes guest RAM wherever those pages are:
 * with remote memory, pages the host may have evicted).
 */
static void cmd_dsave_dload(char **av, int ac, bool load)
{
	struct region *r;
	uint64_t off, t0 = guest_now_ns();
	char path[64];
	int id, fd;

	if (ac != (load ? 5 : 4) || strchr(av[1], '/') || strlen(av[1]) > 32 ||
	    guest_parse_u64(av[2], 0, UINT64_MAX / 2, &off) < 0 || off % PAGE ||
	    !(r = region_arg(av[3], &id)) || !r->mem)
		return guest_reply("ERR usage: %s DEV OFFSET ID%s (an existing region, OFFSET a "
				   "multiple of 4096)", av[0], load ? " SEED" : "");
	if (writeloop_busy(id))
		return guest_reply("ERR id=%d busy: WRITELOOP runs on it (STOP first)", id);
	snprintf(path, sizeof(path), "/dev/%s", av[1]);
	fd = open(path, (load ? O_RDONLY : O_WRONLY) | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return guest_reply("ERR %s: %s", path, strerror(errno));
	for (size_t done = 0; done < r->bytes;) {
		size_t n = MIN_U64(1u << 20, r->bytes - done);
		ssize_t k = load ? pread(fd, r->mem + done, n, (off_t)(off + done))
				 : pwrite(fd, r->mem + done, n, (off_t)(off + done));

		if (k != (ssize_t)n) {
			int e = k < 0 ? errno : EIO;

			close(fd);
			return guest_reply("ERR %s at %zu: %s", load ? "read" : "write", done,
					   strerror(e));
		}
		done += n;
	}
	close(fd);
	if (load)
		r->seed = strtoull(av[4], NULL, 10);
	guest_reply("OK id=%d bytes=%zu ms=%llu", id, r->bytes, guest_ms_since(t0));
}

static void cmd_free(char **av, int ac)
{
	struct region *r;
	int id;

	if (ac != 2 || !(r = region_arg(av[1], &id)) || !r->mem)
		return guest_reply("ERR usage: FREE ID (an existing region)");
	if (writeloop_busy(id))
		return guest_reply("ERR id=%d busy: WRITELOOP runs on it (STOP first)", id);
	munmap(r->mem, r->bytes);
	memset(r, 0, sizeof(*r));
	guest_reply("OK id=%d", id);
}

static void cmd_writeloop(char **av, int ac)
{
	struct region *r;
	char *end = NULL;
	long mbps = ac == 3 ? strtol(av[2], &end, 10) : 0;
	int id;

	if (ac != 3 || !(r = region_arg(av[1], &id)) || !r->mem || !end || *end || mbps < 1 ||
	    mbps > 100000)
		return guest_reply("ERR usage: WRITELOOP ID MBPS (an existing region, 1..100000 MiB/s)");
	if (wl.running)
		return guest_reply("ERR a WRITELOOP runs on region %d (STOP first)", wl.id);
	if (r->bytes < PAGE * 256)
		return guest_reply("ERR id=%d is smaller than 1 MiB", id);
	wl.id = id;
	wl.mbps = mbps;
	wl.bytes = 0;
	wl.t0 = guest_now_ns();
	atomic_store(&wl.stop, false);
	if (pthread_create(&wl.thread, NULL, writeloop_main, NULL) != 0)
		return guest_reply("ERR pthread_create failed");
	wl.running = true;
	guest_reply("OK id=%d mbps=%ld", id, mbps);
}

static void cmd_stop(void)
{
	if (!wl.running)
		return guest_reply("ERR no WRITELOOP runs");
	atomic_store(&wl.stop, true);
	pthread_join(wl.thread, NULL);
	wl.running = false;
	guest_reply("OK id=%d mb=%llu ms=%llu", wl.id, (unsigned long long)(wl.bytes >> 20),
		    guest_ms_since(wl.t0));
}

/*
 * RANDOM: one word of a random page per operation, for SECONDS; WPCT% of
 * them write the region's own pattern word (so VERIFY stays right and the
 * page is dirty), the rest read one and check it. A working set larger than
 * the host's cache budget makes every operation a likely fault.
 */
static void cmd_random(char **av, int ac)
{
	struct region *r;
	uint64_t t0, end, x, ops = 0, bad = 0, now;
	size_t pages;
	long secs, wpct;
	int id;

	if (ac != 5 || !(r = region_arg(av[1], &id)) || !r->mem)
		return guest_reply("ERR usage: RANDOM ID SECONDS WPCT SEED (an existing region)");
	secs = strtol(av[2], NULL, 10);
	wpct = strtol(av[3], NULL, 10);
	x = strtoull(av[4], NULL, 10) | 1;
	if (secs <= 0 || secs > 3600 || wpct < 0 || wpct > 100)
		return guest_reply("ERR bad SECONDS (1..3600) or WPCT (0..100)");
	if (writeloop_busy(id))
		return guest_reply("ERR id=%d busy: WRITELOOP runs on it (STOP first)", id);
	pages = r->bytes / PAGE;
	t0 = now = guest_now_ns();
	end = t0 + (uint64_t)secs * 1000000000ull;
	while (now < end) {
		for (unsigned k = 0; k < 64; k++, ops++) {
			uint64_t pg, i;
			uint64_t *w;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			pg = (x >> 16) % pages;
			i = (x >> 8) & (PAGE / 8 - 1);
			w = (uint64_t *)(r->mem + pg * PAGE);
			if ((long)(x % 100) < wpct)
				w[i] = guest_pattern_word(r->seed, pg, i);
			else if (w[i] != guest_pattern_word(r->seed, pg, i))
				bad++;
		}
		now = guest_now_ns();
	}
	guest_reply("OK id=%d ops=%llu ms=%llu ops_per_s=%.0f mismatches=%llu", id,
		    (unsigned long long)ops, (unsigned long long)((now - t0) / 1000000),
		    (double)ops * 1e9 / (double)(now - t0), (unsigned long long)bad);
}

static void cmd_meminfo(void)
{
	struct block_counts c = { 0 };
	char bs[64] = "0";

	(void)guest_read_file(MEMDIR "/block_size_bytes", bs, sizeof(bs));
	(void)scan_blocks(0, &c, NULL, 0);
	guest_reply("OK memtotal_kb=%ld memfree_kb=%ld block_bytes=%llu online=%d offline=%d movable=%d",
		    meminfo_kb("MemTotal"), meminfo_kb("MemFree"), strtoull(bs, NULL, 16), c.online,
		    c.offline, c.movable);
}

static void cmd_layout(void)
{
	static char layout[65536];

	layout[0] = '\0';
	(void)scan_blocks(0, NULL, layout, sizeof(layout));
	guest_reply("OK blocks=%s", layout);
}

/* The commands of the other files (shared regions): true when one ran. */
static bool dispatch_table(char **av, int ac)
{
	static const struct guest_cmd *const tables[] = { region_cmds, rjob_cmds, litmus_cmds,
							  rbench_cmds, disk_cmds, net_cmds };

	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct guest_cmd *c = tables[t]; c->name; c++)
			if (!strcmp(av[0], c->name)) {
				c->run(av, ac);
				return true;
			}
	return false;
}

static void dispatch(char *line)
{
	char *av[8];
	int ac = 0;

	for (char *tok = strtok(line, " \t\r"); tok && ac < 8; tok = strtok(NULL, " \t\r"))
		av[ac++] = tok;
	if (ac == 0)
		return;
	if (!strcmp(av[0], "PING"))
		guest_reply("OK pong");
	else if (!strcmp(av[0], "MEMINFO"))
		cmd_meminfo();
	else if (!strcmp(av[0], "ONLINE"))
		guest_reply("OK onlined=%d", scan_blocks(1, NULL, NULL, 0));
	else if (!strcmp(av[0], "FILL"))
		cmd_fill(av, ac);
	else if (!strcmp(av[0], "REWRITE"))
		cmd_rewrite(av, ac);
	else if (!strcmp(av[0], "VERIFY"))
		cmd_verify(av, ac);
	else if (!strcmp(av[0], "FREE"))
		cmd_free(av, ac);
	else if (!strcmp(av[0], "DSAVE"))
		cmd_dsave_dload(av, ac, false);
	else if (!strcmp(av[0], "DLOAD"))
		cmd_dsave_dload(av, ac, true);
	else if (!strcmp(av[0], "LAYOUT"))
		cmd_layout();
	else if (!strcmp(av[0], "WRITELOOP"))
		cmd_writeloop(av, ac);
	else if (!strcmp(av[0], "STOP"))
		cmd_stop();
	else if (!strcmp(av[0], "RANDOM"))
		cmd_random(av, ac);
	else if (!strcmp(av[0], "HEARTBEAT") && ac == 2) {
		hb_interval_ms = strtol(av[1], NULL, 10);
		hb_next_ns = guest_now_ns();
		guest_reply("OK");
	} else if (!strcmp(av[0], "POWEROFF")) {
		guest_reply("OK");
		sync();
		reboot(RB_POWER_OFF);
	} else if (!dispatch_table(av, ac))
		guest_reply("ERR unknown command %s", av[0]);
}

/* ---- channel ----------------------------------------------------------- */

static int open_channel(void)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *de;
	struct termios t;
	int fd;

	if (d) {
		while ((de = readdir(d))) {
			char path[300], name[128];

			snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
			if (guest_read_file(path, name, sizeof(name)) == 0 && !strcmp(name, PORT_NAME)) {
				snprintf(path, sizeof(path), "/dev/%s", de->d_name);
				closedir(d);
				return open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
			}
		}
		closedir(d);
	}
	fd = open("/dev/ttyS1", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0 && tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		cfsetspeed(&t, B115200);
		tcsetattr(fd, TCSANOW, &t);
	}
	return fd;
}

int main(void)
{
	char buf[4096];
	size_t have = 0;

	for (int i = 0; i < 50 && chan < 0; i++) {
		chan = open_channel();
		if (chan < 0)
			usleep(100000);
	}
	if (chan < 0) {
		fprintf(stderr, "disagg-guest: no host channel (%s port or ttyS1)\n", PORT_NAME);
		for (;;)
			pause();
	}
	guest_set_channel(chan);
	(void)net_listener_start();   /* the forwarded ssh port answers (netcmd.h) */
	(void)scan_blocks(1, NULL, NULL, 0);
	guest_reply("READY disagg-guest 1 memtotal_kb=%ld", meminfo_kb("MemTotal"));

	for (;;) {
		struct pollfd pfd = { .fd = chan, .events = POLLIN };
		int timeout = 200;
		ssize_t n;

		if (hb_interval_ms > 0) {
			uint64_t now = guest_now_ns();

			if (now >= hb_next_ns) {
				guest_reply("HB %llu %llu", (unsigned long long)hb_seq++,
					    (unsigned long long)now);
				hb_next_ns = now + (uint64_t)hb_interval_ms * 1000000ull;
			}
			timeout = (int)((hb_next_ns - now) / 1000000);
		}
		n = poll(&pfd, 1, timeout);
		if (n == 0) {
			(void)scan_blocks(1, NULL, NULL, 0); /* online late blocks */
			continue;
		}
		if (n < 0)
			continue;
		n = read(chan, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0) {
			usleep(10000);
			continue;
		}
		have += (size_t)n;
		for (;;) {
			char *nl = memchr(buf, '\n', have);
			size_t len;

			if (!nl) {
				if (have == sizeof(buf) - 1)
					have = 0; /* over-long line: drop it */
				break;
			}
			*nl = '\0';
			len = (size_t)(nl - buf) + 1;
			dispatch(buf);
			memmove(buf, buf + len, have - len);
			have -= len;
		}
	}
}
