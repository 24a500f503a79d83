// SPDX-License-Identifier: MIT
/*
 * Device-node client: the BLK_* and VOL_* requests of dnclient.h, built
 * on the memory-node client's connection engine (mnconn.h) and framed by
 * wireblk.h. Every argument the node would refuse is checked here first.
 */
#include "dnclient.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mnconn.h"
#include "wire.h"
#include "wireblk.h"

_Static_assert(MNC_HEAD_MAX >= PROTO_HDR_SIZE + sizeof(struct proto_blk_open_req), "head size");
_Static_assert(MNC_HEAD_MAX >= PROTO_HDR_SIZE + sizeof(struct proto_vol_req), "head size");

/* ---- checks ------------------------------------------------------------ */

/* A connection that serves block volumes. */
static int blk_ok(const struct mnc *c)
{
	if (!c)
		return -EINVAL;
	return c->info.features & PROTO_FEAT_BLK ? 0 : -EOPNOTSUPP;
}

/* `name` into a wire field, valid by wire_vol_name()'s rule, else -EINVAL. */
static int name_put(char field[PROTO_VOL_NAME_SIZE], const char *name)
{
	char tmp[PROTO_VOL_NAME_SIZE];

	if (!name || wire_vol_name_put(field, name) < 0 || wire_vol_name(field, tmp) < 0)
		return -EINVAL;
	return 0;
}

int dnc_name_check(const char *name)
{
	char field[PROTO_VOL_NAME_SIZE];

	return name_put(field, name);
}

/* What wire_blk_io_decode() would refuse, as the caller's mistake. */
static int io_check(const struct mnc *c, uint16_t op, uint64_t offset, uint32_t len,
		    const void *buf)
{
	bool moves = op == PROTO_OP_BLK_READ || op == PROTO_OP_BLK_WRITE;
	int r = blk_ok(c);

	if (r < 0)
		return r;
	if (len == 0 || len % PROTO_BLK_SECTOR || offset % PROTO_BLK_SECTOR || (moves && !buf))
		return -EINVAL;
	if (moves && len > PROTO_BLK_MAX_IO)
		return -E2BIG;
	if (offset > UINT64_MAX - len)
		return -ERANGE;
	return 0;
}

/* Ten times the connection's wait: FLUSH and the volume operations that write. */
static int long_ms(const struct mnc *c)
{
	return c->timeout_ms > INT32_MAX / 10 ? -1 : c->timeout_ms * 10;
}

/* ---- connecting and handles ---------------------------------------------- */

int dnc_connect(const struct mnc_opts *o, struct mnc **ret)
{
	struct mnc_opts opts;
	struct mnc *c;
	int r;

	if (!o || !ret)
		return -EINVAL;
	opts = *o;
	opts.features = PROTO_FEAT_BLK | PROTO_FEAT_REVOKE;   /* REVOKE: the orchestrator's */
	opts.server_role = CERT_ROLE_DEVICE;     /* over TLS: a device node's certificate */
	r = mnc_connect(&opts, &c);
	if (r < 0)
		return r;
	if (!(mnc_info(c)->features & PROTO_FEAT_BLK)) {
		mnc_close(c);
		return -EPROTONOSUPPORT;
	}
	*ret = c;
	return 0;
}

int dnc_open(struct mnc *c, const struct proto_grant *g, const char *name, uint32_t flags,
	     uint32_t *ret_handle, uint64_t *ret_size)
{
	struct proto_blk_open_req req = { .flags = flags };
	struct proto_blk_open_rep rep;
	int r = blk_ok(c);

	if (r < 0)
		return r;
	if (!g || !ret_handle || (flags & ~(uint32_t)(PROTO_BLK_RDONLY | PROTO_BLK_TAKEOVER)) ||
	    name_put(req.name, name) < 0)
		return -EINVAL;
	req.grant = *g;
	wire_blk_open_req_swap(&req);
	r = mnconn_call(c, PROTO_OP_BLK_OPEN, &req, sizeof(req), NULL, 0, &rep, sizeof(rep), true,
			c->timeout_ms, NULL);
	if (r < 0)
		return r;
	wire_blk_open_rep_swap(&rep);
	if (rep.flags != flags || rep.size % PROTO_BLK_SECTOR)
		return -EBADMSG;
	*ret_handle = rep.handle;
	if (ret_size)
		*ret_size = rep.size;
	return 0;
}

/* A request whose payload is a struct proto_blk_handle (FLUSH, CLOSE). */
static int handle_async(struct mnc *c, uint16_t op, uint32_t handle, mnc_done_fn done,
			void *opaque)
{
	struct proto_blk_handle m = { .handle = handle };
	struct mnc_req *r;
	int k = blk_ok(c);

	if (k < 0)
		return k;
	k = mnconn_get_slot(c, &r);
	if (k < 0)
		return k;
	r->done = done;
	r->opaque = opaque;
	r->exact = true;           /* empty reply */
	wire_blk_handle_swap(&m);
	memcpy(r->head + PROTO_HDR_SIZE, &m, sizeof(m));
	return mnconn_submit(c, r, op, sizeof(m), NULL, 0);
}

/* After submitting with mnconn_sync_done(w): wait for the answer (FLUSH: longer). */
static int wait_for(struct mnc *c, struct mnconn_sync *w, int submitted, bool flush)
{
	if (submitted < 0)
		return submitted;
	return mnconn_sync_wait(c, w, flush ? long_ms(c) : c->timeout_ms);
}

int dnc_close(struct mnc *c, uint32_t handle)
{
	struct mnconn_sync w = { 0 };

	return wait_for(c, &w, handle_async(c, PROTO_OP_BLK_CLOSE, handle, mnconn_sync_done, &w),
			false);
}

/* ---- block I/O ----------------------------------------------------------- */

static int io_async(struct mnc *c, uint16_t op, uint32_t handle, uint64_t offset, uint32_t len,
		    void *buf, mnc_done_fn done, void *opaque)
{
	struct proto_blk_io m = { .handle = handle, .len = len, .offset = offset };
	bool write = op == PROTO_OP_BLK_WRITE;
	struct mnc_req *r;
	int k = io_check(c, op, offset, len, buf);

	if (k < 0)
		return k;
	k = mnconn_get_slot(c, &r);
	if (k < 0)
		return k;
	r->done = done;
	r->opaque = opaque;
	r->exact = true;
	if (op == PROTO_OP_BLK_READ) {
		r->rbuf = buf;       /* the reply's `len` bytes land here */
		r->rlen = len;
	}
	wire_blk_io_swap(&m);
	memcpy(r->head + PROTO_HDR_SIZE, &m, sizeof(m));
	return mnconn_submit(c, r, op, sizeof(m), write ? buf : NULL, write ? len : 0);
}

int dnc_read_async(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len, void *buf,
		   mnc_done_fn done, void *opaque)
{
	return io_async(c, PROTO_OP_BLK_READ, handle, offset, len, buf, done, opaque);
}

int dnc_write_async(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len,
		    const void *data, mnc_done_fn done, void *opaque)
{
	return io_async(c, PROTO_OP_BLK_WRITE, handle, offset, len, (void *)data, done, opaque);
}

int dnc_flush_async(struct mnc *c, uint32_t handle, mnc_done_fn done, void *opaque)
{
	return handle_async(c, PROTO_OP_BLK_FLUSH, handle, done, opaque);
}

int dnc_discard_async(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len,
		      mnc_done_fn done, void *opaque)
{
	return io_async(c, PROTO_OP_BLK_DISCARD, handle, offset, len, NULL, done, opaque);
}

int dnc_write_zeroes_async(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len,
			   mnc_done_fn done, void *opaque)
{
	return io_async(c, PROTO_OP_BLK_WRITE_ZEROES, handle, offset, len, NULL, done, opaque);
}

int dnc_read(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len, void *buf)
{
	struct mnconn_sync w = { 0 };

	return wait_for(c, &w, dnc_read_async(c, handle, offset, len, buf, mnconn_sync_done, &w),
			false);
}

int dnc_write(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len, const void *data)
{
	struct mnconn_sync w = { 0 };

	return wait_for(c, &w, dnc_write_async(c, handle, offset, len, data, mnconn_sync_done, &w),
			false);
}

int dnc_flush(struct mnc *c, uint32_t handle)
{
	struct mnconn_sync w = { 0 };

	return wait_for(c, &w, dnc_flush_async(c, handle, mnconn_sync_done, &w), true);
}

int dnc_discard(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len)
{
	struct mnconn_sync w = { 0 };

	return wait_for(c, &w, dnc_discard_async(c, handle, offset, len, mnconn_sync_done, &w),
			false);
}

int dnc_write_zeroes(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len)
{
	struct mnconn_sync w = { 0 };

	return wait_for(c, &w,
			dnc_write_zeroes_async(c, handle, offset, len, mnconn_sync_done, &w),
			false);
}

/* ---- volumes ------------------------------------------------------------- */

/* A struct proto_volume off the wire: its name valid, only known flags. */
static int volume_decode(const void *p, struct dnc_volume *ret)
{
	char name[PROTO_VOL_NAME_SIZE];
	struct proto_volume v;

	memcpy(&v, p, sizeof(v));
	wire_volume_swap(&v);
	if (wire_vol_name(v.name, name) < 0 ||
	    (v.flags & ~(uint32_t)(PROTO_VOL_REFLINKED | PROTO_VOL_BLOCK)))
		return -EBADMSG;
	*ret = (struct dnc_volume){
		.size = v.size, .allocated = v.allocated, .key = v.key, .users = v.users,
		.reflinked = v.flags & PROTO_VOL_REFLINKED, .block = v.flags & PROTO_VOL_BLOCK,
	};
	memcpy(ret->name, name, sizeof(name));
	return 0;
}

/*
 * One VOL_* request naming volume `name` (src: VOL_CLONE's source, else
 * NULL); the reply describes `name` (VOL_DELETE: no reply).
 */
static int vol_call(struct mnc *c, uint16_t op, const char *name, const char *src,
		    uint64_t size, uint32_t flags, int ms, struct dnc_volume *ret)
{
	struct proto_vol_req req = { .size = size, .flags = flags };
	bool empty = op == PROTO_OP_VOL_DELETE;
	struct proto_volume rep;
	struct dnc_volume v;
	int r = blk_ok(c);

	if (r < 0)
		return r;
	if (name_put(req.name, name) < 0 || (src && name_put(req.src, src) < 0))
		return -EINVAL;
	wire_vol_req_swap(&req);
	r = mnconn_call(c, op, &req, sizeof(req), NULL, 0, empty ? NULL : &rep,
			empty ? 0 : sizeof(rep), true, ms, NULL);
	if (r < 0 || empty)
		return r;
	r = volume_decode(&rep, &v);
	if (r < 0)
		return r;
	if (strcmp(v.name, name) != 0)
		return -EBADMSG;   /* the answer is about another volume */
	if (ret)
		*ret = v;
	return 0;
}

int dnc_vol_create(struct mnc *c, const char *name, uint64_t size, struct dnc_volume *ret)
{
	if (size == 0 || size % PROTO_BLK_SECTOR)
		return -EINVAL;
	return vol_call(c, PROTO_OP_VOL_CREATE, name, NULL, size, 0, c ? long_ms(c) : 0, ret);
}

int dnc_vol_delete(struct mnc *c, const char *name)
{
	return vol_call(c, PROTO_OP_VOL_DELETE, name, NULL, 0, 0, c ? long_ms(c) : 0, NULL);
}

int dnc_vol_resize(struct mnc *c, const char *name, uint64_t size, bool shrink,
		   struct dnc_volume *ret)
{
	if (size % PROTO_BLK_SECTOR)
		return -EINVAL;
	return vol_call(c, PROTO_OP_VOL_RESIZE, name, NULL, size, shrink ? PROTO_VOL_SHRINK : 0,
			c ? long_ms(c) : 0, ret);
}

int dnc_vol_clone(struct mnc *c, const char *src, const char *dst, struct dnc_volume *ret)
{
	if (!src)
		return -EINVAL;
	return vol_call(c, PROTO_OP_VOL_CLONE, dst, src, 0, 0, c ? long_ms(c) : 0, ret);
}

int dnc_vol_stat(struct mnc *c, const char *name, struct dnc_volume *ret)
{
	return vol_call(c, PROTO_OP_VOL_STAT, name, NULL, 0, 0, c ? c->timeout_ms : 0, ret);
}

#define LIST_REP_MAX (sizeof(struct proto_list_rep) + \
		      PROTO_VOL_MAX_LIST * sizeof(struct proto_volume))
#define LIST_MAX_TOTAL (1u << 20)  /* volumes: more is a node gone wrong */

/*
 * One VOL_LIST page from `start`: the entries appended to *vols (*n of
 * them, room for *cap), *ret_count of them, *ret_next to continue.
 */
static int list_page(struct mnc *c, uint32_t start, uint8_t *buf, struct dnc_volume **vols,
		     size_t *n, size_t *cap, uint32_t *ret_count, uint32_t *ret_next)
{
	struct proto_list_req req = { .start = start, .max = PROTO_VOL_MAX_LIST };
	struct proto_list_rep lr;
	size_t len = 0;
	int r;

	wire_list_req_swap(&req);
	r = mnconn_call(c, PROTO_OP_VOL_LIST, &req, sizeof(req), NULL, 0, buf, LIST_REP_MAX, false,
			c->timeout_ms, &len);
	if (r < 0)
		return r;
	if (len < sizeof(lr))
		return -EBADMSG;
	memcpy(&lr, buf, sizeof(lr));
	wire_list_rep_swap(&lr);
	if (lr.count > PROTO_VOL_MAX_LIST ||
	    len != sizeof(lr) + (size_t)lr.count * sizeof(struct proto_volume) ||
	    (lr.count && lr.next <= start) || *n + lr.count > LIST_MAX_TOTAL)
		return -EBADMSG;
	if (*n + lr.count > *cap) {
		size_t ncap = MAX(*cap * 2, *n + lr.count);
		struct dnc_volume *nv = realloc(*vols, ncap * sizeof(**vols));

		if (!nv)
			return -ENOMEM;
		*vols = nv;
		*cap = ncap;
	}
	for (uint32_t i = 0; i < lr.count; i++) {
		r = volume_decode(buf + sizeof(lr) + (size_t)i * sizeof(struct proto_volume),
				  &(*vols)[*n]);
		if (r < 0)
			return r;
		++*n;
	}
	*ret_count = lr.count;
	*ret_next = lr.next;
	return 0;
}

int dnc_vol_list(struct mnc *c, struct dnc_volume **ret, size_t *ret_n)
{
	_cleanup_free_ struct dnc_volume *vols = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	size_t n = 0, cap = 0;
	uint32_t start = 0, count, next;
	int r = blk_ok(c);

	if (r < 0)
		return r;
	if (!ret || !ret_n)
		return -EINVAL;
	buf = malloc(LIST_REP_MAX);
	if (!buf)
		return -ENOMEM;
	/* A short page is the last: its `next` is the number of volumes. */
	do {
		r = list_page(c, start, buf, &vols, &n, &cap, &count, &next);
		if (r < 0)
			return r;
		start = next;
	} while (count == PROTO_VOL_MAX_LIST);
	*ret = TAKE_PTR(vols);
	*ret_n = n;
	return 0;
}
