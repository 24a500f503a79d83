// SPDX-License-Identifier: MIT
/*
 * The dirty log (vu_log.h).
 */
#include "vu_log.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>

int vu_log_set(struct vu_log *l, int fd, uint64_t size, uint64_t offset)
{
	struct stat st;
	void *map;

	if (fd < 0 || size == 0 || offset > UINT64_MAX - size || offset + size > SIZE_MAX)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < offset + size)
		return -EINVAL;  /* the bitmap would end past the file (SIGBUS) */
	map = mmap(NULL, (size_t)(offset + size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	vu_log_clear(l);
	l->map = map;
	l->maplen = (size_t)(offset + size);
	l->bits = (uint8_t *)map + offset;
	l->len = size;
	return 0;
}

void vu_log_clear(struct vu_log *l)
{
	if (l->map)
		munmap(l->map, l->maplen);
	*l = (struct vu_log){ 0 };
}

void vu_log_write(const struct vu_log *l, uint64_t gpa, uint64_t len)
{
	uint64_t first, last;

	if (!l->bits || !len || gpa > UINT64_MAX - (len - 1))
		return;
	first = gpa / VU_LOG_PAGE;
	last = (gpa + len - 1) / VU_LOG_PAGE;
	for (uint64_t pg = first; pg <= last && pg / 8 < l->len; pg++)
		__atomic_fetch_or(&l->bits[pg / 8], (uint8_t)(1u << (pg % 8)), __ATOMIC_RELAXED);
}
