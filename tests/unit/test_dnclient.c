// SPDX-License-Identifier: MIT
/*
 * Unit test of the device-node client (src/common/dnclient.c) against a
 * small fake device node on loopback, in a thread of this process: the
 * real handshake (hsserver.h), the frames checked with wireblk.h, one
 * in-memory volume "disk0" for block I/O, made-up volumes for VOL_LIST.
 * The fake answers pipelined I/O in reverse order, so replies are matched
 * by id. Checked: feature negotiation (a memory node is refused), every
 * call and its reply, the node's refusals as errno, VOL_LIST paging, and
 * that what the client refuses itself is never sent.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "dnclient.h"
#include "grant.h"
#include "hsserver.h"
#include "log.h"
#include "net.h"
#include "tap.h"
#include "wire.h"
#include "wireblk.h"

#define NODE_ID   900
#define CLIENT_ID 42
#define DISK_SIZE (4u << 20)
#define DISK_KEY  0x0123456789abcdefull
#define HANDLE    7
#define MAX_HELD  64

struct reply {
	struct proto_hdr h;
	uint8_t *p;
};

struct fake {
	int lfd;
	char addr[64];
	struct auth_key key;
	struct grant_key *gkey;
	uint32_t features;             /* offered in HELLO */
	uint32_t nvols;                /* made-up volumes VOL_LIST reports */
	_Atomic unsigned requests;     /* after AUTH, every connection */
	uint8_t *disk;
	/* per connection */
	struct hs_server hs;
	struct hs_peer peer;
	bool open, rdonly;
	struct reply held[MAX_HELD];   /* I/O replies, sent in reverse */
	unsigned nheld;
};

static struct fake F;

/* ---- the fake node ---------------------------------------------------------- */

static void send_reply(int fd, const struct reply *r)
{
	uint8_t hb[PROTO_HDR_SIZE];

	wire_hdr_encode(&r->h, hb);
	if (net_write_full(fd, hb, sizeof(hb)) == 0 && r->h.len)
		(void)net_write_full(fd, r->p, r->h.len);
}

static void flush_held(int fd)
{
	while (F.nheld > 0) {
		struct reply *r = &F.held[--F.nheld];

		send_reply(fd, r);
		free(r->p);
	}
}

/* Answer request h with status st (an errno or 0) and `len` bytes of p (taken). */
static void answer(int fd, const struct proto_hdr *h, int st, void *p, uint32_t len, bool hold)
{
	struct reply r = {
		.h = { .magic = PROTO_MAGIC, .version = PROTO_VERSION, .opcode = h->opcode,
		       .flags = PROTO_F_REPLY, .req_id = h->req_id,
		       .status = proto_errno_to_status(st) },
	};

	r.h.len = st ? 0 : len;
	r.p = p;
	if (hold && F.nheld < MAX_HELD) {
		F.held[F.nheld++] = r;
		return;
	}
	send_reply(fd, &r);
	free(p);
}

static void *dup_mem(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);

	if (q && n)
		memcpy(q, p, n);
	return q;
}

static int blk_open(const void *p, size_t len, struct proto_blk_open_rep *rep)
{
	struct proto_blk_open_req m;
	char name[PROTO_VOL_NAME_SIZE];
	uint32_t rights;
	int r = wire_blk_open_decode(p, len, &m, name);

	if (r < 0)
		return r;
	rights = PROTO_R_READ | (m.flags & PROTO_BLK_RDONLY ? 0 : PROTO_R_WRITE);
	r = grant_verify(F.gkey, &m.grant, NODE_ID, F.peer.peer_id, rights, (uint64_t)time(NULL));
	if (r < 0)
		return r;
	if (strcmp(name, "disk0") != 0)
		return -ENOENT;
	if (wire_vol_key_of_grant(&m.grant) != DISK_KEY)
		return -EKEYREJECTED;
	F.open = true;
	F.rdonly = m.flags & PROTO_BLK_RDONLY;
	*rep = (struct proto_blk_open_rep){ HANDLE, m.flags, DISK_SIZE };
	wire_blk_open_rep_swap(rep);
	return 0;
}

static int blk_io(uint16_t op, const void *p, size_t len, void **ret, uint32_t *ret_len)
{
	struct proto_blk_io m;
	const uint8_t *data;
	int r = wire_blk_io_decode(op, p, len, &m, &data);

	if (r < 0)
		return r;
	if (!F.open || m.handle != HANDLE)
		return -EBADMSG;
	if (m.offset + m.len > DISK_SIZE)
		return -ERANGE;
	if (op != PROTO_OP_BLK_READ && F.rdonly)
		return -EPERM;
	if (op == PROTO_OP_BLK_READ) {
		*ret = dup_mem(F.disk + m.offset, m.len);
		*ret_len = m.len;
	}
	else if (op == PROTO_OP_BLK_WRITE)
		memcpy(F.disk + m.offset, data, m.len);
	else
		memset(F.disk + m.offset, 0, m.len);
	return 0;
}

static void volume_put(struct proto_volume *v, const char *name, uint64_t size, uint64_t key,
		       uint32_t flags)
{
	*v = (struct proto_volume){ .size = size, .allocated = size / 2, .key = key, .users = 1,
				    .flags = flags };
	(void)wire_vol_name_put(v->name, name);
	wire_volume_swap(v);
}

static int vol_op(uint16_t op, const void *p, size_t len, struct proto_volume *ret)
{
	struct proto_vol_req m;
	char name[PROTO_VOL_NAME_SIZE], src[PROTO_VOL_NAME_SIZE];
	bool disk0;
	int r;

	if (!F.peer.orch)
		return -ENOKEY;
	r = wire_vol_req_decode(op, p, len, &m, name, src);
	if (r < 0)
		return r;
	disk0 = !strcmp(name, "disk0");
	switch (op) {
	case PROTO_OP_VOL_CREATE:
	case PROTO_OP_VOL_CLONE:
		if (disk0)
			return -EEXIST;
		if (op == PROTO_OP_VOL_CLONE && strcmp(src, "disk0") != 0)
			return -ENOENT;
		volume_put(ret, name, op == PROTO_OP_VOL_CLONE ? DISK_SIZE : m.size, 77,
			   op == PROTO_OP_VOL_CLONE ? PROTO_VOL_REFLINKED : 0);
		return 0;
	case PROTO_OP_VOL_RESIZE:
		if (!disk0)
			return -ENOENT;
		if (m.size < DISK_SIZE && !(m.flags & PROTO_VOL_SHRINK))
			return -EBADMSG;
		volume_put(ret, name, m.size, DISK_KEY, 0);
		return 0;
	case PROTO_OP_VOL_STAT:
		if (!strcmp(name, "liar"))      /* answers about another volume */
			name[0] = 'x';
		else if (!disk0)
			return -ENOENT;
		volume_put(ret, name, DISK_SIZE, DISK_KEY, 0);
		return 0;
	default:
		return disk0 ? 0 : -ENOENT;
	}
}

static int vol_list(const void *p, size_t len, void **ret, uint32_t *ret_len)
{
	struct proto_list_req q;
	struct proto_list_rep lr;
	uint8_t *out;
	int r;

	if (!F.peer.orch)
		return -ENOKEY;
	r = wire_fixed(p, len, &q, sizeof(q));
	if (r < 0)
		return r;
	wire_list_req_swap(&q);
	if (q.max == 0 || q.max > PROTO_VOL_MAX_LIST)
		return -EBADMSG;
	lr.count = q.start >= F.nvols ? 0 : MIN(q.max, F.nvols - q.start);
	lr.next = q.start + lr.count;
	*ret_len = (uint32_t)(sizeof(lr) + lr.count * sizeof(struct proto_volume));
	out = *ret = malloc(*ret_len);
	if (!out)
		return -ENOMEM;
	for (uint32_t i = 0; i < lr.count; i++) {
		struct proto_volume v;
		char name[16];

		snprintf(name, sizeof(name), "v%05u", q.start + i);
		volume_put(&v, name, 512, q.start + i, 0);
		memcpy(out + sizeof(lr) + i * sizeof(v), &v, sizeof(v));
	}
	wire_list_rep_swap(&lr);
	memcpy(out, &lr, sizeof(lr));
	return 0;
}

/* One request after AUTH. */
static void serve_one(int fd, const struct proto_hdr *h, const uint8_t *p)
{
	union {
		struct proto_blk_open_rep open;
		struct proto_volume vol;
	} rep;
	struct proto_blk_handle bh;
	void *out = NULL;
	uint32_t outlen = 0;
	int r;

	F.requests++;
	switch (h->opcode) {
	case PROTO_OP_BLK_OPEN:
		r = blk_open(p, h->len, &rep.open);
		answer(fd, h, r, dup_mem(&rep, sizeof(rep.open)), sizeof(rep.open), false);
		return;
	case PROTO_OP_BLK_READ: case PROTO_OP_BLK_WRITE: case PROTO_OP_BLK_DISCARD:
	case PROTO_OP_BLK_WRITE_ZEROES:
		r = blk_io(h->opcode, p, h->len, &out, &outlen);
		answer(fd, h, r, out, outlen, true);
		return;
	case PROTO_OP_BLK_FLUSH: case PROTO_OP_BLK_CLOSE:
		r = wire_blk_handle_decode(p, h->len, &bh);
		if (r == 0 && (!F.open || bh.handle != HANDLE))
			r = -EBADMSG;
		if (r == 0 && h->opcode == PROTO_OP_BLK_CLOSE)
			F.open = false;
		answer(fd, h, r, NULL, 0, false);
		return;
	case PROTO_OP_VOL_LIST:
		r = vol_list(p, h->len, &out, &outlen);
		answer(fd, h, r, out, outlen, false);
		return;
	case PROTO_OP_VOL_CREATE: case PROTO_OP_VOL_DELETE: case PROTO_OP_VOL_RESIZE:
	case PROTO_OP_VOL_CLONE: case PROTO_OP_VOL_STAT:
		r = vol_op(h->opcode, p, h->len, &rep.vol);
		outlen = h->opcode == PROTO_OP_VOL_DELETE ? 0 : sizeof(rep.vol);
		answer(fd, h, r, dup_mem(&rep, outlen), outlen, false);
		return;
	default:
		answer(fd, h, -EOPNOTSUPP, NULL, 0, false);
	}
}

/* The handshake frames; false: the connection ends. */
static bool handshake(int fd, const struct proto_hdr *h, const uint8_t *p)
{
	struct proto_hello_req hq;
	struct proto_hello_rep hr = { .max_pages = PROTO_MAX_PAGES, .max_inflight = 16 };
	enum hs_auth_fail why;

	if (h->opcode == PROTO_OP_HELLO) {
		if (hs_hello_parse(&F.peer, p, h->len, &hq) < 0 ||
		    hs_hello_accept(&F.hs, &F.peer, &hq, &hr) < 0)
			return false;
		answer(fd, h, 0, dup_mem(&hr, sizeof(hr)), sizeof(hr), false);
		return true;
	}
	if (h->opcode == PROTO_OP_AUTH && hs_auth(&F.hs, &F.peer, p, h->len, &why) == 0) {
		answer(fd, h, 0, NULL, 0, false);
		return true;
	}
	return false;
}

static void serve(int fd)
{
	F.hs = (struct hs_server){ .key = &F.key, .grant_key = F.gkey, .node_id = NODE_ID,
				   .features = F.features };
	F.peer = (struct hs_peer){ 0 };
	F.open = false;
	for (;;) {
		uint8_t hb[PROTO_HDR_SIZE];
		_cleanup_free_ uint8_t *p = NULL;
		struct proto_hdr h;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		/* Nothing more to read at once: the held replies go, last first. */
		if (F.nheld && poll(&pfd, 1, 0) == 0)
			flush_held(fd);
		if (net_read_full(fd, hb, sizeof(hb)) < 0 || wire_hdr_decode(hb, sizeof(hb), &h) < 0)
			break;
		p = malloc(h.len ? h.len : 1);
		if (!p || (h.len && net_read_full(fd, p, h.len) < 0))
			break;
		if (!F.peer.authed) {
			if (!handshake(fd, &h, p))
				break;
			continue;
		}
		serve_one(fd, &h, p);
	}
	for (unsigned i = 0; i < F.nheld; i++)
		free(F.held[i].p);
	F.nheld = 0;
}

static void *node_main(void *arg)
{
	for (;;) {
		int fd = accept4(F.lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			return NULL;
		serve(fd);
		close(fd);
	}
}

/* ---- the tests ----------------------------------------------------------------- */

static int conn(bool orch, struct mnc **ret)
{
	struct mnc_opts o = { .addr = F.addr, .key = &F.key, .orch_key = orch ? F.gkey : NULL,
			      .node_id = CLIENT_ID, .timeout_ms = 5000 };

	return dnc_connect(&o, ret);
}

static struct proto_grant grant(uint64_t holder, uint64_t key, uint32_t rights)
{
	struct proto_grant g = { 0 };

	(void)grant_mint(F.gkey, NODE_ID, holder, (uint32_t)key, (uint32_t)(key >> 32), 0, rights,
			 0, &g);
	return g;
}

static void test_features(void)
{
	struct mnc *c = NULL;

	F.features = PROTO_FEAT_ALL;
	is(conn(false, &c), -EPROTONOSUPPORT, "a memory node (no PROTO_FEAT_BLK) is refused");
	F.features = PROTO_FEAT_ALL | PROTO_FEAT_BLK;
	is(conn(false, &c), 0, "a node with more features than BLK and REVOKE");
	is(mnc_info(c)->features, PROTO_FEAT_BLK | PROTO_FEAT_REVOKE,
	   "...only BLK and REVOKE negotiated: the offer masks it");
	is(mnc_info(c)->node_id, NODE_ID, "...its node id");
	mnc_close(c);
	F.features = PROTO_FEAT_BLK;
}

static void test_volumes(void)
{
	_cleanup_mnc_ struct mnc *c = NULL, *plain = NULL;
	struct dnc_volume v;
	struct dnc_volume *list = NULL;
	size_t n = 0;
	unsigned before;

	if (!ok(conn(true, &c) == 0, "orchestrator connection"))
		return;
	is(dnc_vol_create(c, "new", 1 << 20, &v), 0, "VOL_CREATE");
	ok(!strcmp(v.name, "new") && v.size == 1 << 20 && v.allocated == 1 << 19 && v.key == 77 &&
	   v.users == 1 && !v.reflinked, "...the volume");
	is(dnc_vol_create(c, "disk0", 1 << 20, NULL), -EEXIST, "VOL_CREATE of a taken name");
	is(dnc_vol_stat(c, "disk0", &v), 0, "VOL_STAT");
	ok(v.key == DISK_KEY && v.size == DISK_SIZE, "...key and size");
	is(dnc_vol_stat(c, "nope", &v), -ENOENT, "VOL_STAT of a missing volume");
	is(dnc_vol_stat(c, "liar", &v), -EBADMSG, "an answer about another volume is refused");
	is(dnc_vol_resize(c, "disk0", 1 << 20, false, NULL), -EBADMSG, "shrinking without shrink");
	is(dnc_vol_resize(c, "disk0", 1 << 20, true, &v), 0, "shrinking with shrink");
	is(v.size, 1 << 20, "...new size");
	is(dnc_vol_clone(c, "disk0", "copy", &v), 0, "VOL_CLONE");
	ok(!strcmp(v.name, "copy") && v.reflinked, "...the clone, reflinked");
	is(dnc_vol_delete(c, "disk0"), 0, "VOL_DELETE");

	before = F.requests;
	is(dnc_vol_create(c, "new", 0, NULL), -EINVAL, "VOL_CREATE size 0 refused");
	is(dnc_vol_create(c, "new", 1000, NULL), -EINVAL, "VOL_CREATE unaligned size refused");
	is(dnc_vol_resize(c, "disk0", 1000, true, NULL), -EINVAL, "VOL_RESIZE unaligned refused");
	is(dnc_vol_create(c, "New", 512, NULL), -EINVAL, "uppercase name refused");
	is(dnc_vol_create(c, "", 512, NULL), -EINVAL, "empty name refused");
	is(dnc_vol_create(c, "-x", 512, NULL), -EINVAL, "name with a leading '-' refused");
	is(dnc_vol_stat(c, "a234567890123456789012345678901234567890123456789012345678901234",
			NULL), -EINVAL, "64-character name refused");
	is(dnc_vol_clone(c, "Disk0", "copy", NULL), -EINVAL, "bad clone source refused");
	is(dnc_vol_delete(c, NULL), -EINVAL, "NULL name refused");
	is(F.requests, before, "...none of them was sent");
	is(dnc_name_check("vm-1_root"), 0, "dnc_name_check: a good name");
	is(dnc_name_check("vm.img"), -EINVAL, "dnc_name_check: a bad one");

	for (uint32_t k = 0; k < 4; k++) {
		static const uint32_t counts[] = { 0, 3, PROTO_VOL_MAX_LIST * 2, 1100 };
		bool inorder = true;

		F.nvols = counts[k];
		before = F.requests;
		is(dnc_vol_list(c, &list, &n), 0, "VOL_LIST of %u volumes", counts[k]);
		is(n, counts[k], "...all of them");
		for (size_t i = 0; i < n; i++) {
			char want[32];

			snprintf(want, sizeof(want), "v%05zu", i);
			inorder &= !strcmp(list[i].name, want) && list[i].key == i;
		}
		ok(inorder, "...in order");
		is(F.requests - before, counts[k] / PROTO_VOL_MAX_LIST + 1, "...in %u pages",
		   counts[k] / PROTO_VOL_MAX_LIST + 1);
		free(list);
		list = NULL;
	}

	mnc_close(TAKE_PTR(c));        /* the fake serves one connection at a time */
	if (!ok(conn(false, &plain) == 0, "connection without the orchestrator's key"))
		return;
	is(dnc_vol_stat(plain, "disk0", &v), -ENOKEY, "VOL_STAT refused to others: -ENOKEY");
	is(dnc_vol_list(plain, &list, &n), -ENOKEY, "VOL_LIST too");
}

struct waiter {
	unsigned pending;
	int status;
};

static void done_cb(void *opaque, int status, size_t len)
{
	struct waiter *w = opaque;

	w->pending--;
	if (status < 0 && !w->status)
		w->status = status;
}

/* Submitted with done_cb: wait for all. */
static int wait_all(struct mnc *c, struct waiter *w)
{
	while (w->pending) {
		int r = mnc_poll(c, 5000);

		if (r <= 0)
			return r < 0 ? r : -ETIMEDOUT;
	}
	return w->status;
}

static void test_io(void)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	_cleanup_free_ uint8_t *src = malloc(3u << 20), *dst = malloc(3u << 20);
	struct proto_grant g = grant(CLIENT_ID, DISK_KEY, PROTO_R_READ | PROTO_R_WRITE);
	struct waiter w = { 0 };
	uint8_t sec[PROTO_BLK_SECTOR], zero[PROTO_BLK_SECTOR] = { 0 };
	uint32_t h = 0;
	uint64_t size = 0;
	unsigned before;
	int r = 0;

	if (!ok(src && dst && conn(false, &c) == 0, "block connection"))
		return;
	for (size_t i = 0; i < 3u << 20; i++)
		src[i] = (uint8_t)(i * 7 + i / 4096);
	is(dnc_open(c, &g, "disk0", 0, &h, &size), 0, "BLK_OPEN");
	ok(h == HANDLE && size == DISK_SIZE, "...handle and size");

	/* 3 MiB in 1 MiB and 512 KiB pieces, all in flight, answered last first. */
	for (uint32_t off = 0; off < 3u << 20 && r == 0; off += 512u << 10) {
		w.pending++;
		r = dnc_write_async(c, h, 4096 + off, 512u << 10, src + off, done_cb, &w);
		if (r < 0)
			w.pending--;
	}
	is(r, 0, "six writes queued");
	is(wait_all(c, &w), 0, "...all answered");
	for (uint32_t off = 0; off < 3u << 20 && r == 0; off += 1u << 20) {
		w.pending++;
		r = dnc_read_async(c, h, 4096 + off, 1u << 20, dst + off, done_cb, &w);
		if (r < 0)
			w.pending--;
	}
	is(r, 0, "three reads queued");
	is(wait_all(c, &w), 0, "...all answered");
	ok(!memcmp(src, dst, 3u << 20), "...the data read back");
	is(dnc_read(c, h, 4096 + 512, sizeof(sec), sec), 0, "a synchronous one-sector read");
	ok(!memcmp(sec, src + 512, sizeof(sec)), "...its data");

	is(dnc_discard(c, h, 4096, 512), 0, "BLK_DISCARD");
	is(dnc_write_zeroes(c, h, 8192, 512), 0, "BLK_WRITE_ZEROES");
	is(dnc_read(c, h, 4096, sizeof(sec), sec), 0, "read the discarded sector");
	ok(!memcmp(sec, zero, sizeof(sec)), "...zeros");
	is(dnc_read(c, h, 8192, sizeof(sec), sec), 0, "read the zeroed sector");
	ok(!memcmp(sec, zero, sizeof(sec)), "...zeros");
	is(dnc_write(c, h, 0, sizeof(sec), src), 0, "a synchronous write");
	is(dnc_flush(c, h), 0, "BLK_FLUSH");
	is(dnc_read(c, h, DISK_SIZE, 512, sec), -ERANGE, "a read past the end: -ERANGE");

	before = F.requests;
	is(dnc_read(c, h, 100, 512, sec), -EINVAL, "unaligned offset refused");
	is(dnc_read(c, h, 0, 100, sec), -EINVAL, "unaligned length refused");
	is(dnc_discard(c, h, 0, 0), -EINVAL, "length 0 refused");
	is(dnc_read(c, h, 0, PROTO_BLK_MAX_IO + 512, dst), -E2BIG, "a read over 1 MiB: -E2BIG");
	is(dnc_write(c, h, 0, PROTO_BLK_MAX_IO + 512, src), -E2BIG, "a write over 1 MiB: -E2BIG");
	is(dnc_write_zeroes(c, h, UINT64_MAX - 511, 512), -ERANGE, "offset + len overflows");
	is(dnc_read(c, h, 0, 512, NULL), -EINVAL, "a read without a buffer");
	is(dnc_open(c, &g, "disk0", 4, &h, NULL), -EINVAL, "unknown open flag refused");
	is(dnc_open(c, &g, "Disk0", 0, &h, NULL), -EINVAL, "bad open name refused");
	is(F.requests, before, "...none of them was sent");
	is(dnc_close(c, h), 0, "BLK_CLOSE");

	g = grant(CLIENT_ID + 1, DISK_KEY, PROTO_R_READ | PROTO_R_WRITE);
	is(dnc_open(c, &g, "disk0", 0, &h, NULL), -EKEYREJECTED, "another holder's grant");
	g = grant(CLIENT_ID, DISK_KEY + 1, PROTO_R_READ | PROTO_R_WRITE);
	is(dnc_open(c, &g, "disk0", 0, &h, NULL), -EKEYREJECTED, "a grant for another key");
	g = grant(CLIENT_ID, DISK_KEY, PROTO_R_READ);
	is(dnc_open(c, &g, "disk0", 0, &h, NULL), -EPERM, "read-write with a read grant");
	is(dnc_open(c, &g, "disk0", PROTO_BLK_RDONLY, &h, NULL), 0, "read-only with a read grant");
	is(dnc_write(c, h, 0, 512, src), -EPERM, "a write through it: -EPERM");
	is(dnc_read(c, h, 0, 512, sec), 0, "a read through it");
	ok(!mnc_broken(c), "the connection survived every refusal");
}

int main(void)
{
	pthread_t t;

	log_set_level(LOG_LVL_ERROR);
	F.features = PROTO_FEAT_BLK;
	F.disk = calloc(1, DISK_SIZE);
	if (!F.disk || auth_random(F.key.bytes, sizeof(F.key.bytes)) < 0 ||
	    grant_key_generate(&F.gkey) < 0)
		return 1;
	F.lfd = net_listen_tcp("127.0.0.1:0", false);
	if (F.lfd < 0 || net_local_addr(F.lfd, F.addr, sizeof(F.addr)) < 0 ||
	    pthread_create(&t, NULL, node_main, NULL) != 0) {
		plan_skip_all("no loopback TCP");
		return 0;
	}
	pthread_detach(t);
	test_features();
	test_volumes();
	test_io();
	done_testing();
	return tap_exit();
}
