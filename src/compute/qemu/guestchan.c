// SPDX-License-Identifier: MIT
/*
 * Guest channel client. See guestchan.h and docs/guest.md.
 *
 * The socket is non-blocking; every read and write waits in poll() against
 * a deadline, so a guest that stops answering gives -ETIMEDOUT and a QEMU
 * that exits gives -EPIPE, never a hang. Lines are collected in a buffer;
 * each complete line is either the answer we wait for ("OK"/"ERR"), a
 * stale answer to a command that timed out earlier (dropped), or an
 * unsolicited line (READY is remembered; all go to the callback).
 */
#include "guestchan.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"

#define GC_MAX_LINE 16384

struct guestchan {
	int fd;
	pthread_mutex_t lock;
	char buf[GC_MAX_LINE];
	size_t len;
	bool discarding;           /* inside an over-long line: drop to its end */
	unsigned stale;            /* answers still owed to timed-out commands */
	bool ready;                /* a READY line arrived, not yet consumed */
	uint64_t ready_memtotal_kb;
	guestchan_line_fn fn;
	void *userdata;
	char error[512];
	bool resync;               /* answers from another connection may come first */
	unsigned sync_seq;
};

static uint64_t deadline_after(int timeout_ms)
{
	return now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
}


static int write_all(struct guestchan *g, const char *p, size_t n, uint64_t deadline_ns)
{
	while (n > 0) {
		ssize_t w = send(g->fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				int r = net_wait_fd(g->fd, POLLOUT, deadline_ns);

				if (r < 0)
					return r;
				continue;
			}
			return errno == ECONNRESET ? -EPIPE : -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Read the next complete line (NUL-terminated, without "\r\n") into out.
 * Lines longer than GC_MAX_LINE - 1 are dropped whole.
 */
static int read_line(struct guestchan *g, uint64_t deadline_ns, char *out, size_t outlen)
{
	for (;;) {
		char *nl = g->len ? memchr(g->buf, '\n', g->len) : NULL;

		if (nl) {
			size_t linelen = (size_t)(nl - g->buf), take = linelen + 1;
			bool drop = g->discarding;

			g->discarding = false;
			while (linelen > 0 && g->buf[linelen - 1] == '\r')
				linelen--;
			if (!drop) {
				size_t c = MIN(linelen, outlen - 1);

				memcpy(out, g->buf, c);
				out[c] = '\0';
			}
			memmove(g->buf, g->buf + take, g->len - take);
			g->len -= take;
			if (drop)
				continue;
			return 0;
		}
		if (g->len == sizeof(g->buf)) { /* over-long line: forget it */
			g->len = 0;
			g->discarding = true;
		}

		ssize_t n = recv(g->fd, g->buf + g->len, sizeof(g->buf) - g->len, 0);

		if (n > 0) {
			g->len += (size_t)n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return errno == ECONNRESET ? -EPIPE : -errno;
		int r = net_wait_fd(g->fd, POLLIN, deadline_ns);

		if (r < 0)
			return r;
	}
}

/* Copy src into dst (len > 0), truncating. */
static void copy_str(char *dst, size_t len, const char *src)
{
	size_t n = MIN(strlen(src), len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static bool is_answer(const char *line)
{
	return (strncmp(line, "OK", 2) == 0 && (line[2] == '\0' || line[2] == ' ')) ||
	       (strncmp(line, "ERR", 3) == 0 && (line[3] == '\0' || line[3] == ' '));
}

/* An unsolicited line: remember READY, pass everything to the callback. */
static void unsolicited(struct guestchan *g, const char *line)
{
	if (strncmp(line, "READY", 5) == 0 && (line[5] == '\0' || line[5] == ' ')) {
		uint64_t kb = 0;

		(void)guestchan_field_u64(line, "memtotal_kb", &kb);
		g->ready = true;
		g->ready_memtotal_kb = kb;
		g->stale = 0; /* a (re)booted guest owes us nothing */
	}
	if (g->fn)
		g->fn(line, g->userdata);
}

int guestchan_connect(const char *path, int timeout_ms, struct guestchan **ret)
{
	int fd;

	if (!path || !ret)
		return -EINVAL;
	/* QEMU creates the socket a moment after it starts: retry until then. */
	fd = net_connect_unix(path, timeout_ms, true);
	if (fd < 0)
		return fd;
	return guestchan_open_fd(fd, ret);
}

int guestchan_open_fd(int fd, struct guestchan **ret)
{
	struct guestchan *g = calloc(1, sizeof(*g));

	if (!g) {
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_init(&g->lock, NULL);
	g->fd = fd;
	*ret = g;
	return 0;
}

void guestchan_close(struct guestchan *g)
{
	if (!g)
		return;
	if (g->fd >= 0)
		close(g->fd);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

void guestchan_set_callback(struct guestchan *g, guestchan_line_fn fn, void *userdata)
{
	pthread_mutex_lock(&g->lock);
	g->fn = fn;
	g->userdata = userdata;
	pthread_mutex_unlock(&g->lock);
}

int guestchan_wait_ready(struct guestchan *g, int timeout_ms, uint64_t *ret_memtotal_kb)
{
	uint64_t deadline = deadline_after(timeout_ms);
	char line[GC_MAX_LINE];
	int r = 0;

	pthread_mutex_lock(&g->lock);
	while (!g->ready) {
		r = read_line(g, deadline, line, sizeof(line));
		if (r < 0)
			break;
		if (is_answer(line)) {
			if (g->stale)
				g->stale--;
			continue; /* nobody asked: drop */
		}
		unsolicited(g, line);
	}
	if (g->ready) {
		g->ready = false;
		if (ret_memtotal_kb)
			*ret_memtotal_kb = g->ready_memtotal_kb;
		r = 0;
	}
	pthread_mutex_unlock(&g->lock);
	return r;
}

void guestchan_resync(struct guestchan *g)
{
	pthread_mutex_lock(&g->lock);
	g->resync = true;
	pthread_mutex_unlock(&g->lock);
}

/* Send a unique marker and drop every answer before its own (lock held). */
static int resync_locked(struct guestchan *g, uint64_t deadline_ns)
{
	char marker[64], want[128], line[GC_MAX_LINE];
	int n, r;

	n = snprintf(marker, sizeof(marker), "SYNC-%llx-%u\n", (unsigned long long)now_ns(),
		     ++g->sync_seq);
	r = write_all(g, marker, (size_t)n, deadline_ns);
	if (r < 0)
		return r;
	snprintf(want, sizeof(want), "ERR unknown command %.*s", n - 1, marker);
	for (;;) {
		r = read_line(g, deadline_ns, line, sizeof(line));
		if (r < 0)
			return r; /* resync stays set: the next command sends a new marker */
		if (!is_answer(line))
			unsolicited(g, line);
		else if (strcmp(line, want) == 0)
			break;
	}
	g->resync = false;
	g->stale = 0;
	return 0;
}

int guestchan_cmd(struct guestchan *g, int timeout_ms, char *ret_line, size_t len,
		  const char *fmt, ...)
{
	uint64_t deadline = deadline_after(timeout_ms);
	char cmd[1024], line[GC_MAX_LINE];
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd) - 1)
		return -EINVAL;
	if (memchr(cmd, '\n', (size_t)n) || n == 0)
		return -EINVAL;
	cmd[n++] = '\n';

	pthread_mutex_lock(&g->lock);
	g->error[0] = '\0';
	if (g->resync) {
		r = resync_locked(g, deadline);
		if (r < 0)
			goto out;
	}
	r = write_all(g, cmd, (size_t)n, deadline);
	if (r < 0) {
		if (r == -ETIMEDOUT) /* maybe partly written: its answer may come */
			g->stale++;
		goto out;
	}
	for (;;) {
		r = read_line(g, deadline, line, sizeof(line));
		if (r < 0) {
			if (r == -ETIMEDOUT)
				g->stale++;
			goto out;
		}
		if (!is_answer(line)) {
			unsolicited(g, line);
			continue;
		}
		if (g->stale) {
			g->stale--;
			continue;
		}
		break;
	}
	if (line[0] == 'E') {
		copy_str(g->error, sizeof(g->error), line);
		r = -EIO;
		goto out;
	}
	if (ret_line && len > 0)
		copy_str(ret_line, len, line);
	r = 0;
out:
	pthread_mutex_unlock(&g->lock);
	return r;
}

int guestchan_poll(struct guestchan *g, int timeout_ms)
{
	uint64_t deadline = deadline_after(timeout_ms);
	char line[GC_MAX_LINE];
	int r;

	if (timeout_ms > 0)
		pthread_mutex_lock(&g->lock);
	else if (pthread_mutex_trylock(&g->lock) != 0)
		/*
		 * A command is waiting for its answer, reading the channel and
		 * dispatching every other line meanwhile: nothing to do, and no
		 * wait for it (its answer may never come: a guest that migrated
		 * away answers on the destination).
		 */
		return 0;
	for (;;) {
		r = read_line(g, deadline, line, sizeof(line));
		if (r < 0)
			break;
		if (is_answer(line)) {
			if (g->stale)
				g->stale--;
			continue;
		}
		unsolicited(g, line);
	}
	pthread_mutex_unlock(&g->lock);
	return r == -ETIMEDOUT ? 0 : r;
}

const char *guestchan_last_error(struct guestchan *g)
{
	return g->error;
}

/* Find "key=" at the start of a space-separated field; returns the value. */
static const char *find_field(const char *line, const char *key, size_t *ret_len)
{
	size_t kl = strlen(key);
	const char *p = line;

	if (kl == 0)
		return NULL;
	while ((p = strstr(p, key))) {
		if ((p == line || p[-1] == ' ') && p[kl] == '=') {
			const char *v = p + kl + 1;

			*ret_len = strcspn(v, " \t\r\n");
			return v;
		}
		p += kl;
	}
	return NULL;
}

int guestchan_field_u64(const char *line, const char *key, uint64_t *ret)
{
	char tmp[32], *end;
	const char *v;
	size_t vl;
	unsigned long long x;

	if (!line || !key || !ret)
		return -EINVAL;
	v = find_field(line, key, &vl);
	if (!v)
		return -ENOENT;
	if (vl == 0 || vl >= sizeof(tmp) || v[0] == '-' || v[0] == '+')
		return -EINVAL;
	memcpy(tmp, v, vl);
	tmp[vl] = '\0';
	errno = 0;
	x = strtoull(tmp, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = x;
	return 0;
}

int guestchan_field_str(const char *line, const char *key, char *ret, size_t len)
{
	const char *v;
	size_t vl;

	if (!line || !key || !ret || len == 0)
		return -EINVAL;
	v = find_field(line, key, &vl);
	if (!v)
		return -ENOENT;
	if (vl >= len)
		return -ENOBUFS;
	memcpy(ret, v, vl);
	ret[vl] = '\0';
	return 0;
}

void guestchan_strv_free(char **strv)
{
	if (!strv)
		return;
	for (char **p = strv; *p; p++)
		free(*p);
	free(strv);
}

int guestchan_qemu_args(const char *id, const char *path, char ***ret_argv)
{
	char **v;
	int n = 0;

	if (!id || !path || !ret_argv || strchr(id, ',') || strchr(path, ','))
		return -EINVAL;
	v = calloc(7, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (!(v[n++] = strdup("-chardev")) ||
	    asprintf(&v[n++], "socket,id=%s,path=%s,server=on,wait=off", id, path) < 0 ||
	    !(v[n++] = strdup("-device")) || !(v[n++] = strdup("virtio-serial-pci")) ||
	    !(v[n++] = strdup("-device")) ||
	    asprintf(&v[n++], "virtserialport,chardev=%s,name=" GUESTCHAN_PORT_NAME, id) < 0) {
		v[n - 1] = NULL; /* asprintf leaves it undefined on failure */
		guestchan_strv_free(v);
		return -ENOMEM;
	}
	*ret_argv = v;
	return 0;
}
