// SPDX-License-Identifier: MIT
/*
 * A strict region's pages to hand back, on file (answers.h): recall
 * answers in a ring, then the pages kept at a broken channel.
 *
 * A record is its header and the page, written with one pwrite. A killed
 * agent may leave it torn (the kernel copies a write page by page and
 * stops at a fatal signal between two), so the header carries a hash of
 * the rest: a record is valid when its magic and hash match and its
 * number n is that of its slot. Reading takes the highest n of each page.
 */
#include "answers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "types.h"

#define ANSWER_MAGIC 0x41534e41u   /* "ANSA" */

struct answer_rec {
	uint32_t magic;
	uint32_t section, page, version;
	uint64_t n;                   /* its number: slot n % PAGER_ANSWER_SLOTS */
	uint64_t hash;                /* of everything but magic and hash (rec_hash) */
	uint8_t data[4096];
};

/* A torn write's check, not a defence against anyone: a multiply-xorshift over words. */
static uint64_t rec_hash(const struct answer_rec *rec)
{
	const uint64_t *w = (const uint64_t *)rec->data;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ rec->n ^ ((uint64_t)rec->section << 32 | rec->page) ^
		     ((uint64_t)rec->version << 17);

	for (size_t i = 0; i < sizeof(rec->data) / 8; i++) {
		h = (h ^ w[i]) * 0xff51afd7ed558ccdull;
		h ^= h >> 29;
	}
	return h;
}

int pager_answer_keep(int fd, uint64_t n, uint32_t section, uint32_t page, uint32_t version,
		      const void *data)
{
	struct answer_rec rec = {
		.magic = ANSWER_MAGIC, .section = section, .page = page, .version = version, .n = n,
	};
	off_t off = (off_t)(n % PAGER_ANSWER_SLOTS) * (off_t)sizeof(rec);
	ssize_t w;

	memcpy(rec.data, data, sizeof(rec.data));
	rec.hash = rec_hash(&rec);
	w = pwrite(fd, &rec, sizeof(rec), off);
	return w == (ssize_t)sizeof(rec) ? 0 : w < 0 ? -errno : -EIO;
}

int pager_answers_read(int fd, struct pager_kept **ret, size_t *ret_n, uint64_t *ret_next)
{
	_cleanup_free_ struct answer_rec *recs = calloc(PAGER_ANSWER_SLOTS, sizeof(*recs));
	_cleanup_free_ struct pager_kept *k = NULL;
	bool valid[PAGER_ANSWER_SLOTS] = { false };
	uint64_t next = 0;
	size_t n = 0;

	*ret = NULL;
	*ret_n = 0;
	if (ret_next)
		*ret_next = 0;
	if (!recs)
		return -ENOMEM;
	for (unsigned i = 0; i < PAGER_ANSWER_SLOTS; i++) {
		ssize_t got = pread(fd, &recs[i], sizeof(recs[i]), (off_t)i * (off_t)sizeof(recs[i]));

		if (got < 0)
			return -errno;
		valid[i] = got == (ssize_t)sizeof(recs[i]) && recs[i].magic == ANSWER_MAGIC &&
			   recs[i].n % PAGER_ANSWER_SLOTS == i && recs[i].hash == rec_hash(&recs[i]);
		if (valid[i])
			next = MAX(next, recs[i].n + 1);
	}
	/* An older answer of a page that has a newer one: the newer is what the page was. */
	for (unsigned i = 0; i < PAGER_ANSWER_SLOTS; i++)
		for (unsigned j = 0; valid[i] && j < PAGER_ANSWER_SLOTS; j++)
			if (j != i && valid[j] && recs[j].section == recs[i].section &&
			    recs[j].page == recs[i].page && recs[j].n > recs[i].n)
				valid[i] = false;
	for (unsigned i = 0; i < PAGER_ANSWER_SLOTS; i++)
		n += valid[i];
	if (n && !(k = calloc(n, sizeof(*k))))
		return -ENOMEM;
	n = 0;
	for (unsigned i = 0; i < PAGER_ANSWER_SLOTS; i++) {
		if (!valid[i])
			continue;
		k[n] = (struct pager_kept){ .section = recs[i].section, .page = recs[i].page,
					    .recalled = true, .version = recs[i].version };
		memcpy(k[n].data, recs[i].data, sizeof(k[n].data));
		n++;
	}
	*ret = TAKE_PTR(k);
	*ret_n = n;
	if (ret_next)
		*ret_next = next;
	return 0;
}

_Static_assert(PAGER_ANSWER_SLOTS * sizeof(struct answer_rec) <= PAGER_KEPT_BASE,
	       "the ring ends before the kept pages");

int pager_kept_write(int fd, uint64_t pg, const void *data)
{
	ssize_t w = pwrite(fd, data, PAGER_PAGE_SIZE, (off_t)(PAGER_KEPT_BASE + pg * PAGER_PAGE_SIZE));

	return w == (ssize_t)PAGER_PAGE_SIZE ? 0 : w < 0 ? -errno : -EIO;
}

int pager_kept_next(int fd, uint64_t sec_pages, uint64_t *pg, struct pager_kept *out)
{
	const off_t ps = PAGER_PAGE_SIZE, base = PAGER_KEPT_BASE;
	off_t a = lseek(fd, base + (off_t)*pg * ps, SEEK_DATA);
	uint64_t at;

	if (a < 0)
		return errno == ENXIO ? 0 : -errno;   /* ENXIO: no data after it */
	a -= (a - base) % ps;
	at = (uint64_t)((a - base) / ps);
	*out = (struct pager_kept){ .section = (uint32_t)(at / sec_pages),
				    .page = (uint32_t)(at % sec_pages) };
	if (pread(fd, out->data, PAGER_PAGE_SIZE, a) != ps)
		return -EIO;
	*pg = at + 1;
	return 1;
}

bool pager_kept_has(int fd, uint64_t pg)
{
	off_t at = PAGER_KEPT_BASE + (off_t)pg * PAGER_PAGE_SIZE;

	return lseek(fd, at, SEEK_DATA) == at;
}

int pager_answers_clear(int fd)
{
	off_t end = lseek(fd, 0, SEEK_END);

	if (end < 0)
		return -errno;
	if (end && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, end) < 0)
		return -errno;
	return 0;
}
