// SPDX-License-Identifier: MIT
/*
 * A VM's serial console over the API (vm_console.h). QEMU writes the
 * guest's serial port to console.log (the chardev's log file) and takes
 * input on con.sock, a socket chardev that serves one client at a time.
 *
 * Output is read from the log file by offset, so any number of readers
 * follow it without disturbing the guest. Input connects to con.sock,
 * writes, shuts its sending side down and waits until QEMU closes the
 * connection: QEMU reads the bytes, then the end of the stream, before it
 * lets go, so nothing typed is lost to the hang-up (a close of our end
 * could make QEMU drop bytes it had not read yet). Whatever the guest
 * writes meanwhile also comes to this connection: it is read and dropped
 * (the log file has it).
 */
#include "vm_console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hex.h"
#include "jsonhttp.h"
#include "macro.h"
#include "net.h"
#include "state.h"
#include "vm_internal.h"

#define OUTPUT_MAX     65536   /* bytes in one output answer */
#define INPUT_MAX      4096    /* bytes in one input request */
#define WAIT_MAX_MS    5000
#define INPUT_DRAIN_MS 2000    /* how long QEMU may take to read the input */

static void h_text(struct vm *vm, struct http_resp *resp)
{
	_cleanup_close_ int fd = open(vm_console_path(vm), O_RDONLY | O_CLOEXEC);
	struct stat st;
	off_t start = 0;
	char *buf;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0) {
		http_resp_text(resp, 200, "text/plain", strdup(""));
		return;
	}
	if (st.st_size > (1 << 20))
		start = st.st_size - (1 << 20); /* the last MiB */
	buf = malloc((size_t)(st.st_size - start) + 1);
	if (!buf) {
		http_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	n = pread(fd, buf, (size_t)(st.st_size - start), start);
	buf[n > 0 ? n : 0] = '\0';
	http_resp_text(resp, 200, "text/plain; charset=utf-8", buf);
}

/* The log's size (0 while it does not exist). */
static uint64_t log_size(int fd)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static bool vm_gone(struct vm *vm)
{
	enum vm_state s = vm_get_state(vm);

	return s == VM_STOPPED || s == VM_FAILED || s == VM_MIGRATED;
}

static void h_output(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	const char *from_s = http_req_query(req, "from"), *wait_s = http_req_query(req, "wait_ms");
	uint64_t from = 0, wait_ms = 0, size, deadline;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *buf = NULL;
	char *hex;
	ssize_t n;

	if ((from_s && u64_parse(from_s, &from) < 0) ||
	    (wait_s && (u64_parse(wait_s, &wait_ms) < 0 || wait_ms > WAIT_MAX_MS))) {
		http_resp_error(resp, 400, "bad_request", "from must be a byte offset and wait_ms "
				"a number of ms up to %d", WAIT_MAX_MS);
		return;
	}
	fd = open(vm_console_path(vm), O_RDONLY | O_CLOEXEC);
	size = log_size(fd);
	if (!from_s)
		from = size;              /* from now on */
	else if (from > size)
		from = 0;                 /* another log (the VM moved here): from its start */
	deadline = now_ns() + wait_ms * 1000000ull;
	while (size <= from && now_ns() < deadline && !vm_gone(vm)) {
		usleep(20000);
		if (fd < 0)
			fd = open(vm_console_path(vm), O_RDONLY | O_CLOEXEC);
		size = log_size(fd);
	}
	n = (ssize_t)MIN(size > from ? size - from : 0, (uint64_t)OUTPUT_MAX);
	buf = malloc((size_t)n + 1);
	hex = malloc(2 * (size_t)n + 1);
	if (!buf || !hex) {
		free(hex);
		http_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	n = n > 0 ? pread(fd, buf, (size_t)n, (off_t)from) : 0;
	hex_encode(buf, n > 0 ? (size_t)n : 0, hex);
	http_resp_json(resp, 200, json_pack("{s:I, s:I, s:s, s:s}", "from", (json_int_t)from,
					    "next", (json_int_t)(from + (n > 0 ? (uint64_t)n : 0)),
					    "hex", hex, "state", vm_state_name(vm_get_state(vm))));
	free(hex);
}

/* Connect to the console socket: the descriptor, or -errno. */
static int con_connect(struct vm *vm)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/" VM_CONSOLE_SOCK, vm->dir) >=
	    sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	return TAKE_FD(fd);
}

/* Write buf, end the stream, drain until QEMU closes: 0 or -errno (-ETIMEDOUT). */
static int con_send(int fd, const uint8_t *buf, size_t len)
{
	uint64_t deadline = now_ns() + INPUT_DRAIN_MS * 1000000ull;
	char sink[4096];
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	if (shutdown(fd, SHUT_WR) < 0)
		return -errno;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = now_ns();
		ssize_t n;

		if (now >= deadline)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)((deadline - now) / 1000000) + 1) < 0 && errno != EINTR)
			return -errno;
		n = read(fd, sink, sizeof(sink));
		if (n == 0)
			return 0;            /* QEMU read everything and hung up */
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return errno == ECONNRESET ? 0 : -errno;
	}
}

static void h_input(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "hex", NULL };
	json_t *j = http_json_args(req, resp, keys);
	const char *hex = json_string_value(json_object_get(j, "hex"));
	uint8_t buf[INPUT_MAX];
	size_t len = hex ? strlen(hex) / 2 : 0;
	_cleanup_close_ int fd = -1;
	int r;

	if (!j)
		return;
	if (!hex || strlen(hex) % 2 || len > sizeof(buf) || hex_decode(hex, buf, len) < 0) {
		http_resp_error(resp, 400, "bad_request", "\"hex\" must be up to %d bytes in hex digits",
				INPUT_MAX);
		goto out;
	}
	fd = con_connect(vm);
	if (fd < 0) {
		http_resp_error(resp, 409, "no_console",
				"the VM's serial console takes no input: %s (it is %s%s)",
				strerror(-fd), vm_state_name(vm_get_state(vm)),
				fd == -ENOENT ? ", or its QEMU was started by an agent without "
						"console input" : "");
		goto out;
	}
	r = con_send(fd, buf, len);
	if (r == -ETIMEDOUT)
		http_resp_error(resp, 409, "console_busy", "the guest did not take the input within "
				"%d ms (is another client on the console socket?)", INPUT_DRAIN_MS);
	else if (r < 0)
		http_resp_error(resp, 409, "no_console", "the serial console: %s", strerror(-r));
	else
		http_resp_json(resp, 200, json_pack("{s:I}", "bytes", (json_int_t)len));
out:
	json_decref(j);
}

void vm_console_http(struct vm *vm, const char *rest, const struct http_req *req,
		     struct http_resp *resp)
{
	const char *m = req->method;

	if (!*rest && !strcmp(m, "GET"))
		h_text(vm, resp);
	else if (!strcmp(rest, "/output") && !strcmp(m, "GET"))
		h_output(vm, req, resp);
	else if (!strcmp(rest, "/input") && !strcmp(m, "POST"))
		h_input(vm, req, resp);
	else
		http_resp_error(resp, 404, "not_found", "no such resource %s %s", m, req->path);
}
