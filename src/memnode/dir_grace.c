// SPDX-License-Identifier: MIT
/*
 * The directory after a restart: the grace period and reclaims
 * (docs/memnode.md, "Coherence directory"; docs/protocol.md, DIR_RECLAIM).
 *
 * The directory itself lives in memory, but who was attached to each
 * section is on disk (dirtab.h) when the pool outlives the process. A
 * holder that owned pages when the node died still has them, and maybe
 * changed them: the node's copy is older. So a restarted node lets exactly
 * the holders on disk come back, within grace_ms:
 *
 *   - each gets its old slot back, with no channel until it attaches again;
 *   - until every one of them is done (or the time is up), DIR_READ and
 *     DIR_WRITE of the section answer DIR_GRACE, so nobody reads a page
 *     that a holder is about to hand back;
 *   - an attached holder reclaims (DIR_RECLAIM) each page it owned and
 *     changed, which is stored as its last write, then says it is done;
 *   - a holder that is not back in time is dropped as one that let its
 *     lease run out: its changes are lost, and that is reported.
 *
 * Why that is safe: a holder is on disk only while the directory counts it.
 * It is cleared before anything it owned is given to someone else (a drop
 * at the lease, a closed channel, a detach), so a holder that had been
 * dropped before the crash is refused, whatever it still believes it owns.
 * Only one holder owns a page at a time, so two reclaims of one page
 * cannot both be legitimate.
 *
 * A page given up in a recall answer the holder never saw confirmed
 * (RECALLED) may or may not have been taken before the crash. If it was,
 * the node may have given the page to a later owner, whose content is
 * newer: in the pool already (its write-back, or its own answer), or
 * handed back by it as owner. So such an answer loses to an owner's
 * reclaim of the page, whichever comes first, and, when it carries the
 * version of its recall, to any later owner: the version on disk counts
 * owners, and it moves on only after the previous owner's answer was
 * stored. An answer whose version is still the page's was either never
 * taken or is what the pool holds: storing it is right either way.
 */
#include "dir_grace.h"

#include "dir_int.h"
#include "dir_away.h"
#include "dir_core.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"
#include "net.h"

int mn_dir_grace_load(struct mn_dir *d, unsigned grace_ms)
{
	_cleanup_free_ uint8_t *buf = malloc(PROTO_PAGE_SIZE);
	unsigned holders = 0, sections = 0;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&d->mu);
	for (uint32_t k = 0; d->tab && k < d->nsections && r == 0; k++) {
		struct dir_sec *s = d->secs[k];

		for (unsigned i = 0; i < PROTO_DIR_MAX_HOLDERS; i++) {
			struct mn_dirtab_ent e;

			if (!mn_dirtab_get(d->tab, k, i, &e))
				continue;
			/* Its section freed or allocated again since, or no grace: forgotten. */
			if (!grace_ms || (s && (s->generation != e.generation || s->h[i].used)) ||
			    d->ops->page_read(d->table, k, e.generation, 0, buf) < 0) {
				mn_dirtab_clear(d->tab, k, i);
				continue;
			}
			if (!s && !(s = dir_sec_new(d, k, e.generation))) {
				r = -ENOMEM;
				break;
			}
			s->h[i] = (struct dir_holder){
				.used = true, .node = e.node, .tag = e.tag, .incarnation = 1,
			};
			s->expect |= (uint16_t)(1u << i);
			s->nholders++;
			atomic_fetch_add(&d->cnt.holders, 1);
			holders++;
		}
		if (s && s->expect && !s->grace) {
			s->reclaimed = calloc((d->npages + 7) / 8, 1);
			if (!s->reclaimed) {
				r = -ENOMEM;
				break;
			}
			s->grace = true;
			d->ngrace++;
			sections++;
		}
	}
	atomic_store(&d->cnt.grace_sections, d->ngrace);
	if (sections) {
		d->grace_deadline_ns = now_ns() + (uint64_t)grace_ms * 1000000;
		pthread_cond_signal(&d->cond);      /* the lease thread ends it in time */
		log_info("directory: %u holder(s) of %u strict section(s) may reclaim their pages "
			 "for %u ms", holders, sections, grace_ms);
	}
	pthread_mutex_unlock(&d->mu);
	return r;
}

/*
 * A recall answer of ownership `version` that the node had taken before it
 * died, with a later owner since (serial arithmetic: versions wrap)? That
 * owner's content is newer, wherever it is now: in the pool (written back,
 * or its own answer taken), or about to be handed back by it.
 */
static bool superseded(const struct mn_dir *d, const struct dir_sec *s, uint32_t page,
		       const uint32_t *version)
{
	return version && (int32_t)(*version - mn_dirtab_version(d->tab, s->idx, page)) < 0;
}

int mn_dir_reclaim(struct mn_dir *d, struct mn_conn *chan, const struct proto_grant *g,
		   uint16_t tag, uint32_t page, const void *data, bool recalled,
		   const uint32_t *version)
{
	struct dir_sec *s;
	bool awaited, away;
	int i = -1, r = 0;

	if (page >= d->npages)
		return -ERANGE;
	pthread_mutex_lock(&d->mu);
	s = g->section < d->nsections && !d->stopping ? d->secs[g->section] : NULL;
	if (s && s->generation == g->generation)
		i = dir_holder_find(s, g->holder_id, tag);
	if (i < 0 || s->h[i].chan != chan) {
		/* Not attached on this channel: nothing of it is taken. */
		atomic_fetch_add(&d->cnt.detached, 1);
		pthread_mutex_unlock(&d->mu);
		return d->stopping ? -ESHUTDOWN : -EUNATCH;
	}
	away = s->h[i].back_by_ns && !s->grace;
	awaited = (s->grace && (s->expect & (1u << i))) || away;
	if (data && !awaited) {
		/* No grace period for it, not away: what it changed before is not taken. */
		atomic_fetch_add(&d->cnt.detached, 1);
		r = -EUNATCH;
	} else if (data && away &&
		   (s->owner[page] != i || (recalled && !dir_recall_pending(d, s, (unsigned)i, page)))) {
		/*
		 * Taken from it in a recall answer already (dir_away.c), or an
		 * answer whose recall is over: the node's is newer.
		 */
		log_debug("section %u: page %u handed back by node %llu/%u ignored: it does not "
			  "own it", s->idx, page, (unsigned long long)g->holder_id, tag);
		atomic_fetch_add(&d->cnt.superseded, 1);
	} else if (data && away) {
		r = d->ops->page_write(d->table, s->idx, s->generation, page, data);
		if (r == 0)
			atomic_fetch_add(&d->cnt.reclaimed, 1);
	} else if (away) {
		dir_holder_back(d, s, (unsigned)i);     /* DONE */
	} else if (data && recalled && (s->reclaimed[page / 8] & (1u << (page % 8)))) {
		/* Its owner since handed it back: newer than this recall answer. */
		log_debug("section %u: page %u of a recall answer ignored: its owner reclaimed it",
			  s->idx, page);
		atomic_fetch_add(&d->cnt.superseded, 1);
	} else if (data && recalled && superseded(d, s, page, version)) {
		log_info("section %u: page %u of a recall answer (version %u) set aside: the node "
			 "had taken it, and the page has had an owner since (version %u)", s->idx,
			 page, *version, mn_dirtab_version(d->tab, s->idx, page));
		atomic_fetch_add(&d->cnt.superseded, 1);
	} else if (data) {
		r = d->ops->page_write(d->table, s->idx, s->generation, page, data);
		if (r == 0 && !recalled)
			s->reclaimed[page / 8] |= (uint8_t)(1u << (page % 8));
		if (r == 0)
			atomic_fetch_add(&d->cnt.reclaimed, 1);
	} else if (awaited) {
		/* DONE; from a holder nobody waits for it changes nothing. */
		log_info("section %u: node %llu/%u has reclaimed its pages", s->idx,
			 (unsigned long long)g->holder_id, tag);
		s->expect &= (uint16_t)~(1u << i);
		if (!s->expect)
			dir_grace_end(d, s);
	}
	pthread_mutex_unlock(&d->mu);
	return r;
}
