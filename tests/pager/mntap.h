// SPDX-License-Identifier: MIT
/*
 * For the pager tests against a real memory node (tap.h, mnspawn.h): the
 * node started with one section allocated, or the whole test skipped
 * (no userfaultfd, no disagg-memnode binary); a holder's mapping of it.
 */
#ifndef DISAGG_PAGER_MNTAP_H
#define DISAGG_PAGER_MNTAP_H

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "grant.h"
#include "mnspawn.h"
#include "tap.h"

/*
 * A memory node (id 11) of pool_bytes in sections of sec bytes, and one
 * section allocated in *ret_sec. 0, or -1 after a failed test point (the
 * node stopped): return tap_done() then.
 */
static inline int mntap_start(const char *argv0, struct mnspawn *mn, uint64_t pool_bytes,
			      uint64_t sec, struct proto_section *ret_sec)
{
	char exe[4096];
	int r;

	tmap_require_uffd(PAGER_DIRTY_SYNC_WP);
	if (mnspawn_find(argv0, exe, sizeof(exe)) < 0)
		tap_skip_all("no disagg-memnode binary (set DISAGG_MEMNODE)");
	signal(SIGPIPE, SIG_IGN);
	r = mnspawn_start(mn, exe, pool_bytes, sec, 11);
	if (!ok(r == 0, "memnode started: %s", strerror(-r)))
		return -1;
	r = mnspawn_alloc(mn, 1, ret_sec);
	if (!ok(r == 0, "one section allocated: %s", strerror(-r))) {
		mnspawn_stop(mn, true);
		return -1;
	}
	return 0;
}

/*
 * Map one section (s, of `bytes`) of mn as compute node `id`: *sec gets a
 * read-write grant, *be a memory-node backend, m the fixture (shared, with
 * tmap_strict or tmap_release as the caller set them).
 */
static inline int mntap_map(const struct mnspawn *mn, uint64_t id, const struct proto_section *s,
			    uint64_t bytes, const struct pager_config *cfg,
			    struct pager_section *sec, struct pager_backend **be, struct tmap *m)
{
	int r;

	sec->kind = PAGER_SEC_REMOTE;
	snprintf(sec->addr, sizeof(sec->addr), "%s", mn->addr);
	r = grant_mint(mn->gkey, mn->node_id, id, s->section, s->generation, 0, PROTO_R_ALL, 0,
		       &sec->grant);
	if (r == 0)
		r = pager_backend_memnode_new(&mn->key, id, 3000, 0, be);
	tmap_shared = true;
	if (r == 0)
		r = tmap_setup_secs(m, bytes, bytes, cfg, sec, *be, PAGER_DIRTY_SYNC_WP);
	tmap_shared = tmap_strict = tmap_release = false;
	return r;
}

#endif
