// SPDX-License-Identifier: MIT
/*
 * QMP client. See qmp.h.
 *
 * QEMU writes one JSON object per line ("\r\n"-terminated). We read into a
 * line buffer, parse each complete line with jansson, and sort it into
 * either the answer we wait for (matching "id"), or the event queue.
 */
#include "qmp.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"

#define QMP_MAX_LINE   (1u << 20)
#define QMP_MAX_EVENTS 256

struct qmp {
	int fd;
	pthread_mutex_t lock;
	uint64_t next_id;
	char *buf;
	size_t len, cap;
	json_t *events[QMP_MAX_EVENTS];   /* FIFO ring of queued events */
	unsigned ev_head, ev_count;
	char error[512];
};


static void queue_event(struct qmp *q, json_t *ev)
{
	if (q->ev_count == QMP_MAX_EVENTS) { /* full: drop the oldest */
		json_decref(q->events[q->ev_head]);
		q->ev_head = (q->ev_head + 1) % QMP_MAX_EVENTS;
		q->ev_count--;
	}
	q->events[(q->ev_head + q->ev_count) % QMP_MAX_EVENTS] = ev;
	q->ev_count++;
}

/*
 * Read one JSON object (a line) with a deadline. Returns a new reference
 * in *ret, or -ETIMEDOUT/-EPIPE/-EBADMSG/-E2BIG.
 */
static int read_message(struct qmp *q, uint64_t deadline_ns, json_t **ret)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;

		if (nl) {
			size_t linelen = (size_t)(nl - q->buf) + 1;
			json_error_t jerr;
			json_t *j = json_loadb(q->buf, linelen, 0, &jerr);

			memmove(q->buf, q->buf + linelen, q->len - linelen);
			q->len -= linelen;
			if (!j || !json_is_object(j)) {
				json_decref(j);
				return -EBADMSG;
			}
			*ret = j;
			return 0;
		}
		if (q->len == q->cap) {
			size_t ncap = q->cap ? q->cap * 2 : 8192;
			char *nb;

			if (ncap > QMP_MAX_LINE)
				return -E2BIG;
			nb = realloc(q->buf, ncap);
			if (!nb)
				return -ENOMEM;
			q->buf = nb;
			q->cap = ncap;
		}

		int r = net_wait_fd(q->fd, POLLIN, deadline_ns);
		ssize_t n;

		if (r < 0)
			return r;
		n = read(q->fd, q->buf + q->len, q->cap - q->len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		q->len += (size_t)n;
	}
}

static void set_error(struct qmp *q, json_t *err)
{
	const char *cls = json_string_value(json_object_get(err, "class"));
	const char *desc = json_string_value(json_object_get(err, "desc"));

	snprintf(q->error, sizeof(q->error), "%s: %s", cls ? cls : "Error",
		 desc ? desc : "(no description)");
}

/* Called with the lock held. */
static int execute_locked(struct qmp *q, const char *cmd, json_t *args, int timeout_ms,
			  json_t **ret)
{
	uint64_t deadline = now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000) * 1000000ull;
	uint64_t id = q->next_id++;
	json_t *req;
	char *text;
	int r;

	q->error[0] = '\0';
	req = json_pack("{s:s, s:I}", "execute", cmd, "id", (json_int_t)id);
	if (!req) {
		json_decref(args);
		return -ENOMEM;
	}
	if (args && json_object_set_new(req, "arguments", args) < 0) {
		json_decref(req);
		return -ENOMEM;
	}
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return -ENOMEM;
	r = net_write_full(q->fd, text, strlen(text));
	if (r >= 0)
		r = net_write_full(q->fd, "\n", 1);
	free(text);
	if (r < 0)
		return r == -ECONNRESET ? -EPIPE : r;

	for (;;) {
		json_t *msg = NULL, *jid, *val;

		r = read_message(q, deadline, &msg);
		if (r < 0)
			return r;
		if (json_object_get(msg, "event")) {
			queue_event(q, msg);
			continue;
		}
		jid = json_object_get(msg, "id");
		if (!json_is_integer(jid) || (uint64_t)json_integer_value(jid) != id) {
			json_decref(msg); /* an answer to a command that timed out earlier */
			continue;
		}
		if ((val = json_object_get(msg, "error"))) {
			set_error(q, val);
			json_decref(msg);
			return -EIO;
		}
		val = json_object_get(msg, "return");
		if (ret)
			*ret = json_incref(val ? val : json_null());
		json_decref(msg);
		return 0;
	}
}

int qmp_execute(struct qmp *q, const char *cmd, json_t *args, int timeout_ms, json_t **ret)
{
	int r;

	pthread_mutex_lock(&q->lock);
	r = execute_locked(q, cmd, args, timeout_ms, ret);
	pthread_mutex_unlock(&q->lock);
	return r;
}

int qmp_executef(struct qmp *q, int timeout_ms, json_t **ret, const char *cmd,
		 const char *fmt, ...)
{
	json_error_t jerr;
	json_t *args;
	va_list ap;

	va_start(ap, fmt);
	args = json_vpack_ex(&jerr, 0, fmt, ap);
	va_end(ap);
	if (!args)
		return -EINVAL;
	return qmp_execute(q, cmd, args, timeout_ms, ret);
}

static bool event_matches(json_t *ev, const char *name, const char *key, const char *value)
{
	const char *evname = json_string_value(json_object_get(ev, "event"));
	const char *v;

	if (!evname || strcmp(evname, name) != 0)
		return false;
	if (!key)
		return true;
	v = json_string_value(json_object_get(json_object_get(ev, "data"), key));
	return v && value && strcmp(v, value) == 0;
}

/* Take the first queued event that matches (lock held). */
static json_t *take_event(struct qmp *q, const char *name, const char *key, const char *value)
{
	for (unsigned i = 0; i < q->ev_count; i++) {
		unsigned idx = (q->ev_head + i) % QMP_MAX_EVENTS;
		json_t *ev = q->events[idx];

		if (!event_matches(ev, name, key, value))
			continue;
		/* Close the gap, keeping order. */
		for (unsigned j = i; j + 1 < q->ev_count; j++)
			q->events[(q->ev_head + j) % QMP_MAX_EVENTS] =
				q->events[(q->ev_head + j + 1) % QMP_MAX_EVENTS];
		q->ev_count--;
		return ev;
	}
	return NULL;
}

int qmp_wait_event(struct qmp *q, const char *name, const char *key, const char *value,
		   int timeout_ms, json_t **ret_data)
{
	uint64_t deadline = now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
	json_t *ev;
	int r = 0;

	pthread_mutex_lock(&q->lock);
	while (!(ev = take_event(q, name, key, value))) {
		json_t *msg = NULL;

		r = read_message(q, deadline, &msg);
		if (r < 0)
			break;
		if (json_object_get(msg, "event"))
			queue_event(q, msg);
		else
			json_decref(msg);
	}
	pthread_mutex_unlock(&q->lock);
	if (!ev)
		return r;
	if (ret_data) {
		json_t *d = json_object_get(ev, "data");

		*ret_data = json_incref(d ? d : json_null());
	}
	json_decref(ev);
	return 0;
}

void qmp_clear_events(struct qmp *q)
{
	pthread_mutex_lock(&q->lock);
	while (q->ev_count) {
		json_decref(q->events[q->ev_head]);
		q->ev_head = (q->ev_head + 1) % QMP_MAX_EVENTS;
		q->ev_count--;
	}
	pthread_mutex_unlock(&q->lock);
}

const char *qmp_last_error(struct qmp *q)
{
	return q->error;
}

int qmp_connect(const char *path, int timeout_ms, struct qmp **ret)
{
	int fd = net_connect_unix(path, timeout_ms, false);

	return fd < 0 ? fd : qmp_connect_fd(fd, timeout_ms, ret);
}

int qmp_connect_fd(int fd, int timeout_ms, struct qmp **ret)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct qmp *q;
	json_t *greeting = NULL;
	int r;

	q = calloc(1, sizeof(*q));
	if (!q) {
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_init(&q->lock, NULL);
	q->next_id = 1;
	q->fd = fd;
	r = read_message(q, deadline, &greeting);
	if (r < 0)
		goto fail;
	if (!json_object_get(greeting, "QMP")) {
		json_decref(greeting);
		r = -EPROTO;
		goto fail;
	}
	json_decref(greeting);
	r = qmp_execute(q, "qmp_capabilities", NULL, net_ms_left(deadline) + 1, NULL);
	if (r < 0)
		goto fail;
	*ret = q;
	return 0;
fail:
	qmp_close(q);
	return r;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	while (q->ev_count) {
		json_decref(q->events[q->ev_head]);
		q->ev_head = (q->ev_head + 1) % QMP_MAX_EVENTS;
		q->ev_count--;
	}
	free(q->buf);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
