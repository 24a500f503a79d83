/* SPDX-License-Identifier: MIT */
/*
 * Guest memory as a vhost-user back end sees it (vu_mem.c): the regions
 * QEMU hands over (SET_MEM_TABLE, or one at a time with ADD_MEM_REG and
 * REM_MEM_REG), each an fd mapped shared into this process, and the
 * translation of guest-physical addresses (descriptors) and of QEMU's
 * own addresses (the rings) into ours. A range is translated only if it
 * lies whole inside one region: anything else is NULL, never a pointer
 * past a mapping.
 */
#ifndef DISAGG_VU_MEM_H
#define DISAGG_VU_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "vu_msg.h"

#define VU_MAX_MEM_SLOTS 32u   /* GET_MAX_MEM_SLOTS: hot-added DIMMs need room */

struct vu_map {
	struct vu_region r;
	void *base;              /* the mmap: fd from offset 0, mmap_offset + size bytes */
	size_t maplen;
};

struct vu_mem {
	struct vu_map maps[VU_MAX_MEM_SLOTS];
	unsigned n;
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
