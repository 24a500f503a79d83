/* SPDX-License-Identifier: MIT */
/*
 * Guest memory as a vhost-user back end sees it (vu_mem.c): the regions
 * QEMU hands over (SET_MEM_TABLE, or one at a time with ADD_MEM_REG and
 * REM_MEM_REG), each an fd mapped shared into this process, and the
 * translation of guest-physical addresses (descriptors) and of QEMU's
 * own addresses (the rings) into ours. A range is translated only if it
 * lies whole inside one region: anything else is NULL, never a pointer
 * past a mapping.
 *
 * Each region maps only its own bytes of the file. Whoever else must know
 * of a mapping of guest memory hears of it through vu_mem_ops: in the
 * compute agent the pager serves it as an alias of QEMU's mapping, so an
 * unfetched page is fetched, not read as zeros, and a write is seen
 * (docs/devnode.md, "Guest memory in the agent").
 */
#ifndef DISAGG_VU_MEM_H
#define DISAGG_VU_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "vu_msg.h"

#define VU_MAX_MEM_SLOTS 32u   /* GET_MAX_MEM_SLOTS: hot-added DIMMs need room */

struct vu_map {
	struct vu_region r;
	void *base;              /* the mmap, from mmap_offset rounded down to a page */
	size_t maplen;
	uint8_t *data;           /* the region's first byte (guest_addr, user_addr) */
	bool refused;            /* mapped, but never translated (vu_mem_ops.mapped) */
	void *priv;              /* vu_mem_ops' */
};

struct vu_mem_ops {
	/*
	 * Region m was just mapped (m->data, m->r.size bytes at file offset
	 * m->r.mmap_offset of fd, which is only borrowed). 0: use it; 1: keep
	 * it but never translate into it (requests that point there fail);
	 * -errno: the region is refused (unmapped, the message fails).
	 */
	int (*mapped)(void *opaque, struct vu_map *m, int fd);
	/* Region m is about to be unmapped; nothing touches it any more. */
	void (*unmapping)(void *opaque, struct vu_map *m);
};

struct vu_mem {
	struct vu_map maps[VU_MAX_MEM_SLOTS];
	unsigned n;
	const struct vu_mem_ops *ops;   /* NULL: none */
	void *opaque;
};

/* Map region r of fd (the fd is ours to close after): -ENOSPC, -EEXIST, -errno of mmap. */
int vu_mem_add(struct vu_mem *m, const struct vu_region *r, int fd);
/* Unmap the region with r's guest address and size: -ENOENT. */
int vu_mem_remove(struct vu_mem *m, const struct vu_region *r);
void vu_mem_clear(struct vu_mem *m);
/* Our pointer to guest-physical [gpa, gpa + len), or NULL. */
void *vu_mem_gpa(const struct vu_mem *m, uint64_t gpa, uint64_t len);
/* Our pointer to QEMU's [uva, uva + len), or NULL. */
void *vu_mem_uva(const struct vu_mem *m, uint64_t uva, uint64_t len);

#endif /* DISAGG_VU_MEM_H */
