// SPDX-License-Identifier: MIT
/*
 * A release region's journal (reljournal.h): the batch of diffs being
 * published, kept after the twins in their file.
 */
#include "reljournal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "macro.h"
#include "twin.h"
#include "types.h"

#define PS PAGER_PAGE_SIZE
#define RELJ_MAGIC 0x4a4c4552u          /* "RELJ" */
#define RELJ_VERSION 1u
#define RELJ_ENC_SPAN (((PAGER_RELJ_ENC) + PS - 1) / PS * PS)
#define RELJ_SIZE (2 * PS + RELJ_ENC_SPAN)   /* header, frame table, diffs */

struct relj_head {
	uint32_t magic, version;
	uint64_t stream;
	uint64_t next_batch;          /* the id the next batch takes */
	uint64_t batch;               /* pending, or 0 */
	uint32_t nframes, rsvd;
	uint64_t hash;                /* of the fields above and the frame table (relj_hash) */
};

struct pager_reljournal {
	int fd;
	off_t base;                   /* the header's offset: after the twins */
	uint8_t *enc;                 /* the diffs: mapped at base + 2 pages */
	struct relj_head h;
	struct pager_relj_frame f[PAGER_RELJ_PAGES];
};

_Static_assert(PAGER_RELJ_PAGES * sizeof(struct pager_relj_frame) <= PS, "a frame table page");

/* A torn or stale header's check, not a defence against anyone: multiply-xorshift over words. */
static uint64_t relj_hash(const struct relj_head *h, const struct pager_relj_frame *f)
{
	uint64_t w[5] = { (uint64_t)h->magic << 32 | h->version, h->stream, h->next_batch,
			  h->batch, (uint64_t)h->nframes << 32 | h->rsvd };
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (unsigned i = 0; i < 5; i++) {
		x = (x ^ w[i]) * 0xff51afd7ed558ccdull;
		x ^= x >> 29;
	}
	for (unsigned i = 0; i < h->nframes; i++) {
		x = (x ^ ((uint64_t)f[i].sec << 32 | f[i].npages)) * 0xff51afd7ed558ccdull;
		x = (x ^ ((uint64_t)f[i].off << 32 | f[i].len)) * 0xff51afd7ed558ccdull;
		x ^= x >> 29;
	}
	return x;
}

static int put_head(struct pager_reljournal *j)
{
	ssize_t n;

	j->h.hash = relj_hash(&j->h, j->f);
	n = pwrite(j->fd, &j->h, sizeof(j->h), j->base);
	return n == (ssize_t)sizeof(j->h) ? 0 : n < 0 ? -errno : -EIO;
}

/* A header that reads back whole and whose frames lie in the buffer. */
static bool load(struct pager_reljournal *j)
{
	struct relj_head h;
	size_t tab;

	if (pread(j->fd, &h, sizeof(h), j->base) != (ssize_t)sizeof(h) || h.magic != RELJ_MAGIC ||
	    h.version != RELJ_VERSION || !h.stream || !h.next_batch ||
	    h.nframes > PAGER_RELJ_PAGES || (h.batch && (!h.nframes || h.batch >= h.next_batch)))
		return false;
	tab = (size_t)h.nframes * sizeof(j->f[0]);
	if (tab && pread(j->fd, j->f, tab, j->base + PS) != (ssize_t)tab)
		return false;
	if (relj_hash(&h, j->f) != h.hash)
		return false;
	for (unsigned i = 0; i < h.nframes; i++)
		if (!j->f[i].npages || j->f[i].off > PAGER_RELJ_ENC ||
		    j->f[i].len > PAGER_RELJ_ENC - j->f[i].off)
			return false;
	j->h = h;
	return true;
}

int pager_reljournal_open(struct pager_twins *t, struct pager_reljournal **ret)
{
	_cleanup_free_ struct pager_reljournal *j = calloc(1, sizeof(*j));
	struct stat sb;
	void *m;
	int r;

	if (!j)
		return -ENOMEM;
	j->fd = pager_twins_fd(t);
	j->base = (off_t)(pager_twins_npages(t) * PS);
	if (fstat(j->fd, &sb) < 0)
		return -errno;
	if (sb.st_size < j->base + (off_t)RELJ_SIZE && ftruncate(j->fd, j->base + RELJ_SIZE) < 0)
		return -errno;
	m = mmap(NULL, RELJ_ENC_SPAN, PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, j->base + 2 * PS);
	if (m == MAP_FAILED)
		return -errno;
	j->enc = m;
	if (!load(j)) {
		j->h = (struct relj_head){ .magic = RELJ_MAGIC, .version = RELJ_VERSION,
					   .next_batch = 1 };
		/* A random stream: a new file never takes an old one's ids at the node. */
		while (!j->h.stream) {
			r = auth_random(&j->h.stream, sizeof(j->h.stream));
			if (r < 0)
				goto fail;
		}
		r = put_head(j);
		if (r < 0)
			goto fail;
	}
	*ret = TAKE_PTR(j);
	return 0;
fail:
	munmap(j->enc, RELJ_ENC_SPAN);
	return r;
}

void pager_reljournal_close(struct pager_reljournal *j)
{
	if (!j)
		return;
	munmap(j->enc, RELJ_ENC_SPAN);
	free(j);
}

uint8_t *pager_reljournal_buf(struct pager_reljournal *j)
{
	return j->enc;
}

uint64_t pager_reljournal_pending(const struct pager_reljournal *j,
				  const struct pager_relj_frame **ret_frames, unsigned *ret_n)
{
	if (ret_frames)
		*ret_frames = j->f;
	if (ret_n)
		*ret_n = j->h.batch ? j->h.nframes : 0;
	return j->h.batch;
}

int pager_reljournal_begin(struct pager_reljournal *j, const struct pager_relj_frame *f,
			   unsigned n, uint64_t *ret_batch)
{
	size_t tab = (size_t)n * sizeof(*f);
	ssize_t w;
	int r;

	if (j->h.batch)
		return -EBUSY;
	if (!n || n > PAGER_RELJ_PAGES)
		return -EINVAL;
	memcpy(j->f, f, tab);
	w = pwrite(j->fd, j->f, tab, j->base + PS);
	if (w != (ssize_t)tab)
		return w < 0 ? -errno : -EIO;
	j->h.batch = j->h.next_batch++;
	j->h.nframes = n;
	r = put_head(j);
	if (r < 0) {
		j->h.next_batch--;
		j->h.batch = 0;
		j->h.nframes = 0;
		return r;
	}
	*ret_batch = j->h.batch;
	return 0;
}

int pager_reljournal_end(struct pager_reljournal *j)
{
	j->h.batch = 0;
	j->h.nframes = 0;
	return put_head(j);
}

void pager_reljournal_ids(const struct pager_reljournal *j, unsigned k,
			  struct proto_diff_once *ret)
{
	uint32_t idx = 0;

	for (unsigned i = 0; i < k; i++)
		idx += j->f[i].sec == j->f[k].sec;
	*ret = (struct proto_diff_once){ .stream = j->h.stream, .batch = j->h.batch, .frame = idx };
}
