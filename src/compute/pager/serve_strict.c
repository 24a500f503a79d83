// SPDX-License-Identifier: MIT
/*
 * Strict shared regions (share.h, docs/sharing.md): Ivy's single writer /
 * multiple readers, page by page, with the directory on the region's home
 * memory node (docs/protocol.md, "Coherence directory").
 *
 * A fault on a strict region asks the directory for that one page, with
 * no cluster and no prefetch: a read fault for a read copy (installed
 * write-protected), a write fault, or a write-protect fault on a read
 * copy, for ownership (ST_OWNED: installed or made writable, dirty). The
 * directory may answer a read with ownership (a migratory page, moving
 * from writer to writer): the copy is installed writable and ST_OWNED, its
 * content as given kept ("Taken pages" below). A write-protect fault on a
 * page this node owns (written back by the cleaner since) only
 * un-protects it.
 *
 * While it waits for the directory the page is BUSY. A recall of the same
 * page (pager_strict_recall, from the agent's recall thread) waits for it
 * only if the directory had already answered this node's request when it
 * sent the recall (its count of answers, `grants`, is ahead of the
 * answers installed here, dir_rx): the recall is then about the state
 * being installed. Otherwise the request is queued at the directory behind
 * the one that sent the recall, and the recall is served at once: waiting
 * would deadlock until the lease. A page dropped that way while BUSY is
 * marked RMV, for the fault to know its copy is gone. A recall
 * write-protects the page (DOWNGRADE) or punches it (INVALIDATE) before it
 * returns, handing back the page's data when it was dirty: only then does
 * the directory let the other node go on. That order is what makes every
 * page sequentially consistent across nodes.
 *
 * Wake last (wake_last): the thread that faulted is woken only after the
 * page's new state and the directory's answer are recorded, with the
 * pager's lock released. Woken on this thread's CPU, a vCPU preempts it,
 * and a vCPU that spins on the page keeps that CPU until the next tick
 * (4 ms at HZ=250) while the kernel leaves this thread queued behind it;
 * anything still to do after the wake (a recall of the page waits for it)
 * then waits that long (bench/README, "The ping-pong's ticks").
 *
 * The hold window (Mirage's delta): a recall of a page the directory gave
 * this node less than PAGER_STRICT_HOLD_NS ago waits for the rest of that
 * time first. Without it, two vCPUs that take turns on a page (a lock, a
 * ping-pong) thrash: the waiting side's read takes the page back before
 * the vCPU that faulted for it has done its write, which then faults
 * again. Recalls of a page held longer are not delayed.
 *
 * A taken page (below) is held, instead, for exactly as long as it is
 * unchanged, up to PAGER_STRICT_TAKEN_HOLD_NS: the directory gave it for
 * a write to come, and that write, the use the window waits for, shows in
 * its content. Written, it goes at once: in a ping-pong the other side's
 * read is usually waiting already, and the window's rest (and its timer,
 * which wakes late by the timer slack) was most of a hand-over (bench/README,
 * "Taken pages handed over once written"). Unwritten, the recall looks
 * again and again, yielding the CPU, for PAGER_STRICT_SPIN_NS (a woken
 * vCPU writes within microseconds of running), then every
 * PAGER_STRICT_POLL_US; the other side's read would otherwise take it back
 * before the vCPU that faulted for it has run, that page would go back
 * clean, its taker fault again, and each such turn cost a hand-over more
 * (bench/README, "Taken pages held until written"). A taker that only
 * reads gives the page back after PAGER_STRICT_TAKEN_HOLD_NS, clean.
 *
 * Taken pages (ST_SNAP): a page the directory gives with ownership for a
 * read (a migratory page: the node that takes it is expected to write it
 * next) is installed writable, so the guest's write that follows does not
 * fault again, and its content as given is kept. Its recall hands it back
 * clean if it is still the same: the directory must hear whether the page
 * was only read, which is what turns its migratory guess off, and the
 * memory node holds that content already. Only the last PAGER_STRICT_SNAPS
 * pages taken keep theirs; an older one loses ST_SNAP and counts as
 * written. A write-back by the cleaner ends ST_SNAP (the memory node has
 * newer content then), as does a write-protect fault.
 */
#include "serve_strict.h"

#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "answers.h"
#include "budget.h"
#include "cache.h"
#include "log.h"
#include "net.h"
#include "rcu.h"
#include "serve.h"
#include "source.h"
#include "uffd_compat.h"

/*
 * A recall that waits for an install in progress or for a taken page's
 * write looks this often (us)...
 */
#define PAGER_STRICT_POLL_US 20
/* ...but for a taken page's write, it looks without sleeping for this long first (ns). */
#define PAGER_STRICT_SPIN_NS 60000ull

/* Keep taken page pg's content as given (p->lock held). */
static void snap_keep(struct pager_region *r, uint64_t pg, const void *data)
{
	struct pager_snap *sn = NULL;

	for (unsigned i = 0; i < PAGER_STRICT_SNAPS && !sn; i++)
		if (r->snaps[i].pg == pg)
			sn = &r->snaps[i];
	if (!sn) {
		sn = &r->snaps[r->snap_next++ % PAGER_STRICT_SNAPS];
		if (sn->pg != UINT64_MAX)
			st_set(r, sn->pg, st_get(r, sn->pg) & (uint8_t)~ST_SNAP);
	}
	sn->pg = pg;
	memcpy(sn->data, data, PS);
}

/* Taken page pg (ST_SNAP) has the content it was given (p->lock held). */
static bool snap_same(const struct pager_region *r, uint64_t pg, const void *data)
{
	for (unsigned i = 0; i < PAGER_STRICT_SNAPS; i++)
		if (r->snaps[i].pg == pg)
			return memcmp(r->snaps[i].data, data, PS) == 0;
	return false;
}

/* Ask the directory; transport failures retried until fail_timeout_ms, like fetches. */
static int dir_ask(struct pager_fault_ctx *t, struct pager_region *r,
		   const struct pager_section *s, uint32_t page, bool write, void *buf, bool *had,
		   bool *owned)
{
	struct pager *p = t->p;
	const struct pager_backend_ops *ops = p->cfg.backend->ops;
	uint64_t end = now_ns() + (uint64_t)p->cfg.fail_timeout_ms * 1000000ull;
	int rc;

	CTR_ADD(p, strict_reads, write ? 0 : 1);
	CTR_ADD(p, strict_writes, write ? 1 : 0);
	for (;;) {
		*had = *owned = false;
		rc = ops->dir_fetch(t->conn, s, page, write, buf, had, owned);
		if (rc == -EUNATCH) {
			/*
			 * The directory forgot this node (its lease ran out, or
			 * the memory node restarted): the recall thread drops
			 * every copy and attaches again (pager_strict_detached);
			 * the guest refaults meanwhile.
			 */
			atomic_store(&r->dir_detached, true);
			usleep(1000);
			return rc;
		}
		if (rc >= 0 || (rc != -EINPROGRESS && !pager_err_transport(rc)) || now_ns() > end)
			return rc;
		/*
		 * A change of the region waits for this thread to leave it (the
		 * recall thread keeping what this node changed, say): let the
		 * fault go; it comes back once the change is done.
		 */
		if (pager_rcu_waiting(&p->rcu))
			return rc;
		if (rc == -EINPROGRESS) {
			/*
			 * The memory node restarted and its directory waits for
			 * the holders to hand back what they changed (a grace
			 * period of a few seconds): ask again.
			 */
			CTR_ADD(p, strict_grace_waits, 1);
			usleep(2000);
			continue;
		}
		pager_count_error(p, rc, "strict directory request (retried)");
		ops->reset(t->conn);
		usleep(10000);
	}
}

/*
 * Let page pg go after a failure (st: its state before the claim); the
 * thread refaults. answered: the directory did answer (counted with the
 * state, under the lock, as pager_strict_recall reads them together).
 */
static void unclaim(struct pager *p, struct pager_region *r, uint64_t pg, uint8_t st,
		    bool answered)
{
	bool gone;

	pthread_mutex_lock(&p->lock);
	/* A recall dropped the copy while the fault waited (RMV): it is absent now. */
	gone = (st & ST_PRESENT) && (st_get(r, pg) & ST_RMV);
	st_set(r, pg, gone ? 0 : st & (uint8_t)~(ST_BUSY | ST_RMV));
	if (answered)
		atomic_fetch_add(&r->dir_rx[pg / p->sec_pages], 1);
	pthread_mutex_unlock(&p->lock);
	if (gone)
		pager_resident_add(p, -1);
	(void)pager_uffd_wake(r, pg, 1);
}

void pager_serve_strict(struct pager_fault_ctx *t, struct pager_region *r, uint64_t addr,
			bool wp, bool write)
{
	struct pager *p = t->p;
	uint64_t pg = (addr - r->base) / PS, sec = pg / p->sec_pages;
	const struct pager_section *s = &r->sections[sec];
	uint32_t page = (uint32_t)(pg % p->sec_pages);
	bool had = false, owned = false, present, dropped, taken;
	uint64_t t0 = now_ns();
	uint8_t st;
	int rc;

	if (wp)
		CTR_ADD(p, faults_wp, 1);
	else
		CTR_ADD(p, faults_missing, 1);
	if (atomic_load(&r->dead) || pager_sec_fenced(r, sec))
		return;   /* parked: woken when the change is done (region.c) */
	if (pager_sec_down(p, r, (unsigned)sec)) {
		CTR_ADD(p, faults_parked, 1);
		return;   /* parked: woken when the node answers again (source.c) */
	}
	pthread_mutex_lock(&p->lock);
	st = st_get(r, pg);
	if (st & ST_BUSY) {
		pthread_mutex_unlock(&p->lock);
		return;   /* a fault or a recall owns it: that owner wakes the thread */
	}
	present = st & ST_PRESENT;
	if (wp && !present) {
		pthread_mutex_unlock(&p->lock);
		(void)pager_uffd_wake(r, pg, 1);   /* recalled meanwhile: refaults as MISSING */
		return;
	}
	if (!wp && present) {
		pthread_mutex_unlock(&p->lock);
		(void)pager_uffd_wake(r, pg, 1);   /* installed meanwhile */
		return;
	}
	if (wp && (st & ST_OWNED)) {
		/* Ours already: written back by the cleaner since, nothing to ask. */
		rc = pager_uffd_unprotect_quiet(r, pg, 1);
		if (rc == 0)
			st_set(r, pg, (st | ST_DIRTY | ST_REF) & (uint8_t)~ST_SNAP);
		pthread_mutex_unlock(&p->lock);
		(void)pager_uffd_wake(r, pg, 1);   /* after the unlock: see wake_last */
		return;
	}
	st_set(r, pg, st | ST_BUSY);
	pthread_mutex_unlock(&p->lock);

	rc = dir_ask(t, r, s, page, write || wp, t->buf, &had, &owned);
	if (rc < 0) {
		if (rc != -EUNATCH)
			pager_count_error(p, rc, "strict page: directory");
		unclaim(p, r, pg, st, false);
		return;
	}
	/* Ownership for a read: installed writable, its content kept ("Taken pages"). */
	taken = owned && !write && !wp;
	pthread_mutex_lock(&p->lock);
	dropped = present && (st_get(r, pg) & ST_RMV);   /* recalled while we waited */
	pthread_mutex_unlock(&p->lock);
	if (wp && had && !dropped) {
		/* Our read copy is current: make it writable (the writer is woken below). */
		rc = pager_uffd_unprotect_quiet(r, pg, 1);
	} else {
		/* New data: replace a stale copy the directory no longer counted. */
		if (present && !dropped)
			(void)pager_punch(r, pg, 1);
		rc = had ? -EPROTO :   /* "you have it" about a copy we no longer have */
			   pager_install_pages(t, r, pg, 1, t->buf,
					       UFFDIO_COPY_MODE_DONTWAKE |
						       (write || wp || taken ? 0 : UFFDIO_COPY_MODE_WP));
	}
	if (rc < 0) {
		log_warn("pager %s: strict page %llu: install: %s", p->name,
			 (unsigned long long)pg, strerror(-rc));
		unclaim(p, r, pg, present && !dropped ? st : 0, true);
		if (present && dropped)
			pager_resident_add(p, -1);
		return;
	}
	/*
	 * The new state and one more of the directory's answers, together: a
	 * recall that counts this answer must see this state (pager_strict_recall).
	 */
	pthread_mutex_lock(&p->lock);
	if (taken)
		snap_keep(r, pg, t->buf);     /* counted written unless unchanged at its recall */
	st_set(r, pg, ST_PRESENT | ST_REF | (write || wp || taken ? ST_DIRTY | ST_OWNED : 0) |
			      (taken ? ST_SNAP : 0));
	atomic_fetch_add(&r->dir_rx[sec], 1);
	r->held_pg[r->held_next] = pg;
	r->held_ns[r->held_next] = now_ns();
	r->held_next = (r->held_next + 1) % PAGER_STRICT_HELD;
	CTR_ADD(p, strict_taken, owned ? 1 : 0);
	pthread_mutex_unlock(&p->lock);
	(void)pager_uffd_wake(r, pg, 1);   /* last: see wake_last at the top */
	if (!present)
		pager_resident_add(p, 1);
	hist_observe(&p->h_strict, now_ns() - t0);
}

/* Taken page pg still has the content it was given (buf: scratch for a page). */
static bool taken_unchanged(struct pager *p, struct pager_region *r, uint64_t pg, void *buf)
{
	bool same;

	if (pread(r->file_fd, buf, PS, (off_t)(r->file_offset + pg * PS)) != (ssize_t)PS)
		return false;
	pthread_mutex_lock(&p->lock);
	same = (st_get(r, pg) & ST_SNAP) && snap_same(r, pg, buf);
	pthread_mutex_unlock(&p->lock);
	return same;
}

/*
 * A taken page's hold (see the top): until it is written, up to
 * PAGER_STRICT_TAKEN_HOLD_NS after it came. Its write wakes nobody, so the
 * recall looks: at once and, yielding, for PAGER_STRICT_SPIN_NS, then
 * every PAGER_STRICT_POLL_US. A sleep's timer wakes it tens of
 * microseconds late (the timer slack); a yield lets a vCPU queued on this
 * CPU run its write first.
 */
static void hold_taken(struct pager *p, struct pager_region *r, uint64_t pg, uint64_t since,
		       void *buf)
{
	uint64_t t0 = now_ns(), now;
	bool held = false;

	while ((now = now_ns()) - since < PAGER_STRICT_TAKEN_HOLD_NS &&
	       taken_unchanged(p, r, pg, buf)) {
		held = true;
		if (now - t0 < PAGER_STRICT_SPIN_NS)
			sched_yield();
		else
			usleep(PAGER_STRICT_POLL_US);
	}
	if (held) {
		CTR_ADD(p, strict_held, 1);
		CTR_ADD(p, strict_held_taken, 1);
	}
}

/* The hold window (see the top): wait until page pg was ours long enough. */
static void hold(struct pager *p, struct pager_region *r, uint64_t pg, void *buf)
{
	uint64_t since = 0, now;
	bool taken;

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < PAGER_STRICT_HELD; i++)
		if (r->held_ns[i] && r->held_pg[i] == pg)
			since = MAX(since, r->held_ns[i]);
	taken = st_get(r, pg) & ST_SNAP;
	pthread_mutex_unlock(&p->lock);
	if (!since)
		return;
	if (taken) {
		hold_taken(p, r, pg, since, buf);
		return;
	}
	now = now_ns();
	if (now - since < PAGER_STRICT_HOLD_NS) {
		usleep((useconds_t)((PAGER_STRICT_HOLD_NS - (now - since) + 999) / 1000));
		CTR_ADD(p, strict_held, 1);
	}
}

int pager_strict_recall(struct pager *p, int region, uint32_t section, uint32_t page,
			bool invalidate, uint32_t grants, uint32_t version, void *buf,
			bool *ret_dirty)
{
	struct pager_region *r;
	uint64_t pg, deadline, t0 = now_ns();
	bool dropped = false, busy;
	uint8_t st;
	int rc = 0;

	*ret_dirty = false;
	if (!p || region < 0 || region >= PAGER_MAX_REGIONS)
		return -EINVAL;
	pthread_mutex_lock(&p->admin_lock);       /* the region stays while we work */
	r = atomic_load(&p->regions[region]);
	if (!r || !r->strict || section >= r->nsections || page >= p->sec_pages) {
		pthread_mutex_unlock(&p->admin_lock);
		return r ? -EINVAL : -ENOENT;
	}
	pg = (uint64_t)section * p->sec_pages + page;
	deadline = now_ns() + ((uint64_t)p->cfg.fail_timeout_ms + 1000) * 1000000ull;
	hold(p, r, pg, buf);
	pthread_mutex_lock(&p->lock);
	/*
	 * A fault installing an answer the directory sent before this recall
	 * finishes first; one whose request waits behind this recall does not.
	 */
	while (((st = st_get(r, pg)) & ST_BUSY) &&
	       (int32_t)(atomic_load(&r->dir_rx[section]) - grants) < 0) {
		pthread_mutex_unlock(&p->lock);
		if (now_ns() > deadline) {
			pthread_mutex_unlock(&p->admin_lock);
			return -ETIMEDOUT;
		}
		/*
		 * Polled, not woken by the install: woken at once, the recall
		 * took the page back before the vCPU had used it (bench/README,
		 * "The ping-pong's ticks", tried and dropped).
		 */
		usleep(PAGER_STRICT_POLL_US);
		pthread_mutex_lock(&p->lock);
	}
	busy = st & ST_BUSY;
	if (st & ST_PRESENT) {
		/* No write after this one: a writer now faults and asks the directory. */
		rc = pager_uffd_wp(r, pg, 1, true);
		if (rc == 0 && (st & ST_DIRTY)) {
			ssize_t n = pread(r->file_fd, buf, PS, (off_t)(r->file_offset + pg * PS));

			rc = n == (ssize_t)PS ? 0 : n < 0 ? -errno : -EIO;
			/* A taken page the guest only read: clean (see "Taken pages"). */
			*ret_dirty = rc == 0 && !((st & ST_SNAP) && snap_same(r, pg, buf));
			if (rc == 0 && !*ret_dirty)
				CTR_ADD(p, strict_taken_clean, 1);
		}
		/* On file before the page leaves: the agent may die before the node reads it. */
		if (rc == 0 && invalidate && *ret_dirty && r->answers_fd >= 0) {
			int e = pager_answer_keep(r->answers_fd, r->answers_n++, section, page,
						  version, buf);

			if (e < 0)
				log_warn("pager %s: strict page %llu: its recall answer is not on "
					 "file: %s", p->name, (unsigned long long)pg, strerror(-e));
		}
		if (rc == 0 && invalidate) {
			rc = pager_punch(r, pg, 1);
			if (rc == 0 && busy) {
				st_set(r, pg, st | ST_RMV);   /* its fault finds the copy gone */
			} else if (rc == 0) {
				st_set(r, pg, 0);
				dropped = true;
			}
		} else if (rc == 0) {
			st_set(r, pg, st & (uint8_t)~(ST_DIRTY | ST_OWNED | ST_SNAP));
		}
	} else if (!busy) {
		st_set(r, pg, st & (uint8_t)~ST_OWNED);
	}
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->admin_lock);
	if (dropped)
		pager_resident_add(p, -1);
	CTR_ADD(p, strict_recalls, 1);
	hist_observe(&p->h_recall, now_ns() - t0);
	return rc;
}

bool pager_strict_detached(struct pager *p, int region)
{
	struct pager_region *r;
	bool d = false;

	if (!p || region < 0 || region >= PAGER_MAX_REGIONS)
		return false;
	pthread_mutex_lock(&p->admin_lock);
	r = atomic_load(&p->regions[region]);
	if (r && r->strict)
		d = atomic_exchange(&r->dir_detached, false);
	pthread_mutex_unlock(&p->admin_lock);
	return d;
}
