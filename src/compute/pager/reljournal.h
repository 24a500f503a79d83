/* SPDX-License-Identifier: MIT */
/*
 * A release region's journal (reljournal.c; release.h says what a release
 * is, reldiff.c publishes). A release sends its diffs in batches, each of
 * WRITE_DIFF frames that the memory node applies at most once under the
 * frame's ids (stream, batch, frame: PROTO_DIFF_ONCE). The batch being
 * sent is the journal's: its frames, encoded in the journal's own buffer,
 * and their ids, kept in the twins' file after the twins (twin.h). Until
 * every frame is acknowledged and the twins are settled the batch stays
 * there; a release that finds one (its connection broke, the agent died)
 * first sends it again as it was: a frame the node took is not applied a
 * second time, so it cannot undo what another slot released since.
 *
 * Layout at npages * PS of the twins' file: a header page (struct in
 * reljournal.c, a hash over it and the frame table), the frame table (a
 * page), then PAGER_RELJ_ENC bytes of encoded diffs (mapped shared). A
 * batch is written in order: diffs, table, header; a process killed
 * between them leaves the header before (no batch, or the one before,
 * which is never overwritten while it is pending).
 *
 * The caller serializes (a region's publishes are; reldiff.c).
 */
#ifndef DISAGG_PAGER_RELJOURNAL_H
#define DISAGG_PAGER_RELJOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wirediff.h"

#define PAGER_RELJ_PAGES 256u   /* pages of one batch */
#define PAGER_RELJ_ENC ((size_t)PAGER_RELJ_PAGES * WIRE_DIFF_PAGE_MAX)

struct pager_twins;
struct pager_reljournal;

/* One frame of a batch: `npages` page diffs of the region's section `sec`, at off in the buffer. */
struct pager_relj_frame {
	uint32_t sec;
	uint32_t npages;
	uint32_t off;
	uint32_t len;
};

/*
 * The journal of the twins' file t: read (a batch left there is pending)
 * or, in a file without one, started with a new random stream. 0 or -errno.
 */
int pager_reljournal_open(struct pager_twins *t, struct pager_reljournal **ret);
void pager_reljournal_close(struct pager_reljournal *j);

/* The buffer a batch is encoded in: PAGER_RELJ_ENC bytes, the file's. */
uint8_t *pager_reljournal_buf(struct pager_reljournal *j);

/* The pending batch: its id (0: none), frames and their count. */
uint64_t pager_reljournal_pending(const struct pager_reljournal *j,
				  const struct pager_relj_frame **ret_frames, unsigned *ret_n);

/*
 * Keep n frames (at most PAGER_RELJ_PAGES, encoded in the buffer) as the
 * pending batch with a new id, *ret_batch. -EBUSY while a batch is pending.
 */
int pager_reljournal_begin(struct pager_reljournal *j, const struct pager_relj_frame *f,
			   unsigned n, uint64_t *ret_batch);
/* The pending batch is settled: no batch. */
int pager_reljournal_end(struct pager_reljournal *j);

/*
 * The PROTO_DIFF_ONCE ids of frame k of the pending batch: its index
 * among the batch's frames of the same section.
 */
void pager_reljournal_ids(const struct pager_reljournal *j, unsigned k,
			  struct proto_diff_once *ret);

#endif /* DISAGG_PAGER_RELJOURNAL_H */
