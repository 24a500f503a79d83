// SPDX-License-Identifier: MIT
/*
 * The memory pool of a memory node: one mapping of `size` bytes, cut into
 * sections, and the table of section records that goes with it.
 *
 * Backings:
 *   anon        MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE; the records live in
 *               ordinary memory and are lost on exit.
 *   tmpfs:PATH  a file (normally on tmpfs or hugetlbfs) mapped MAP_SHARED;
 *   file:PATH   the same on any file system: PERSISTENT across restarts.
 *
 * A pool file starts with a metadata area and is followed by the data area
 * at an offset aligned to 2 MiB, then by the epoch table:
 *
 *   0      struct mn_disk_hdr (magic, version, geometry, node id)
 *   4096   nsections struct mn_rec (state, generation, owner), 16 bytes each
 *   data_offset (2 MiB aligned)   section 0, section 1, ...
 *   epoch_offset = data_offset + pool size: one little-endian u32 per
 *          section, its ownership epoch (rounded up to 4 KiB)
 *
 * The epoch table came with version 2 of the file. A version 1 file is
 * upgraded when it is opened: the file grows by the table (zeros: every
 * epoch 0, which is what version 1 enforced), then the header says
 * version 2. A crash between the two leaves a version 1 header on a file
 * that already has the table, which the next open recognises and finishes.
 *
 * Records are updated in place (table.c writes the state word last, with a
 * single aligned store, then mn_pool_sync_rec() msyncs the record's page),
 * so a crash leaves every record either old or new. On open, an existing
 * file is validated against the options: a different geometry or node id
 * is refused, never silently reinterpreted. The file is flock()ed so two
 * daemons cannot share it.
 */
#include "memnode.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "macro.h"

#define MN_DISK_MAGIC "DSGMNPL1"
#define MN_DISK_VERSION 2u
#define MN_REC_OFFSET 4096u
#define MN_EPOCH_ALIGN 4096u

struct mn_disk_hdr {
	char magic[8];
	uint32_t version;
	uint32_t rec_offset;
	uint64_t section_size;
	uint64_t nsections;
	uint64_t node_id;
	uint64_t data_offset;
	uint64_t pool_size;
	uint64_t epoch_offset;   /* version 2: the epoch table */
	uint64_t rsvd[8];
};
_Static_assert(sizeof(struct mn_disk_hdr) == 128, "disk header size");

/* Store an operator-facing message in err and return r. */
static _printf_(4, 5) int fail(int r, char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return r;
}

const char *mn_backing_name(enum mn_backing b)
{
	switch (b) {
	case MN_BACK_ANON:
		return "anon";
	case MN_BACK_TMPFS:
		return "tmpfs";
	case MN_BACK_FILE:
		return "file";
	}
	return "?";
}

static uint64_t data_offset_for(uint64_t nsections)
{
	return ALIGN_UP((uint64_t)MN_REC_OFFSET + nsections * sizeof(struct mn_rec),
			(uint64_t)MN_DATA_ALIGN);
}

static uint64_t epoch_len_for(uint64_t nsections)
{
	return ALIGN_UP(nsections * sizeof(uint32_t), (uint64_t)MN_EPOCH_ALIGN);
}

static int pool_open_anon(struct mn_pool *p, char *err, size_t errlen)
{
	void *m;

	p->recs = calloc(p->nsections, sizeof(*p->recs));
	p->epochs = calloc(p->nsections, sizeof(*p->epochs));
	if (!p->recs || !p->epochs)
		return fail(-ENOMEM, err, errlen, "out of memory for the section table");
	m = mmap(NULL, p->size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		int r = -errno;

		return fail(r, err, errlen, "mmap of a %llu-byte anonymous pool: %s",
		     (unsigned long long)p->size, strerror(-r));
	}
	p->data = m;
	return 0;
}

/* Check the header of an existing pool file against the options. */
static int pool_check_hdr(const struct mn_pool *p, const struct mn_disk_hdr *h, uint64_t data_off,
			  const char *path, char *err, size_t errlen)
{
	if (memcmp(h->magic, MN_DISK_MAGIC, sizeof(h->magic)) != 0)
		return fail(-EINVAL, err, errlen, "%s is not a disagg-memnode pool file (bad magic)", path);
	if (le32toh(h->version) != 1 && le32toh(h->version) != MN_DISK_VERSION)
		return fail(-EINVAL, err, errlen, "%s: unsupported pool file version %u", path,
			    le32toh(h->version));
	if (le64toh(h->section_size) != p->section_size)
		return fail(-EINVAL, err, errlen,
			    "%s was created with section size %llu bytes, not %llu: "
			    "use the same --section-size or a new file",
			    path, (unsigned long long)le64toh(h->section_size),
			    (unsigned long long)p->section_size);
	if (le64toh(h->nsections) != p->nsections || le64toh(h->pool_size) != p->size)
		return fail(-EINVAL, err, errlen,
			    "%s was created with a %llu-byte pool (%llu sections), not %llu: "
			    "use the same --pool or a new file",
			    path, (unsigned long long)le64toh(h->pool_size),
			    (unsigned long long)le64toh(h->nsections),
			    (unsigned long long)p->size);
	if (le64toh(h->node_id) != p->node_id)
		return fail(-EINVAL, err, errlen,
			    "%s belongs to node id %llu, not %llu: refusing to serve another "
			    "node's sections",
			    path, (unsigned long long)le64toh(h->node_id),
			    (unsigned long long)p->node_id);
	if (le32toh(h->rec_offset) != MN_REC_OFFSET || le64toh(h->data_offset) != data_off ||
	    (le32toh(h->version) >= 2 && le64toh(h->epoch_offset) != data_off + p->size))
		return fail(-EINVAL, err, errlen, "%s: inconsistent pool file layout", path);
	return 0;
}

/* The header of a new (or upgraded) version 2 file. */
static void pool_fill_hdr(const struct mn_pool *p, uint64_t data_off, struct mn_disk_hdr *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, MN_DISK_MAGIC, sizeof(h->magic));
	h->version = htole32(MN_DISK_VERSION);
	h->rec_offset = htole32(MN_REC_OFFSET);
	h->section_size = htole64(p->section_size);
	h->nsections = htole64(p->nsections);
	h->node_id = htole64(p->node_id);
	h->data_offset = htole64(data_off);
	h->pool_size = htole64(p->size);
	h->epoch_offset = htole64(data_off + p->size);
}

/*
 * Size the file to `total` (the epoch table reads as zeros) and write a
 * version 2 header, both durably: a new file, or the upgrade of a
 * version 1 file.
 */
static int pool_write_v2(struct mn_pool *p, uint64_t data_off, uint64_t total, const char *path,
			 char *err, size_t errlen)
{
	struct mn_disk_hdr h;
	int r;

	if (ftruncate(p->fd, (off_t)total) < 0 || fsync(p->fd) < 0) {
		r = -errno;
		return fail(r, err, errlen, "cannot size pool file %s to %llu bytes: %s", path,
			    (unsigned long long)total, strerror(-r));
	}
	pool_fill_hdr(p, data_off, &h);
	errno = 0;
	if (pwrite(p->fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || fsync(p->fd) < 0) {
		r = errno ? -errno : -EIO;
		return fail(r, err, errlen, "cannot write pool header to %s: %s", path, strerror(-r));
	}
	return 0;
}

static int pool_open_file(struct mn_pool *p, const char *path, char *err, size_t errlen)
{
	uint64_t data_off = data_offset_for(p->nsections);
	uint64_t total_v1 = data_off + p->size, elen = epoch_len_for(p->nsections);
	uint64_t total = total_v1 + elen;
	struct mn_disk_hdr h;
	struct statfs sfs;
	struct stat st;
	void *m;
	int r;

	p->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (p->fd < 0) {
		r = -errno;
		return fail(r, err, errlen, "cannot open pool file %s: %s", path, strerror(-r));
	}
	if (flock(p->fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		if (r == -EWOULDBLOCK)
			r = -EBUSY;
		return fail(r, err, errlen, "pool file %s is in use by another process", path);
	}
	if (fstat(p->fd, &st) < 0 || fstatfs(p->fd, &sfs) < 0) {
		r = -errno;
		return fail(r, err, errlen, "stat %s: %s", path, strerror(-r));
	}
	if (!S_ISREG(st.st_mode))
		return fail(-EINVAL, err, errlen, "pool file %s is not a regular file", path);
	p->on_tmpfs = sfs.f_type == TMPFS_MAGIC || sfs.f_type == HUGETLBFS_MAGIC;

	if (st.st_size == 0) {
		/* New pool: records and epochs start zeroed (free, epoch 0). */
		r = pool_write_v2(p, data_off, total, path, err, errlen);
		if (r < 0)
			return r;
	} else {
		ssize_t n = pread(p->fd, &h, sizeof(h), 0);

		if (n != (ssize_t)sizeof(h))
			return fail(-EINVAL, err, errlen, "%s is not a disagg-memnode pool file (too short)",
				    path);
		r = pool_check_hdr(p, &h, data_off, path, err, errlen);
		if (r < 0)
			return r;
		if (le32toh(h.version) == 1 &&
		    ((uint64_t)st.st_size == total_v1 || (uint64_t)st.st_size == total)) {
			r = pool_write_v2(p, data_off, total, path, err, errlen);
			if (r < 0)
				return r;
			st.st_size = (off_t)total;
			p->upgraded = true;
		}
		if ((uint64_t)st.st_size != total)
			return fail(-EINVAL, err, errlen, "%s has size %llu, expected %llu: truncated or "
				    "not this pool", path, (unsigned long long)st.st_size,
				    (unsigned long long)total);
		p->recovered = true;
	}

	m = mmap(NULL, data_off, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
	if (m == MAP_FAILED) {
		r = -errno;
		return fail(r, err, errlen, "mmap of the pool metadata: %s", strerror(-r));
	}
	p->meta = m;
	p->meta_len = data_off;
	p->recs = (struct mn_rec *)((uint8_t *)m + MN_REC_OFFSET);

	m = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, p->fd,
		 (off_t)data_off);
	if (m == MAP_FAILED) {
		r = -errno;
		return fail(r, err, errlen, "mmap of the %llu-byte pool: %s",
			    (unsigned long long)p->size, strerror(-r));
	}
	p->data = m;

	m = mmap(NULL, elen, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, (off_t)total_v1);
	if (m == MAP_FAILED) {
		r = -errno;
		return fail(r, err, errlen, "mmap of the epoch table: %s", strerror(-r));
	}
	p->epoch_map = m;
	p->epoch_len = elen;
	p->epochs = m;

	/* Every record must hold a known state. */
	for (uint32_t i = 0; i < p->nsections; i++) {
		uint32_t s = le32toh(p->recs[i].state);

		if (s != MN_SEC_FREE && s != MN_SEC_USED)
			return fail(-EUCLEAN, err, errlen, "%s: section record %u is corrupt (state %u)",
				    path, i, s);
	}
	return 0;
}

int mn_pool_open(const struct mn_pool_opts *o, struct mn_pool **ret, char *err, size_t errlen)
{
	struct mn_pool *p;
	int r;

	if (!IS_POW2(o->section_size) || o->section_size < MN_MIN_SECTION_SIZE)
		return fail(-EINVAL, err, errlen, "section size must be a power of two >= 2M");
	if (o->size == 0 || o->size % o->section_size != 0)
		return fail(-EINVAL, err, errlen, "pool size must be a nonzero multiple of the section size");
	if (o->size / o->section_size > UINT32_MAX - 1)
		return fail(-E2BIG, err, errlen, "too many sections");
	if (o->backing != MN_BACK_ANON && (!o->path || !*o->path))
		return fail(-EINVAL, err, errlen, "%s backing needs a path", mn_backing_name(o->backing));

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->backing = o->backing;
	p->fd = -1;
	p->size = o->size;
	p->section_size = o->section_size;
	p->nsections = (uint32_t)(o->size / o->section_size);
	p->section_pages = (uint32_t)(o->section_size / PROTO_PAGE_SIZE);
	p->node_id = o->node_id;
	p->punch_ok = true;

	if (o->backing == MN_BACK_ANON)
		r = pool_open_anon(p, err, errlen);
	else
		r = pool_open_file(p, o->path, err, errlen);
	if (r < 0) {
		mn_pool_close(p);
		return r;
	}
	*ret = p;
	return 0;
}

void mn_pool_close(struct mn_pool *p)
{
	if (!p)
		return;
	if (p->data) {
		if (p->backing == MN_BACK_FILE)
			(void)msync(p->data, p->size, MS_SYNC);
		munmap(p->data, p->size);
	}
	if (p->meta) {
		(void)msync(p->meta, p->meta_len, MS_SYNC);
		munmap(p->meta, p->meta_len);
	} else {
		free(p->recs);
	}
	if (p->epoch_map) {
		(void)msync(p->epoch_map, p->epoch_len, MS_SYNC);
		munmap(p->epoch_map, p->epoch_len);
	} else {
		free(p->epochs);
	}
	if (p->fd >= 0) {
		if (p->backing == MN_BACK_FILE)
			(void)fsync(p->fd);
		close(p->fd);
	}
	free(p);
}

int mn_pool_zero(struct mn_pool *p, uint32_t idx)
{
	uint8_t *base = mn_pool_section(p, idx);

	if (idx >= p->nsections)
		return -ENOENT;
	if (p->backing == MN_BACK_ANON) {
		if (madvise(base, p->section_size, MADV_DONTNEED) == 0)
			return 0;
	} else if (p->punch_ok) {
		off_t off = (off_t)(p->meta_len + (uint64_t)idx * p->section_size);

		if (fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
			      (off_t)p->section_size) == 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != ENOSYS)
			return -errno;
		p->punch_ok = false;
	}
	/* No way to drop the pages: write zeros. */
	memset(base, 0, p->section_size);
	return 0;
}

/* msync the page of a mapped pool file that holds `addr`. */
static int sync_page_of(const void *addr)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)addr & ~(page - 1);

	return msync((void *)a, page, MS_SYNC) < 0 ? -errno : 0;
}

int mn_pool_sync_rec(struct mn_pool *p, uint32_t idx)
{
	if (!p->meta || idx >= p->nsections)
		return 0;
	return sync_page_of(&p->recs[idx]);
}

int mn_pool_sync_epoch(struct mn_pool *p, uint32_t idx)
{
	if (!p->epoch_map || idx >= p->nsections)
		return 0;
	return sync_page_of(&p->epochs[idx]);
}

int mn_pool_next_data(struct mn_pool *p, uint32_t idx, uint32_t page, uint32_t *ret_page,
		      uint32_t *ret_end)
{
	off_t sec_off, start, data, hole;
	uint64_t first, last;

	if (page >= p->section_pages)
		return -ENXIO;
	if (p->backing == MN_BACK_ANON) {
		*ret_page = page;
		*ret_end = p->section_pages;
		return 0;
	}
	sec_off = (off_t)(p->meta_len + (uint64_t)idx * p->section_size);
	start = sec_off + (off_t)page * PROTO_PAGE_SIZE;
	data = lseek(p->fd, start, SEEK_DATA);
	if (data < 0) {
		if (errno == ENXIO)
			return -ENXIO;
		/* SEEK_DATA unsupported: treat everything as data. */
		*ret_page = page;
		*ret_end = p->section_pages;
		return 0;
	}
	if (data >= sec_off + (off_t)p->section_size)
		return -ENXIO;
	hole = lseek(p->fd, data, SEEK_HOLE);
	if (hole < 0 || hole > sec_off + (off_t)p->section_size)
		hole = sec_off + (off_t)p->section_size;
	first = (uint64_t)(data - sec_off) / PROTO_PAGE_SIZE;
	last = ((uint64_t)(hole - sec_off) + PROTO_PAGE_SIZE - 1) / PROTO_PAGE_SIZE;
	*ret_page = (uint32_t)MAX(first, (uint64_t)page);
	*ret_end = (uint32_t)MIN(last, (uint64_t)p->section_pages);
	return 0;
}

bool mn_page_is_zero(const void *page)
{
	const uint64_t *w = page;

	for (size_t i = 0; i < PROTO_PAGE_SIZE / sizeof(*w); i += 8) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	}
	return true;
}
