// SPDX-License-Identifier: MIT
/*
 * Memory-node client: the requests of mnclient.h, built on the connection
 * engine (mnconn.h: slots, sending, receiving, waiting), and connecting
 * (the handshake itself is mnhello.c's).
 */
#include "mnclient.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mnconn.h"
#include "mnhello.h"
#include "net.h"
#include "tls.h"
#include "wire.h"

#define DEFAULT_TIMEOUT  5000
#define MAX_RECALLS      (1u << 20)  /* received, not taken yet: more breaks the channel */

_Static_assert(MNC_HEAD_MAX >= PROTO_HDR_SIZE + sizeof(struct proto_copy_req), "head size");
_Static_assert(MNC_HEAD_MAX >= PROTO_HDR_SIZE + sizeof(struct proto_atomic_req), "head size");

/* ---- submission -------------------------------------------------------- */

/* Check an extent vector; returns total pages or <0. */
static int check_extents(const struct mnc *c, const struct proto_extent *ext, uint32_t next)
{
	uint64_t total = 0;

	if (!ext || next == 0)
		return -EINVAL;
	if (next > PROTO_MAX_EXTENTS)
		return -E2BIG;
	for (uint32_t i = 0; i < next; i++) {
		if (ext[i].count == 0)
			return -EINVAL;
		total += ext[i].count;
	}
	if (total > c->info.max_pages)
		return -E2BIG;
	return (int)total;
}

static int io_async(struct mnc *c, uint16_t op, const struct proto_grant *g,
		    const struct proto_extent *ext, uint32_t next, void *buf, mnc_done_fn done,
		    void *opaque)
{
	struct proto_io_req io = { .grant = *g, .nextents = next };
	struct mnc_req *r;
	size_t bytes;
	uint8_t *p;
	int n;

	if (!c || !g || !buf)
		return -EINVAL;
	n = check_extents(c, ext, next);
	if (n < 0)
		return n;
	n = mnconn_get_slot(c, &r);
	if (n < 0)
		return n;
	bytes = 0;
	for (uint32_t i = 0; i < next; i++)
		bytes += (size_t)ext[i].count * PROTO_PAGE_SIZE;
	r->done = done;
	r->opaque = opaque;
	wire_grant_swap(&io.grant);
	io.nextents = htole32(io.nextents);
	p = r->head + PROTO_HDR_SIZE;
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	for (uint32_t i = 0; i < next; i++, p += sizeof(struct proto_extent)) {
		struct proto_extent e = ext[i];

		wire_extent_swap(&e);
		memcpy(p, &e, sizeof(e));
	}
	if (op == PROTO_OP_READ) {
		r->rbuf = buf;
		r->rlen = bytes;
		r->exact = true;
		bytes = 0;
	} else {
		r->exact = true; /* empty reply */
	}
	return mnconn_submit(c, r, op, (size_t)(p - r->head) - PROTO_HDR_SIZE,
			     op == PROTO_OP_WRITE ? buf : NULL, bytes);
}

int mnc_read_async(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
		   uint32_t next, void *buf, mnc_done_fn done, void *opaque)
{
	return io_async(c, PROTO_OP_READ, g, ext, next, buf, done, opaque);
}

int mnc_write_async(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
		    uint32_t next, const void *data, mnc_done_fn done, void *opaque)
{
	return io_async(c, PROTO_OP_WRITE, g, ext, next, (void *)data, done, opaque);
}

/* ---- synchronous calls ------------------------------------------------- */

/* A synchronous request with a fixed payload and no more data. */
#define call(c, op, req, reqlen, rep, replen, exact, ms, ret_len) \
	mnconn_call(c, op, req, reqlen, NULL, 0, rep, replen, exact, ms, ret_len)

int mnc_call_data(struct mnc *c, uint16_t op, const void *req, size_t reqlen, const void *data,
		  size_t datalen, void *rep, size_t replen)
{
	if (reqlen > MNC_HEAD_MAX - PROTO_HDR_SIZE || datalen > PROTO_MAX_PAYLOAD - reqlen)
		return -E2BIG;
	return mnconn_call(c, op, req, reqlen, data, datalen, rep, replen, true,
			   c ? c->timeout_ms : 0, NULL);
}

int mnc_call(struct mnc *c, uint16_t op, const void *req, size_t reqlen, void *rep,
	     size_t replen)
{
	if (reqlen > MNC_HEAD_MAX - PROTO_HDR_SIZE)
		return -E2BIG;
	return call(c, op, req, reqlen, rep, replen, true, c ? c->timeout_ms : 0, NULL);
}

int mnc_ping(struct mnc *c)
{
	return call(c, PROTO_OP_PING, NULL, 0, NULL, 0, true, c ? c->timeout_ms : 0, NULL);
}

static int io_sync(struct mnc *c, uint16_t op, const struct proto_grant *g,
		   const struct proto_extent *ext, uint32_t next, void *buf)
{
	struct mnconn_sync w = { 0 };
	int r;

	r = io_async(c, op, g, ext, next, buf, mnconn_sync_done, &w);
	if (r < 0)
		return r;
	return mnconn_sync_wait(c, &w, c->timeout_ms);
}

int mnc_read(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
	     uint32_t next, void *buf)
{
	return io_sync(c, PROTO_OP_READ, g, ext, next, buf);
}

int mnc_write(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
	      uint32_t next, const void *data)
{
	return io_sync(c, PROTO_OP_WRITE, g, ext, next, (void *)data);
}

struct range_wait {
	unsigned pending;
	int status;
};

static void range_done(void *opaque, int status, size_t len)
{
	struct range_wait *w = opaque;

	w->pending--;
	if (status < 0 && w->status == 0)
		w->status = status;
}

static int io_range(struct mnc *c, uint16_t op, const struct proto_grant *g, uint32_t page,
		    uint32_t npages, void *buf)
{
	struct range_wait w = { 0 };
	uint64_t deadline;
	int r = 0;

	if (!c || !g || !buf)
		return -EINVAL;
	if ((uint64_t)page + npages > UINT32_MAX)
		return -ERANGE;
	for (uint32_t done = 0; done < npages && w.status == 0;) {
		struct proto_extent e = { page + done, MIN(npages - done, c->info.max_pages) };

		w.pending++; /* before: the callback may run inside the call */
		r = io_async(c, op, g, &e, 1, (uint8_t *)buf + (size_t)done * PROTO_PAGE_SIZE,
			     range_done, &w);
		if (r < 0) {
			w.pending--;
			break;
		}
		done += e.count;
	}
	deadline = mnconn_deadline_after(c->timeout_ms);
	while (w.pending > 0) {
		if (c->err)
			return c->err; /* cannot happen: breaking completes everything */
		if (now_ns() >= deadline) {
			mnconn_fail_all(c, -ETIMEDOUT);
			break;
		}
		(void)mnconn_io_round(c, deadline);
	}
	return w.status < 0 ? w.status : r;
}

int mnc_read_range(struct mnc *c, const struct proto_grant *g, uint32_t page, uint32_t npages,
		   void *buf)
{
	return io_range(c, PROTO_OP_READ, g, page, npages, buf);
}

int mnc_write_range(struct mnc *c, const struct proto_grant *g, uint32_t page, uint32_t npages,
		    const void *data)
{
	return io_range(c, PROTO_OP_WRITE, g, page, npages, (void *)data);
}

int mnc_list(struct mnc *c, uint32_t start, uint32_t max, struct proto_section *ret,
	     uint32_t *ret_count, uint32_t *ret_next)
{
	struct proto_list_req req = { .start = start, .max = MIN(max, (uint32_t)PROTO_MAX_LIST) };
	_cleanup_free_ uint8_t *buf = NULL;
	struct proto_list_rep lr;
	size_t cap, len = 0;
	int r;

	if (!c || (max && !ret))
		return -EINVAL;
	cap = sizeof(lr) + (size_t)req.max * sizeof(struct proto_section);
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	wire_list_req_swap(&req);
	r = call(c, PROTO_OP_SECTION_LIST, &req, sizeof(req), buf, cap, false, c->timeout_ms,
		 &len);
	if (r < 0)
		return r;
	if (len < sizeof(lr))
		return -EBADMSG;
	memcpy(&lr, buf, sizeof(lr));
	wire_list_rep_swap(&lr);
	if (lr.count > max || len != sizeof(lr) + (size_t)lr.count * sizeof(struct proto_section))
		return -EBADMSG;
	for (uint32_t i = 0; i < lr.count; i++) {
		memcpy(&ret[i], buf + sizeof(lr) + (size_t)i * sizeof(*ret), sizeof(*ret));
		wire_section_swap(&ret[i]);
	}
	*ret_count = lr.count;
	*ret_next = lr.next;
	return 0;
}

static int atomic(struct mnc *c, uint16_t op, const struct proto_grant *g, uint64_t offset,
		  uint64_t expect, uint64_t value, uint64_t *ret_old)
{
	struct proto_atomic_req req = { .offset = offset, .expect = expect, .value = value };
	uint64_t old;
	int r;

	if (!g)
		return -EINVAL;
	req.grant = *g;
	wire_atomic_req_swap(&req);
	r = call(c, op, &req, sizeof(req), &old, sizeof(old), true, c ? c->timeout_ms : 0, NULL);
	if (r < 0)
		return r;
	wire_u64_swap(&old);
	if (ret_old)
		*ret_old = old;
	return 0;
}

int mnc_cas(struct mnc *c, const struct proto_grant *g, uint64_t offset, uint64_t expect,
	    uint64_t value, uint64_t *ret_old)
{
	return atomic(c, PROTO_OP_CAS, g, offset, expect, value, ret_old);
}

int mnc_fadd(struct mnc *c, const struct proto_grant *g, uint64_t offset, uint64_t add,
	     uint64_t *ret_old)
{
	return atomic(c, PROTO_OP_FADD, g, offset, 0, add, ret_old);
}

int mnc_copy(struct mnc *c, const struct proto_grant *src_grant,
	     const struct proto_grant *dst_grant, const char *addr, struct proto_copy_rep *ret)
{
	struct proto_copy_req req = { 0 };
	struct proto_copy_rep rep;
	int r;

	if (!c || !src_grant || !dst_grant || !addr || strlen(addr) >= sizeof(req.addr))
		return -EINVAL;
	req.src_grant = *src_grant;
	req.dst_grant = *dst_grant;
	memcpy(req.addr, addr, strlen(addr));
	wire_copy_req_swap(&req);
	/* A copy moves a whole section: allow it ten times the usual wait. */
	r = call(c, PROTO_OP_COPY, &req, sizeof(req), &rep, sizeof(rep), true,
		 c->timeout_ms > INT32_MAX / 10 ? -1 : c->timeout_ms * 10, NULL);
	if (r < 0)
		return r;
	wire_copy_rep_swap(&rep);
	if (ret)
		*ret = rep;
	return 0;
}

/* ---- coherence directory ---------------------------------------------- */

/* DIR_* requests may wait for other holders' recalls: ten times the usual wait. */
static int dir_call(struct mnc *c, uint16_t op, const void *req, size_t reqlen, const void *data,
		    size_t datalen, void *rep, size_t replen, size_t *ret_len)
{
	if (!c || !req)
		return -EINVAL;
	if (!(c->info.features & PROTO_FEAT_DIR))
		return -EOPNOTSUPP;
	return mnconn_call(c, op, req, reqlen, data, datalen, rep, replen, !ret_len,
			   c->timeout_ms > INT32_MAX / 10 ? -1 : c->timeout_ms * 10, ret_len);
}

/* A holder tag other than 0 needs PROTO_FEAT_DIR_TAG. */
static int tag_ok(const struct mnc *c, uint16_t tag)
{
	return !tag || !c || (c->info.features & PROTO_FEAT_DIR_TAG) ? 0 : -EOPNOTSUPP;
}

static int dir_grant_call(struct mnc *c, uint16_t op, const struct proto_grant *g, uint16_t tag)
{
	struct {
		struct proto_grant g;
		struct proto_dir_who w;
	} le;
	int r = tag_ok(c, tag);

	if (!g)
		return -EINVAL;
	if (r < 0)
		return r;
	le.g = *g;
	wire_grant_swap(&le.g);
	le.w = (struct proto_dir_who){ .tag = htole16(tag) };
	/* Tag 0: the grant alone, as nodes without holder tags take it. */
	return dir_call(c, op, &le, tag ? sizeof(le) : sizeof(le.g), NULL, 0, NULL, 0, NULL);
}

int mnc_dir_attach(struct mnc *c, const struct proto_grant *g, uint16_t tag)
{
	bool was = c && c->chan;
	int r;

	if (c)
		c->chan = true;      /* a recall may come right after the reply */
	r = dir_grant_call(c, PROTO_OP_DIR_ATTACH, g, tag);
	if (r < 0 && c)
		c->chan = was;
	return r;
}

int mnc_dir_detach(struct mnc *c, const struct proto_grant *g, uint16_t tag)
{
	return dir_grant_call(c, PROTO_OP_DIR_DETACH, g, tag);
}

static int dir_req(const struct mnc *c, const struct proto_grant *g, uint16_t tag,
		   uint32_t page, struct proto_dir_req *ret)
{
	if (!g)
		return -EINVAL;
	if (tag_ok(c, tag) < 0)
		return -EOPNOTSUPP;
	*ret = (struct proto_dir_req){ .grant = *g, .page = page, .tag = tag };
	wire_dir_req_swap(ret);
	return 0;
}

/*
 * A request whose answer is a proto_dir_write_rep, then the page unless
 * PROTO_DIR_HAD_COPY; `allowed`: the flags this request may get back.
 */
static int dir_call_rep(struct mnc *c, uint16_t op, const struct proto_dir_req *req,
			uint32_t allowed, void *buf, uint32_t *ret_flags)
{
	struct proto_dir_write_rep w;
	uint8_t rep[sizeof(w) + PROTO_PAGE_SIZE];
	size_t len = 0;
	bool had;
	int r;

	r = dir_call(c, op, req, sizeof(*req), NULL, 0, rep, sizeof(rep), &len);
	if (r < 0)
		return r;
	if (len < sizeof(w))
		return -EBADMSG;
	memcpy(&w, rep, sizeof(w));
	wire_dir_write_rep_swap(&w);
	had = w.flags & PROTO_DIR_HAD_COPY;
	if (w.rsvd || (w.flags & ~allowed) || len != sizeof(w) + (had ? 0 : PROTO_PAGE_SIZE))
		return -EBADMSG;
	if (!had)
		memcpy(buf, rep + sizeof(w), PROTO_PAGE_SIZE);
	*ret_flags = w.flags;
	return 0;
}

int mnc_dir_read(struct mnc *c, const struct proto_grant *g, uint16_t tag, uint32_t page,
		 void *buf, bool *ret_owned)
{
	struct proto_dir_req req;
	uint32_t flags = 0;
	int r;

	if (!buf)
		return -EINVAL;
	r = dir_req(c, g, tag, page, &req);
	if (r < 0)
		return r;
	if (ret_owned)
		*ret_owned = false;
	/* Ownership only when the node knows it and the grant allows writing. */
	if (!ret_owned || !c || !(c->info.features & PROTO_FEAT_DIR_TAKE) ||
	    !(g->rights & PROTO_R_WRITE))
		return dir_call(c, PROTO_OP_DIR_READ, &req, sizeof(req), NULL, 0, buf,
				PROTO_PAGE_SIZE, NULL);
	req.flags = htole16(PROTO_DIR_REQ_TAKE);
	r = dir_call_rep(c, PROTO_OP_DIR_READ, &req, PROTO_DIR_OWNED, buf, &flags);
	if (r == 0)
		*ret_owned = flags & PROTO_DIR_OWNED;
	return r;
}

int mnc_dir_reclaim(struct mnc *c, const struct proto_grant *g, uint16_t tag, uint32_t page,
		    const void *data, bool recalled, uint32_t version)
{
	struct {
		struct proto_dir_req req;
		struct proto_dir_version v;
	} m = { .v = { .version = htole32(version) } };
	size_t len = sizeof(m.req);
	int r;

	if (!c)
		return -EINVAL;
	if (!(c->info.features & PROTO_FEAT_DIR_RECLAIM))
		return -EOPNOTSUPP;
	_Static_assert(sizeof(m) == sizeof(m.req) + sizeof(m.v), "no padding");
	r = dir_req(c, g, tag, page, &m.req);
	if (r < 0)
		return r;
	if (!data) {
		m.req.flags = htole16(PROTO_DIR_REQ_DONE);
	} else if (recalled && (c->info.features & PROTO_FEAT_DIR_VERSION)) {
		m.req.flags = htole16(PROTO_DIR_REQ_RECALLED | PROTO_DIR_REQ_VERSION);
		len = sizeof(m);
	} else if (recalled) {
		m.req.flags = htole16(PROTO_DIR_REQ_RECALLED);
	}
	return dir_call(c, PROTO_OP_DIR_RECLAIM, &m, len, data, data ? PROTO_PAGE_SIZE : 0,
			NULL, 0, NULL);
}

int mnc_dir_write(struct mnc *c, const struct proto_grant *g, uint16_t tag, uint32_t page,
		  void *buf, bool *ret_had_copy)
{
	struct proto_dir_req req;
	uint32_t flags = 0;
	int r;

	if (!buf || !ret_had_copy)
		return -EINVAL;
	r = dir_req(c, g, tag, page, &req);
	if (r < 0)
		return r;
	r = dir_call_rep(c, PROTO_OP_DIR_WRITE, &req, PROTO_DIR_HAD_COPY, buf, &flags);
	if (r == 0)
		*ret_had_copy = flags & PROTO_DIR_HAD_COPY;
	return r;
}

int mnc_dir_next_recall(struct mnc *c, int timeout_ms, struct mnc_recall *ret)
{
	uint64_t deadline = timeout_ms == 0 ? 0 : mnconn_deadline_after(timeout_ms);

	if (!c || !ret)
		return -EINVAL;
	for (bool again = false;; again = true) {
		int r;

		if (fifo_pop(&c->recalls, ret))
			return 0;
		if (c->err)
			return c->err;
		if (again && (deadline == 0 || now_ns() >= deadline))
			return -ETIMEDOUT;
		r = mnconn_io_round(c, deadline);
		if (r < 0 && !c->recalls.len)
			return r;
	}
}

int mnc_dir_recall_ack(struct mnc *c, uint64_t seq, const void *dirty_page)
{
	struct proto_dir_ack a = { .seq = seq, .flags = dirty_page ? PROTO_DIR_DIRTY : 0 };

	wire_dir_ack_swap(&a);
	return dir_call(c, PROTO_OP_DIR_RECALL_ACK, &a, sizeof(a), dirty_page,
			dirty_page ? PROTO_PAGE_SIZE : 0, NULL, 0, NULL);
}

int mnc_dir_recall_ack_quiet(struct mnc *c, uint64_t seq, const void *dirty_page)
{
	struct proto_dir_ack a = { .seq = seq,
				   .flags = PROTO_DIR_QUIET | (dirty_page ? PROTO_DIR_DIRTY : 0) };

	if (!c)
		return -EINVAL;
	if (!(c->info.features & PROTO_FEAT_DIR_QUIET))
		return -EOPNOTSUPP;
	wire_dir_ack_swap(&a);
	return mnconn_send_only(c, PROTO_OP_DIR_RECALL_ACK, &a, sizeof(a), dirty_page,
				dirty_page ? PROTO_PAGE_SIZE : 0, c->timeout_ms);
}

/* ---- polling ----------------------------------------------------------- */

int mnc_poll(struct mnc *c, int timeout_ms)
{
	uint64_t deadline = timeout_ms == 0 ? 0 : mnconn_deadline_after(timeout_ms);
	unsigned before;
	int r;

	if (!c)
		return -EINVAL;
	if (c->err)
		return c->err;
	before = c->completions;
	for (;;) {
		r = mnconn_io_round(c, deadline);
		if (c->completions != before)
			return (int)(c->completions - before);
		if (r < 0)
			return r;
		if (c->inflight == 0 || deadline == 0 || now_ns() >= deadline)
			return 0;
	}
}

int mnc_drain(struct mnc *c)
{
	if (!c)
		return -EINVAL;
	return mnconn_wait_until(c, NULL, mnconn_deadline_after(c->timeout_ms));
}

/* ---- connection -------------------------------------------------------- */

static int handshake(struct mnc *c, const struct mnc_opts *o, uint64_t deadline)
{
	uint32_t offer = o->features ? o->features : (uint32_t)PROTO_FEAT_ALL;
	struct mnhello_id id = {
		.key = o->key, .orch_key = o->orch_key, .node_id = o->node_id,
		.features = offer, .tls_peer = fio_is_tls(&c->io) ? &c->peer : NULL,
	};
	struct proto_hello_rep hr;
	int r = mnhello_client(&c->io, &id, deadline, &hr);

	if (r < 0)
		return r;
	c->info = (struct mnc_info){
		.node_id = hr.node_id,
		.section_size = hr.section_size,
		.nsections = hr.nsections,
		.max_pages = MIN(hr.max_pages, (uint32_t)PROTO_MAX_PAGES),
		.max_inflight = MIN(hr.max_inflight, (uint32_t)PROTO_MAX_INFLIGHT),
		.features = hr.features & offer,
		.version = hr.version,
	};
	return 0;
}

/* The deadline of a connection's connect and handshake. */
static int connect_ms(const struct mnc_opts *opts)
{
	return opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms :
	       opts->timeout_ms > 0	    ? opts->timeout_ms :
					      DEFAULT_TIMEOUT;
}

int mnc_connect(const struct mnc_opts *opts, struct mnc **ret)
{
	int fd = !opts || !opts->addr || !opts->key || !ret ? -EINVAL :
		 net_connect_tcp(opts->addr, connect_ms(opts));

	return fd < 0 ? fd : mnc_connect_fd(opts, fd, ret);
}

int mnc_connect_fd(const struct mnc_opts *opts, int fd, struct mnc **ret)
{
	struct timeval tv = { .tv_usec = MNC_RCVTIMEO_MS * 1000 };
	bool args_ok = opts && opts->key && ret;
	struct mnc *c = args_ok ? calloc(1, sizeof(*c)) : NULL;
	struct tls_ctx *tls;
	uint64_t deadline;
	int r;

	if (!c) {
		close(fd);
		return args_ok ? -ENOMEM : -EINVAL;
	}
	c->fd = fd;
	c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT;
	c->free_head = c->sq_head = c->sq_tail = MNC_NONE;
	fifo_init(&c->recalls, sizeof(struct mnc_recall), MAX_RECALLS);
	deadline = mnconn_deadline_after(connect_ms(opts));
	tls = opts->tls ? opts->tls : tls_default();
	fio_init_plain(&c->io, fd, MNC_RCVTIMEO_MS);
	r = tls ? tls_client_fio(tls, fd, deadline,
				 opts->server_role ? opts->server_role : CERT_ROLE_MEMORY,
				 MNC_RCVTIMEO_MS, &c->io, &c->peer) : 0;
	if (r >= 0)
		r = handshake(c, opts, deadline);
	if (r < 0)
		goto fail;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		goto fail;
	}
	c->cap = c->info.max_inflight;
	c->slots = calloc(c->cap, sizeof(*c->slots));
	if (!c->slots) {
		r = -ENOMEM;
		goto fail;
	}
	for (unsigned i = c->cap; i-- > 0;) {
		c->slots[i].next = c->free_head;
		c->free_head = (int)i;
	}
	*ret = c;
	return 0;
fail:
	fio_done(&c->io, false);
	close(c->fd);
	free(c);
	return r;
}

void mnc_close(struct mnc *c)
{
	if (!c)
		return;
	mnconn_fail_all(c, -ECANCELED);
	fio_done(&c->io, true);
	close(c->fd);
	free(c->slots);
	fifo_free(&c->recalls);
	free(c);
}

const struct mnc_info *mnc_info(const struct mnc *c)
{
	return &c->info;
}

int mnc_fd(const struct mnc *c)
{
	return c->fd;
}

unsigned mnc_inflight(const struct mnc *c)
{
	return c->inflight;
}

bool mnc_broken(const struct mnc *c)
{
	return c->err != 0;
}
