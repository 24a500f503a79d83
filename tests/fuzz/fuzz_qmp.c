// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the QMP client (qmp.c): the greeting, the line
 * buffer, JSON parsing of each line, answers matched by id, errors, the
 * event queue; and the answers the memory hotplug code (hotplug.c) reads
 * out of QMP replies.
 *
 * The target plays QEMU: the whole of its side of the conversation is
 * written to one end of a socketpair (then closed) before the client
 * connects over the other end with qmp_connect_fd(), so every read either
 * finds data or sees the end, and nothing waits. Command ids are
 * predictable (qmp_capabilities is 1, then one per command), so seeds
 * carry matching answers (gen_corpus.py).
 *
 * Input layout: nops (1), nops operations of 2 bytes (see run_op), then
 * QEMU's byte stream.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "hotplug.h"
#include "log.h"
#include "qmp.h"

#define MAX_OPS 16
#define TIMEOUT_MS 1000

static const char *const commands[] = { "query-status", "stop", "cont", "migrate",
					"query-migrate", "object-add" };
static const char *const events[] = { "MIGRATION", "DEVICE_DELETED", "ACPI_DEVICE_OST",
				      "STOP", "RESUME", "SHUTDOWN" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_LVL_ERROR);
	return 0;
}

static void check_result(int r, json_t *ret)
{
	CHECK(r <= 0 && r > -4096);
	CHECK(r == 0 || ret == NULL);
	json_decref(ret);
}

static void run_op(struct qmp *q, struct hotplug *h, uint8_t kind, uint8_t arg)
{
	const char *name = events[arg % ARRAY_SIZE(events)];
	json_t *ret = NULL;
	uint64_t size, req, addr;
	int r, slot;

	switch (kind % 8) {
	case 0:
		r = qmp_execute(q, commands[arg % ARRAY_SIZE(commands)], NULL, TIMEOUT_MS, &ret);
		check_result(r, ret);
		break;
	case 1:
		r = qmp_executef(q, TIMEOUT_MS, &ret, "qom-get", "{s:s, s:s}", "path",
				 "/machine/peripheral/vmem0", "property", "size");
		check_result(r, ret);
		break;
	case 2:
		r = qmp_wait_event(q, name, arg & 0x80 ? "id" : NULL, "dimm0", TIMEOUT_MS, &ret);
		check_result(r, ret);
		break;
	case 3:
		qmp_clear_events(q);
		break;
	case 4:
		r = hotplug_dimm_where(h, "dimm0", &addr, &slot);
		CHECK(r <= 0);
		break;
	case 5:
		r = hotplug_vmem_query(h, &size, &req);
		CHECK(r <= 0);
		break;
	case 6:
		r = hotplug_dimm_add(h, "dimm0", "/nonexistent/ram", 128ull << 20, TIMEOUT_MS);
		CHECK(r <= 0);
		break;
	case 7:
		CHECK(strlen(qmp_last_error(q)) < 512);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	unsigned nops = fz_u8(&in) % (MAX_OPS + 1);
	struct hotplug_config hc = { .mode = HOTPLUG_DIMM, .base_bytes = 128ull << 20,
				     .max_bytes = 1ull << 30 };
	int fds0 = test_open_fds(), sv[2], r;
	uint8_t ops[2 * MAX_OPS];
	struct hotplug *h = NULL;
	struct qmp *q = NULL;
	ssize_t k;

	fz_bytes(&in, ops, 2 * nops);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	/* QEMU's whole side, as much as the socket takes (inputs are smaller). */
	k = in.n ? send(sv[1], in.p, in.n, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
	CHECK(k >= 0 || errno == EAGAIN);
	CHECK(shutdown(sv[1], SHUT_WR) == 0);
	hc.mode = nops % 2 ? HOTPLUG_VIRTIO_MEM : HOTPLUG_DIMM;
	r = qmp_connect_fd(sv[0], TIMEOUT_MS, &q);
	CHECK(r <= 0 && r > -4096);
	if (r == 0) {
		CHECK(hotplug_new(q, &hc, &h) == 0);
		for (unsigned i = 0; i < nops; i++)
			run_op(q, h, ops[2 * i], ops[2 * i + 1]);
		hotplug_free(h);
		qmp_close(q);
	}
	close(sv[1]);
	CHECK(test_open_fds() == fds0);
	return 0;
}
