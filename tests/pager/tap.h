// SPDX-License-Identifier: MIT
/*
 * Minimal TAP output for the pager tests, and the shared fixture: a memfd
 * mapped MAP_SHARED in this process, registered with a uffd and served by a
 * pager (local or memnode backend), plus a page-pattern generator to fill
 * and verify memory.
 */
#ifndef DISAGG_PAGER_TAP_H
#define DISAGG_PAGER_TAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pager.h"

extern unsigned tap_n, tap_failed;

#define ok(cond, ...)                                                   \
	({                                                              \
		bool _c = (cond);                                       \
		tap_n++;                                                \
		if (!_c)                                                \
			tap_failed++;                                   \
		printf("%s %u - ", _c ? "ok" : "not ok", tap_n);        \
		printf(__VA_ARGS__);                                    \
		printf("\n");                                           \
		fflush(stdout);                                         \
		_c;                                                     \
	})
/* A test that cannot run here: "ok N # SKIP reason". */
#define skip(...)                                                       \
	do {                                                            \
		tap_n++;                                                \
		printf("ok %u # SKIP ", tap_n);                         \
		printf(__VA_ARGS__);                                    \
		printf("\n");                                           \
		fflush(stdout);                                         \
	} while (0)
#define diag(...)                           \
	do {                                \
		printf("# ");               \
		printf(__VA_ARGS__);        \
		printf("\n");               \
		fflush(stdout);             \
	} while (0)

/* Print the plan, return the exit status. */
int tap_done(void);
/* Whole test skipped: "1..0 # SKIP reason", exit 77. */
_Noreturn void tap_skip_all(const char *reason);

/* Expected 64-bit word `w` of page `pg` at version `ver` (ver 0 = zeros). */
static inline uint64_t pat_word(uint64_t pg, uint32_t ver, unsigned w)
{
	uint64_t x;

	if (!ver)
		return 0;
	x = (pg << 20) ^ ((uint64_t)ver << 44) ^ w ^ 0x9e3779b97f4a7c15ull;
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}
void pat_fill(void *page, uint64_t pg, uint32_t ver);
/* 0 if the page matches, else 1. Only a few words are compared unless `full`. */
int pat_check(const void *page, uint64_t pg, uint32_t ver, bool full);

struct tmap {
	int memfd, uffd;
	uint64_t features;
	uint8_t *mem;
	size_t len, secsize;
	struct pager_backend *be;
	bool own_be;
	struct pager *p;
	struct pager_section *secs;
	size_t nsec;
};

/* Monotonic milliseconds. */
uint64_t tap_mono_ms(void);
/* Remote section `section` (generation 1) of memory node `node`, at address "nodeN". */
struct pager_section tap_remote(uint64_t node, uint32_t section);

/* NULL: the fixture's file is a memfd; else an O_TMPFILE in this (tmpfs) directory. */
extern const char *tmap_dir;
extern int tmap_twin_fd;    /* > 0: a release region's twins' file (pager/twin.h) */
extern int tmap_answers_fd; /* > 0: a strict region's answers' file (pager/answers.h) */
/* The fixture's region is a shared one (share.h), read-only at first if tmap_readonly. */
extern bool tmap_shared, tmap_readonly, tmap_strict;   /* tmap_strict: mode strict */
/* Mode release (release.h), with its RELEASE and ACQUIRE control pages. */
extern bool tmap_release;

/* Needs uffd with WP on shmem; tap_skip_all() if the machine lacks it. */
void tmap_require_uffd(enum pager_dirty_mode mode);
/*
 * Map `len` bytes; every section is remote except those where
 * local_mask bit (i % 64) is set. `be` NULL: a fresh local backend.
 * cfg may be NULL; its backend/section_size fields are filled in.
 */
int tmap_setup(struct tmap *m, size_t len, size_t secsize, const struct pager_config *cfg,
	       uint64_t local_mask, struct pager_backend *be, enum pager_dirty_mode mode);
/* Same with an explicit section map (len / secsize entries). */
int tmap_setup_secs(struct tmap *m, size_t len, size_t secsize, const struct pager_config *cfg,
		    const struct pager_section *secs, struct pager_backend *be,
		    enum pager_dirty_mode mode);
void tmap_teardown(struct tmap *m);
/* Write pattern version ver[pg] of every remote page straight to the backend. */
int tmap_fill_backend(struct tmap *m, const uint32_t *ver);
/* Read page pg of the backend (bypassing the mapping). */
int tmap_backend_read(struct tmap *m, uint64_t pg, void *buf);
/* Remote pages of [a, b) whose backend copy is not pattern version ver[pg] (or unreadable). */
unsigned tmap_backend_bad(struct tmap *m, const uint32_t *ver, uint64_t a, uint64_t b);
static inline bool tmap_remote(const struct tmap *m, uint64_t pg)
{
	return m->secs[pg * PAGER_PAGE_SIZE / m->secsize].kind == PAGER_SEC_REMOTE;
}

#endif
