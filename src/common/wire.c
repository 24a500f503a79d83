// SPDX-License-Identifier: MIT
/*
 * Frame codec and validator. See wire.h. The fuzz target
 * tests/fuzz/fuzz_frame.c drives every decoder here with hostile input.
 */
#include "wire.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "macro.h"

#define LE16(x) ((x) = le16toh(x))
#define LE32(x) ((x) = le32toh(x))
#define LE64(x) ((x) = le64toh(x))

/* le<->host is the same swap in both directions. */

void wire_hdr_encode(const struct proto_hdr *h, void *buf)
{
	struct proto_hdr w = {
		.magic = htole32(h->magic),
		.version = htole16(h->version),
		.opcode = htole16(h->opcode),
		.flags = htole32(h->flags),
		.len = htole32(h->len),
		.req_id = htole64(h->req_id),
		.status = htole32(h->status),
		.rsvd = 0,
	};
	memcpy(buf, &w, sizeof(w));
}

int wire_hdr_decode(const void *buf, size_t len, struct proto_hdr *ret)
{
	struct proto_hdr h;

	if (len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, buf, sizeof(h));
	LE32(h.magic);
	LE16(h.version);
	LE16(h.opcode);
	LE32(h.flags);
	LE32(h.len);
	LE64(h.req_id);
	LE32(h.status);
	LE32(h.rsvd);

	if (h.magic != PROTO_MAGIC || h.rsvd != 0 || (h.flags & ~(uint32_t)PROTO_F_KNOWN))
		return -EBADMSG;
	if (h.opcode == PROTO_OP_INVALID || h.opcode >= PROTO_OP_MAX)
		return -EBADMSG;
	/* HELLO negotiates the version; every other frame must match it. */
	if (h.opcode != PROTO_OP_HELLO && h.version != PROTO_VERSION)
		return -EPROTONOSUPPORT;
	/* A request never carries a status; a reply carries a known one. */
	if (h.flags & PROTO_F_REPLY ? h.status >= PROTO_ST_MAX : h.status != 0)
		return -EBADMSG;
	if (h.len > PROTO_MAX_PAYLOAD)
		return -E2BIG;
	*ret = h;
	return 0;
}

void wire_grant_swap(struct proto_grant *g)
{
	LE64(g->memnode_id);
	LE64(g->holder_id);
	LE32(g->section);
	LE32(g->generation);
	LE32(g->rights);
	LE32(g->epoch);
	LE64(g->expiry);
}

void wire_extent_swap(struct proto_extent *e)
{
	LE32(e->page);
	LE32(e->count);
}

struct proto_extent wire_io_extent(const struct wire_io *io, uint32_t i)
{
	struct proto_extent e;

	memcpy(&e, io->extents + (size_t)i * sizeof(e), sizeof(e));
	wire_extent_swap(&e);
	return e;
}

int wire_io_decode(const void *payload, size_t len, bool write, uint32_t section_pages,
		   uint32_t max_pages, struct wire_io *ret)
{
	const uint8_t *p = payload;
	struct proto_io_req req;
	uint64_t total = 0;
	size_t need;

	if (len < sizeof(req))
		return -EBADMSG;
	memcpy(&req, p, sizeof(req));
	wire_grant_swap(&req.grant);
	LE32(req.nextents);
	LE32(req.rsvd);
	if (req.rsvd != 0)
		return -EBADMSG;
	if (req.nextents == 0)
		return -EBADMSG;
	if (req.nextents > PROTO_MAX_EXTENTS)
		return -E2BIG;
	need = sizeof(req) + (size_t)req.nextents * sizeof(struct proto_extent);
	if (len < need)
		return -EBADMSG;

	struct wire_io io = {
		.grant = req.grant,
		.nextents = req.nextents,
		.extents = p + sizeof(req),
	};
	for (uint32_t i = 0; i < req.nextents; i++) {
		struct proto_extent e = wire_io_extent(&io, i);

		if (e.count == 0)
			return -EBADMSG;
		/* 64-bit sums: page + count cannot wrap. */
		if ((uint64_t)e.page + e.count > section_pages)
			return -ERANGE;
		total += e.count;
		if (total > max_pages || total > PROTO_MAX_PAGES)
			return -E2BIG;
	}
	io.npages = (uint32_t)total;
	if (write) {
		if (len != need + (size_t)io.npages * PROTO_PAGE_SIZE)
			return -EBADMSG;
		io.data = p + need;
	} else if (len != need) {
		return -EBADMSG;
	}
	*ret = io;
	return 0;
}

void wire_hello_req_swap(struct proto_hello_req *m)
{
	LE16(m->ver_min);
	LE16(m->ver_max);
	LE32(m->features);
	LE64(m->node_id);
}

void wire_hello_rep_swap(struct proto_hello_rep *m)
{
	LE16(m->version);
	LE16(m->rsvd);
	LE32(m->features);
	LE64(m->node_id);
	LE32(m->max_pages);
	LE32(m->max_inflight);
	LE64(m->section_size);
	LE32(m->nsections);
	LE32(m->rsvd2);
}

void wire_alloc_req_swap(struct proto_alloc_req *m)
{
	LE64(m->owner_id);
	LE32(m->flags);
	LE32(m->rsvd);
}

void wire_section_swap(struct proto_section *m)
{
	LE32(m->section);
	LE32(m->generation);
	LE64(m->owner_id);
}

void wire_free_req_swap(struct proto_free_req *m)
{
	LE32(m->section);
	LE32(m->generation);
	LE32(m->epoch);
	LE32(m->rsvd);
}

void wire_list_req_swap(struct proto_list_req *m)
{
	LE32(m->start);
	LE32(m->max);
}

void wire_list_rep_swap(struct proto_list_rep *m)
{
	LE32(m->count);
	LE32(m->next);
}

void wire_atomic_req_swap(struct proto_atomic_req *m)
{
	wire_grant_swap(&m->grant);
	LE64(m->offset);
	LE64(m->expect);
	LE64(m->value);
}

void wire_u64_swap(uint64_t *v)
{
	LE64(*v);
}

void wire_copy_req_swap(struct proto_copy_req *m)
{
	wire_grant_swap(&m->src_grant);
	wire_grant_swap(&m->dst_grant);
}

void wire_copy_rep_swap(struct proto_copy_rep *m)
{
	LE64(m->pages);
	LE64(m->usec);
}

void wire_fence_rep_swap(struct proto_fence_rep *m)
{
	LE32(m->epoch);
	LE32(m->rsvd);
}

void wire_stats_rep_swap(struct proto_stats_rep *m)
{
	LE64(m->node_id);
	LE64(m->section_size);
	LE32(m->nsections);
	LE32(m->nused);
	LE64(m->requests);
	LE64(m->errors);
	LE64(m->bytes_read);
	LE64(m->bytes_written);
	LE64(m->connections);
}

void wire_dir_req_swap(struct proto_dir_req *m)
{
	wire_grant_swap(&m->grant);
	LE32(m->page);
	LE16(m->flags);
	LE16(m->tag);
}

void wire_dir_write_rep_swap(struct proto_dir_write_rep *m)
{
	LE32(m->flags);
	LE32(m->rsvd);
}

void wire_dir_recall_swap(struct proto_dir_recall *m)
{
	LE64(m->seq);
	LE32(m->section);
	LE32(m->generation);
	LE32(m->page);
	LE32(m->mode);
	LE32(m->grants);
	LE32(m->version);
}

void wire_dir_ack_swap(struct proto_dir_ack *m)
{
	LE64(m->seq);
	LE32(m->flags);
	LE32(m->rsvd);
}

int wire_dir_req_decode(const void *payload, size_t len, struct proto_dir_req *ret)
{
	struct proto_dir_req m;
	int r = wire_fixed(payload, len, &m, sizeof(m));

	if (r < 0)
		return r;
	wire_dir_req_swap(&m);
	if (m.flags & ~(uint16_t)PROTO_DIR_REQ_TAKE)
		return -EBADMSG;
	*ret = m;
	return 0;
}

int wire_dir_reclaim_decode(const void *payload, size_t len, struct proto_dir_req *ret,
			    uint32_t *ret_version, const uint8_t **ret_page)
{
	const uint8_t *b = payload;
	struct proto_dir_version v = { 0 };
	struct proto_dir_req m;
	size_t want;

	if (!payload || len < sizeof(m))
		return -EBADMSG;
	memcpy(&m, payload, sizeof(m));
	wire_dir_req_swap(&m);
	if ((m.flags & ~(uint16_t)(PROTO_DIR_REQ_DONE | PROTO_DIR_REQ_RECALLED |
				   PROTO_DIR_REQ_VERSION)) ||
	    ((m.flags & PROTO_DIR_REQ_DONE) && (m.flags & PROTO_DIR_REQ_RECALLED)) ||
	    ((m.flags & PROTO_DIR_REQ_VERSION) && !(m.flags & PROTO_DIR_REQ_RECALLED)))
		return -EBADMSG;
	/* DONE carries no page; a page is exactly one, after the version if any. */
	want = sizeof(m) + ((m.flags & PROTO_DIR_REQ_VERSION) ? sizeof(v) : 0) +
	       ((m.flags & PROTO_DIR_REQ_DONE) ? 0 : PROTO_PAGE_SIZE);
	if (len != want)
		return -EBADMSG;
	if (m.flags & PROTO_DIR_REQ_VERSION) {
		memcpy(&v, b + sizeof(m), sizeof(v));
		LE32(v.version);
		LE32(v.rsvd);
		if (v.rsvd)
			return -EBADMSG;
	}
	*ret = m;
	*ret_version = v.version;
	*ret_page = (m.flags & PROTO_DIR_REQ_DONE) ? NULL : b + len - PROTO_PAGE_SIZE;
	return 0;
}

int wire_dir_who_decode(const void *payload, size_t len, struct proto_grant *ret_grant,
			uint16_t *ret_tag)
{
	struct proto_dir_who w = { 0 };
	struct proto_grant g;

	if (!payload || (len != sizeof(g) && len != sizeof(g) + sizeof(w)))
		return -EBADMSG;
	memcpy(&g, payload, sizeof(g));
	if (len > sizeof(g))
		memcpy(&w, (const uint8_t *)payload + sizeof(g), sizeof(w));
	wire_grant_swap(&g);
	LE16(w.tag);
	LE16(w.rsvd);
	LE32(w.rsvd2);
	if (w.rsvd || w.rsvd2)
		return -EBADMSG;
	*ret_grant = g;
	*ret_tag = w.tag;
	return 0;
}

int wire_dir_ack_decode(const void *payload, size_t len, struct proto_dir_ack *ret,
			const uint8_t **ret_page)
{
	struct proto_dir_ack m;

	if (len < sizeof(m))
		return -EBADMSG;
	memcpy(&m, payload, sizeof(m));
	wire_dir_ack_swap(&m);
	if (m.rsvd != 0 || (m.flags & ~(uint32_t)(PROTO_DIR_DIRTY | PROTO_DIR_QUIET)))
		return -EBADMSG;
	if (len != sizeof(m) + (m.flags & PROTO_DIR_DIRTY ? PROTO_PAGE_SIZE : 0))
		return -EBADMSG;
	*ret = m;
	*ret_page = m.flags & PROTO_DIR_DIRTY ? (const uint8_t *)payload + sizeof(m) : NULL;
	return 0;
}

int wire_dir_recall_decode(const void *payload, size_t len, struct proto_dir_recall *ret)
{
	struct proto_dir_recall m;
	int r = wire_fixed(payload, len, &m, sizeof(m));

	if (r < 0)
		return r;
	wire_dir_recall_swap(&m);
	if (m.mode != PROTO_DIR_DOWNGRADE && m.mode != PROTO_DIR_INVALIDATE)
		return -EBADMSG;
	*ret = m;
	return 0;
}

int wire_fixed(const void *payload, size_t len, void *ret, size_t size)
{
	if (len != size)
		return -EBADMSG;
	memcpy(ret, payload, size);
	return 0;
}

/* ---- status codes ------------------------------------------------------ */

static const struct {
	int err;
	const char *str;
} status_table[PROTO_ST_MAX] = {
	[PROTO_ST_OK] = { 0, "ok" },
	[PROTO_ST_BADMSG] = { EBADMSG, "malformed message" },
	[PROTO_ST_VERSION] = { EPROTONOSUPPORT, "no common protocol version" },
	[PROTO_ST_NOAUTH] = { EACCES, "not authenticated" },
	[PROTO_ST_GRANT] = { EKEYREJECTED, "grant rejected" },
	[PROTO_ST_RIGHTS] = { EPERM, "grant does not allow this access" },
	[PROTO_ST_NOENT] = { ENOENT, "no such section or volume" },
	[PROTO_ST_RANGE] = { ERANGE, "outside the section or volume" },
	[PROTO_ST_NOSPC] = { ENOSPC, "no free section" },
	[PROTO_ST_TOOBIG] = { E2BIG, "over a protocol limit" },
	[PROTO_ST_BUSY] = { EBUSY, "busy" },
	[PROTO_ST_IO] = { EIO, "I/O error" },
	[PROTO_ST_NOTSUP] = { EOPNOTSUPP, "not supported" },
	[PROTO_ST_STALE] = { ESTALE, "stale section generation" },
	[PROTO_ST_INTERNAL] = { ENOMEM, "internal error" },
	[PROTO_ST_FENCED] = { EKEYREVOKED, "fenced: the grant's ownership epoch is over" },
	[PROTO_ST_DENIED] = { ENOKEY, "only the orchestrator may do this" },
	[PROTO_ST_DIR_DETACHED] = { EUNATCH, "not attached to the section's directory" },
	[PROTO_ST_DIR_FULL] = { EUSERS, "the section's directory has no room for another holder" },
	[PROTO_ST_DIR_GRACE] = { EINPROGRESS, "the directory waits for its holders after a restart" },
	[PROTO_ST_EXIST] = { EEXIST, "the name is taken" },
};

int proto_status_to_errno(uint32_t st)
{
	if (st >= PROTO_ST_MAX)
		return -EPROTO;
	return -status_table[st].err;
}

uint32_t proto_errno_to_status(int err)
{
	if (err < 0)
		err = -err;
	if (err == 0)
		return PROTO_ST_OK;
	for (uint32_t i = 1; i < PROTO_ST_MAX; i++)
		if (status_table[i].err == err)
			return i;
	if (err == EINVAL || err == EPROTO)
		return PROTO_ST_BADMSG;
	if (err == EKEYEXPIRED)
		return PROTO_ST_GRANT;
	return PROTO_ST_INTERNAL;
}

const char *proto_status_str(uint32_t st)
{
	return st < PROTO_ST_MAX ? status_table[st].str : "unknown status";
}

const char *proto_op_name(uint32_t op)
{
	static const char *const names[PROTO_OP_MAX] = {
		[PROTO_OP_INVALID] = "invalid",
		[PROTO_OP_HELLO] = "hello",
		[PROTO_OP_AUTH] = "auth",
		[PROTO_OP_PING] = "ping",
		[PROTO_OP_SECTION_ALLOC] = "section_alloc",
		[PROTO_OP_SECTION_FREE] = "section_free",
		[PROTO_OP_SECTION_LIST] = "section_list",
		[PROTO_OP_READ] = "read",
		[PROTO_OP_WRITE] = "write",
		[PROTO_OP_CAS] = "cas",
		[PROTO_OP_FADD] = "fadd",
		[PROTO_OP_COPY] = "copy",
		[PROTO_OP_STATS] = "stats",
		[PROTO_OP_FENCE] = "fence",
		[PROTO_OP_REVOKE] = "revoke",
		[PROTO_OP_DIR_ATTACH] = "dir_attach",
		[PROTO_OP_DIR_READ] = "dir_read",
		[PROTO_OP_DIR_WRITE] = "dir_write",
		[PROTO_OP_DIR_RECALL] = "dir_recall",
		[PROTO_OP_DIR_RECALL_ACK] = "dir_recall_ack",
		[PROTO_OP_DIR_DETACH] = "dir_detach",
		[PROTO_OP_WRITE_DIFF] = "write_diff",
		[PROTO_OP_DIR_RECLAIM] = "dir_reclaim",
		[PROTO_OP_BLK_OPEN] = "blk_open",
		[PROTO_OP_BLK_READ] = "blk_read",
		[PROTO_OP_BLK_WRITE] = "blk_write",
		[PROTO_OP_BLK_FLUSH] = "blk_flush",
		[PROTO_OP_BLK_DISCARD] = "blk_discard",
		[PROTO_OP_BLK_WRITE_ZEROES] = "blk_write_zeroes",
		[PROTO_OP_BLK_CLOSE] = "blk_close",
		[PROTO_OP_VOL_CREATE] = "vol_create",
		[PROTO_OP_VOL_DELETE] = "vol_delete",
		[PROTO_OP_VOL_RESIZE] = "vol_resize",
		[PROTO_OP_VOL_CLONE] = "vol_clone",
		[PROTO_OP_VOL_STAT] = "vol_stat",
		[PROTO_OP_VOL_LIST] = "vol_list",
	};
	return op < PROTO_OP_MAX ? names[op] : "unknown";
}
