/* SPDX-License-Identifier: MIT */
/*
 * Memory-node client library.
 *
 * A `struct mnc` is one authenticated connection to a memory node. It is
 * not thread-safe: use one connection per thread (the pager's fault
 * threads each own theirs, which keeps the fault path free of cross-thread
 * wakeups). Requests are pipelined: the *_async calls queue a request and
 * return at once (sending what the socket takes), mnc_poll() reads replies
 * and runs completion callbacks, in whatever order the server answers.
 * The synchronous wrappers submit and wait.
 *
 * Buffers handed to an async call (data to write, space for read data)
 * belong to the library until the completion callback has run. Read data
 * is received straight into the caller's buffer.
 *
 * Errors: -errno. A reply with an error status maps through
 * proto_status_to_errno() (e.g. -EKEYREJECTED for a bad grant). If the
 * connection breaks or a wait times out, every outstanding request
 * completes with that error (-EPIPE, -ECONNRESET, -ETIMEDOUT) and the
 * connection stays broken (mnc_broken()); reconnect with mnc_connect().
 */
#ifndef DISAGG_MNCLIENT_H
#define DISAGG_MNCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "grant.h"
#include "macro.h"
#include "mntypes.h"
#include "tls.h"
#include "disagg/proto.h"

struct mnc;

struct mnc_opts {
	const char *addr;              /* "host:port" */
	const struct auth_key *key;    /* cluster key */
	/*
	 * The orchestrator's grant key (private half), or NULL: with it, AUTH
	 * proves the orchestrator's capability (SECTION_ALLOC, SECTION_LIST,
	 * COPY, SECTION_FREE without a grant).
	 */
	const struct grant_key *orch_key;
	uint64_t node_id;              /* our node id (grants name it as holder) */
	int timeout_ms;                /* connect, handshake and sync waits; 0 = 5000 */
	int connect_timeout_ms;        /* > 0: connect and handshake only, instead */
	/*
	 * TLS on the fabric (tls.h): NULL takes the process's default
	 * (mnc_set_tls), which is NULL for plaintext. Over TLS the server's
	 * certificate must be of the cluster CA and of role server_role, and
	 * name the node id it gives in HELLO.
	 */
	struct tls_ctx *tls;
	/*
	 * The features offered in HELLO (PROTO_FEAT_*); 0: PROTO_FEAT_ALL,
	 * a memory node's. mnc_info()'s features are the server's answer
	 * masked with what was offered.
	 */
	uint32_t features;
	/*
	 * Over TLS, the role the server's certificate must have:
	 * CERT_ROLE_NONE (0) means a memory node's (dnc_connect asks for a
	 * device node's).
	 */
	enum cert_role server_role;
};

/* struct mnc_info, mnc_done_fn and struct mnc_recall: mntypes.h. */

/* The TLS context every connection without opts.tls uses (set once at startup). */
static inline void mnc_set_tls(struct tls_ctx *t)
{
	tls_set_default(t);
}
int mnc_connect(const struct mnc_opts *opts, struct mnc **ret);
/*
 * The same over a socket that is already connected (opts->addr unused):
 * fd is the connection's from here on, also on failure. For peers reached
 * by other means than TCP, and for tests that play the server.
 */
int mnc_connect_fd(const struct mnc_opts *opts, int fd, struct mnc **ret);
void mnc_close(struct mnc *c);                 /* accepts NULL; fails pending requests with -ECANCELED */
DEFINE_CLEANUP_FUNC(struct mnc, mnc_close)
#define _cleanup_mnc_ _cleanup_(mnc_closep)
const struct mnc_info *mnc_info(const struct mnc *c);
int mnc_fd(const struct mnc *c);               /* for an external poll loop */
unsigned mnc_inflight(const struct mnc *c);
bool mnc_broken(const struct mnc *c);

/*
 * Asynchronous page I/O inside one section. `ext` lists the pages (copied,
 * need not outlive the call). READ stores the pages in extent order in
 * `buf`; WRITE sends them from `data`. Returns 0 once queued.
 */
int mnc_read_async(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
		   uint32_t next, void *buf, mnc_done_fn done, void *opaque);
int mnc_write_async(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
		    uint32_t next, const void *data, mnc_done_fn done, void *opaque);

/* Process replies for up to timeout_ms (0 = don't block, <0 = forever). Returns completions run. */
int mnc_poll(struct mnc *c, int timeout_ms);
/* Wait until nothing is in flight (timeout from the options). */
int mnc_drain(struct mnc *c);

/* Synchronous calls. */
int mnc_ping(struct mnc *c);
int mnc_read(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
	     uint32_t next, void *buf);
int mnc_write(struct mnc *c, const struct proto_grant *g, const struct proto_extent *ext,
	      uint32_t next, const void *data);
/* Convenience: `npages` pages from `page`, split into max_pages requests, pipelined. */
int mnc_read_range(struct mnc *c, const struct proto_grant *g, uint32_t page, uint32_t npages,
		   void *buf);
int mnc_write_range(struct mnc *c, const struct proto_grant *g, uint32_t page, uint32_t npages,
		    const void *data);
/*
 * LIST and COPY need a connection made with opts.orch_key (-ENOKEY
 * otherwise: the memory node refuses them to anyone else). ALLOC and FREE:
 * mnadmin.h.
 */
/* Allocated sections from index `start`: fills up to `max` entries, *ret_next continues. */
int mnc_list(struct mnc *c, uint32_t start, uint32_t max, struct proto_section *ret,
	     uint32_t *ret_count, uint32_t *ret_next);
int mnc_cas(struct mnc *c, const struct proto_grant *g, uint64_t offset, uint64_t expect,
	    uint64_t value, uint64_t *ret_old);
int mnc_fadd(struct mnc *c, const struct proto_grant *g, uint64_t offset, uint64_t add,
	     uint64_t *ret_old);
/*
 * Ask this node to copy the section of src_grant (read rights, held by us)
 * to `addr`'s section named by dst_grant (held by this node).
 */
int mnc_copy(struct mnc *c, const struct proto_grant *src_grant,
	     const struct proto_grant *dst_grant, const char *addr, struct proto_copy_rep *ret);
/*
 * FENCE (mnfence.c): present grant g (ours, with write rights) so that the
 * node refuses writes of older ownership epochs to its section from now on.
 * *ret_epoch (may be NULL) receives the section's epoch. -EOPNOTSUPP if the
 * node does not offer FENCE.
 */
int mnc_fence(struct mnc *c, const struct proto_grant *g, uint32_t *ret_epoch);

/*
 * The coherence directory of shared regions in mode strict
 * (docs/protocol.md, "Coherence directory"; -EOPNOTSUPP if the node does
 * not offer it). A holder attaches one connection per section as its
 * recall channel: that connection is then used only for mnc_dir_attach,
 * mnc_dir_next_recall, mnc_dir_recall_ack(_quiet), mnc_dir_reclaim and
 * mnc_ping (one thread owns it; one channel may serve several sections).
 * DIR_READ and DIR_WRITE go on the holder's other connections. They may
 * wait for other holders' recalls (at most a lease each): they wait up to
 * ten times the connection's timeout. -EUNATCH: the holder is not
 * attached (never, or dropped: attach again, after dropping every copy of
 * the section); -EUSERS: the section has PROTO_DIR_MAX_HOLDERS holders
 * already. A holder is this node
 * and a `tag` (one per VM of this node that maps the section; 0 is the node
 * itself, and any other needs PROTO_FEAT_DIR_TAG: -EOPNOTSUPP without).
 */
int mnc_dir_attach(struct mnc *c, const struct proto_grant *g, uint16_t tag);
int mnc_dir_detach(struct mnc *c, const struct proto_grant *g, uint16_t tag);
/*
 * A read copy of page `page`: 4 KiB into buf. ret_owned non-NULL: the node
 * may make the caller the page's owner (migratory pages; only when it has
 * PROTO_FEAT_DIR_TAKE and the grant allows writing); *ret_owned says so.
 * The copy is clean either way: the caller writes it back only once written.
 */
int mnc_dir_read(struct mnc *c, const struct proto_grant *g, uint16_t tag, uint32_t page,
		 void *buf, bool *ret_owned);
/*
 * Ownership of `page`; *ret_had_copy true: buf untouched (the caller's
 * copy is current; one it dropped meanwhile is the node's, for READ),
 * false: buf holds the page.
 */
int mnc_dir_write(struct mnc *c, const struct proto_grant *g, uint16_t tag, uint32_t page,
		  void *buf, bool *ret_had_copy);
/*
 * After the node restarted (its directory in its grace period, answering
 * DIR_READ and DIR_WRITE with -EINPROGRESS): on the attached recall channel,
 * hand back page `page` that this holder owned and changed before the
 * restart (data), or with data NULL say that the holder has nothing more of
 * the section. recalled: the page is one this holder gave up in a recall
 * answer that the node did not confirm (it may have stored it, and another
 * holder changed it since: the node prefers that holder's); version: that
 * recall's (struct mnc_recall), sent when PROTO_FEAT_DIR_VERSION was
 * negotiated, so that the node also prefers what any later owner wrote.
 * -EUNATCH: the node does not take it (no grace period, or the holder was
 * not attached before the restart): the page's writes are lost.
 */
int mnc_dir_reclaim(struct mnc *c, const struct proto_grant *g, uint16_t tag, uint32_t page,
		    const void *data, bool recalled, uint32_t version);
/*
 * On an attached recall channel: wait up to timeout_ms (0: do not block,
 * <0: for ever) for the next recall (-ETIMEDOUT if none; other -errno:
 * the channel broke). Recalls that arrive while another call waits on the
 * channel are kept, in order.
 */
int mnc_dir_next_recall(struct mnc *c, int timeout_ms, struct mnc_recall *ret);
/*
 * Answer a recall, once the copy is write-protected (DOWNGRADE) or gone
 * (INVALIDATE); dirty_page NULL: clean or absent, else the page as written
 * (stored by the node if we owned it). Returns when the node has taken the
 * answer (-EUNATCH: too late, we were dropped).
 */
int mnc_dir_recall_ack(struct mnc *c, uint64_t seq, const void *dirty_page);
/*
 * The same answer with no reply when the node takes it (PROTO_DIR_QUIET;
 * -EOPNOTSUPP unless PROTO_FEAT_DIR_QUIET was negotiated): 0 once it is
 * sent. A refusal still comes back, and breaks the connection: a later
 * call on c returns its error. The node took the answer once a later
 * request on c is answered (mnc_ping: the node serves a connection's
 * frames in order), so keep a dirty page until then.
 */
int mnc_dir_recall_ack_quiet(struct mnc *c, uint64_t seq, const void *dirty_page);

/*
 * A synchronous request with a fixed-size payload `req` (little-endian
 * already) and a reply of exactly `replen` bytes into `rep`, for requests
 * implemented outside mnclient.c.
 */
int mnc_call(struct mnc *c, uint16_t op, const void *req, size_t reqlen, void *rep,
	     size_t replen);
/* The same with `datalen` more bytes of payload sent from `data` (not copied). */
int mnc_call_data(struct mnc *c, uint16_t op, const void *req, size_t reqlen, const void *data,
		  size_t datalen, void *rep, size_t replen);

#endif /* DISAGG_MNCLIENT_H */
