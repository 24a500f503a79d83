// SPDX-License-Identifier: MIT
/*
 * TAP helpers and the memfd + uffd + pager fixture shared by the pager
 * tests (see tap.h).
 */
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

unsigned tap_n, tap_failed;

int tap_done(void)
{
	printf("1..%u\n", tap_n);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

void tap_skip_all(const char *reason)
{
	printf("1..0 # SKIP %s\n", reason);
	fflush(stdout);
	exit(77);
}

void pat_fill(void *page, uint64_t pg, uint32_t ver)
{
	uint64_t *w = page;

	for (unsigned i = 0; i < PAGER_PAGE_SIZE / 8; i++)
		w[i] = pat_word(pg, ver, i);
}

int pat_check(const void *page, uint64_t pg, uint32_t ver, bool full)
{
	const uint64_t *w = page;
	static const unsigned probe[] = { 0, 1, 137, 255, 256, 300, 511 };

	if (full) {
		for (unsigned i = 0; i < PAGER_PAGE_SIZE / 8; i++)
			if (w[i] != pat_word(pg, ver, i))
				return 1;
		return 0;
	}
	for (unsigned i = 0; i < sizeof(probe) / sizeof(probe[0]); i++)
		if (w[probe[i]] != pat_word(pg, ver, probe[i]))
			return 1;
	return 0;
}

void tmap_require_uffd(enum pager_dirty_mode mode)
{
	int fd;
	uint64_t f;
	int r = pager_uffd_open(mode, &fd, &f);

	if (r == -EOPNOTSUPP)
		tap_skip_all(mode == PAGER_DIRTY_ASYNC_WP
				     ? "kernel lacks UFFD_FEATURE_WP_ASYNC or WP on shmem"
				     : "kernel lacks userfaultfd WP on shmem");
	if (r < 0) {
		char why[128];
		snprintf(why, sizeof(why), "userfaultfd unavailable: %s", strerror(-r));
		tap_skip_all(why);
	}
	close(fd);
}

static int setup(struct tmap *m, size_t len, size_t secsize, const struct pager_config *cfg,
		 uint64_t local_mask, const struct pager_section *secs, struct pager_backend *be,
		 enum pager_dirty_mode mode)
{
	struct pager_config c = cfg ? *cfg : (struct pager_config){ .budget = UINT64_MAX };
	struct pager_region_config rc = { 0 };
	int r;

	memset(m, 0, sizeof(*m));
	m->memfd = m->uffd = -1;
	m->len = len;
	m->secsize = secsize;
	m->nsec = len / secsize;
	m->memfd = tmap_dir ? open(tmap_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)
			    : memfd_create("pagertest", MFD_CLOEXEC);
	if (m->memfd < 0 || ftruncate(m->memfd, (off_t)len) < 0)
		return -errno;
	m->mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m->memfd, 0);
	if (m->mem == MAP_FAILED) {
		m->mem = NULL;
		return -errno;
	}
	r = pager_uffd_open(mode, &m->uffd, &m->features);
	if (r < 0)
		return r;
	r = pager_uffd_register(m->uffd, (uintptr_t)m->mem, len);
	if (r < 0)
		return r;
	if (!be) {
		r = pager_backend_local_new(secsize, &be);
		if (r < 0)
			return r;
		m->own_be = true;
	}
	m->be = be;
	m->secs = calloc(m->nsec, sizeof(*m->secs));
	if (!m->secs)
		return -ENOMEM;
	for (size_t i = 0; i < m->nsec && secs; i++)
		m->secs[i] = secs[i];
	for (size_t i = 0; i < m->nsec && !secs; i++) {
		m->secs[i].kind = (local_mask >> (i % 64)) & 1 ? PAGER_SEC_LOCAL : PAGER_SEC_REMOTE;
		m->secs[i].grant.memnode_id = 1;
		m->secs[i].grant.section = (uint32_t)i;
	}
	c.backend = be;
	c.section_size = secsize;
	r = pager_new(&c, &m->p);
	if (r < 0)
		return r;
	rc.uffd = m->uffd;
	rc.uffd_features = m->features;
	rc.file_fd = m->memfd;
	rc.base = (uintptr_t)m->mem;
	rc.length = len;
	rc.sections = m->secs;
	rc.pagemap_fd = -1;
	rc.shared = tmap_shared;
	rc.readonly = tmap_readonly;
	rc.strict = tmap_strict;
	rc.release = rc.control = tmap_release;
	rc.twin_fd = tmap_twin_fd;
	rc.answers_fd = tmap_answers_fd;
	if (mode == PAGER_DIRTY_ASYNC_WP) {
		rc.pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (rc.pagemap_fd < 0)
			return -errno;
	}
	r = pager_add_region(m->p, &rc);
	if (r < 0)
		return r;
	return pager_start(m->p);
}

int tmap_setup(struct tmap *m, size_t len, size_t secsize, const struct pager_config *cfg,
	       uint64_t local_mask, struct pager_backend *be, enum pager_dirty_mode mode)
{
	return setup(m, len, secsize, cfg, local_mask, NULL, be, mode);
}

const char *tmap_dir;
int tmap_twin_fd;
int tmap_answers_fd;
bool tmap_shared, tmap_readonly, tmap_strict, tmap_release;

uint64_t tap_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct pager_section tap_remote(uint64_t node, uint32_t section)
{
	struct pager_section s = { .kind = PAGER_SEC_REMOTE };

	snprintf(s.addr, sizeof(s.addr), "node%llu", (unsigned long long)node);
	s.grant.memnode_id = node;
	s.grant.section = section;
	s.grant.generation = 1;
	return s;
}

int tmap_setup_secs(struct tmap *m, size_t len, size_t secsize, const struct pager_config *cfg,
		    const struct pager_section *secs, struct pager_backend *be,
		    enum pager_dirty_mode mode)
{
	return setup(m, len, secsize, cfg, 0, secs, be, mode);
}

void tmap_teardown(struct tmap *m)
{
	pager_free(m->p);
	if (m->mem)
		munmap(m->mem, m->len);
	if (m->uffd >= 0)
		close(m->uffd);
	if (m->memfd >= 0)
		close(m->memfd);
	if (m->own_be)
		pager_backend_free(m->be);
	free(m->secs);
	memset(m, 0, sizeof(*m));
}

int tmap_fill_backend(struct tmap *m, const uint32_t *ver)
{
	const struct pager_backend_ops *ops = m->be->ops;
	uint64_t spp = m->secsize / PAGER_PAGE_SIZE;
	uint32_t chunk = 64;
	uint8_t *buf = malloc((size_t)chunk * PAGER_PAGE_SIZE);
	void *conn = NULL;
	int r = ops->conn_open(m->be->priv, &conn);

	if (!buf || r < 0) {
		free(buf);
		return r < 0 ? r : -ENOMEM;
	}
	chunk = ops->max_pages(conn) < chunk ? ops->max_pages(conn) : chunk;
	for (size_t s = 0; s < m->nsec && r >= 0; s++) {
		if (m->secs[s].kind != PAGER_SEC_REMOTE)
			continue;
		for (uint64_t p0 = 0; p0 < spp && r >= 0; p0 += chunk) {
			uint32_t n = (uint32_t)(spp - p0 < chunk ? spp - p0 : chunk);
			struct proto_extent e = { (uint32_t)p0, n };

			for (uint32_t i = 0; i < n; i++)
				pat_fill(buf + (size_t)i * PAGER_PAGE_SIZE, s * spp + p0 + i,
					 ver ? ver[s * spp + p0 + i] : 1);
			r = ops->write_submit(conn, &m->secs[s], &e, 1, buf);
			if (r >= 0)
				r = ops->write_wait(conn);
		}
	}
	ops->conn_close(conn);
	free(buf);
	return r < 0 ? r : 0;
}

int tmap_backend_read(struct tmap *m, uint64_t pg, void *buf)
{
	const struct pager_backend_ops *ops = m->be->ops;
	uint64_t spp = m->secsize / PAGER_PAGE_SIZE;
	void *conn = NULL;
	int r = ops->conn_open(m->be->priv, &conn);

	if (r < 0)
		return r;
	r = ops->fetch(conn, &m->secs[pg / spp], (uint32_t)(pg % spp), 1, buf);
	ops->conn_close(conn);
	return r;
}

unsigned tmap_backend_bad(struct tmap *m, const uint32_t *ver, uint64_t a, uint64_t b)
{
	uint8_t *buf = aligned_alloc(PAGER_PAGE_SIZE, PAGER_PAGE_SIZE);
	unsigned bad = 0;

	for (uint64_t pg = a; pg < b; pg++)
		if (tmap_remote(m, pg) &&
		    (!buf || tmap_backend_read(m, pg, buf) < 0 || pat_check(buf, pg, ver[pg], true)))
			bad++;
	free(buf);
	return bad;
}
