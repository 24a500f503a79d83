// SPDX-License-Identifier: MIT
/*
 * The twins of a release region (twin.h). A twin is written with one
 * pwrite of the whole page, before the page is made writable: a process
 * killed half-way leaves either no twin or a whole one, never a torn one
 * that a restarted agent's diff would be taken against. A release reads
 * them back with one pread a run, as it reads the pages; a mapping of
 * the file was slower (its faults, and a punch then unmaps too:
 * bench/README, "A release region's twins in a file").
 */
#include "twin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>   /* memfd_create */
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "types.h"

#define PS PAGER_PAGE_SIZE

struct pager_twins {
	int fd;
	uint64_t npages;
	uint64_t count;          /* pages with a twin */
	uint64_t *bits;          /* a bit per page: it has a twin */
};

static bool bit(const struct pager_twins *t, uint64_t pg)
{
	return t->bits[pg / 64] & (1ull << (pg % 64));
}

/* The pages the file has data for have a twin (tmpfs: exact per page). */
static int scan(struct pager_twins *t)
{
	off_t end = (off_t)(t->npages * PS), a = 0, b;

	for (;;) {
		a = lseek(t->fd, a, SEEK_DATA);
		if (a < 0)
			return errno == ENXIO ? 0 : -errno;
		b = lseek(t->fd, a, SEEK_HOLE);
		if (b < 0)
			return -errno;
		for (uint64_t pg = (uint64_t)a / PS; pg < (uint64_t)(b + PS - 1) / PS && pg < t->npages;
		     pg++)
			if (!bit(t, pg)) {
				t->bits[pg / 64] |= 1ull << (pg % 64);
				t->count++;
			}
		if (b >= end)
			return 0;
		a = b;
	}
}

int pager_twins_new(int fd, uint64_t npages, struct pager_twins **ret)
{
	_cleanup_free_ struct pager_twins *t = calloc(1, sizeof(*t));
	struct stat sb;
	int r;

	if (!t)
		return -ENOMEM;
	t->npages = npages;
	t->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : memfd_create("twins", MFD_CLOEXEC);
	t->bits = calloc((npages + 63) / 64, sizeof(*t->bits));
	if (t->fd < 0 || !t->bits) {
		r = t->fd < 0 ? -errno : -ENOMEM;
		goto fail;
	}
	/* Grown, never cut: a restarted agent's journal follows the twins (reljournal.h). */
	if (fstat(t->fd, &sb) < 0 ||
	    (sb.st_size < (off_t)(npages * PS) && ftruncate(t->fd, (off_t)(npages * PS)) < 0)) {
		r = -errno;
		goto fail;
	}
	r = scan(t);
	if (r < 0)
		goto fail;
	*ret = TAKE_PTR(t);
	return 0;
fail:
	if (t->fd >= 0)
		close(t->fd);
	free(t->bits);
	return r;
}

void pager_twins_free(struct pager_twins *t)
{
	if (!t)
		return;
	close(t->fd);
	free(t->bits);
	free(t);
}

bool pager_twin_has(const struct pager_twins *t, uint64_t pg)
{
	return pg < t->npages && bit(t, pg);
}

int pager_twins_read(const struct pager_twins *t, uint64_t pg, uint64_t n, void *buf)
{
	ssize_t got;

	if (pg + n > t->npages)
		return -ERANGE;
	got = pread(t->fd, buf, n * PS, (off_t)(pg * PS));
	return got == (ssize_t)(n * PS) ? 0 : got < 0 ? -errno : -EIO;
}

int pager_twin_put(struct pager_twins *t, uint64_t pg, const void *data)
{
	if (pg >= t->npages)
		return -ERANGE;
	return bit(t, pg) ? 0 : pager_twin_set(t, pg, data);
}

int pager_twin_set(struct pager_twins *t, uint64_t pg, const void *data)
{
	ssize_t n;

	if (pg >= t->npages)
		return -ERANGE;
	n = pwrite(t->fd, data, PS, (off_t)(pg * PS));
	if (n != (ssize_t)PS) {
		int r = n < 0 ? -errno : -EIO;

		/* A new twin half written is none; a page's old one stays (its space was there). */
		if (!bit(t, pg))
			(void)fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)(pg * PS), PS);
		return r;
	}
	if (!bit(t, pg)) {
		t->bits[pg / 64] |= 1ull << (pg % 64);
		t->count++;
	}
	return 0;
}

void pager_twin_drop(struct pager_twins *t, uint64_t pg, uint64_t n)
{
	uint64_t end = MIN(pg + n, t->npages), had = 0;

	for (uint64_t i = pg; i < end; i++)
		if (bit(t, i)) {
			t->bits[i / 64] &= ~(1ull << (i % 64));
			had++;
		}
	if (!had)
		return;
	t->count -= had;
	(void)fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(pg * PS),
			(off_t)((end - pg) * PS));
}

uint64_t pager_twin_count(const struct pager_twins *t)
{
	return t ? t->count : 0;
}

int pager_twins_fd(const struct pager_twins *t)
{
	return t->fd;
}

uint64_t pager_twins_npages(const struct pager_twins *t)
{
	return t->npages;
}
