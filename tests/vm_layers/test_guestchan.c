// SPDX-License-Identifier: MIT
/*
 * Unit test of the guest channel client (src/compute/qemu/guestchan.c)
 * against a fake guest on a real Unix socket: a command gets its answer
 * while heartbeats are dispatched around it; a command whose answer never
 * comes times out; and while such a command waits, guestchan_poll(g, 0)
 * returns at once instead of waiting behind it (a compute migration's
 * hand-over polls the source's channel while a guest command that the
 * guest will answer on the destination is still waiting), and the
 * heartbeats keep coming through the waiting command.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "guestchan.h"
#include "tap.h"

static char dir[] = "/tmp/guestchan-XXXXXX";
static char path[sizeof(dir) + 16];
static int lfd = -1, gfd = -1;          /* the fake guest's listener and connection */
static _Atomic unsigned hbs;

static int finish(void)
{
	done_testing();
	return tap_exit();
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_line(const char *line, void *userdata)
{
	(void)userdata;
	if (!strncmp(line, "HB ", 3))
		atomic_fetch_add(&hbs, 1);
}

static void guest_send(const char *s)
{
	if (write(gfd, s, strlen(s)) != (ssize_t)strlen(s))
		diag("fake guest: write: %s", strerror(errno));
}

/* Read one command line from the client (the fake guest's side). */
static void guest_read_cmd(char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len && read(gfd, buf + n, 1) == 1 && buf[n] != '\n')
		n++;
	buf[n] = 0;
}

struct waiter {
	struct guestchan *g;
	int r;
	uint64_t ms;
};

static void *cmd_main(void *arg)
{
	struct waiter *w = arg;
	char line[256];
	uint64_t t0 = ms_now();

	w->r = guestchan_cmd(w->g, 1500, line, sizeof(line), "REWRITE 2 7");
	w->ms = ms_now() - t0;
	return NULL;
}

static void *hb_main(void *arg)
{
	(void)arg;
	for (int i = 0; i < 20; i++) {
		char hb[64];

		snprintf(hb, sizeof(hb), "HB %d %d\n", i + 100, i);
		guest_send(hb);
		usleep(20 * 1000);
	}
	return NULL;
}

int main(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct guestchan *g = NULL;
	struct waiter w = { 0 };
	pthread_t t, h;
	char line[256], cmd[256];
	uint64_t t0, took;
	int r;

	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/guest.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!ok(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		listen(lfd, 1) == 0, "fake guest listens on %s", path))
		return finish();
	r = guestchan_connect(path, 2000, &g);
	gfd = accept(lfd, NULL, NULL);
	if (!ok(r == 0 && g && gfd >= 0, "connected: %s", strerror(-r)))
		return finish();
	guestchan_set_callback(g, on_line, NULL);

	/* A command answered, heartbeats before its answer dispatched. */
	guest_send("HB 1 10\n");
	w.g = g;
	pthread_create(&t, NULL, cmd_main, &w);
	guest_read_cmd(cmd, sizeof(cmd));
	guest_send("HB 2 20\nOK id=2\n");
	pthread_join(t, NULL);
	ok(w.r >= 0 && !strcmp(cmd, "REWRITE 2 7"), "answered: %d (%s)", w.r, cmd);
	ok(atomic_load(&hbs) == 2, "heartbeats around it dispatched (%u)", atomic_load(&hbs));

	/* A command never answered; poll(0) does not wait behind it. */
	atomic_store(&hbs, 0);
	pthread_create(&t, NULL, cmd_main, &w);
	guest_read_cmd(cmd, sizeof(cmd));
	pthread_create(&h, NULL, hb_main, NULL);
	usleep(100 * 1000);
	t0 = ms_now();
	r = guestchan_poll(g, 0);
	took = ms_now() - t0;
	ok(r == 0 && took < 100, "poll(0) during a waiting command: %d after %llu ms", r,
	   (unsigned long long)took);
	pthread_join(h, NULL);
	pthread_join(t, NULL);
	ok(w.r == -ETIMEDOUT && w.ms >= 1400, "the command times out: %s after %llu ms",
	   strerror(-w.r), (unsigned long long)w.ms);
	ok(atomic_load(&hbs) == 20, "heartbeats went on through the waiting command (%u)",
	   atomic_load(&hbs));

	/* Idle: poll(0) reads what is there. */
	atomic_store(&hbs, 0);
	guest_send("HB 300 1\n");
	usleep(50 * 1000);
	ok(guestchan_poll(g, 0) == 0 && atomic_load(&hbs) == 1, "poll(0) when idle dispatches");
	(void)line;

	guestchan_close(g);
	close(gfd);
	close(lfd);
	unlink(path);
	rmdir(dir);
	return finish();
}
