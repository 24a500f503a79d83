// SPDX-License-Identifier: MIT
/*
 * One handle_<op>() per protocol opcode, reached through mn_ops[].
 *
 * A handler gets a frame whose header wire_hdr_decode() already accepted
 * and its complete payload (h->len bytes). It validates the payload with
 * the wire_* decoders, does the work and queues exactly one reply; or it
 * returns -errno and mn_dispatch() queues an empty reply with the matching
 * status (proto_errno_to_status()); or it returns MN_DEFERRED when the
 * reply will come later from another thread (COPY, and the directory's
 * requests that wait for recalls: dir.c).
 *
 * Grants are checked on every page I/O and atomic request. The last grant
 * that verified on a connection is cached (compared byte for byte), so a
 * pager hammering one section pays for the HMAC once; expiry, rights,
 * generation and the section state are still checked on every request,
 * and so is the grant's ownership epoch on every write (fence.c).
 */
#include "memnode.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "dir_grace.h"
#include "grantcache.h"
#include "log.h"
#include "macro.h"
#include "net.h"
#include "once.h"
#include "wire.h"
#include "wirediff.h"

#define MN_DEFERRED 1

typedef int (*mn_handler_fn)(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p);

struct mn_op_desc {
	mn_handler_fn fn;
	bool before_auth;        /* allowed before AUTH succeeded */
	bool orch_only;          /* needs the orchestrator's capability (AUTH proof) */
	uint32_t feature;        /* negotiated feature the op needs, or 0 */
};

static int check_grant(struct mn_conn *c, const struct proto_grant *g, uint32_t rights);

void mn_reply_status(struct mn_conn *c, const struct proto_hdr *h, uint32_t status)
{
	struct mn_obuf *ob = mn_reply_new(h, status, 0);

	if (!ob) {
		mn_conn_close_after_reply(c);
		return;
	}
	mn_conn_queue(c, ob);
}

/* Queue a reply with a fixed payload (already in wire byte order). */
static int reply_with(struct mn_conn *c, const struct proto_hdr *h, const void *payload,
		      size_t len)
{
	struct mn_obuf *ob = mn_reply_new(h, PROTO_ST_OK, len);

	if (!ob)
		return -ENOMEM;
	if (len)
		memcpy(ob->data + PROTO_HDR_SIZE, payload, len);
	mn_conn_queue(c, ob);
	return 0;
}

/* A request that needs the orchestrator's capability, from someone else. */
static int deny(struct mn_conn *c, const struct proto_hdr *h)
{
	struct mn_node *n = mn_conn_node(c);

	atomic_fetch_add(&n->stats.denied, 1);
	log_info("%s from node %llu refused: only the orchestrator may", proto_op_name(h->opcode),
		 (unsigned long long)mn_conn_auth(c)->hs.peer_id);
	return -ENOKEY;
}

/* ---- handshake -------------------------------------------------------------- */

/* What this node says of itself in HELLO and checks at AUTH. */
static struct hs_server hs_of(const struct mn_node *n)
{
	return (struct hs_server){
		.key = &n->key, .grant_key = n->grant_key, .node_id = n->node_id,
		.features = PROTO_FEAT_ALL | PROTO_FEAT_DIR_CONN,
	};
}

static int handle_hello(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	struct hs_peer *a = &mn_conn_auth(c)->hs;
	struct hs_server s = hs_of(n);
	struct proto_hello_req req;
	struct proto_hello_rep rep = {
		.max_pages = PROTO_MAX_PAGES,
		.max_inflight = PROTO_MAX_INFLIGHT,
		.section_size = n->pool->section_size,
		.nsections = n->pool->nsections,
	};
	int r;

	/* Whatever happens, a failed HELLO ends the connection. */
	mn_conn_close_after_reply(c);
	r = hs_hello_parse(a, p, h->len, &req);
	if (r == -EACCES) {
		atomic_fetch_add(&n->stats.id_node_mismatch, 1);
		log_info("HELLO names node %llu, the client's certificate node %llu: refused",
			 (unsigned long long)req.node_id, (unsigned long long)a->cert.node_id);
	}
	if (r < 0)
		return r;
	if (revlist_has(&n->revoked, req.node_id)) {
		atomic_fetch_add(&n->stats.revoked_hello, 1);
		log_info("HELLO from node %llu refused: it is revoked",
			 (unsigned long long)req.node_id);
		return -EACCES;
	}
	r = hs_hello_accept(&s, a, &req, &rep);
	if (r == 0)
		r = reply_with(c, h, &rep, sizeof(rep));
	if (r < 0)
		return r;
	/* Keep the connection: AUTH comes next. */
	mn_conn_keep_open(c);
	if (a->features & PROTO_FEAT_DIR_CONN)
		mn_conn_dir_worker(c);
	return 0;
}

static int handle_auth(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	struct hs_peer *a = &mn_conn_auth(c)->hs;
	struct hs_server s = hs_of(n);
	bool orch = h->len == sizeof(struct proto_auth_orch_req);
	enum hs_auth_fail why;
	int r;

	if (a->authed)
		return -EBADMSG;
	mn_conn_close_after_reply(c);
	r = hs_auth(&s, a, p, h->len, &why);
	if (why == HS_AUTH_PROOF) {
		atomic_fetch_add(&n->stats.auth_failed, 1);
		log_info("authentication failed for a client claiming node id %llu%s",
			 (unsigned long long)a->peer_id, orch ? " and the orchestrator's capability" : "");
	} else if (why == HS_AUTH_ROLE) {
		atomic_fetch_add(&n->stats.id_role, 1);
		log_info("node %llu (a %s certificate) offered the orchestrator's capability: refused",
			 (unsigned long long)a->peer_id, cert_role_name(a->cert.role));
	}
	if (r < 0)
		return r;
	mn_conn_keep_open(c);
	log_debug("node %llu authenticated%s", (unsigned long long)a->peer_id,
		  orch ? " as the orchestrator" : "");
	return reply_with(c, h, NULL, 0);
}

static int handle_ping(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	return reply_with(c, h, NULL, 0);
}

/* ---- sections ------------------------------------------------------------- */

static int handle_section_alloc(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	struct proto_alloc_req req;
	struct proto_section s;
	int r;

	r = wire_fixed(p, h->len, &req, sizeof(req));
	if (r < 0)
		return r;
	wire_alloc_req_swap(&req);
	if (req.flags != 0 || req.rsvd != 0)
		return -EBADMSG;
	r = mn_table_alloc(&n->table, req.owner_id, &s);
	if (r < 0) {
		if (r != -ENOSPC)
			log_error("allocating a section failed: %s", strerror(-r));
		return r;
	}
	log_debug("section %u generation %u allocated to owner %llu", s.section, s.generation,
		  (unsigned long long)s.owner_id);
	wire_section_swap(&s);
	return reply_with(c, h, &s, sizeof(s));
}

static int handle_section_free(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	struct proto_free_req req = { 0 };
	int r;

	if (h->len == sizeof(struct proto_grant)) {
		/* The grant form: anyone whose grant carries PROTO_R_FREE. */
		struct proto_grant g;

		r = wire_fixed(p, h->len, &g, sizeof(g));
		if (r < 0)
			return r;
		wire_grant_swap(&g);
		r = check_grant(c, &g, PROTO_R_FREE);
		if (r < 0)
			return r;
		req = (struct proto_free_req){ .section = g.section, .generation = g.generation,
					       .epoch = g.epoch };
	} else {
		if (!mn_conn_auth(c)->hs.orch)
			return deny(c, h);
		if (h->len == PROTO_FREE_REQ_SHORT)
			r = wire_fixed(p, h->len, &req, PROTO_FREE_REQ_SHORT);
		else
			r = wire_fixed(p, h->len, &req, sizeof(req));
		if (r < 0)
			return r;
		wire_free_req_swap(&req);
		if (req.rsvd != 0)
			return -EBADMSG;
	}
	r = mn_table_free(&n->table, req.section, req.generation, req.epoch);
	if (r == -EKEYREVOKED) {
		atomic_fetch_add(&n->stats.fenced, 1);
		log_info("section %u: free by node %llu refused, its epoch %u is over", req.section,
			 (unsigned long long)mn_conn_auth(c)->hs.peer_id, req.epoch);
	}
	if (r < 0)
		return r;
	log_debug("section %u generation %u freed", req.section, req.generation);
	return reply_with(c, h, NULL, 0);
}

static int handle_section_list(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	struct proto_list_req req;
	struct proto_list_rep rep;
	struct mn_obuf *ob;
	_cleanup_free_ struct proto_section *ents = NULL;
	uint32_t count, next;
	int r;

	r = wire_fixed(p, h->len, &req, sizeof(req));
	if (r < 0)
		return r;
	wire_list_req_swap(&req);
	if (req.max == 0 || req.max > PROTO_MAX_LIST)
		req.max = PROTO_MAX_LIST;
	ents = malloc((size_t)req.max * sizeof(*ents));
	if (!ents)
		return -ENOMEM;
	count = mn_table_list(&n->table, req.start, req.max, ents, &next);
	ob = mn_reply_new(h, PROTO_ST_OK, sizeof(rep) + (size_t)count * sizeof(*ents));
	if (!ob)
		return -ENOMEM;
	rep = (struct proto_list_rep){ .count = count, .next = next };
	wire_list_rep_swap(&rep);
	memcpy(ob->data + PROTO_HDR_SIZE, &rep, sizeof(rep));
	for (uint32_t i = 0; i < count; i++) {
		wire_section_swap(&ents[i]);
		memcpy(ob->data + PROTO_HDR_SIZE + sizeof(rep) + (size_t)i * sizeof(*ents),
		       &ents[i], sizeof(*ents));
	}
	mn_conn_queue(c, ob);
	return 0;
}

/* ---- grants and page I/O ------------------------------------------------------ */

/*
 * Lock section g->section for an access through grant g: a write is
 * checked against the section's ownership epoch (and raises it for a
 * newer grant), a read only against the generation.
 */
static int lock_section(struct mn_conn *c, const struct proto_grant *g, bool write)
{
	struct mn_node *n = mn_conn_node(c);
	bool raised;
	int r;

	if (!write)
		return mn_table_rdlock(&n->table, g->section, g->generation);
	r = mn_table_lock_write(&n->table, g->section, g->generation, g->epoch, &raised);
	if (raised) {
		atomic_fetch_add(&n->stats.epoch_raises, 1);
		log_info("section %u: ownership epoch %u, raised by a write of node %llu",
			 g->section, g->epoch, (unsigned long long)g->holder_id);
	}
	if (r == -EKEYREVOKED) {
		atomic_fetch_add(&n->stats.fenced, 1);
		log_debug("section %u: write of node %llu refused, its epoch %u is over",
			  g->section, (unsigned long long)g->holder_id, g->epoch);
	}
	return r;
}

static int check_grant(struct mn_conn *c, const struct proto_grant *g, uint32_t rights)
{
	struct mn_node *n = mn_conn_node(c);
	struct mn_conn_auth *a = mn_conn_auth(c);
	uint64_t now = (uint64_t)time(NULL);
	int r;

	for (unsigned i = 0; i < a->ngrants; i++) {
		if (memcmp(&a->grants[i], g, sizeof(*g)) != 0)
			continue;
		if (g->expiry != 0 && g->expiry <= now) {
			atomic_fetch_add(&n->stats.grants_expired, 1);
			return -EKEYEXPIRED;
		}
		if ((g->rights & rights) != rights) {
			atomic_fetch_add(&n->stats.grants_rights, 1);
			return -EPERM;
		}
		return 0;
	}
	if (mn_grant_cache_has(n->gcache, g)) {
		r = grant_check_fields(g, n->node_id, a->hs.peer_id, rights, now);
	} else {
		r = grant_verify(n->grant_key, g, n->node_id, a->hs.peer_id, rights, now);
		if (r == 0 || r == -EPERM)      /* the signature is good */
			mn_grant_cache_add(n->gcache, g);
	}
	if (r == -EKEYREJECTED)
		atomic_fetch_add(&n->stats.grants_rejected, 1);
	else if (r == -EKEYEXPIRED)
		atomic_fetch_add(&n->stats.grants_expired, 1);
	else if (r == -EPERM)
		atomic_fetch_add(&n->stats.grants_rights, 1);
	if (r == 0 || r == -EPERM) {
		/* Authentic and addressed to this peer: remember it. */
		a->grants[a->next_grant] = *g;
		a->next_grant = (a->next_grant + 1) % MN_GRANT_CACHE;
		if (a->ngrants < MN_GRANT_CACHE)
			a->ngrants++;
	}
	return r;
}

static int handle_io(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p, bool write)
{
	struct mn_node *n = mn_conn_node(c);
	struct mn_pool *pool = n->pool;
	struct mn_obuf *ob = NULL;
	struct wire_io io;
	const uint8_t *src;
	uint8_t *base, *dst;
	int r;

	r = wire_io_decode(p, h->len, write, pool->section_pages, PROTO_MAX_PAGES, &io);
	if (r < 0)
		return r;
	r = check_grant(c, &io.grant, write ? PROTO_R_WRITE : PROTO_R_READ);
	if (r < 0)
		return r;
	if (!write) {
		ob = mn_reply_new(h, PROTO_ST_OK, (size_t)io.npages * PROTO_PAGE_SIZE);
		if (!ob)
			return -ENOMEM;
	}
	r = lock_section(c, &io.grant, write);
	if (r < 0) {
		free(ob);
		return r;
	}
	base = mn_pool_section(pool, io.grant.section);
	src = io.data;
	dst = ob ? ob->data + PROTO_HDR_SIZE : NULL;
	for (uint32_t i = 0; i < io.nextents; i++) {
		struct proto_extent e = wire_io_extent(&io, i);
		size_t off = (size_t)e.page * PROTO_PAGE_SIZE, len = (size_t)e.count * PROTO_PAGE_SIZE;

		if (write) {
			memcpy(base + off, src, len);
			src += len;
		} else {
			memcpy(dst, base + off, len);
			dst += len;
		}
	}
	mn_table_unlock(&n->table, io.grant.section);
	if (write) {
		atomic_fetch_add(&n->stats.bytes_written, (uint64_t)io.npages * PROTO_PAGE_SIZE);
		return reply_with(c, h, NULL, 0);
	}
	atomic_fetch_add(&n->stats.bytes_read, (uint64_t)io.npages * PROTO_PAGE_SIZE);
	mn_conn_queue(c, ob);
	return 0;
}

/*
 * WRITE_DIFF: a release region's diffs, byte runs of pages, applied like a
 * WRITE (write right, epoch fenced, under the section's lock). The whole
 * request is validated first (wirediff.c): a malformed one changes nothing.
 * A frame with PROTO_DIFF_ONCE that this node applied before answers OK
 * and changes nothing (once.h); its check and its apply are one step.
 */
static int handle_write_diff(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	bool once, apply = true;
	struct wire_diff d;
	int r;

	r = wire_diff_decode(p, h->len, n->pool->section_pages, PROTO_MAX_PAGES, &d);
	if (r == 0 && d.once.stream && !(mn_conn_auth(c)->hs.features & PROTO_FEAT_DIFF_ONCE))
		r = -EBADMSG;   /* a flag it did not negotiate */
	if (r == 0)
		r = check_grant(c, &d.grant, PROTO_R_WRITE);
	if (r == 0)
		r = lock_section(c, &d.grant, true);
	if (r < 0)
		return r;
	once = d.once.stream && n->once;
	if (once)
		apply = mn_once_begin(n->once, d.grant.section, d.grant.generation,
				      d.grant.holder_id, &d.once);
	if (apply)
		wire_diff_apply(&d, mn_pool_section(n->pool, d.grant.section));
	if (once)
		mn_once_end(n->once, d.grant.section, d.grant.holder_id, &d.once, apply);
	mn_table_unlock(&n->table, d.grant.section);
	if (apply)
		atomic_fetch_add(&n->stats.bytes_written, d.bytes);
	else
		atomic_fetch_add(&n->stats.diff_frames_repeated, 1);
	return reply_with(c, h, NULL, 0);
}

static int handle_read(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	return handle_io(c, h, p, false);
}

static int handle_write(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	return handle_io(c, h, p, true);
}

static int handle_atomic(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p, bool cas)
{
	struct mn_node *n = mn_conn_node(c);
	struct proto_atomic_req req;
	struct proto_atomic_rep rep;
	uint64_t *word;
	int r;

	r = wire_fixed(p, h->len, &req, sizeof(req));
	if (r < 0)
		return r;
	wire_atomic_req_swap(&req);
	if (req.offset >= n->pool->section_size || n->pool->section_size - req.offset < 8)
		return -ERANGE;
	if (req.offset % 8 != 0)
		return -EBADMSG;
	r = check_grant(c, &req.grant, PROTO_R_READ | PROTO_R_WRITE);
	if (r < 0)
		return r;
	r = lock_section(c, &req.grant, true);
	if (r < 0)
		return r;
	word = (uint64_t *)(void *)(mn_pool_section(n->pool, req.grant.section) + req.offset);
	if (cas) {
		rep.old = req.expect;
		/* On failure `old` receives the current value; on success it equals expect. */
		__atomic_compare_exchange_n(word, &rep.old, req.value, false, __ATOMIC_SEQ_CST,
					    __ATOMIC_SEQ_CST);
	} else {
		rep.old = __atomic_fetch_add(word, req.value, __ATOMIC_SEQ_CST);
	}
	mn_table_unlock(&n->table, req.grant.section);
	wire_u64_swap(&rep.old);
	return reply_with(c, h, &rep, sizeof(rep));
}

static int handle_cas(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	return handle_atomic(c, h, p, true);
}

static int handle_fadd(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	return handle_atomic(c, h, p, false);
}

/* ---- fence ---------------------------------------------------------------------- */

/*
 * FENCE: the requester presents a grant of its own with write rights; the
 * section's epoch becomes at least the grant's (fence.c). Writes under way
 * finish first; the reply comes once the epoch is durable.
 */
static int handle_fence(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	struct proto_grant g;
	struct proto_fence_rep rep = { 0 };
	int r;

	r = wire_fixed(p, h->len, &g, sizeof(g));
	if (r < 0)
		return r;
	wire_grant_swap(&g);
	r = check_grant(c, &g, PROTO_R_WRITE);
	if (r < 0)
		return r;
	r = mn_table_fence(&n->table, g.section, g.generation, g.epoch, &rep.epoch);
	if (r < 0)
		return r;
	if (r > 0) {
		atomic_fetch_add(&n->stats.epoch_raises, 1);
		log_info("section %u: ownership epoch %u, fenced by node %llu", g.section, g.epoch,
			 (unsigned long long)g.holder_id);
	}
	wire_fence_rep_swap(&rep);
	return reply_with(c, h, &rep, sizeof(rep));
}

/* ---- copy and stats ------------------------------------------------------------- */

static int handle_copy(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	struct proto_copy_req req;
	int r;

	r = wire_fixed(p, h->len, &req, sizeof(req));
	if (r < 0)
		return r;
	wire_copy_req_swap(&req);
	if (!memchr(req.addr, '\0', sizeof(req.addr)) || req.addr[0] == '\0')
		return -EBADMSG;
	r = check_grant(c, &req.src_grant, PROTO_R_READ);
	if (r < 0)
		return r;
	/* Check the source now; the copy thread checks again for every chunk. */
	r = mn_table_rdlock(&n->table, req.src_grant.section, req.src_grant.generation);
	if (r < 0)
		return r;
	mn_table_unlock(&n->table, req.src_grant.section);
	r = mn_copy_start(c, h, &req);
	if (r < 0)
		return r;
	return MN_DEFERRED;
}

static int handle_stats(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	struct proto_stats_rep rep = {
		.node_id = n->node_id,
		.section_size = n->pool->section_size,
		.nsections = n->pool->nsections,
		.nused = atomic_load(&n->table.nused),
		.errors = atomic_load(&n->stats.errors),
		.bytes_read = atomic_load(&n->stats.bytes_read),
		.bytes_written = atomic_load(&n->stats.bytes_written),
		.connections = atomic_load(&n->stats.connections),
	};

	if (h->len != 0)
		return -EBADMSG;
	for (unsigned i = 0; i < PROTO_OP_MAX; i++)
		rep.requests += atomic_load(&n->stats.requests[i]);
	wire_stats_rep_swap(&rep);
	return reply_with(c, h, &rep, sizeof(rep));
}

/* The orchestrator's revocation list (the whole list). */
static int handle_revoke(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	int r = revlist_set_wire(&n->revoked, p, h->len);

	if (r < 0)
		return r;
	mn_server_kick(n);      /* every worker closes the revoked nodes' connections */
	return reply_with(c, h, NULL, 0);
}

/* ---- coherence directory (dir.c) -------------------------------------------------- */

const struct mn_dir_ops mn_dir_node_ops = {
	.hold = mn_conn_hold,
	.post = mn_conn_post,
	.push = mn_conn_push,
	.ref = mn_conn_ref,
	.unref = mn_conn_unref,
	.page_read = mn_table_page_read,
	.page_write = mn_table_page_write,
};

/* A grant of the requester's with `rights` for a section allocated with its generation. */
static int dir_grant(struct mn_conn *c, const struct proto_grant *g, uint32_t rights, bool write)
{
	int r = check_grant(c, g, rights);

	if (r == 0)
		r = lock_section(c, g, write);     /* NOENT, STALE; FENCED for a write */
	if (r == 0)
		mn_table_unlock(&mn_conn_node(c)->table, g->section);
	return r;
}

/* DIR_ATTACH and DIR_DETACH: a grant with read rights. */
static int handle_dir_attach(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	struct proto_grant g;
	uint16_t tag;
	int r;

	r = wire_dir_who_decode(p, h->len, &g, &tag);
	if (r < 0)
		return r;
	if (tag && !(mn_conn_auth(c)->hs.features & PROTO_FEAT_DIR_TAG))
		return -EBADMSG;   /* holder tags only once negotiated */
	r = dir_grant(c, &g, PROTO_R_READ, false);
	if (r < 0)
		return r;
	if (h->opcode == PROTO_OP_DIR_DETACH) {
		r = mn_dir_detach(n->dir, &g, tag);
	} else {
		mn_conn_auth(c)->dir_chan = true;  /* its closing is told to the directory */
		r = mn_dir_attach(n->dir, c, &g, tag, mn_conn_auth(c)->hs.features);
	}
	return r < 0 ? r : reply_with(c, h, NULL, 0);
}

/* DIR_READ (read rights) and DIR_WRITE (read and write, an epoch not fenced). */
static int handle_dir_io(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct mn_node *n = mn_conn_node(c);
	bool write = h->opcode == PROTO_OP_DIR_WRITE, take;
	struct proto_dir_req req;
	struct mn_obuf *ob = NULL;
	int r;

	r = wire_dir_req_decode(p, h->len, &req);
	if (r < 0)
		return r;
	take = req.flags & PROTO_DIR_REQ_TAKE;
	if (take && (write || !(mn_conn_auth(c)->hs.features & PROTO_FEAT_DIR_TAKE)))
		return -EBADMSG;   /* a read's flag, and only once negotiated */
	if (req.tag && !(mn_conn_auth(c)->hs.features & PROTO_FEAT_DIR_TAG))
		return -EBADMSG;
	/* A read that may take ownership may write next: it needs what a write needs. */
	r = dir_grant(c, &req.grant,
		      write || take ? PROTO_R_READ | PROTO_R_WRITE : PROTO_R_READ, write || take);
	if (r < 0)
		return r;
	r = mn_dir_request(n->dir, c, h, &req.grant, req.tag, req.page, write, take, &ob);
	if (r == MN_DIR_DEFERRED)
		return MN_DEFERRED;
	if (r < 0)
		return r;
	mn_conn_queue(c, ob);
	return 0;
}

/* DIR_RECALL_ACK, on the recall channel. */
static int handle_dir_ack(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct proto_dir_ack ack;
	const uint8_t *page;
	bool quiet;
	int r;

	r = wire_dir_ack_decode(p, h->len, &ack, &page);
	if (r < 0)
		return r;
	quiet = ack.flags & PROTO_DIR_QUIET;
	if (quiet && !(mn_conn_auth(c)->hs.features & PROTO_FEAT_DIR_QUIET))
		return -EBADMSG;
	r = mn_dir_ack(mn_conn_node(c)->dir, c, ack.seq, page, quiet);
	if (r == 0 && quiet)
		return 0;   /* the holder learns it was taken from the reply to a later frame */
	return r < 0 ? r : reply_with(c, h, NULL, 0);
}

/* DIR_RECLAIM, on the recall channel after a restart: a page (what a write needs), or DONE. */
static int handle_dir_reclaim(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	uint32_t feats = mn_conn_auth(c)->hs.features;
	struct proto_dir_req req;
	const uint8_t *page;
	uint32_t version;
	int r;

	r = wire_dir_reclaim_decode(p, h->len, &req, &version, &page);
	if (r == 0 && req.tag && !(feats & PROTO_FEAT_DIR_TAG))
		r = -EBADMSG;
	if (r == 0 && (req.flags & PROTO_DIR_REQ_VERSION) && !(feats & PROTO_FEAT_DIR_VERSION))
		r = -EBADMSG;   /* only once negotiated */
	if (r == 0)
		r = dir_grant(c, &req.grant, page ? PROTO_R_READ | PROTO_R_WRITE : PROTO_R_READ, page);
	if (r == 0)
		r = mn_dir_reclaim(mn_conn_node(c)->dir, c, &req.grant, req.tag, req.page, page,
				   req.flags & PROTO_DIR_REQ_RECALLED,
				   req.flags & PROTO_DIR_REQ_VERSION ? &version : NULL);
	return r < 0 ? r : reply_with(c, h, NULL, 0);
}

/* ---- dispatch -------------------------------------------------------------------- */

static const struct mn_op_desc mn_ops[PROTO_OP_MAX] = {
	[PROTO_OP_HELLO] = { handle_hello, true, false, 0 },
	[PROTO_OP_AUTH] = { handle_auth, true, false, 0 },
	[PROTO_OP_PING] = { handle_ping, false, false, 0 },
	[PROTO_OP_SECTION_ALLOC] = { handle_section_alloc, false, true, 0 },
	/* FREE checks itself: the orchestrator, or a grant with PROTO_R_FREE. */
	[PROTO_OP_SECTION_FREE] = { handle_section_free, false, false, 0 },
	[PROTO_OP_SECTION_LIST] = { handle_section_list, false, true, 0 },
	[PROTO_OP_READ] = { handle_read, false, false, 0 },
	[PROTO_OP_WRITE] = { handle_write, false, false, 0 },
	[PROTO_OP_CAS] = { handle_cas, false, false, PROTO_FEAT_ATOMICS },
	[PROTO_OP_FADD] = { handle_fadd, false, false, PROTO_FEAT_ATOMICS },
	[PROTO_OP_COPY] = { handle_copy, false, true, PROTO_FEAT_COPY },
	[PROTO_OP_STATS] = { handle_stats, false, false, 0 },
	[PROTO_OP_FENCE] = { handle_fence, false, false, PROTO_FEAT_FENCE },
	[PROTO_OP_REVOKE] = { handle_revoke, false, true, PROTO_FEAT_REVOKE },
	[PROTO_OP_DIR_ATTACH] = { handle_dir_attach, false, false, PROTO_FEAT_DIR },
	[PROTO_OP_DIR_READ] = { handle_dir_io, false, false, PROTO_FEAT_DIR },
	[PROTO_OP_DIR_WRITE] = { handle_dir_io, false, false, PROTO_FEAT_DIR },
	/* DIR_RECALL goes from the node to a holder, never the other way: NOTSUP. */
	[PROTO_OP_DIR_RECALL_ACK] = { handle_dir_ack, false, false, PROTO_FEAT_DIR },
	[PROTO_OP_DIR_DETACH] = { handle_dir_attach, false, false, PROTO_FEAT_DIR },
	[PROTO_OP_WRITE_DIFF] = { handle_write_diff, false, false, PROTO_FEAT_DIFF },
	[PROTO_OP_DIR_RECLAIM] = { handle_dir_reclaim, false, false, PROTO_FEAT_DIR_RECLAIM },
};

void mn_dispatch(struct mn_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	struct mn_node *n = mn_conn_node(c);
	struct mn_conn_auth *a = mn_conn_auth(c);
	const struct mn_op_desc *d;
	uint64_t t0 = now_ns();
	int r;

	/* wire_hdr_decode() guarantees 0 < opcode < PROTO_OP_MAX. */
	atomic_fetch_add(&n->stats.requests[h->opcode], 1);
	d = &mn_ops[h->opcode];
	if (!a->hs.authed && !d->before_auth) {
		mn_reply_status(c, h, PROTO_ST_NOAUTH);
		mn_conn_close_after_reply(c);
		return;
	}
	if (!d->fn)
		r = -EOPNOTSUPP;
	else if (d->feature && !(a->hs.features & d->feature))
		r = -EOPNOTSUPP;
	else if (d->orch_only && !a->hs.orch)
		r = deny(c, h);
	else
		r = d->fn(c, h, payload);
	if (r == MN_DEFERRED)
		return;            /* latency observed when the reply is posted */
	if (r < 0) {
		if (r == -ENOMEM)
			log_warn("out of memory answering %s", proto_op_name(h->opcode));
		mn_reply_status(c, h, proto_errno_to_status(r));
	}
	hist_observe(&n->stats.latency[h->opcode], now_ns() - t0);
}
