// SPDX-License-Identifier: MIT
/*
 * VM test: memory hotplug with a real guest under QEMU TCG (suite 'vm').
 *
 * Builds the guest image (scripts/build-guest.sh, cached), then boots it
 * twice with all RAM on tmpfs files in a temporary directory under
 * /dev/shm: once in DIMM mode and once in virtio-mem mode. Each time it
 * waits for disagg-guest's READY on the guest channel, hot-adds two 128 MiB
 * sections (MemTotal must grow by 256 MiB), fills and verifies a region
 * larger than the boot memory's free space (so it must use the new
 * memory), checks that removal fails cleanly while that memory is in use,
 * frees it, removes both sections and checks MemTotal is back. Per-section
 * latencies (request -> MemTotal changed in the guest) are printed as
 * diagnostics.
 *
 * Skips (exit 77) when qemu-system-x86_64, the guest image or disagg-guest
 * is missing. SRCDIR and BUILD_BIN come from meson as -D defines.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../unit/tap.h"
#include "guestchan.h"
#include "hotplug.h"
#include "net.h"
#include "qmp.h"

#define BASE_MB 512ull
#define MAX_MB 4096ull
#define SECTION HOTPLUG_SECTION_BYTES
#define NSECT 2
#define BOOT_TIMEOUT_MS 120000
#define CMD_TIMEOUT_MS 60000
#define ONLINE_TIMEOUT_MS 30000
#define SLACK_KB 4096 /* MemTotal accounting slack per check */

static char tmpdir[64];
static pid_t qemu_pid = -1;

static void cleanup(void)
{
	char cmd[128];

	if (qemu_pid > 0) {
		kill(qemu_pid, SIGKILL);
		waitpid(qemu_pid, NULL, 0);
		qemu_pid = -1;
	}
	if (tmpdir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			diag("could not remove %s", tmpdir);
	}
}

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path)
		return false;
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog);
		if (access(buf, X_OK) == 0)
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

static int make_file(const char *path, uint64_t bytes)
{
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0)
		return -errno;
	return 0;
}

static void show_console(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "tail -n 80 '%s/console.log' | sed 's/^/# console: /'",
		 tmpdir);
	fflush(stdout);
	if (system(cmd) != 0)
		diag("(no console log)");
}

/* Start QEMU with the mode's memory options; returns 0 and sets qemu_pid. */
static int start_qemu(const struct hotplug_config *c)
{
	char *argv[96], console[128], qmpopt[128], gch[128];
	char **hp = NULL, **gc = NULL;
	char logpath[128];
	int n = 0, r;

	snprintf(console, sizeof(console), "file:%s/console.log", tmpdir);
	snprintf(qmpopt, sizeof(qmpopt), "unix:%s/qmp.sock,server=on,wait=off", tmpdir);
	snprintf(gch, sizeof(gch), "%s/guest.sock", tmpdir);
	snprintf(logpath, sizeof(logpath), "%s/qemu.log", tmpdir);
	if (hotplug_qemu_args(c, &hp) < 0 || guestchan_qemu_args("gch", gch, &gc) < 0)
		return -EINVAL;
	const char *fixed[] = {
		"qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-smp", "1",
		"-nographic", "-no-reboot", "-monitor", "none", "-serial", console,
		"-qmp", qmpopt,
		"-kernel", SRCDIR "/build/guest/vmlinuz",
		"-initrd", SRCDIR "/build/guest/initrd.img",
		"-append", "console=ttyS0 memhp_default_state=online_movable",
	};
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		argv[n++] = (char *)fixed[i];
	for (char **p = hp; *p && n < 80; p++)
		argv[n++] = *p;
	for (char **p = gc; *p && n < 94; p++)
		argv[n++] = *p;
	argv[n] = NULL;

	/* fork+exec rather than posix_spawn: QEMU must die with the test. */
	qemu_pid = fork();
	if (qemu_pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	r = qemu_pid < 0 ? -errno : 0;
	hotplug_strv_free(hp);
	guestchan_strv_free(gc);
	if (r < 0) {
		qemu_pid = -1;
		return r;
	}
	return 0;
}

static int stop_qemu(struct qmp *q)
{
	int status = 0;

	if (q)
		(void)qmp_execute(q, "quit", NULL, 5000, NULL);
	for (int i = 0; i < 500; i++) {
		if (waitpid(qemu_pid, &status, WNOHANG) == qemu_pid) {
			qemu_pid = -1;
			return 0;
		}
		usleep(10000);
	}
	kill(qemu_pid, SIGKILL);
	waitpid(qemu_pid, &status, 0);
	qemu_pid = -1;
	return -ETIMEDOUT;
}

static int meminfo(struct guestchan *g, uint64_t *total_kb, uint64_t *free_kb)
{
	char line[512];
	int r = guestchan_cmd(g, CMD_TIMEOUT_MS, line, sizeof(line), "MEMINFO");

	if (r < 0)
		return r;
	if (guestchan_field_u64(line, "memtotal_kb", total_kb) < 0 ||
	    (free_kb && guestchan_field_u64(line, "memfree_kb", free_kb) < 0))
		return -EBADMSG;
	return 0;
}

/* Poll the guest until MemTotal is within SLACK_KB of want_kb; time in µs. */
static int wait_memtotal(struct guestchan *g, uint64_t want_kb, uint64_t t0_us,
			 uint64_t *ret_us, uint64_t *ret_total)
{
	uint64_t deadline = now_us() + ONLINE_TIMEOUT_MS * 1000ull, total = 0;

	for (;;) {
		int r = meminfo(g, &total, NULL);

		if (r < 0)
			return r;
		if (total + SLACK_KB >= want_kb && total <= want_kb + SLACK_KB) {
			*ret_us = now_us() - t0_us;
			*ret_total = total;
			return 0;
		}
		if (now_us() > deadline) {
			*ret_total = total;
			return -ETIMEDOUT;
		}
		usleep(1000);
	}
}

/* Add section i (DIMM: a new DIMM; virtio-mem: grow to i + 1 sections). */
static int add_section(struct hotplug *h, const struct hotplug_config *c, int i)
{
	char id[32], path[128];
	int r;

	if (c->mode == HOTPLUG_VIRTIO_MEM)
		return hotplug_vmem_resize(h, (uint64_t)(i + 1) * SECTION, CMD_TIMEOUT_MS);
	snprintf(id, sizeof(id), "dimm%d", i);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, id);
	r = make_file(path, SECTION);
	if (r < 0)
		return r;
	return hotplug_dimm_add(h, id, path, SECTION, CMD_TIMEOUT_MS);
}

static int remove_section(struct hotplug *h, const struct hotplug_config *c, int i,
			  int timeout_ms)
{
	char id[32], path[128];
	int r;

	if (c->mode == HOTPLUG_VIRTIO_MEM)
		return hotplug_vmem_resize(h, (uint64_t)i * SECTION, timeout_ms);
	snprintf(id, sizeof(id), "dimm%d", i);
	r = hotplug_dimm_remove(h, id, timeout_ms);
	if (r >= 0) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, id);
		unlink(path);
	}
	return r;
}

static void run_mode(enum hotplug_mode mode)
{
	const char *name = mode == HOTPLUG_DIMM ? "pc-dimm" : "virtio-mem";
	char base_path[128], vmem_path[128], sock[128], line[512];
	struct hotplug_config c = {
		.mode = mode,
		.base_bytes = BASE_MB << 20,
		.max_bytes = MAX_MB << 20,
		.slots = 8,
		.base_path = base_path,
		.vmem_path = vmem_path,
	};
	_cleanup_(qmp_closep) struct qmp *q = NULL;
	_cleanup_(guestchan_closep) struct guestchan *g = NULL;
	_cleanup_(hotplug_freep) struct hotplug *h = NULL;
	uint64_t base_kb = 0, base_free = 0, total = 0, us = 0, t0, fill_mb, free_kb = 0;
	bool all = true;
	int r;

	diag("---- %s ----", name);
	if (mode == HOTPLUG_VIRTIO_MEM)
		c.max_bytes = (BASE_MB << 20) + NSECT * 2 * SECTION;
	snprintf(base_path, sizeof(base_path), "%s/ram0", tmpdir);
	snprintf(vmem_path, sizeof(vmem_path), "%s/vmem0", tmpdir);
	make_file(base_path, c.base_bytes);
	if (mode == HOTPLUG_VIRTIO_MEM)
		make_file(vmem_path, c.max_bytes - c.base_bytes);

	t0 = now_us();
	r = start_qemu(&c);
	if (!ok(r == 0, "%s: QEMU started", name))
		return;
	snprintf(sock, sizeof(sock), "%s/qmp.sock", tmpdir);
	r = qmp_connect(sock, 30000, &q);
	if (!ok(r == 0, "%s: QMP connected (%d)", name, r))
		goto out;
	snprintf(sock, sizeof(sock), "%s/guest.sock", tmpdir);
	r = guestchan_connect(sock, 30000, &g);
	if (r == 0)
		r = guestchan_wait_ready(g, BOOT_TIMEOUT_MS, &base_kb);
	if (!ok(r == 0 && base_kb > 0, "%s: guest READY, MemTotal %" PRIu64 " kB after %" PRIu64
		" ms", name, base_kb, (now_us() - t0) / 1000)) {
		show_console();
		goto out;
	}
	r = meminfo(g, &base_kb, &base_free);
	ok(r == 0, "%s: MEMINFO", name);
	r = hotplug_new(q, &c, &h);
	if (!ok(r == 0, "%s: hotplug object", name))
		goto out;

	/* Grow by NSECT sections, one at a time. */
	for (int i = 0; i < NSECT; i++) {
		t0 = now_us();
		r = add_section(h, &c, i);
		if (r < 0) {
			diag("add section %d: %s (%s)", i, strerror(-r), hotplug_last_error(h));
			all = false;
			break;
		}
		r = wait_memtotal(g, base_kb + (uint64_t)(i + 1) * (SECTION >> 10), t0, &us, &total);
		if (r < 0) {
			diag("section %d: MemTotal %" PRIu64 " kB: %s", i, total, strerror(-r));
			all = false;
			break;
		}
		diag("%s: add section %d: online in the guest after %.1f ms", name, i, us / 1000.0);
	}
	if (!ok(all, "%s: MemTotal grew by %d x 128 MiB", name, NSECT)) {
		show_console();
		goto out;
	}

	/* Use more than the boot memory could hold. */
	fill_mb = base_free / 1024 + 96;
	r = guestchan_cmd(g, CMD_TIMEOUT_MS, line, sizeof(line), "FILL 1 42 %" PRIu64, fill_mb);
	ok(r == 0, "%s: FILL %" PRIu64 " MiB (> %" PRIu64 " MiB free at boot)%s%s", name, fill_mb,
	   base_free / 1024, r ? ": " : "", r ? guestchan_last_error(g) : "");
	r = guestchan_cmd(g, CMD_TIMEOUT_MS, line, sizeof(line), "VERIFY 1");
	ok(r == 0, "%s: VERIFY%s%s", name, r ? ": " : "", r ? guestchan_last_error(g) : "");

	/* Removal while the memory is full must fail cleanly, not lose data. */
	r = meminfo(g, &total, &free_kb);
	diag("%s: before removal: MemTotal %" PRIu64 " kB, MemFree %" PRIu64 " kB", name, total,
	     free_kb);
	if (free_kb > 64 * 1024) { /* top up so that a section cannot be migrated away */
		uint64_t extra = free_kb / 1024 - 48;

		r = guestchan_cmd(g, CMD_TIMEOUT_MS, line, sizeof(line), "FILL 2 43 %" PRIu64, extra);
		if (r < 0)
			diag("FILL 2: %s", guestchan_last_error(g));
	}
	t0 = now_us();
	r = remove_section(h, &c, NSECT - 1, 4000);
	diag("%s: removal while in use: %s after %" PRIu64 " ms: %s", name, strerror(-r),
	     (now_us() - t0) / 1000, hotplug_last_error(h));
	ok(r == -EBUSY || r == -ETIMEDOUT, "%s: removal of memory in use fails (%d)", name, r);
	r = guestchan_cmd(g, CMD_TIMEOUT_MS, line, sizeof(line), "VERIFY 1");
	ok(r == 0, "%s: data intact after the refused removal%s%s", name, r ? ": " : "",
	   r ? guestchan_last_error(g) : "");
	(void)guestchan_cmd(g, CMD_TIMEOUT_MS, NULL, 0, "FREE 2");
	r = guestchan_cmd(g, CMD_TIMEOUT_MS, NULL, 0, "FREE 1");
	ok(r == 0, "%s: FREE", name);

	/* Shrink back, one section at a time. */
	all = true;
	for (int i = NSECT - 1; i >= 0; i--) {
		t0 = now_us();
		r = remove_section(h, &c, i, CMD_TIMEOUT_MS);
		if (r < 0) {
			diag("remove section %d: %s (%s)", i, strerror(-r), hotplug_last_error(h));
			all = false;
			break;
		}
		r = wait_memtotal(g, base_kb + (uint64_t)i * (SECTION >> 10), t0, &us, &total);
		if (r < 0) {
			diag("section %d: MemTotal %" PRIu64 " kB: %s", i, total, strerror(-r));
			all = false;
			break;
		}
		diag("%s: remove section %d: gone from the guest after %.1f ms", name, i,
		     us / 1000.0);
	}
	ok(all, "%s: MemTotal back to %" PRIu64 " kB", name, base_kb);
	if (mode == HOTPLUG_VIRTIO_MEM) {
		struct stat st = { 0 };
		int sr = stat(vmem_path, &st);

		ok(sr == 0 && st.st_blocks == 0,
		   "virtio-mem: QEMU punched the unplugged blocks out of the file (%lld kB left)",
		   (long long)st.st_blocks / 2);
	} else {
		char p[128];

		snprintf(p, sizeof(p), "%s/dimm0", tmpdir);
		ok(access(p, F_OK) != 0, "pc-dimm: DIMM files released");
	}
out:
	ok(stop_qemu(q) == 0, "%s: QEMU stopped", name);
}

int main(void)
{
	char cmd[512];
	struct stat st;

	if (!in_path("qemu-system-x86_64")) {
		plan_skip_all("qemu-system-x86_64 is not installed");
		return 77;
	}
	if (access(BUILD_BIN "/disagg-guest", X_OK) != 0) {
		plan_skip_all("no disagg-guest in " BUILD_BIN " (build the release tree: make)");
		return 77;
	}
	snprintf(cmd, sizeof(cmd), "'%s/scripts/build-guest.sh' >&2", SRCDIR);
	if (system(cmd) != 0 || stat(SRCDIR "/build/guest/initrd.img", &st) < 0) {
		plan_skip_all("cannot build the guest image (scripts/build-guest.sh failed)");
		return 77;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/dev/shm/disagg-vmtest.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		plan_skip_all("cannot create a directory under /dev/shm");
		return 77;
	}
	atexit(cleanup);
	signal(SIGPIPE, SIG_IGN);

	run_mode(HOTPLUG_DIMM);
	run_mode(HOTPLUG_VIRTIO_MEM);
	done_testing();
	return tap_exit();
}
