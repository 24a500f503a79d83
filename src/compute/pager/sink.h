// SPDX-License-Identifier: MIT
/*
 * The sink: where write-backs go. A write-back batch is a set of groups
 * (extents of one section each); pager_sink_write() submits them to the
 * backend (the write half of struct pager_backend_ops) and waits for the
 * completion: every write acknowledged, retried with reconnects as a whole
 * (backend.h) until then. A write refused because this pager no longer
 * owns the section (fenced, stale) counts as written: the data is dropped.
 *
 * A section can carry a tee: a second sink that gets every write-back of
 * the section as well (memory migration's target, memmig.c; replication
 * and encryption are the next ones). It is installed and removed under
 * io_lock, which every write-back batch holds, so a batch sees one
 * consistent set of tees. A tee's failure never fails the write-back: the
 * tee decides what it means (a migration ends). The layers that write back
 * (writeback.c) know nothing about what a tee is for.
 *
 * A replicated section (replica.h) is written to each of its replicas
 * that is in; a replica whose write failed for a transport reason while
 * another acknowledged is taken out and the batch counts as written
 * (docs/pager.md, "Replicated sections").
 */
#ifndef DISAGG_PAGER_SINK_H
#define DISAGG_PAGER_SINK_H

#include <stdbool.h>
#include <stdint.h>

#include "types.h"

struct pager_region;
struct pager_tee;

/* One write of a write-back batch: extents of one section, data in extent order. */
struct pager_wb_group {
	const struct pager_section *s;
	struct pager_region *r;      /* s is r->sections[sec] (NULL: s is no region's, not replicated) */
	unsigned sec;
	uint64_t slot_page;          /* slot page index of the section's page 0 (crypt.h) */
	struct pager_tee *tee;       /* the section's tee, or NULL */
	struct proto_extent ext[PROTO_MAX_EXTENTS];
	uint32_t next, npages;
	const uint8_t *data;
	bool teed;                   /* also submitted to the tee */
	bool clear;                  /* a shared region's: not sealed (pager_rcrypt) */
	/* Replicated sections (sink.c): the positions written this attempt, and their results. */
	uint8_t sent;
	int rres[PAGER_MAX_REPLICAS];
};

/*
 * A tee's operations, called with io_lock held, in this order for a batch:
 * submit (each group of the tee's sections, after the backend writes were
 * queued: true if the tee took it), wait (once per batch for each ops
 * table in it: wait for what was submitted; a failure ends the tees
 * involved and clears their groups' `teed`), then, once the backend
 * acknowledged the batch, written (each group). drop: the tee is removed
 * without its own commit (region removed, section discarded, pager freed).
 */
struct pager_tee_ops {
	const char *name;
	bool (*submit)(struct pager *p, struct pager_tee *t, const struct pager_wb_group *g);
	void (*wait)(struct pager *p, struct pager_wb_group *g, unsigned ng);
	void (*written)(struct pager *p, struct pager_tee *t, const struct pager_wb_group *g);
	void (*drop)(struct pager *p, struct pager_tee *t);
};

struct pager_tee {
	const struct pager_tee_ops *ops;
};

/*
 * Write the groups through *connp (the write-back connection, io_lock held)
 * and their tees; returns once the backend acknowledged every write (0) or
 * with the error that remained after the retries.
 */
int pager_sink_write(struct pager *p, void **connp, struct pager_wb_group *g, unsigned ng);

/* Install t on section `sec` of r (none there); io_lock held. */
void pager_tee_install(struct pager_region *r, unsigned sec, struct pager_tee *t);
/* The tee of section `sec` of r, or NULL; io_lock held. */
struct pager_tee *pager_tee_get(struct pager_region *r, unsigned sec);
/* Remove the tee of section `sec` (none: nothing) without dropping it; io_lock held. */
struct pager_tee *pager_tee_remove(struct pager_region *r, unsigned sec);
/* Remove and drop the tee of section `sec`, if any; io_lock held (or r unreachable). */
void pager_tee_drop(struct pager *p, struct pager_region *r, unsigned sec);

#endif /* DISAGG_PAGER_SINK_H */
