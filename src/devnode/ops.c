// SPDX-License-Identifier: MIT
/*
 * The device node's handlers, one per opcode, reached through dn_ops[].
 *
 * A handler gets a frame whose header wire_hdr_decode() accepted and its
 * whole payload. It checks the payload with the wireblk.h decoders, then
 * either queues its reply (dn_reply), puts a block request on the
 * connection's ring (dn_conn_submit: the reply comes when the kernel
 * answers), or returns -errno and dn_dispatch() replies with the status.
 *
 * Grants are checked at BLK_OPEN: the signature, this node, the requester,
 * the rights, the expiry, and the volume's key against the file that was
 * opened (so a volume deleted and made again under its name is not the
 * one the grant was for). A handle then carries what it may do.
 *
 * REVOKE (the orchestrator's) replaces the revocation list (revlist.h,
 * stored in DATA/revoked) and shuts the revoked nodes' connections; HELLO
 * refuses a revoked node.
 */
#include "ops.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "net.h"
#include "wire.h"
#include "wireblk.h"

typedef int (*dn_handler_fn)(struct dn_conn *c, const struct proto_hdr *h, uint8_t *p,
			     uint8_t **owned);

struct dn_op_desc {
	dn_handler_fn fn;
	bool before_auth;        /* allowed before AUTH succeeded */
	bool orch_only;          /* needs the orchestrator's capability */
	uint32_t feature;        /* needs this feature negotiated (PROTO_FEAT_*), or 0 */
};

static struct hs_server hs_of(const struct dn_node *n)
{
	return (struct hs_server){
		.key = &n->key, .grant_key = n->grant_key, .node_id = n->node_id,
		.features = PROTO_FEAT_BLK | PROTO_FEAT_REVOKE,
	};
}

/* ---- handshake ------------------------------------------------------------------ */

static int handle_hello(struct dn_conn *c, const struct proto_hdr *h, uint8_t *p,
			uint8_t **owned)
{
	struct dn_node *n = dn_conn_node(c);
	struct hs_server s = hs_of(n);
	struct proto_hello_req req;
	struct proto_hello_rep rep = {
		.max_pages = PROTO_MAX_PAGES,
		.max_inflight = n->limits.depth,
	};
	int r;

	dn_conn_close_after_reply(c, true);   /* whatever fails, the connection ends */
	r = hs_hello_parse(dn_conn_peer(c), p, h->len, &req);
	if (r == 0 && dn_conn_identify(c, req.node_id) < 0) {
		atomic_fetch_add(&n->stats.revoked_hello, 1);
		log_info("HELLO from node %llu refused: it is revoked",
			 (unsigned long long)req.node_id);
		r = -EACCES;
	}
	if (r == 0)
		r = hs_hello_accept(&s, dn_conn_peer(c), &req, &rep);
	if (r == 0)
		r = dn_reply(c, h, PROTO_ST_OK, &rep, sizeof(rep));
	if (r == 0)
		dn_conn_close_after_reply(c, false);
	return r;
}

static int handle_auth(struct dn_conn *c, const struct proto_hdr *h, uint8_t *p,
		       uint8_t **owned)
{
	struct dn_node *n = dn_conn_node(c);
	struct hs_peer *a = dn_conn_peer(c);
	struct hs_server s = hs_of(n);
	enum hs_auth_fail why;
	int r;

	dn_conn_close_after_reply(c, true);
	r = hs_auth(&s, a, p, h->len, &why);
	if (why != HS_AUTH_OK) {
		atomic_fetch_add(&n->stats.auth_failed, 1);
		log_info("authentication failed for a client claiming node id %llu",
			 (unsigned long long)a->peer_id);
	}
	if (r < 0)
		return r;
	dn_conn_close_after_reply(c, false);
	log_debug("node %llu authenticated%s", (unsigned long long)a->peer_id,
		  a->orch ? " as the orchestrator" : "");
	return dn_reply(c, h, PROTO_ST_OK, NULL, 0);
}

static int handle_ping(struct dn_conn *c, const struct proto_hdr *h, uint8_t *p,
		       uint8_t **owned)
{
	return h->len ? -EBADMSG : dn_reply(c, h, PROTO_ST_OK, NULL, 0);
}

/* ---- open and close ------------------------------------------------------------- */

static int grant_refused(struct dn_conn *c, const char *name, int r)
{
	atomic_fetch_add(&dn_conn_node(c)->stats.grants_refused, 1);
	log_info("BLK_OPEN of %s by node %llu refused: %s", name,
		 (unsigned long long)dn_conn_peer(c)->peer_id,
		 r == -EKEYEXPIRED ? "the grant has expired" :
		 r == -EPERM	   ? "the grant lacks a right" :
		 r == -ESTALE	   ? "the grant is for another volume of that name" :
				     "the grant is not valid here");
	return r == -ESTALE ? -EKEYREJECTED : r;
}

static int handle_open(struct dn_conn *c, const struct proto_hdr *h, uint8_t *p,
		       uint8_t **owned)
{
	struct dn_node *n = dn_conn_node(c);
	struct dn_handle *hs = dn_conn_handles(c);
	struct proto_blk_open_req req;
	struct proto_blk_open_rep rep;
	char name[PROTO_VOL_NAME_SIZE];
	struct dn_volume_ref ref;
	bool rdonly;
	unsigned i;
	int r;

	r = wire_blk_open_decode(p, h->len, &req, name);
	if (r < 0)
		return r;
	rdonly = req.flags & PROTO_BLK_RDONLY;
	r = grant_verify(n->grant_key, &req.grant, n->node_id, dn_conn_peer(c)->peer_id,
			 PROTO_R_READ | (rdonly ? 0 : PROTO_R_WRITE), (uint64_t)time(NULL));
	if (r < 0)
		return grant_refused(c, name, r);
	for (i = 0; i < PROTO_BLK_MAX_HANDLES && hs[i].used; i++)
		;
	if (i == PROTO_BLK_MAX_HANDLES)
		return -E2BIG;
	r = dn_volume_open_ref(n->vols, name, 0, &ref);
	if (r < 0)
		return r == -EINVAL ? -EBADMSG : r;
	if (ref.key != wire_vol_key_of_grant(&req.grant))
		r = grant_refused(c, name, -ESTALE);
	if (r == 0) {
		r = dn_fence_join(n->fences, name, ref.key, &ref.epoch, dn_conn_peer(c)->peer_id,
				  req.grant.epoch, !rdonly, req.flags & PROTO_BLK_TAKEOVER,
				  &hs[i].fence);
		if (r == -EKEYREVOKED)
			log_info("BLK_OPEN of %s by node %llu refused: epoch %u is over", name,
				 (unsigned long long)dn_conn_peer(c)->peer_id, req.grant.epoch);
		if (r == -ETIMEDOUT)
			r = -EBUSY;
	}
	if (r < 0) {
		close(ref.fd);
		dn_volume_put(n->vols, name);
		return r;
	}
	hs[i].used = true;
	hs[i].rdonly = rdonly;
	hs[i].fd = ref.fd;
	hs[i].inflight = 0;
	hs[i].size = ref.size;
	memcpy(hs[i].name, name, sizeof(name));
	log_debug("node %llu opened %s (handle %u%s)", (unsigned long long)dn_conn_peer(c)->peer_id,
		  name, i, rdonly ? ", read-only" : "");
	rep = (struct proto_blk_open_rep){ .handle = i, .flags = req.flags, .size = ref.size };
	wire_blk_open_rep_swap(&rep);
	return dn_reply(c, h, PROTO_ST_OK, &rep, sizeof(rep));
}

/* The connection's open handle `i`, or NULL. */
static struct dn_handle *handle_of(struct dn_conn *c, uint32_t i)
{
	struct dn_handle *hs = dn_conn_handles(c);

	return i < PROTO_BLK_MAX_HANDLES && hs[i].used ? &hs[i] : NULL;
}

static int handle_close(struct dn_conn *c, const struct proto_hdr *h, uint8_t *p,
			uint8_t **owned)
{
	struct proto_blk_handle req;
	struct dn_handle *hd;
	int r = wire_blk_handle_decode(p, h->len, &req);

	if (r < 0)
		return r;
	hd = handle_of(c, req.handle);
	if (!hd)
		return -ENOENT;
	if (hd->inflight)
		return -EBUSY;       /* answer its requests first */
	dn_fence_leave(dn_conn_node(c)->fences, &hd->fence);
	close(hd->fd);
	dn_volume_put(dn_conn_node(c)->vols, hd->name);
	hd->used = false;
	return dn_reply(c, h, PROTO_ST_OK, NULL, 0);
}

/* ---- block I/O ------------------------------------------------------------------- */

static int handle_io(struct dn_conn *c, const struct proto_hdr *h, uint8_t *p,
		     uint8_t **owned)
{
	static const enum dn_blk_op ops[] = {
		[PROTO_OP_BLK_READ] = DN_BLK_READ,
		[PROTO_OP_BLK_WRITE] = DN_BLK_WRITE,
		[PROTO_OP_BLK_DISCARD] = DN_BLK_DISCARD,
		[PROTO_OP_BLK_WRITE_ZEROES] = DN_BLK_WRITE_ZEROES,
	};
	struct proto_blk_io req;
	const uint8_t *data;
	struct dn_handle *hd;
	struct dn_blk_req rq;
	uint8_t *buf = NULL;
	int r;

	r = wire_blk_io_decode(h->opcode, p, h->len, &req, &data);
	if (r < 0)
		return r;
	hd = handle_of(c, req.handle);
	if (!hd)
		return -ENOENT;
	if (hd->rdonly && h->opcode != PROTO_OP_BLK_READ)
		return -EPERM;
	if (req.offset + req.len > hd->size)
		return -ERANGE;
	if (h->opcode != PROTO_OP_BLK_READ && !dn_fence_write_begin(&hd->fence))
		return -EKEYREVOKED;   /* a newer owner holds the volume */
	rq = (struct dn_blk_req){ .op = ops[h->opcode], .fd = hd->fd, .off = req.offset,
				  .len = req.len };
	if (h->opcode == PROTO_OP_BLK_READ) {
		buf = malloc(PROTO_HDR_SIZE + (size_t)req.len);
		rq.buf = buf ? buf + PROTO_HDR_SIZE : NULL;
	} else if (h->opcode == PROTO_OP_BLK_WRITE) {
		/* The payload is ours to keep if it has a buffer of its own; else a copy. */
		buf = *owned ? *owned : malloc(h->len);
		if (buf && !*owned)
			memcpy(buf, p, h->len);
		if (buf)
			*owned = NULL;
		rq.buf = buf ? buf + sizeof(struct proto_blk_io) : NULL;
	}
	if (!buf && (h->opcode == PROTO_OP_BLK_READ || h->opcode == PROTO_OP_BLK_WRITE))
		r = -ENOMEM;
	else
		r = dn_conn_submit(c, h, &rq, req.handle, buf);
	if (r < 0) {
		free(buf);
		if (h->opcode != PROTO_OP_BLK_READ)
			dn_fence_write_end(&hd->fence);
	}
	return r;
}

static int handle_flush(struct dn_conn *c, const struct proto_hdr *h, uint8_t *p,
			uint8_t **owned)
{
	struct proto_blk_handle req;
	struct dn_handle *hd;
	struct dn_blk_req rq;
	int r = wire_blk_handle_decode(p, h->len, &req);

	if (r < 0)
		return r;
	hd = handle_of(c, req.handle);
	if (!hd)
		return -ENOENT;
	if (!dn_fence_write_begin(&hd->fence))
		return -EKEYREVOKED;
	rq = (struct dn_blk_req){ .op = DN_BLK_FLUSH, .fd = hd->fd };
	r = dn_conn_submit(c, h, &rq, req.handle, NULL);
	if (r < 0)
		dn_fence_write_end(&hd->fence);
	return r;
}

/* ---- volumes (the orchestrator's) ---------------------------------------------------- */

static void volume_wire(const struct dn_volume_info *v, bool reflinked, struct proto_volume *ret)
{
	*ret = (struct proto_volume){
		.size = v->size, .allocated = v->allocated, .key = v->key, .users = v->users,
		.flags = (reflinked ? PROTO_VOL_REFLINKED : 0) |
			 (v->kind == DN_VOLUME_BLOCK ? PROTO_VOL_BLOCK : 0),
	};
	(void)wire_vol_name_put(ret->name, v->name);
	wire_volume_swap(ret);
}

static int handle_vol(struct dn_conn *c, const struct proto_hdr *h, uint8_t *p,
		      uint8_t **owned)
{
	struct dn_volumes *vs = dn_conn_node(c)->vols;
	char name[PROTO_VOL_NAME_SIZE], src[PROTO_VOL_NAME_SIZE];
	struct dn_volume_info info;
	struct proto_volume rep;
	struct proto_vol_req req;
	bool reflinked = false;
	int r;

	r = wire_vol_req_decode(h->opcode, p, h->len, &req, name, src);
	if (r < 0)
		return r;
	switch (h->opcode) {
	case PROTO_OP_VOL_CREATE:
		r = dn_volume_create(vs, name, req.size);
		break;
	case PROTO_OP_VOL_DELETE:
		r = dn_volume_delete(vs, name);
		break;
	case PROTO_OP_VOL_RESIZE:
		r = dn_volume_resize(vs, name, req.size, req.flags & PROTO_VOL_SHRINK);
		break;
	case PROTO_OP_VOL_CLONE:
		r = dn_volume_clone(vs, src, name, &reflinked);
		break;
	default:
		r = 0;               /* VOL_STAT */
		break;
	}
	if (r == 0 && h->opcode != PROTO_OP_VOL_DELETE)
		r = dn_volume_stat(vs, name, &info);
	if (r < 0) {
		if (r == -EOPNOTSUPP)
			log_info("%s %s refused: a block device's volume is given and taken away "
				 "with --block-device", proto_op_name(h->opcode), name);
		else if (r != -ENOENT && r != -EEXIST && r != -EBUSY)
			log_info("%s %s: %s", proto_op_name(h->opcode), name, strerror(-r));
		return r == -EINVAL ? -EBADMSG : r;
	}
	if (h->opcode == PROTO_OP_VOL_DELETE) {
		log_info("volume %s deleted", name);
		return dn_reply(c, h, PROTO_ST_OK, NULL, 0);
	}
	if (h->opcode != PROTO_OP_VOL_STAT)
		log_info("volume %s: %s, %llu bytes", name, proto_op_name(h->opcode),
			 (unsigned long long)info.size);
	volume_wire(&info, reflinked, &rep);
	return dn_reply(c, h, PROTO_ST_OK, &rep, sizeof(rep));
}

static int handle_vol_list(struct dn_conn *c, const struct proto_hdr *h, uint8_t *p,
			   uint8_t **owned)
{
	_cleanup_free_ struct dn_volume_info *v = NULL;
	_cleanup_free_ uint8_t *out = NULL;
	struct proto_list_req req;
	struct proto_list_rep rep;
	size_t n = 0, count;
	int r;

	r = wire_fixed(p, h->len, &req, sizeof(req));
	if (r < 0)
		return r;
	wire_list_req_swap(&req);
	if (req.max > PROTO_VOL_MAX_LIST)
		return -E2BIG;
	r = dn_volume_list(dn_conn_node(c)->vols, &v, &n);
	if (r < 0)
		return r;
	count = req.start < n ? MIN((size_t)req.max, n - req.start) : 0;
	out = malloc(sizeof(rep) + count * sizeof(struct proto_volume));
	if (!out)
		return -ENOMEM;
	rep = (struct proto_list_rep){ .count = (uint32_t)count,
				       .next = (uint32_t)MIN(n, (size_t)req.start + count) };
	if (req.start >= n)
		rep.next = (uint32_t)n;
	wire_list_rep_swap(&rep);
	memcpy(out, &rep, sizeof(rep));
	for (size_t i = 0; i < count; i++) {
		struct proto_volume pv;

		volume_wire(&v[req.start + i], false, &pv);
		memcpy(out + sizeof(rep) + i * sizeof(pv), &pv, sizeof(pv));
	}
	return dn_reply(c, h, PROTO_ST_OK, out, sizeof(rep) + count * sizeof(struct proto_volume));
}

/* ---- revocation (the orchestrator's) ---------------------------------------------------- */

/* The whole list: stored, then the revoked nodes' connections are shut. */
static int handle_revoke(struct dn_conn *c, const struct proto_hdr *h, uint8_t *p,
			 uint8_t **owned)
{
	struct dn_node *n = dn_conn_node(c);
	int r = revlist_set_wire(&n->revoked, p, h->len);

	if (r < 0)
		return r;
	dn_conn_revoke_scan(n);
	return dn_reply(c, h, PROTO_ST_OK, NULL, 0);
}

/* ---- dispatch -------------------------------------------------------------------------- */

static const struct dn_op_desc dn_ops[PROTO_OP_MAX] = {
	[PROTO_OP_HELLO] = { handle_hello, true, false },
	[PROTO_OP_AUTH] = { handle_auth, true, false },
	[PROTO_OP_PING] = { handle_ping, false, false },
	[PROTO_OP_BLK_OPEN] = { handle_open, false, false },
	[PROTO_OP_BLK_READ] = { handle_io, false, false },
	[PROTO_OP_BLK_WRITE] = { handle_io, false, false },
	[PROTO_OP_BLK_FLUSH] = { handle_flush, false, false },
	[PROTO_OP_BLK_DISCARD] = { handle_io, false, false },
	[PROTO_OP_BLK_WRITE_ZEROES] = { handle_io, false, false },
	[PROTO_OP_BLK_CLOSE] = { handle_close, false, false },
	[PROTO_OP_VOL_CREATE] = { handle_vol, false, true },
	[PROTO_OP_VOL_DELETE] = { handle_vol, false, true },
	[PROTO_OP_VOL_RESIZE] = { handle_vol, false, true },
	[PROTO_OP_VOL_CLONE] = { handle_vol, false, true },
	[PROTO_OP_VOL_STAT] = { handle_vol, false, true },
	[PROTO_OP_VOL_LIST] = { handle_vol_list, false, true },
	[PROTO_OP_REVOKE] = { handle_revoke, false, true, PROTO_FEAT_REVOKE },
};

void dn_dispatch(struct dn_conn *c, const struct proto_hdr *h, uint8_t *payload,
		 uint8_t **owned)
{
	struct dn_node *n = dn_conn_node(c);
	struct hs_peer *a = dn_conn_peer(c);
	const struct dn_op_desc *d = &dn_ops[h->opcode]; /* 0 < opcode < PROTO_OP_MAX */
	bool async = h->opcode >= PROTO_OP_BLK_READ && h->opcode <= PROTO_OP_BLK_WRITE_ZEROES;
	uint64_t t0 = now_ns();
	int r;

	atomic_fetch_add(&n->stats.requests[h->opcode], 1);
	if (!a->authed && !d->before_auth) {
		dn_reply(c, h, PROTO_ST_NOAUTH, NULL, 0);
		dn_conn_close_after_reply(c, true);
		return;
	}
	if (!d->fn || (d->feature && !(a->features & d->feature))) {
		r = -EOPNOTSUPP;
	} else if (d->orch_only && !a->orch) {
		atomic_fetch_add(&n->stats.denied, 1);
		log_info("%s from node %llu refused: only the orchestrator may",
			 proto_op_name(h->opcode), (unsigned long long)a->peer_id);
		r = -ENOKEY;
	} else {
		r = d->fn(c, h, payload, owned);
	}
	if (r < 0) {
		atomic_fetch_add(&n->stats.errors[h->opcode], 1);
		if (r == -ENOMEM)
			log_warn("out of memory answering %s", proto_op_name(h->opcode));
		dn_reply(c, h, proto_errno_to_status(r), NULL, 0);
	}
	/* Block I/O is timed when the kernel answers (conn.c). */
	if (r < 0 || !async)
		hist_observe(&n->stats.latency[h->opcode], now_ns() - t0);
}
