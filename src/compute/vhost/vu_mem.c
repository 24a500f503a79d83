// SPDX-License-Identifier: MIT
/*
 * Guest memory regions of a vhost-user back end (vu_mem.h).
 */
#include "vu_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void map_drop(struct vu_mem *m, struct vu_map *p)
{
	if (m->ops && m->ops->unmapping)
		m->ops->unmapping(m->opaque, p);
	munmap(p->base, p->maplen);
}

int vu_mem_add(struct vu_mem *m, const struct vu_region *r, int fd)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), skew = r->mmap_offset % page;
	struct vu_map *p;
	struct stat st;
	void *base;
	int rc;

	if (m->n == VU_MAX_MEM_SLOTS)
		return -ENOSPC;
	for (unsigned i = 0; i < m->n; i++) {
		const struct vu_region *o = &m->maps[i].r;

		if (r->guest_addr < o->guest_addr + o->size && o->guest_addr < r->guest_addr + r->size)
			return -EEXIST;
	}
	if (r->mmap_offset + r->size > SIZE_MAX)
		return -EINVAL;
	/* A file shorter than the region would fault (SIGBUS) past its end. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < r->mmap_offset + r->size)
		return -EINVAL;
	base = mmap(NULL, (size_t)(skew + r->size), PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    (off_t)(r->mmap_offset - skew));
	if (base == MAP_FAILED)
		return -errno;
	p = &m->maps[m->n];
	*p = (struct vu_map){ .r = *r, .base = base, .maplen = (size_t)(skew + r->size),
			      .data = (uint8_t *)base + skew };
	rc = m->ops && m->ops->mapped ? m->ops->mapped(m->opaque, p, fd) : 0;
	if (rc < 0) {
		munmap(base, p->maplen);
		return rc;
	}
	p->refused = rc > 0;
	m->n++;
	return 0;
}

int vu_mem_remove(struct vu_mem *m, const struct vu_region *r)
{
	for (unsigned i = 0; i < m->n; i++) {
		struct vu_map *p = &m->maps[i];

		if (p->r.guest_addr != r->guest_addr || p->r.size != r->size)
			continue;
		map_drop(m, p);
		*p = m->maps[--m->n];
		return 0;
	}
	return -ENOENT;
}

void vu_mem_clear(struct vu_mem *m)
{
	for (unsigned i = 0; i < m->n; i++)
		map_drop(m, &m->maps[i]);
	m->n = 0;
}

void *vu_mem_gpa(const struct vu_mem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->n; i++) {
		const struct vu_map *p = &m->maps[i];

		if (!p->refused && gpa >= p->r.guest_addr && len <= p->r.size &&
		    gpa - p->r.guest_addr <= p->r.size - len)
			return p->data + (gpa - p->r.guest_addr);
	}
	return NULL;
}

void *vu_mem_uva(const struct vu_mem *m, uint64_t uva, uint64_t len)
{
	for (unsigned i = 0; i < m->n; i++) {
		const struct vu_map *p = &m->maps[i];

		if (!p->refused && uva >= p->r.user_addr && len <= p->r.size &&
		    uva - p->r.user_addr <= p->r.size - len)
			return p->data + (uva - p->r.user_addr);
	}
	return NULL;
}
