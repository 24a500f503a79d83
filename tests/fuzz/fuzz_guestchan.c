// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the guest channel's line parser (guestchan.c): line
 * splitting with "\r\n" handling, over-long lines, answers ("OK"/"ERR")
 * against unsolicited lines, stale answers, the READY line and its
 * memtotal_kb field, the key=value field parsers; and the agent's reading
 * of the unsolicited lines it keeps (heartbeats, vm_mig_on_guest_line()).
 *
 * The target plays the guest: its whole side is written to one end of a
 * socketpair (then closed) before the channel is opened over the other end
 * with guestchan_open_fd(), so every read finds data or the end.
 *
 * Input layout: nops (1), nops operations of 2 bytes (see run_op), then
 * the guest's byte stream.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "guestchan.h"
#include "log.h"
#include "vm_migrate.h"

#define MAX_OPS 16
#define TIMEOUT_MS 1000

static const char *const keys[] = { "memtotal_kb", "seq", "ns", "pages", "id", "" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_LVL_ERROR);
	return 0;
}

/* Every unsolicited line: parse its fields as the agent and the tests do. */
static void on_line(const char *line, void *opaque)
{
	char val[16];
	uint64_t v;

	CHECK(strchr(line, '\n') == NULL);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		int r = guestchan_field_u64(line, keys[i], &v);

		CHECK(r == 0 || r == -ENOENT || r == -EINVAL);
		r = guestchan_field_str(line, keys[i], val, sizeof(val));
		CHECK(r == 0 || r == -ENOENT || r == -ENOBUFS || r == -EINVAL);
		CHECK(r != 0 || strlen(val) < sizeof(val));
	}
	vm_mig_on_guest_line(line, opaque);
}

static void run_op(struct guestchan *g, uint8_t kind, uint8_t arg)
{
	char line[64];
	uint64_t kb;
	int r;

	switch (kind % 5) {
	case 0:
		r = guestchan_wait_ready(g, TIMEOUT_MS, &kb);
		CHECK(r <= 0);
		break;
	case 1:
		r = guestchan_cmd(g, TIMEOUT_MS, line, arg % 2 ? sizeof(line) : 1, "balloon %u",
				  arg);
		CHECK(r <= 0);
		CHECK(r != 0 || strlen(line) < sizeof(line));
		break;
	case 2:
		guestchan_resync(g);
		break;
	case 3:
		r = guestchan_poll(g, arg % 2 ? TIMEOUT_MS : 0);
		CHECK(r <= 0);
		break;
	case 4:
		CHECK(strlen(guestchan_last_error(g)) < 512);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	unsigned nops = fz_u8(&in) % (MAX_OPS + 1);
	int fds0 = test_open_fds(), sv[2];
	uint8_t ops[2 * MAX_OPS];
	struct guestchan *g = NULL;
	struct vm_mig *m = calloc(1, sizeof(*m));
	ssize_t k;

	CHECK(m);
	pthread_mutex_init(&m->hb_lock, NULL);
	fz_bytes(&in, ops, 2 * nops);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	k = in.n ? send(sv[1], in.p, in.n, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
	CHECK(k >= 0 || errno == EAGAIN);
	CHECK(shutdown(sv[1], SHUT_WR) == 0);
	CHECK(guestchan_open_fd(sv[0], &g) == 0);
	guestchan_set_callback(g, on_line, m);
	for (unsigned i = 0; i < nops; i++)
		run_op(g, ops[2 * i], ops[2 * i + 1]);
	/* Whatever is left: the lines a heartbeat poll would see. */
	CHECK(guestchan_poll(g, TIMEOUT_MS) <= 0);
	CHECK(m->hb_total <= in.n);
	guestchan_close(g);
	close(sv[1]);
	pthread_mutex_destroy(&m->hb_lock);
	free(m);
	CHECK(test_open_fds() == fds0);
	return 0;
}
