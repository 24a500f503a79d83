/* SPDX-License-Identifier: MIT */
/*
 * disagg wire protocol: the one frame format spoken between compute nodes,
 * memory nodes and device nodes.
 *
 * Every message is a 32-byte header followed by `len` bytes of payload.
 * All integers are little-endian on the wire and every struct below has an
 * explicit layout with no implicit padding (checked by _Static_assert).
 * Requests carry a request id chosen by the sender; replies echo it and set
 * PROTO_F_REPLY, so requests can be pipelined and answered out of order.
 *
 * A connection starts with HELLO (version and feature negotiation plus the
 * server's proof that it knows the cluster key) and AUTH (the client's
 * proof). Until AUTH succeeds, any other opcode is answered with
 * PROTO_ST_NOAUTH and the connection is closed.
 *
 * Page data moves in 4 KiB pages. READ and WRITE address a single section
 * through a grant (see struct proto_grant) and carry a vector of extents
 * (first page, page count) inside that section.
 *
 * Every grant carries the ownership epoch of its section. A memory node
 * refuses a write (WRITE, CAS, FADD) whose grant is of an older epoch than
 * the newest it has seen for the section (PROTO_ST_FENCED); FENCE makes it
 * learn a new epoch before the new owner writes.
 *
 * Shared regions in mode strict keep a coherence directory on the memory
 * node (DIR_* opcodes): a holder attaches a recall channel per section,
 * asks for read copies and ownership of single pages, and answers the
 * recalls (DIR_RECALL) the node sends it on that channel.
 *
 * Device nodes speak the same framing and handshake and serve block
 * volumes (BLK_* and VOL_* opcodes, PROTO_FEAT_BLK): a volume is opened
 * through a grant, then read and written by byte offset in 512-byte
 * sectors. The orchestrator manages the volumes themselves.
 *
 * docs/protocol.md describes every message in prose; keep the two in step.
 */
#ifndef DISAGG_PROTO_H
#define DISAGG_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC   0x31475344u /* "DSG1" as little-endian bytes */
#define PROTO_VERSION 2u   /* 2: grants signed with Ed25519, orchestrator capability */

/* Every limit of the protocol, in one place. */
enum proto_limits {
	PROTO_HDR_SIZE        = 32,
	PROTO_PAGE_SHIFT      = 12,
	PROTO_PAGE_SIZE       = 1 << PROTO_PAGE_SHIFT,
	PROTO_NONCE_SIZE      = 32,
	PROTO_MAC_SIZE        = 32,    /* HMAC-SHA256 */
	PROTO_SIG_SIZE        = 64,    /* Ed25519 */
	PROTO_KEY_SIZE        = 32,    /* cluster key */
	PROTO_MAX_PAGES       = 256,   /* pages per READ/WRITE (1 MiB) */
	PROTO_MAX_EXTENTS     = 256,   /* extents per READ/WRITE */
	PROTO_MAX_INFLIGHT    = 256,   /* unanswered requests per connection */
	PROTO_MAX_LIST        = 4096,  /* entries per SECTION_LIST reply */
	PROTO_MAX_ADDR        = 256,   /* bytes of a "host:port" string */
	PROTO_MAX_REVOKED     = 4096,  /* node ids in one REVOKE (the whole list) */
	PROTO_MAX_DIFF_RUNS   = 2048,  /* byte runs of one page in WRITE_DIFF (every other byte) */
	/* Largest payload a peer may send: a full WRITE. */
	PROTO_MAX_PAYLOAD     = 112 + PROTO_MAX_EXTENTS * 8 + PROTO_MAX_PAGES * PROTO_PAGE_SIZE,
	/* Largest reply payload: a full SECTION_LIST. */
	PROTO_MAX_REPLY       = 8 + PROTO_MAX_LIST * 16,
};

/* Opcodes. 0 is never valid. Values are stable: never renumber. */
enum proto_op {
	PROTO_OP_INVALID       = 0,
	PROTO_OP_HELLO         = 1,
	PROTO_OP_AUTH          = 2,
	PROTO_OP_PING          = 3,
	PROTO_OP_SECTION_ALLOC = 4,
	PROTO_OP_SECTION_FREE  = 5,
	PROTO_OP_SECTION_LIST  = 6,
	PROTO_OP_READ          = 7,
	PROTO_OP_WRITE         = 8,
	PROTO_OP_CAS           = 9,
	PROTO_OP_FADD          = 10,
	PROTO_OP_COPY          = 11,
	PROTO_OP_STATS         = 12,
	PROTO_OP_FENCE         = 13,
	PROTO_OP_REVOKE        = 14,  /* orchestrator: the node ids whose certificates are revoked */
	PROTO_OP_DIR_ATTACH    = 15,  /* this connection becomes the holder's recall channel */
	PROTO_OP_DIR_READ      = 16,  /* a read copy of one page */
	PROTO_OP_DIR_WRITE     = 17,  /* the only writable copy of one page */
	PROTO_OP_DIR_RECALL    = 18,  /* sent BY the memory node on a recall channel */
	PROTO_OP_DIR_RECALL_ACK = 19, /* the holder's answer to a DIR_RECALL */
	PROTO_OP_DIR_DETACH    = 20,  /* the holder leaves the section's directory */
	PROTO_OP_WRITE_DIFF    = 21,  /* byte runs of pages (release regions' diffs) */
	PROTO_OP_DIR_RECLAIM   = 22,  /* after a restart: a page the holder owned and changed */
	/* device nodes (PROTO_FEAT_BLK) */
	PROTO_OP_BLK_OPEN      = 23,  /* a volume, through a grant: a handle */
	PROTO_OP_BLK_READ      = 24,
	PROTO_OP_BLK_WRITE     = 25,
	PROTO_OP_BLK_FLUSH     = 26,  /* every write answered before it is on stable storage */
	PROTO_OP_BLK_DISCARD   = 27,
	PROTO_OP_BLK_WRITE_ZEROES = 28,
	PROTO_OP_BLK_CLOSE     = 29,
	PROTO_OP_VOL_CREATE    = 30,  /* the orchestrator's capability, as every VOL_* */
	PROTO_OP_VOL_DELETE    = 31,
	PROTO_OP_VOL_RESIZE    = 32,
	PROTO_OP_VOL_CLONE     = 33,
	PROTO_OP_VOL_STAT      = 34,
	PROTO_OP_VOL_LIST      = 35,
	PROTO_OP_MAX,                 /* one past the last opcode */
};

/* Header flags. */
enum proto_flags {
	PROTO_F_REPLY = 1u << 0,      /* this frame answers request `req_id` */
	PROTO_F_KNOWN = PROTO_F_REPLY,
};

/*
 * Status codes in replies. Stable numbers, independent of the host's errno
 * values; proto_status_to_errno() maps them for the C API.
 */
enum proto_status {
	PROTO_ST_OK       = 0,
	PROTO_ST_BADMSG   = 1,  /* malformed frame or payload */
	PROTO_ST_VERSION  = 2,  /* no common protocol version */
	PROTO_ST_NOAUTH   = 3,  /* not authenticated, or authentication failed */
	PROTO_ST_GRANT    = 4,  /* grant missing, forged, expired or for someone else */
	PROTO_ST_RIGHTS   = 5,  /* grant does not allow this access */
	PROTO_ST_NOENT    = 6,  /* no such section */
	PROTO_ST_RANGE    = 7,  /* page or offset outside the section */
	PROTO_ST_NOSPC    = 8,  /* no free section */
	PROTO_ST_TOOBIG   = 9,  /* count or size over a limit */
	PROTO_ST_BUSY     = 10, /* resource busy (too many requests, copy running) */
	PROTO_ST_IO       = 11, /* I/O error on the node or its peer */
	PROTO_ST_NOTSUP   = 12, /* opcode or feature not supported */
	PROTO_ST_STALE    = 13, /* section generation does not match */
	PROTO_ST_INTERNAL = 14, /* bug or resource exhaustion on the server */
	PROTO_ST_FENCED   = 15, /* grant of an older ownership epoch: a newer owner holds the section */
	PROTO_ST_DENIED   = 16, /* the orchestrator's capability is needed (proto_auth_orch_req) */
	PROTO_ST_DIR_DETACHED = 17, /* not attached to the section's directory (never, or dropped) */
	PROTO_ST_DIR_FULL = 18, /* the section's directory has PROTO_DIR_MAX_HOLDERS holders */
	PROTO_ST_DIR_GRACE = 19, /* the directory waits for its holders' reclaims: ask again */
	PROTO_ST_EXIST    = 20, /* the name is taken (VOL_CREATE, VOL_CLONE) */
	PROTO_ST_MAX,
};

/* Feature bits negotiated by HELLO (the intersection is used). */
enum proto_features {
	PROTO_FEAT_ATOMICS = 1u << 0, /* CAS and FADD */
	PROTO_FEAT_COPY    = 1u << 1, /* memnode-to-memnode section copy */
	PROTO_FEAT_FENCE   = 1u << 2, /* FENCE (ownership epochs are checked either way) */
	PROTO_FEAT_REVOKE  = 1u << 3, /* REVOKE (node revocation lists) */
	PROTO_FEAT_DIR     = 1u << 4, /* the coherence directory (DIR_* opcodes) */
	PROTO_FEAT_DIR_TAKE = 1u << 5, /* DIR_READ with PROTO_DIR_REQ_TAKE (migratory pages) */
	PROTO_FEAT_DIR_TAG = 1u << 6, /* directory holders (node, tag): several per node */
	PROTO_FEAT_DIFF    = 1u << 7, /* WRITE_DIFF */
	PROTO_FEAT_DIR_RECLAIM = 1u << 8, /* DIR_RECLAIM and DIR_GRACE (a restarted directory) */
	PROTO_FEAT_DIR_QUIET = 1u << 11, /* DIR_RECALL_ACK with PROTO_DIR_QUIET (no reply if OK) */
	PROTO_FEAT_DIR_VERSION = 1u << 12, /* DIR_RECALL's page version, DIR_RECLAIM's REQ_VERSION */
	PROTO_FEAT_DIFF_ONCE = 1u << 13, /* WRITE_DIFF with PROTO_DIFF_ONCE (applied at most once) */
	/* Every feature of a memory node. */
	PROTO_FEAT_ALL     = PROTO_FEAT_ATOMICS | PROTO_FEAT_COPY | PROTO_FEAT_FENCE |
			     PROTO_FEAT_REVOKE | PROTO_FEAT_DIR | PROTO_FEAT_DIR_TAKE |
			     PROTO_FEAT_DIR_TAG | PROTO_FEAT_DIFF | PROTO_FEAT_DIR_RECLAIM |
			     PROTO_FEAT_DIR_QUIET | PROTO_FEAT_DIR_VERSION | PROTO_FEAT_DIFF_ONCE,
	PROTO_FEAT_BLK     = 1u << 9, /* a device node: BLK_* and VOL_* */
	/*
	 * A hint, offered only on connections that carry directory traffic
	 * (recall channels, DIR_READ/DIR_WRITE): a memory node that has it
	 * serves every such connection on one worker thread, so that a
	 * recall and the answer it unblocks never cross between its threads.
	 */
	PROTO_FEAT_DIR_CONN = 1u << 10,
};

/* Grant rights. */
enum proto_rights {
	PROTO_R_READ  = 1u << 0,
	PROTO_R_WRITE = 1u << 1,
	PROTO_R_FREE  = 1u << 2,  /* the holder may free the section (SECTION_FREE with the grant) */
	PROTO_R_ALL   = PROTO_R_READ | PROTO_R_WRITE | PROTO_R_FREE,
};

/* ---- header ------------------------------------------------------------ */

struct proto_hdr {
	uint32_t magic;   /* PROTO_MAGIC */
	uint16_t version; /* PROTO_VERSION (HELLO may carry any value) */
	uint16_t opcode;  /* enum proto_op */
	uint32_t flags;   /* enum proto_flags */
	uint32_t len;     /* payload bytes after the header */
	uint64_t req_id;  /* chosen by the requester, echoed in the reply */
	uint32_t status;  /* enum proto_status; 0 in requests */
	uint32_t rsvd;    /* must be 0 */
};
_Static_assert(sizeof(struct proto_hdr) == PROTO_HDR_SIZE, "proto_hdr size");

/* ---- HELLO / AUTH ------------------------------------------------------ */

/*
 * HELLO request: the client's versions, features, identity and challenge.
 * HELLO reply: the chosen version and features, the server's identity and
 * limits, its own challenge, and
 *   mac = HMAC(key, "disagg-hello-srv" | client_nonce | server_nonce |
 *              le64(server node_id) | le64(client node_id))
 * which proves the server holds the cluster key.
 */
struct proto_hello_req {
	uint16_t ver_min;
	uint16_t ver_max;
	uint32_t features;
	uint64_t node_id;
	uint8_t nonce[PROTO_NONCE_SIZE];
};
_Static_assert(sizeof(struct proto_hello_req) == 48, "hello_req size");

struct proto_hello_rep {
	uint16_t version;
	uint16_t rsvd;
	uint32_t features;
	uint64_t node_id;
	uint32_t max_pages;      /* pages per READ/WRITE this server accepts */
	uint32_t max_inflight;   /* unanswered requests it accepts */
	uint64_t section_size;   /* bytes */
	uint32_t nsections;      /* sections in the pool */
	uint32_t rsvd2;
	uint8_t nonce[PROTO_NONCE_SIZE];
	uint8_t mac[PROTO_MAC_SIZE];
};
_Static_assert(sizeof(struct proto_hello_rep) == 104, "hello_rep size");

/*
 * AUTH request: mac = HMAC(key, "disagg-hello-cli" | server_nonce |
 * client_nonce | le64(client node_id) | le64(server node_id)).
 * AUTH reply: empty payload, status OK; or NOAUTH and the server closes.
 */
struct proto_auth_req {
	uint8_t mac[PROTO_MAC_SIZE];
};
_Static_assert(sizeof(struct proto_auth_req) == 32, "auth_req size");

/*
 * The orchestrator's AUTH: the same MAC, then its proof
 *   sig = Ed25519(grant key, "disagg-orch" | server_nonce | client_nonce |
 *                 le64(client node_id) | le64(server node_id))
 * A connection whose AUTH carries a valid proof holds the orchestrator's
 * capability: SECTION_ALLOC, SECTION_LIST, COPY, and SECTION_FREE without
 * a grant. Anyone else gets PROTO_ST_DENIED for those. A bad proof fails
 * AUTH like a bad MAC.
 */
struct proto_auth_orch_req {
	uint8_t mac[PROTO_MAC_SIZE];
	uint8_t sig[PROTO_SIG_SIZE];
};
_Static_assert(sizeof(struct proto_auth_orch_req) == 96, "auth_orch_req size");

/* ---- grants ------------------------------------------------------------ */

/*
 * A grant lets node `holder_id` access section `section` (of generation
 * `generation`) on memory node `memnode_id` with `rights` until `expiry`
 * (seconds since the Unix epoch; 0 = never), as the owner of ownership
 * epoch `epoch`. It is minted by the orchestrator and checked by the
 * memory node:
 *   sig = Ed25519(grant key, "disagg-grant" | the first 40 bytes of this struct)
 * Only the orchestrator holds the grant key's private half; memory nodes
 * verify with the public one.
 * The holder must be the node that authenticated the connection. A write
 * through a grant whose epoch is lower than the section's (the highest
 * epoch the node has seen for it) is refused with PROTO_ST_FENCED; a write
 * through a higher one raises the section's epoch first.
 */
struct proto_grant {
	uint64_t memnode_id;
	uint64_t holder_id;
	uint32_t section;
	uint32_t generation;
	uint32_t rights;     /* enum proto_rights */
	uint32_t epoch;      /* ownership epoch of the holder */
	uint64_t expiry;
	uint8_t sig[PROTO_SIG_SIZE];
};
_Static_assert(sizeof(struct proto_grant) == 104, "grant size");
_Static_assert(offsetof(struct proto_grant, sig) == 40, "grant sig offset");

/* ---- sections ---------------------------------------------------------- */

/* SECTION_ALLOC request: allocate one zeroed section for `owner_id`. */
struct proto_alloc_req {
	uint64_t owner_id;
	uint32_t flags;      /* must be 0 */
	uint32_t rsvd;
};
_Static_assert(sizeof(struct proto_alloc_req) == 16, "alloc_req size");

/* SECTION_ALLOC reply; also the SECTION_LIST entry. */
struct proto_section {
	uint32_t section;
	uint32_t generation;
	uint64_t owner_id;
};
_Static_assert(sizeof(struct proto_section) == 16, "section size");

/*
 * SECTION_FREE request: the section and the generation being freed, and
 * the requester's ownership epoch: a FREE of an older epoch than the
 * section's is refused (FENCED) like a write. The short form, the first
 * 8 bytes only, is a FREE of epoch 0. Both forms need the orchestrator's
 * capability. Anyone else frees with the grant form: a struct proto_grant
 * with PROTO_R_FREE, held by the requester (section, generation and epoch
 * from the grant).
 */
struct proto_free_req {
	uint32_t section;
	uint32_t generation;
	uint32_t epoch;
	uint32_t rsvd;       /* must be 0 */
};
_Static_assert(sizeof(struct proto_free_req) == 16, "free_req size");
#define PROTO_FREE_REQ_SHORT 8   /* section and generation only: epoch 0 */

/* SECTION_LIST request: entries starting at section index `start`. */
struct proto_list_req {
	uint32_t start;
	uint32_t max;        /* at most PROTO_MAX_LIST */
};
_Static_assert(sizeof(struct proto_list_req) == 8, "list_req size");

/* SECTION_LIST reply: header, then `count` struct proto_section (allocated only). */
struct proto_list_rep {
	uint32_t count;
	uint32_t next;       /* index to continue from; == nsections when done */
};
_Static_assert(sizeof(struct proto_list_rep) == 8, "list_rep size");

/* ---- page I/O ---------------------------------------------------------- */

/* A run of pages inside a section. */
struct proto_extent {
	uint32_t page;       /* first page index within the section */
	uint32_t count;      /* pages, >= 1 */
};
_Static_assert(sizeof(struct proto_extent) == 8, "extent size");

/*
 * READ request: this struct, then `nextents` extents.
 * READ reply: the pages, in extent order (total pages * PROTO_PAGE_SIZE).
 * WRITE request: this struct, the extents, then the pages in extent order.
 * WRITE reply: empty.
 * The total page count is at most the negotiated max_pages.
 */
struct proto_io_req {
	struct proto_grant grant;
	uint32_t nextents;
	uint32_t rsvd;
};
_Static_assert(sizeof(struct proto_io_req) == 112, "io_req size");
_Static_assert(PROTO_MAX_PAYLOAD == sizeof(struct proto_io_req) +
			PROTO_MAX_EXTENTS * sizeof(struct proto_extent) +
			PROTO_MAX_PAGES * PROTO_PAGE_SIZE, "a full WRITE is the largest payload");

/*
 * WRITE_DIFF request: this struct, then `npages` page diffs, each a
 * struct proto_diff_page, its `nruns` struct proto_diff_run (offsets
 * increasing, runs neither empty, overlapping nor past the page), then the
 * runs' bytes in run order. Nothing follows the last page. Applied under
 * the section's lock like a WRITE (write right, epoch fenced); reply empty.
 * npages is at most the negotiated max_pages.
 *
 * With PROTO_DIFF_ONCE (PROTO_FEAT_DIFF_ONCE negotiated) a struct
 * proto_diff_once comes between this struct and the page diffs: the node
 * applies frame `frame` of batch `batch` of the writer (the grant's holder,
 * `stream`) to the section at most once. It keeps, per section and writer,
 * the newest batch it saw and which of its frames it applied; a frame it
 * applied, or of an older batch, answers OK without a byte written. So a
 * writer that does not know whether a frame landed (its connection broke,
 * its process restarted) sends it again with the same ids.
 */
struct proto_diff_req {
	struct proto_grant grant;
	uint32_t npages;     /* >= 1 */
	uint32_t flags;      /* enum proto_diff_flags */
};
_Static_assert(sizeof(struct proto_diff_req) == 112, "diff_req size");

enum proto_diff_flags {
	PROTO_DIFF_ONCE = 1u << 0,   /* a struct proto_diff_once follows */
};

struct proto_diff_once {
	uint64_t stream;     /* the writer's, != 0 (one per region of a VM) */
	uint64_t batch;      /* != 0, increasing within a stream */
	uint32_t frame;      /* < PROTO_DIFF_ONCE_FRAMES: its index among the batch's frames here */
	uint32_t rsvd;
};
_Static_assert(sizeof(struct proto_diff_once) == 24, "diff_once size");

#define PROTO_DIFF_ONCE_FRAMES 256u

struct proto_diff_page {
	uint32_t page;       /* page index within the section */
	uint16_t nruns;      /* 1 .. PROTO_MAX_DIFF_RUNS */
	uint16_t rsvd;
};
_Static_assert(sizeof(struct proto_diff_page) == 8, "diff_page size");

struct proto_diff_run {
	uint16_t offset;     /* byte offset in the page */
	uint16_t len;        /* >= 1; offset + len <= PROTO_PAGE_SIZE */
};
_Static_assert(sizeof(struct proto_diff_run) == 4, "diff_run size");

/*
 * CAS: if the 8-byte word at `offset` equals `expect`, store `value`.
 * FADD: add `value` to the word (wrapping). Both reply with the old value.
 * `offset` is a byte offset in the section, 8-byte aligned.
 */
struct proto_atomic_req {
	struct proto_grant grant;
	uint64_t offset;
	uint64_t expect;     /* CAS only; 0 for FADD */
	uint64_t value;
};
_Static_assert(sizeof(struct proto_atomic_req) == 128, "atomic_req size");

struct proto_atomic_rep {
	uint64_t old;
};
_Static_assert(sizeof(struct proto_atomic_rep) == 8, "atomic_rep size");

/*
 * COPY (orchestrator capability): copy section `src_grant.section`
 * (checked against its generation; the grant has read rights and names
 * the requester as holder) to section `dst_grant.section` on the memory
 * node at `addr` ("host:port", NUL padded). The serving node connects and
 * authenticates to the target with the cluster key and writes with
 * `dst_grant`, whose holder must be the serving node. The reply comes once
 * every page is acknowledged.
 */
struct proto_copy_req {
	struct proto_grant src_grant;
	struct proto_grant dst_grant;
	char addr[PROTO_MAX_ADDR];
};
_Static_assert(sizeof(struct proto_copy_req) == 464, "copy_req size");

struct proto_copy_rep {
	uint64_t pages;      /* pages that held data and were sent */
	uint64_t usec;       /* time the copy took */
};
_Static_assert(sizeof(struct proto_copy_rep) == 16, "copy_rep size");

/*
 * FENCE request: a grant (struct proto_grant, with write rights, held by
 * the requester). The node raises the epoch of the grant's section to the
 * grant's epoch if that is higher, durably, after every write already
 * under way on the section has finished; from then on it refuses writes
 * through grants of a lower epoch. The reply gives the section's epoch.
 */
struct proto_fence_rep {
	uint32_t epoch;      /* the section's epoch now (>= the grant's) */
	uint32_t rsvd;
};
_Static_assert(sizeof(struct proto_fence_rep) == 8, "fence_rep size");

/* STATS reply. */
struct proto_stats_rep {
	uint64_t node_id;
	uint64_t section_size;
	uint32_t nsections;
	uint32_t nused;
	uint64_t requests;
	uint64_t errors;
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t connections;
};
_Static_assert(sizeof(struct proto_stats_rep) == 64, "stats_rep size");

/*
 * REVOKE request (the orchestrator's capability): the whole list of
 * revoked node ids, replacing the node's list. Followed by `count`
 * little-endian u64 node ids (nonzero, count <= PROTO_MAX_REVOKED). The
 * node persists it, closes the connections of those nodes at once and
 * refuses their handshakes. Empty reply.
 */
struct proto_revoke_req {
	uint32_t count;
	uint32_t rsvd;           /* 0 */
};
_Static_assert(sizeof(struct proto_revoke_req) == 8, "revoke_req size");

/* ---- coherence directory (shared regions, mode strict) ------------------- */

/*
 * Per 4 KiB page of a section in strict use, the memory node keeps the
 * owner (the one node with a writable copy, or none) and the copyset (the
 * nodes with read copies); at most PROTO_DIR_MAX_HOLDERS nodes per section.
 *
 * A holder is a node and a tag (PROTO_FEAT_DIR_TAG; 0 without it): one
 * node's VMs that map one strict section are separate holders.
 * DIR_ATTACH request: a grant (struct proto_grant, read rights, held by the
 *   requester), optionally followed by a struct proto_dir_who (the tag).
 *   This connection becomes the holder's recall channel for the grant's
 *   section; attaching again replaces the channel and forgets the holder's
 *   copies. Reply: empty.
 * DIR_DETACH request: as DIR_ATTACH. The holder's copies are gone.
 *   Reply: empty.
 * DIR_READ request: struct proto_dir_req (read rights). Reply: the page;
 *   with PROTO_DIR_REQ_TAKE (PROTO_FEAT_DIR_TAKE negotiated; the grant has
 *   write rights too): struct proto_dir_write_rep, then the page, and
 *   PROTO_DIR_OWNED when the node made the requester the page's owner
 *   (the page is migratory: see docs/protocol.md).
 * DIR_WRITE request: struct proto_dir_req (read and write rights). Reply:
 *   struct proto_dir_write_rep, then the page unless PROTO_DIR_HAD_COPY.
 * DIR_RECALL (memory node -> holder, a request frame with req_id = seq):
 *   struct proto_dir_recall. The holder answers with a DIR_RECALL_ACK
 *   request: struct proto_dir_ack, then the page if PROTO_DIR_DIRTY.
 *   Reply to the ack: empty.
 * DIR_RECLAIM request (PROTO_FEAT_DIR_RECLAIM): struct proto_dir_req
 *   (read and write rights, the section's epoch), then the page; or with
 *   PROTO_DIR_REQ_DONE (read rights) and no page: this holder has reclaimed
 *   everything of the section. Only in a restarted node's grace period, from
 *   a holder attached before the restart and attached again since: the page
 *   is stored as the holder's last write (with PROTO_DIR_REQ_RECALLED only
 *   if no holder hands back the same page without it). Otherwise
 *   DIR_DETACHED; DONE is always accepted from an attached holder. Meanwhile
 *   DIR_READ and DIR_WRITE of the section answer DIR_GRACE. Reply: empty.
 *   With PROTO_FEAT_DIR_VERSION a RECALLED page may carry PROTO_DIR_REQ_VERSION:
 *   a struct proto_dir_version (the version of the recall it answered)
 *   comes between the request and the page, and the page is stored only
 *   if nobody was made its owner since that version.
 *
 * Page versions (PROTO_FEAT_DIR_VERSION): the node counts, per page, every
 * time it makes a holder the page's owner (DIR_WRITE, or a DIR_READ that
 * takes ownership), and keeps that count beside a pool that outlives the
 * process (0 for ever without such a pool). Every DIR_RECALL carries the
 * page's count (0 to a holder without the feature): sent to the owner, it
 * is the count of that holder's ownership; to a holder of a read copy it
 * means nothing. Counts wrap: compare them with serial arithmetic.
 */
enum proto_dir_limits {
	PROTO_DIR_MAX_HOLDERS = 16,
};

enum proto_dir_mode {
	PROTO_DIR_DOWNGRADE  = 1,  /* write-protect your copy, keep it readable */
	PROTO_DIR_INVALIDATE = 2,  /* drop your copy */
};

enum proto_dir_flags {
	PROTO_DIR_HAD_COPY = 1u << 0,  /* DIR_WRITE reply: your copy is current, no page follows */
	PROTO_DIR_DIRTY    = 1u << 1,  /* DIR_RECALL_ACK: the page follows (it was written) */
	PROTO_DIR_OWNED    = 1u << 2,  /* DIR_READ reply (REQ_TAKE): you own the page now */
	PROTO_DIR_QUIET    = 1u << 3,  /* DIR_RECALL_ACK: no reply unless it fails (DIR_QUIET) */
};

/* proto_dir_req.flags */
enum proto_dir_req_flags {
	PROTO_DIR_REQ_TAKE = 1u << 0,  /* DIR_READ: ownership may come with the copy */
	PROTO_DIR_REQ_DONE = 1u << 1,  /* DIR_RECLAIM: no page; the holder's reclaim is over */
	PROTO_DIR_REQ_RECALLED = 1u << 2, /* DIR_RECLAIM: the page went out in a recall answer
					     that the node may not have stored */
	PROTO_DIR_REQ_VERSION = 1u << 3,  /* DIR_RECLAIM (RECALLED): a proto_dir_version follows */
};

struct proto_dir_req {
	struct proto_grant grant;
	uint32_t page;           /* page index in the grant's section */
	uint16_t flags;          /* enum proto_dir_req_flags (DIR_READ, DIR_RECLAIM) */
	uint16_t tag;            /* the holder's tag (PROTO_FEAT_DIR_TAG), else 0 */
};
_Static_assert(sizeof(struct proto_dir_req) == 112, "dir_req size");

/* After the grant of DIR_ATTACH and DIR_DETACH (optional: tag 0 without it). */
struct proto_dir_who {
	uint16_t tag;
	uint16_t rsvd;           /* 0 */
	uint32_t rsvd2;          /* 0 */
};
_Static_assert(sizeof(struct proto_dir_who) == 8, "dir_who size");

struct proto_dir_write_rep {
	uint32_t flags;          /* PROTO_DIR_HAD_COPY, PROTO_DIR_OWNED */
	uint32_t rsvd;
};
_Static_assert(sizeof(struct proto_dir_write_rep) == 8, "dir_write_rep size");

/*
 * `grants`: how many DIR_READ/DIR_WRITE the node has answered OK to this
 * holder for this section since it attached, this recall's page or not
 * (wrapping). Every one of them was sent before this recall: a holder
 * that has received fewer waits for the rest before it acts on the recall
 * (a reply may still be on its way on another connection).
 */
struct proto_dir_recall {
	uint64_t seq;            /* echoed in DIR_RECALL_ACK */
	uint32_t section;
	uint32_t generation;
	uint32_t page;
	uint32_t mode;           /* enum proto_dir_mode */
	uint32_t grants;
	uint32_t version;        /* the page's ownership version (PROTO_FEAT_DIR_VERSION), else 0 */
};
_Static_assert(sizeof(struct proto_dir_recall) == 32, "dir_recall size");

/* DIR_RECLAIM with PROTO_DIR_REQ_VERSION: between the request and the page. */
struct proto_dir_version {
	uint32_t version;        /* the recall's (struct proto_dir_recall) */
	uint32_t rsvd;           /* 0 */
};
_Static_assert(sizeof(struct proto_dir_version) == 8, "dir_version size");

struct proto_dir_ack {
	uint64_t seq;            /* the recall's */
	uint32_t flags;          /* PROTO_DIR_DIRTY: PROTO_PAGE_SIZE bytes follow */
	uint32_t rsvd;           /* 0 */
};
_Static_assert(sizeof(struct proto_dir_ack) == 16, "dir_ack size");

/* ---- device nodes: block volumes (PROTO_FEAT_BLK) ------------------------ */

/*
 * A volume has a name (1-63 of [a-z0-9_-], starting with a letter or a
 * digit; NUL-padded to 64 bytes on the wire) and a 64-bit key that the
 * device node draws at random when it makes the volume (create, clone):
 * a volume deleted and made again under the same name has a new key. A
 * grant for a volume is a struct proto_grant whose memnode_id is the
 * device node's id, `section` the key's low 32 bits and `generation` its
 * high 32 bits (epoch 0, PROTO_R_READ and PROTO_R_WRITE).
 *
 * BLK_OPEN request: struct proto_blk_open_req. The grant must name this
 * node, the requester, the volume's key, and the read right (and the write
 * right unless PROTO_BLK_RDONLY). Reply: struct proto_blk_open_rep, with a
 * handle that is valid on this connection only (closing the connection
 * closes its handles). At most PROTO_BLK_MAX_HANDLES per connection.
 * BLK_READ / BLK_WRITE / BLK_DISCARD / BLK_WRITE_ZEROES request: struct
 * proto_blk_io; BLK_WRITE then carries `len` bytes. offset and len are
 * multiples of PROTO_BLK_SECTOR, len >= 1 sector, offset + len <= the
 * volume's size (RANGE); READ and WRITE move at most PROTO_BLK_MAX_IO
 * bytes (TOOBIG). Reply: BLK_READ the `len` bytes, the others empty. A
 * write through a read-only handle: RIGHTS.
 * BLK_FLUSH / BLK_CLOSE request: struct proto_blk_handle. FLUSH answers
 * once every write that was answered before the FLUSH arrived is on
 * stable storage (fdatasync): a write still in flight is not covered
 * (virtio-blk's rule). Reply: empty.
 * Fencing: a volume has an ownership epoch (0 until raised). A writable
 * BLK_OPEN through a grant of an older epoch is FENCED; one of a newer
 * epoch raises the volume's (durably) and fences every handle of an older
 * epoch. With PROTO_BLK_TAKEOVER it also fences the other handles of the
 * same holder (a client that reconnects takes the volume back from its own
 * lost connection). A fenced handle's BLK_WRITE, BLK_DISCARD,
 * BLK_WRITE_ZEROES and BLK_FLUSH are FENCED; its reads go on. The open
 * that fences answers once the fenced handles' writes in progress have
 * completed (BUSY if they do not within 10 s).
 * Requests are answered as they complete, in any order; a connection
 * has at most the HELLO reply's max_inflight unanswered requests (the
 * node stops reading past that).
 */
enum proto_blk_limits {
	PROTO_BLK_SECTOR      = 512,
	PROTO_BLK_MAX_IO      = PROTO_MAX_PAGES * PROTO_PAGE_SIZE,  /* 1 MiB */
	PROTO_BLK_MAX_HANDLES = 64,
	PROTO_VOL_NAME_SIZE   = 64,
	PROTO_VOL_MAX_LIST    = 512,  /* entries per VOL_LIST reply */
};

enum proto_blk_flags {
	PROTO_BLK_RDONLY = 1u << 0,    /* BLK_OPEN: reads only (the write right is not needed) */
	PROTO_BLK_TAKEOVER = 1u << 1,  /* BLK_OPEN: fence this holder's other handles of the volume */
};

struct proto_blk_open_req {
	struct proto_grant grant;
	char name[PROTO_VOL_NAME_SIZE];
	uint32_t flags;          /* enum proto_blk_flags */
	uint32_t rsvd;           /* 0 */
};
_Static_assert(sizeof(struct proto_blk_open_req) == 176, "blk_open_req size");

struct proto_blk_open_rep {
	uint32_t handle;
	uint32_t flags;          /* as opened */
	uint64_t size;           /* bytes */
};
_Static_assert(sizeof(struct proto_blk_open_rep) == 16, "blk_open_rep size");

struct proto_blk_io {
	uint32_t handle;
	uint32_t len;            /* bytes */
	uint64_t offset;         /* bytes */
};
_Static_assert(sizeof(struct proto_blk_io) == 16, "blk_io size");

struct proto_blk_handle {
	uint32_t handle;
	uint32_t rsvd;           /* 0 */
};
_Static_assert(sizeof(struct proto_blk_handle) == 8, "blk_handle size");

/*
 * VOL_* (the orchestrator's capability): struct proto_vol_req.
 *   VOL_CREATE name, size: a zero-filled volume (EXIST if the name is taken).
 *   VOL_DELETE name (BUSY while open; NOTSUP for a block device's volume).
 *   VOL_RESIZE name, size, PROTO_VOL_SHRINK to allow shrinking (BUSY: open;
 *     NOTSUP for a block device's volume, whose size is the device's).
 *   VOL_CLONE name <- src: a copy of src (reflinked where the filesystem can).
 *   VOL_STAT name.
 * Reply: struct proto_volume (VOL_DELETE: empty). NOENT for a missing
 * volume, BADMSG for a bad name or size.
 * VOL_LIST request: struct proto_list_req (start index in name order, max
 * <= PROTO_VOL_MAX_LIST). Reply: struct proto_list_rep, then `count`
 * struct proto_volume; `next` == the number of volumes when done.
 */
enum proto_vol_flags {
	PROTO_VOL_SHRINK    = 1u << 0,  /* VOL_RESIZE may drop data past the new end */
	PROTO_VOL_REFLINKED = 1u << 0,  /* proto_volume of VOL_CLONE: blocks are shared */
	PROTO_VOL_BLOCK     = 1u << 1,  /* proto_volume: a block device given to the node */
};

struct proto_vol_req {
	char name[PROTO_VOL_NAME_SIZE];
	uint64_t size;           /* CREATE, RESIZE */
	uint32_t flags;          /* enum proto_vol_flags */
	uint32_t rsvd;           /* 0 */
	char src[PROTO_VOL_NAME_SIZE];  /* CLONE; else all NUL */
};
_Static_assert(sizeof(struct proto_vol_req) == 144, "vol_req size");

struct proto_volume {
	char name[PROTO_VOL_NAME_SIZE];
	uint64_t size;           /* bytes the guest sees */
	uint64_t allocated;      /* bytes on the node's disk */
	uint64_t key;            /* grants name it (section = low, generation = high half) */
	uint32_t users;          /* open handles */
	uint32_t flags;          /* PROTO_VOL_REFLINKED, PROTO_VOL_BLOCK */
};
_Static_assert(sizeof(struct proto_volume) == 96, "volume size");
_Static_assert(8 + PROTO_VOL_MAX_LIST * sizeof(struct proto_volume) <= PROTO_MAX_REPLY,
	       "a full VOL_LIST fits a reply");

#endif /* DISAGG_PROTO_H */
