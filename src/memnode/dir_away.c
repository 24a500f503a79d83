// SPDX-License-Identifier: MIT
/*
 * Holders away (dir_away.h; docs/memnode.md, "Coherence directory", Away
 * holders).
 *
 * A holder's recall channel closes when its compute agent dies. The agent
 * may come back (a restart, an upgrade) while its QEMU ran on: the guest's
 * writes to the pages this holder owned are in the region's file there,
 * and nowhere else. Dropping the holder at once would lose them, and hand
 * out the node's older copy as the page. So a holder that held anything
 * when its channel closed is *away* for --dir-grace-ms instead:
 *
 *   - it keeps every entry: the pages it owns, its read copies;
 *   - a recall it needs is not sent and has no lease: the request waits
 *     (requests for pages it does not hold go on as before);
 *   - its own requests answer DIR_GRACE (ask again) until it is done;
 *   - attached again (same node and tag), it hands back each page it had
 *     (DIR_RECLAIM): one it still owns here is stored as its last write,
 *     any other is ignored (the directory took that page from it already,
 *     in a recall answer, and the node or a later owner has it);
 *   - then it says DONE: it holds nothing from then on (it dropped its
 *     copies before it attached), and the recalls that waited for it are
 *     settled without data, so their requests read what it handed back;
 *   - not back in time, it is dropped as at a lease: its unpublished writes
 *     are lost, and the drop is reported.
 *
 * A new channel of a holder whose old one is still open makes it away the
 * same way: the holder lost its channel first (and dropped its copies),
 * only the node had not noticed yet.
 *
 * Why a page it still owns is the newest: the directory gives a page to
 * someone else only after its owner answered a recall of it, and an away
 * holder is sent none.
 */
#include "dir_away.h"

#include "dir_core.h"

#include "log.h"
#include "net.h"

/* Does holder slot i own a page of s, or hold a read copy? (Its recalls are for those.) */
static bool holds(const struct mn_dir *d, const struct dir_sec *s, unsigned i)
{
	for (uint32_t p = 0; p < d->npages; p++)
		if (s->owner[p] == i || (s->copyset[p] & (1u << i)))
			return true;
	return false;
}

bool dir_holder_away(struct mn_dir *d, struct dir_sec *s, unsigned i, struct mn_conn *chan,
		     bool versions)
{
	struct dir_holder *hd = &s->h[i];

	if (!d->away_ns || s->grace || !holds(d, s, i))
		return false;
	/* Its recalls sent on the old channel wait, like new ones, for it to be back. */
	(void)dir_recalls_of(d, s, i, false);
	if (hd->chan)
		d->ops->unref(hd->chan);
	hd->chan = chan;
	if (chan) {
		d->ops->ref(chan);
		hd->versions = versions;
		hd->reclaims = true;     /* the caller's: only such a channel may make it away */
	}
	hd->grants = 0;
	hd->incarnation++;          /* its requests queued before answer DIR_DETACHED */
	if (!hd->back_by_ns) {      /* away already: the first deadline stands */
		hd->back_by_ns = now_ns() + d->away_ns;
		atomic_store(&d->cnt.holders_away, ++d->naway);
		pthread_cond_signal(&d->cond);   /* the lease thread looks at its deadline */
	}
	log_info("section %u: node %llu/%u %s: its pages wait %llu ms for it to hand them back",
		 s->idx, (unsigned long long)hd->node, hd->tag,
		 chan ? "attached on a new channel" : "is away",
		 (unsigned long long)(d->away_ns / 1000000));
	return true;
}

void dir_holder_back(struct mn_dir *d, struct dir_sec *s, unsigned i)
{
	struct dir_holder *hd = &s->h[i];
	unsigned owned = dir_holder_forget(d, s, i);

	hd->back_by_ns = 0;
	atomic_store(&d->cnt.holders_away, --d->naway);
	atomic_fetch_add(&d->cnt.holders_back, 1);
	log_info("section %u: node %llu/%u is back: the %u pages it owned are as it handed "
		 "them back", s->idx, (unsigned long long)hd->node, hd->tag, owned);
	(void)dir_recalls_of(d, s, i, true);
}

uint64_t dir_away_next(const struct mn_dir *d)
{
	uint64_t next = UINT64_MAX;

	for (uint32_t k = 0; k < d->nsections; k++)
		for (unsigned i = 0; d->secs[k] && i < PROTO_DIR_MAX_HOLDERS; i++)
			if (d->secs[k]->h[i].used && d->secs[k]->h[i].back_by_ns)
				next = MIN(next, d->secs[k]->h[i].back_by_ns);
	return next;
}

bool dir_away_expire(struct mn_dir *d, uint64_t now)
{
	bool any = false;

	for (uint32_t k = 0; k < d->nsections; k++) {
		struct dir_sec *s = d->secs[k];

		for (unsigned i = 0; s && i < PROTO_DIR_MAX_HOLDERS; i++) {
			if (!s->h[i].used || !s->h[i].back_by_ns || s->h[i].back_by_ns > now)
				continue;
			dir_holder_drop(d, s, i, DROP_AWAY);
			any = true;
		}
		if (s)
			dir_sec_maybe_free(d, s);
	}
	return any;
}
