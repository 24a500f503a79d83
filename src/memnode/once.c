// SPDX-License-Identifier: MIT
/*
 * WRITE_DIFF frames applied at most once (once.h). One record a section,
 * in an array that is a shared mapping of the table's file, or in memory;
 * the sections share a few locks (striped by index).
 */
#include "once.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

#define STRIPES 64u
#define WORDS (PROTO_DIFF_ONCE_FRAMES / 64)
#define ONCE_MAGIC "DSGONCE1"
#define ONCE_HDR 4096u

struct once_writer {
	uint64_t holder, stream, batch;   /* stream 0: a free entry */
	uint64_t seen;                    /* the section's clock when it last came */
	uint64_t frames[WORDS];           /* of `batch`: applied */
};

struct once_sec {
	uint32_t generation;
	uint32_t used;                    /* 1: the record is for `generation` */
	uint64_t clock;
	struct once_writer w[MN_ONCE_WRITERS];
};

struct once_hdr {
	char magic[8];
	uint32_t nsections, writers, frames, sec_size;
};

struct mn_once {
	uint32_t nsections;
	struct once_sec *secs;
	void *map;                        /* the file's mapping, or NULL: secs is calloc'ed */
	size_t map_len;
	pthread_mutex_t mu[STRIPES];
};

static struct once_hdr header(uint32_t nsections)
{
	struct once_hdr h = { .nsections = nsections, .writers = MN_ONCE_WRITERS,
			      .frames = PROTO_DIFF_ONCE_FRAMES,
			      .sec_size = sizeof(struct once_sec) };

	memcpy(h.magic, ONCE_MAGIC, sizeof(h.magic));
	return h;
}

/* The table's file beside the pool, mapped: a file of another shape starts empty. */
static int map_file(struct mn_once *o, const char *pool_path)
{
	struct once_hdr want = header(o->nsections), got = { 0 };
	size_t len = ONCE_HDR + (size_t)o->nsections * sizeof(struct once_sec);
	_cleanup_close_ int fd = -1;
	char path[4096];
	struct stat st;
	void *m;

	if (snprintf(path, sizeof(path), "%s.once", pool_path) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if ((size_t)st.st_size != len || pread(fd, &got, sizeof(got), 0) != (ssize_t)sizeof(got) ||
	    memcmp(&got, &want, sizeof(got)) != 0) {
		if (st.st_size)
			log_warn("%s: not a diff table of %u sections: starting an empty one", path,
				 o->nsections);
		/* Emptied by truncation, so the file stays sparse; the header goes last. */
		if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)len) < 0 ||
		    pwrite(fd, &want, sizeof(want), 0) != (ssize_t)sizeof(want))
			return -errno;
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	o->map = m;
	o->map_len = len;
	o->secs = (struct once_sec *)(void *)((uint8_t *)m + ONCE_HDR);
	return 0;
}

int mn_once_open(const char *pool_path, uint32_t nsections, struct mn_once **ret)
{
	struct mn_once *o = calloc(1, sizeof(*o));
	int r = 0;

	if (!o)
		return -ENOMEM;
	o->nsections = nsections;
	if (pool_path)
		r = map_file(o, pool_path);
	else if (!(o->secs = calloc(nsections ? nsections : 1, sizeof(*o->secs))))
		r = -ENOMEM;
	if (r < 0) {
		free(o);
		return r;
	}
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_init(&o->mu[i], NULL);
	*ret = o;
	return 0;
}

void mn_once_free(struct mn_once *o)
{
	if (!o)
		return;
	if (o->map)
		munmap(o->map, o->map_len);
	else
		free(o->secs);
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&o->mu[i]);
	free(o);
}

/* The writer's entry, or NULL. */
static struct once_writer *find(struct once_sec *s, uint64_t holder, uint64_t stream)
{
	for (unsigned i = 0; i < MN_ONCE_WRITERS; i++)
		if (s->w[i].stream == stream && s->w[i].holder == holder)
			return &s->w[i];
	return NULL;
}

/* A new writer's entry: a free one, else the one seen longest ago (emptied). */
static struct once_writer *take(struct once_sec *s, uint64_t holder, uint64_t stream)
{
	struct once_writer *pick = &s->w[0];

	for (unsigned i = 1; i < MN_ONCE_WRITERS && pick->stream; i++)
		if (!s->w[i].stream || s->w[i].seen < pick->seen)
			pick = &s->w[i];
	memset(pick, 0, sizeof(*pick));
	pick->holder = holder;
	pick->stream = stream;
	return pick;
}

bool mn_once_begin(struct mn_once *o, uint32_t idx, uint32_t generation, uint64_t holder,
		   const struct proto_diff_once *id)
{
	struct once_writer *w;
	struct once_sec *s;

	pthread_mutex_lock(&o->mu[idx % STRIPES]);
	if (idx >= o->nsections)
		return true;
	s = &o->secs[idx];
	if (!s->used || s->generation != generation) {
		memset(s, 0, sizeof(*s));
		s->generation = generation;
		s->used = 1;
	}
	w = find(s, holder, id->stream);
	if (!w)
		return true;
	w->seen = ++s->clock;
	if (id->batch != w->batch)
		return id->batch > w->batch;   /* an older batch: superseded */
	return !(w->frames[id->frame / 64] & (1ull << (id->frame % 64)));
}

void mn_once_end(struct mn_once *o, uint32_t idx, uint64_t holder,
		 const struct proto_diff_once *id, bool applied)
{
	struct once_writer *w;
	struct once_sec *s;

	if (applied && idx < o->nsections) {
		s = &o->secs[idx];
		w = find(s, holder, id->stream);
		if (!w)
			w = take(s, holder, id->stream);
		w->seen = ++s->clock;
		if (id->batch > w->batch) {
			w->batch = id->batch;
			memset(w->frames, 0, sizeof(w->frames));
		}
		w->frames[id->frame / 64] |= 1ull << (id->frame % 64);
	}
	pthread_mutex_unlock(&o->mu[idx % STRIPES]);
}
