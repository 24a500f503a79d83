/* SPDX-License-Identifier: MIT */
/*
 * Types of the memory-node client that both its interface (mnclient.h)
 * and its connection engine (mnconn.h) use: what a node told us in HELLO,
 * a completion callback, a recall received on a recall channel. Types
 * only: no functions are declared here.
 */
#ifndef DISAGG_MNTYPES_H
#define DISAGG_MNTYPES_H

#include <stddef.h>
#include <stdint.h>

/* What the server told us in HELLO. */
struct mnc_info {
	uint64_t node_id;
	uint64_t section_size;
	uint32_t nsections;
	uint32_t max_pages;
	uint32_t max_inflight;
	uint32_t features;
	uint16_t version;
};

/* Completion: status is 0 or -errno; `len` bytes of reply payload were stored. */
typedef void (*mnc_done_fn)(void *opaque, int status, size_t len);

/*
 * A DIR_RECALL received on a recall channel (docs/protocol.md): give up
 * page `page` of the section (MNC_RECALL_DOWNGRADE: write-protect it, keep
 * it readable; MNC_RECALL_INVALIDATE: drop it), then answer `seq` with
 * mnc_dir_recall_ack(). `grants`: how many DIR_READ/DIR_WRITE of this
 * section the node had answered OK to us (since our attach) when it sent
 * the recall; act on it only once that many have been received (serial
 * arithmetic: (int32_t)(received - grants) >= 0), as a reply may still be
 * on its way on another connection. `version` (PROTO_FEAT_DIR_VERSION):
 * the version of our ownership of the page, to give with the page to
 * mnc_dir_reclaim() if the answer is never confirmed.
 */
struct mnc_recall {
	uint64_t seq;
	uint32_t section, generation, page, mode;
	uint32_t grants;
	uint32_t version;            /* the page's ownership version (0 without the feature) */
};
#define MNC_RECALL_DOWNGRADE 1     /* PROTO_DIR_DOWNGRADE */
#define MNC_RECALL_INVALIDATE 2    /* PROTO_DIR_INVALIDATE */

#endif /* DISAGG_MNTYPES_H */
