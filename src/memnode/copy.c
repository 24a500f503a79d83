// SPDX-License-Identifier: MIT
/*
 * COPY: stream one section of this node to a section on another memory
 * node (memory migration).
 *
 * Each copy runs on its own thread so no worker ever waits on the network
 * for it; at most MN_MAX_COPIES run at once (more get BUSY). The thread
 * connects to the target with the client library (mnclient.h), under this
 * node's id and the cluster key, and writes with the destination grant the
 * requester supplied. Pages are staged a chunk at a time under the source
 * section's read lock (the generation is re-checked for every chunk, so a
 * section freed mid-copy aborts with STALE instead of leaking the next
 * owner's data), then written asynchronously with several chunks in flight.
 *
 * Pages that hold no data are skipped: holes of a file backing are found
 * with SEEK_DATA/SEEK_HOLE (without touching, and so allocating, them) and
 * every remaining page is checked for all-zero. That is correct because the
 * target zeroed its section when it was allocated.
 *
 * The reply (pages sent, microseconds) is built in a buffer allocated
 * before the thread starts and handed to the connection's worker with
 * mn_conn_post(), which drops it if the client has gone away. Every wait
 * on the target is bounded by MN_COPY_TIMEOUT_MS; an unreachable or dying
 * target ends the copy with IO.
 */
#include "memnode.h"

#include <errno.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "mnclient.h"
#include "net.h"
#include "wire.h"
#include "thread.h"

#define MN_COPY_BUFS 8
#define MN_COPY_SCAN_MAX 8192    /* pages looked at per hold of the section lock */

struct mn_copy_buf {
	struct mn_copy *job;
	bool busy;
	uint32_t npages;
	uint32_t next;
	struct proto_extent *ext;
	uint8_t *data;
};

struct mn_copy {
	struct mn_node *node;
	struct mn_conn *conn;
	struct mn_obuf *reply;       /* preallocated: header + proto_copy_rep */
	pthread_t thread;
	atomic_bool finished;
	uint32_t src, src_gen;
	struct proto_grant dst;
	char addr[PROTO_MAX_ADDR];
	uint64_t start_ns;
	uint16_t op;
	int err;                     /* first write error reported by the target */
	uint64_t pages;
	struct mn_copy_buf bufs[MN_COPY_BUFS];
};

static void copy_done(void *opaque, int status, size_t len)
{
	struct mn_copy_buf *b = opaque;

	b->busy = false;
	if (status < 0 && b->job->err == 0)
		b->job->err = status;
}

/*
 * Stage up to `maxp` data pages starting at *page into b. Advances *page
 * past what was examined. Returns 0, or -ESTALE/-ENOENT if the source
 * changed hands.
 */
static int copy_stage(struct mn_copy *j, struct mn_copy_buf *b, uint32_t maxp, uint32_t *page)
{
	struct mn_node *n = j->node;
	struct mn_pool *pool = n->pool;
	uint32_t p = *page, scanned = 0, end;
	const uint8_t *base;
	int r;

	b->npages = 0;
	b->next = 0;
	r = mn_table_rdlock(&n->table, j->src, j->src_gen);
	if (r < 0)
		return r;
	base = mn_pool_section(pool, j->src);
	while (p < pool->section_pages && b->npages < maxp && scanned < MN_COPY_SCAN_MAX) {
		uint32_t first;

		r = mn_pool_next_data(pool, j->src, p, &first, &end);
		if (r < 0) {
			p = pool->section_pages;   /* only holes remain */
			break;
		}
		p = first;
		for (; p < end && b->npages < maxp && scanned < MN_COPY_SCAN_MAX; p++, scanned++) {
			const uint8_t *src = base + (size_t)p * PROTO_PAGE_SIZE;

			if (mn_page_is_zero(src))
				continue;
			memcpy(b->data + (size_t)b->npages * PROTO_PAGE_SIZE, src, PROTO_PAGE_SIZE);
			b->npages++;
			if (b->next > 0 && b->ext[b->next - 1].page + b->ext[b->next - 1].count == p) {
				b->ext[b->next - 1].count++;
			} else {
				b->ext[b->next].page = p;
				b->ext[b->next].count = 1;
				b->next++;
			}
		}
	}
	mn_table_unlock(&n->table, j->src);
	*page = p;
	return 0;
}

/* Wait until a staging buffer is free. */
static int copy_wait_buf(struct mn_copy *j, struct mnc *m, struct mn_copy_buf **ret)
{
	for (;;) {
		int r;

		for (unsigned i = 0; i < MN_COPY_BUFS; i++) {
			if (!j->bufs[i].busy) {
				*ret = &j->bufs[i];
				return 0;
			}
		}
		if (j->err)
			return j->err;
		r = mnc_poll(m, MN_COPY_TIMEOUT_MS);
		if (r < 0)
			return r;
		if (r == 0 && mnc_inflight(m) > 0)
			return -ETIMEDOUT;
	}
}

static int copy_run(struct mn_copy *j)
{
	struct mn_node *n = j->node;
	struct mn_pool *pool = n->pool;
	struct mnc_opts o = {
		.addr = j->addr,
		.key = &n->key,
		.node_id = n->node_id,
		.timeout_ms = MN_COPY_TIMEOUT_MS,
	};
	_cleanup_mnc_ struct mnc *m = NULL;
	const struct mnc_info *info;
	uint32_t maxp, page = 0;
	int r;

	r = mnc_connect(&o, &m);
	if (r < 0) {
		log_info("copy of section %u: cannot reach %s: %s", j->src, j->addr, strerror(-r));
		return -EIO;
	}
	info = mnc_info(m);
	if (info->section_size != pool->section_size) {
		log_info("copy of section %u: %s has %llu-byte sections, this node %llu", j->src,
			 j->addr, (unsigned long long)info->section_size,
			 (unsigned long long)pool->section_size);
		return -EIO;
	}
	maxp = MIN(info->max_pages, (uint32_t)PROTO_MAX_PAGES);
	if (maxp == 0)
		return -EIO;
	for (unsigned i = 0; i < MN_COPY_BUFS; i++) {
		struct mn_copy_buf *b = &j->bufs[i];

		b->job = j;
		b->ext = calloc(maxp, sizeof(*b->ext));
		b->data = malloc((size_t)maxp * PROTO_PAGE_SIZE);
		if (!b->ext || !b->data)
			return -ENOMEM;
	}

	while (page < pool->section_pages) {
		struct mn_copy_buf *b = NULL;

		if (atomic_load(&n->stopping))
			return -ECANCELED;
		r = copy_wait_buf(j, m, &b);
		if (r < 0)
			goto target_failed;
		r = copy_stage(j, b, maxp, &page);
		if (r < 0)
			return r;      /* the source section changed hands */
		if (b->npages == 0)
			continue;
		b->busy = true;
		r = mnc_write_async(m, &j->dst, b->ext, b->next, b->data, copy_done, b);
		if (r < 0) {
			b->busy = false;
			goto target_failed;
		}
		j->pages += b->npages;
	}
	r = mnc_drain(m);
	if (r == 0)
		r = j->err;
	if (r == 0)
		return 0;
target_failed:
	if (j->err)
		r = j->err;
	log_info("copy of section %u to %s failed: %s", j->src, j->addr, strerror(-r));
	/* A rejected or fenced grant is worth telling apart; anything else is an I/O failure. */
	if (r == -EKEYREJECTED || r == -EKEYEXPIRED || r == -EPERM || r == -EKEYREVOKED)
		return r;
	return -EIO;
}

static void *copy_main(void *arg)
{
	struct mn_copy *j = arg;
	struct mn_node *n = j->node;
	struct proto_copy_rep rep = { 0 };
	struct mn_obuf *ob = j->reply;
	uint32_t st;
	int r;

	thread_name("mn-copy");
	r = copy_run(j);
	for (unsigned i = 0; i < MN_COPY_BUFS; i++) {
		free(j->bufs[i].ext);
		free(j->bufs[i].data);
	}
	if (r == 0) {
		st = PROTO_ST_OK;
		rep.pages = j->pages;
		rep.usec = (now_ns() - j->start_ns) / 1000;
		atomic_fetch_add(&n->stats.copies, 1);
		atomic_fetch_add(&n->stats.copy_pages, j->pages);
		log_debug("section %u copied to %s: %llu pages in %llu us", j->src, j->addr,
			  (unsigned long long)rep.pages, (unsigned long long)rep.usec);
		wire_copy_rep_swap(&rep);
		memcpy(ob->data + PROTO_HDR_SIZE, &rep, sizeof(rep));
	} else {
		st = proto_errno_to_status(r);
		if (r == -ECANCELED)
			st = PROTO_ST_IO;
		ob->len = PROTO_HDR_SIZE;
	}
	{
		struct proto_hdr h = {
			.magic = PROTO_MAGIC,
			.version = PROTO_VERSION,
			.opcode = PROTO_OP_COPY,
			.flags = PROTO_F_REPLY,
			.len = (uint32_t)(ob->len - PROTO_HDR_SIZE),
			.status = st,
		};

		memcpy(&h.req_id, ob->data + offsetof(struct proto_hdr, req_id), sizeof(h.req_id));
		h.req_id = le64toh(h.req_id);
		wire_hdr_encode(&h, ob->data);
	}
	j->reply = NULL;
	mn_conn_post(j->conn, ob, j->start_ns, j->op);
	atomic_store(&j->finished, true);
	return NULL;
}

/* Join finished copies (copy_mu held). */
static void copy_reap_locked(struct mn_node *n, bool all)
{
	for (unsigned i = 0; i < MN_MAX_COPIES; i++) {
		struct mn_copy *j = n->copies[i];

		if (!j || (!all && !atomic_load(&j->finished)))
			continue;
		pthread_join(j->thread, NULL);
		free(j);
		n->copies[i] = NULL;
	}
}

int mn_copy_start(struct mn_conn *c, const struct proto_hdr *h, const struct proto_copy_req *req)
{
	struct mn_node *n = mn_conn_node(c);
	struct mn_copy *j;
	int slot = -1, r;

	pthread_mutex_lock(&n->copy_mu);
	copy_reap_locked(n, false);
	for (unsigned i = 0; i < MN_MAX_COPIES; i++) {
		if (!n->copies[i]) {
			slot = (int)i;
			break;
		}
	}
	if (slot < 0) {
		pthread_mutex_unlock(&n->copy_mu);
		return -EBUSY;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		pthread_mutex_unlock(&n->copy_mu);
		return -ENOMEM;
	}
	j->reply = mn_reply_new(h, PROTO_ST_OK, sizeof(struct proto_copy_rep));
	if (!j->reply) {
		free(j);
		pthread_mutex_unlock(&n->copy_mu);
		return -ENOMEM;
	}
	j->node = n;
	j->conn = c;
	j->src = req->src_grant.section;
	j->src_gen = req->src_grant.generation;
	j->dst = req->dst_grant;
	memcpy(j->addr, req->addr, sizeof(j->addr));
	j->addr[sizeof(j->addr) - 1] = '\0';
	j->start_ns = now_ns();
	j->op = h->opcode;
	mn_conn_hold(c);
	r = -pthread_create(&j->thread, NULL, copy_main, j);
	if (r < 0) {
		/* Undo the hold by posting nothing: drop the reply through the normal path. */
		struct mn_obuf *ob = TAKE_PTR(j->reply);

		free(j);
		pthread_mutex_unlock(&n->copy_mu);
		ob->len = PROTO_HDR_SIZE;
		{
			struct proto_hdr eh = *h;

			eh.magic = PROTO_MAGIC;
			eh.version = PROTO_VERSION;
			eh.flags = PROTO_F_REPLY;
			eh.len = 0;
			eh.status = PROTO_ST_BUSY;
			eh.rsvd = 0;
			wire_hdr_encode(&eh, ob->data);
		}
		mn_conn_post(c, ob, now_ns(), h->opcode);
		return 0;
	}
	n->copies[slot] = j;
	pthread_mutex_unlock(&n->copy_mu);
	return 0;
}

void mn_copy_join_all(struct mn_node *n)
{
	pthread_mutex_lock(&n->copy_mu);
	copy_reap_locked(n, true);
	pthread_mutex_unlock(&n->copy_mu);
}
