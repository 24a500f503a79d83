// SPDX-License-Identifier: MIT
/*
 * The directory's holder table on disk (dirtab.h).
 *
 * File layout (little-endian): a 32-byte header (magic "DGDIRTAB", version
 * 2, the section count, PROTO_DIR_MAX_HOLDERS, pages per section), then per
 * section PROTO_DIR_MAX_HOLDERS entries of 16 bytes (node u64, generation
 * u32, tag u16, used u16), then per section and page its ownership version
 * (u32). An entry is written field by field with its `used` word last, and
 * cleared by that word alone: a process killed half-way leaves either the
 * old state or the new one. A version is one aligned 32-bit store. The
 * file is sparse: the versions of pages never in strict use take no space.
 * A format-1 table (no versions) is upgraded in place, its holders kept.
 */
#include "dirtab.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

#define DIRTAB_MAGIC "DGDIRTAB"
#define DIRTAB_VERSION 2u
#define DIRTAB_HDR 32u

struct dirtab_disk_ent {
	uint64_t node;
	uint32_t generation;
	uint16_t tag;
	uint16_t used;
};
_Static_assert(sizeof(struct dirtab_disk_ent) == 16, "dirtab entry size");

struct mn_dirtab {
	uint8_t *map;
	size_t len;
	uint32_t nsections, npages;
	struct dirtab_disk_ent *ents;
	uint32_t *versions;          /* [section * npages + page], little-endian */
};

static size_t ents_len(uint32_t nsections)
{
	return (size_t)nsections * PROTO_DIR_MAX_HOLDERS * sizeof(struct dirtab_disk_ent);
}

static size_t table_len(uint32_t nsections, uint32_t npages)
{
	return DIRTAB_HDR + ents_len(nsections) + (size_t)nsections * npages * sizeof(uint32_t);
}

static bool header_ok(const uint8_t *m, uint32_t nsections, uint32_t npages)
{
	uint32_t v[4];

	memcpy(v, m + 8, sizeof(v));
	return memcmp(m, DIRTAB_MAGIC, 8) == 0 && le32toh(v[0]) == DIRTAB_VERSION &&
	       le32toh(v[1]) == nsections && le32toh(v[2]) == PROTO_DIR_MAX_HOLDERS &&
	       le32toh(v[3]) == npages;
}

/*
 * A format-1 table (holders, no versions) of this many sections, read from
 * fd: kept, with every page's version 0, as that format behaved.
 */
static bool header_v1(int fd, uint32_t nsections)
{
	uint8_t m[DIRTAB_HDR];
	uint32_t v[3];

	if (pread(fd, m, sizeof(m), 0) != (ssize_t)sizeof(m))
		return false;
	memcpy(v, m + 8, sizeof(v));
	return memcmp(m, DIRTAB_MAGIC, 8) == 0 && le32toh(v[0]) == 1 &&
	       le32toh(v[1]) == nsections && le32toh(v[2]) == PROTO_DIR_MAX_HOLDERS;
}

static void header_write(uint8_t *m, uint32_t nsections, uint32_t npages)
{
	uint32_t v[4] = { htole32(DIRTAB_VERSION), htole32(nsections),
			  htole32(PROTO_DIR_MAX_HOLDERS), htole32(npages) };

	memset(m, 0, DIRTAB_HDR);
	memcpy(m + 8, v, sizeof(v));
	memcpy(m, DIRTAB_MAGIC, 8);
}

int mn_dirtab_open(const char *pool_path, uint32_t nsections, uint32_t npages,
		   struct mn_dirtab **ret)
{
	size_t len = table_len(nsections, npages);
	_cleanup_close_ int fd = -1;
	struct mn_dirtab *t;
	char path[4096];
	struct stat st;
	bool fresh, upgrade;
	void *m;

	*ret = NULL;
	if (!pool_path)
		return 0;
	if (snprintf(path, sizeof(path), "%s.dir", pool_path) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	/*
	 * Format 1 (before page versions): extended with zeros, its header
	 * rewritten last, so an upgrade cut short is done again next time.
	 */
	upgrade = ((size_t)st.st_size == DIRTAB_HDR + ents_len(nsections) ||
		   (size_t)st.st_size == len) && header_v1(fd, nsections);
	if (upgrade && ftruncate(fd, (off_t)len) < 0)
		return -errno;
	fresh = !upgrade && (size_t)st.st_size != len;
	if (fresh && ftruncate(fd, 0) < 0)
		return -errno;
	if (fresh && ftruncate(fd, (off_t)len) < 0)
		return -errno;
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	if (upgrade) {
		header_write(m, nsections, npages);
		log_info("%s: holder table upgraded to format %u (every page's version 0)", path,
			 DIRTAB_VERSION);
	} else if (!fresh && !header_ok(m, nsections, npages)) {
		log_warn("%s: not a holder table of %u sections of %u pages: starting an empty one",
			 path, nsections, npages);
		/* Emptied by truncation, so the file stays sparse. */
		if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)len) < 0) {
			int e = -errno;

			munmap(m, len);
			return e;
		}
		fresh = true;
	} else if (fresh && st.st_size) {
		log_warn("%s: sized for another pool: starting an empty one", path);
	}
	if (fresh)
		header_write(m, nsections, npages);
	t = calloc(1, sizeof(*t));
	if (!t) {
		munmap(m, len);
		return -ENOMEM;
	}
	t->map = m;
	t->len = len;
	t->nsections = nsections;
	t->npages = npages;
	t->ents = (struct dirtab_disk_ent *)(t->map + DIRTAB_HDR);
	t->versions = (uint32_t *)(t->map + DIRTAB_HDR + ents_len(nsections));
	*ret = t;
	return 0;
}

void mn_dirtab_close(struct mn_dirtab *t)
{
	if (!t)
		return;
	(void)msync(t->map, t->len, MS_SYNC);
	munmap(t->map, t->len);
	free(t);
}

static struct dirtab_disk_ent *ent(const struct mn_dirtab *t, uint32_t section, unsigned slot)
{
	if (!t || section >= t->nsections || slot >= PROTO_DIR_MAX_HOLDERS)
		return NULL;
	return &t->ents[(size_t)section * PROTO_DIR_MAX_HOLDERS + slot];
}

void mn_dirtab_set(struct mn_dirtab *t, uint32_t section, unsigned slot, uint64_t node,
		   uint16_t tag, uint32_t generation)
{
	struct dirtab_disk_ent *e = ent(t, section, slot);

	if (!e)
		return;
	__atomic_store_n(&e->used, 0, __ATOMIC_RELEASE);
	e->node = htole64(node);
	e->generation = htole32(generation);
	e->tag = htole16(tag);
	__atomic_store_n(&e->used, htole16(1), __ATOMIC_RELEASE);
}

void mn_dirtab_clear(struct mn_dirtab *t, uint32_t section, unsigned slot)
{
	struct dirtab_disk_ent *e = ent(t, section, slot);

	if (e)
		__atomic_store_n(&e->used, 0, __ATOMIC_RELEASE);
}

bool mn_dirtab_get(const struct mn_dirtab *t, uint32_t section, unsigned slot,
		   struct mn_dirtab_ent *ret)
{
	const struct dirtab_disk_ent *e = ent(t, section, slot);

	if (!e || le16toh(__atomic_load_n(&e->used, __ATOMIC_ACQUIRE)) != 1)
		return false;
	*ret = (struct mn_dirtab_ent){
		.node = le64toh(e->node),
		.generation = le32toh(e->generation),
		.tag = le16toh(e->tag),
		.used = 1,
	};
	return true;
}

static uint32_t *version_word(const struct mn_dirtab *t, uint32_t section, uint32_t page)
{
	if (!t || section >= t->nsections || page >= t->npages)
		return NULL;
	return &t->versions[(size_t)section * t->npages + page];
}

uint32_t mn_dirtab_version(const struct mn_dirtab *t, uint32_t section, uint32_t page)
{
	uint32_t *w = version_word(t, section, page);

	return w ? le32toh(__atomic_load_n(w, __ATOMIC_ACQUIRE)) : 0;
}

uint32_t mn_dirtab_bump(struct mn_dirtab *t, uint32_t section, uint32_t page)
{
	uint32_t *w = version_word(t, section, page);
	uint32_t v;

	if (!w)
		return 0;
	v = le32toh(__atomic_load_n(w, __ATOMIC_ACQUIRE)) + 1;
	__atomic_store_n(w, htole32(v), __ATOMIC_RELEASE);
	return v;
}
