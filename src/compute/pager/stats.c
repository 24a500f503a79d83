// SPDX-License-Identifier: MIT
/*
 * The pager's statistics (stats.h): a snapshot struct for the agent and
 * Prometheus text for its /metrics endpoint.
 */
#include "stats.h"

#include <string.h>

#include "core.h"
#include "memmig.h"
#include "source.h"

const char *pager_mode_name(enum pager_dirty_mode m)
{
	return m == PAGER_DIRTY_ASYNC_WP ? "async_wp" : "sync_wp";
}

#define LD(f) atomic_load_explicit(&p->c.f, memory_order_relaxed)

void pager_stats(struct pager *p, struct pager_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->faults = LD(faults);
	ret->faults_missing = LD(faults_missing);
	ret->faults_wp = LD(faults_wp);
	ret->faults_alias = LD(faults_alias);
	ret->faults_local = LD(faults_local);
	ret->pages_fetched = LD(pages_fetched);
	ret->pages_prefetched = LD(pages_prefetched);
	ret->pages_zero = LD(pages_zero);
	ret->pages_evicted = LD(pages_evicted);
	ret->pages_written_back = LD(pages_written_back);
	ret->integrity_failures = LD(integrity_failures);
	ret->pages_sealed = LD(pages_sealed);
	ret->pages_stashed = LD(pages_stashed);
	ret->pages_stash_opened = LD(pages_stash_opened);
	ret->pages_stash_dropped = LD(pages_stash_dropped);
	ret->encrypted = p->cfg.crypt != NULL;
	ret->remove_events = LD(remove_events);
	ret->errors = LD(errors);
	ret->eexist = LD(eexist);
	ret->eagain = LD(eagain);
	ret->flushes = LD(flushes);
	ret->pages_punched = LD(pages_punched);
	ret->pages_dropped = LD(pages_dropped);
	ret->regions_removed = LD(regions_removed);
	ret->memmig_started = LD(memmig_started);
	ret->memmig_committed = LD(memmig_committed);
	ret->memmig_aborted = LD(memmig_aborted);
	ret->memmig_failed = LD(memmig_failed);
	ret->memmig_pages_dual = LD(memmig_pages_dual);
	ret->memmig_pages_resent = LD(memmig_pages_resent);
	ret->pages_cleaned = LD(pages_cleaned);
	ret->pages_unprotected = LD(pages_unprotected);
	ret->pages_hot_prefetched = LD(pages_hot_prefetched);
	ret->writebacks_fenced = LD(writebacks_fenced);
	ret->shared_writes_waited = LD(shared_writes_waited);
	ret->shared_pages_dropped = LD(shared_pages_dropped);
	ret->strict_reads = LD(strict_reads);
	ret->strict_writes = LD(strict_writes);
	ret->strict_recalls = LD(strict_recalls);
	ret->strict_taken = LD(strict_taken);
	ret->strict_taken_clean = LD(strict_taken_clean);
	ret->strict_held = LD(strict_held);
	ret->strict_held_taken = LD(strict_held_taken);
	ret->strict_grace_waits = LD(strict_grace_waits);
	ret->release_pages_published = LD(release_pages_published);
	ret->release_diff_bytes = LD(release_diff_bytes);
	ret->release_batches_resent = LD(release_batches_resent);
	ret->replica_failovers = LD(replica_failovers);
	ret->replica_pages_written = LD(replica_pages_written);
	ret->replicas_out = atomic_load(&p->replicas_out);
	ret->dirty_pages = atomic_load(&p->dirty_pages);
	ret->cleaner_floor = atomic_load_explicit(&p->cleaner_floor, memory_order_relaxed);
	pager_mm_stats(p, &ret->memmig_active, &ret->memmig_last_err);
	ret->resident_pages = atomic_load(&p->resident);
	ret->max_resident_pages = atomic_load(&p->max_resident);
	ret->budget_pages = atomic_load(&p->budget_pages);
	{
		struct pager_node_state ns;

		ret->nodes_down = pager_nodes_down(p);
		ret->failed = atomic_load(&p->failed);
		if (!ret->failed && pager_nodes_state(p, &ns, 1) > 0)
			ret->failed = ns.err;
	}
	ret->faults_parked = LD(faults_parked);
	ret->node_down_events = LD(node_down_events);
	ret->node_up_events = LD(node_up_events);
	ret->mode = p->mode;
	hist_merge(&ret->fault, &p->h_fault);
	hist_merge(&ret->fetch, &p->h_fetch);
	hist_merge(&ret->evict, &p->h_evict);
	hist_merge(&ret->writeback, &p->h_writeback);
	hist_merge(&ret->memmig_pause, &p->h_memmig_pause);
	hist_merge(&ret->strict, &p->h_strict);
	hist_merge(&ret->recall, &p->h_recall);
	hist_merge(&ret->space_wait, &p->h_space);
	hist_merge(&ret->busy_wait, &p->h_busy);
}

void pager_render_metrics(struct pager *p, struct strbuf *sb, const char *labels)
{
	struct pager_stats s;
	char ml[512];
	static const struct {
		const char *name, *help;
		size_t off;
	} ctrs[] = {
#define C(n, h) { "disagg_pager_" #n "_total", h, offsetof(struct pager_stats, n) }
		C(faults, "uffd fault messages handled"),
		C(faults_missing, "missing faults"),
		C(faults_wp, "write-protect faults"),
		C(faults_alias, "faults through another mapping of guest RAM (a disk's)"),
		C(faults_local, "missing faults on local sections"),
		C(pages_fetched, "pages fetched from memory nodes"),
		C(pages_prefetched, "pages fetched beyond the faulting cluster"),
		C(pages_zero, "pages installed as zeros"),
		C(pages_evicted, "pages evicted"),
		C(pages_written_back, "pages written back to memory nodes"),
		C(remove_events, "UFFD_EVENT_REMOVE events"),
		C(errors, "backend and uffd errors"),
		C(eexist, "UFFDIO_COPY/ZEROPAGE found the page present"),
		C(eagain, "uffd ioctls retried on EAGAIN"),
		C(flushes, "pager_flush calls"),
		C(pages_punched, "resident pages found punched behind the pager's back"),
		C(pages_dropped, "resident pages dropped without write-back (region removed, section discarded)"),
		C(regions_removed, "regions removed"),
		C(memmig_started, "section migrations begun"),
		C(memmig_committed, "section migrations committed"),
		C(memmig_aborted, "section migrations aborted"),
		C(memmig_failed, "section migrations failed (target or source error)"),
		C(memmig_pages_dual, "pages written back to both memory nodes of a migration"),
		C(memmig_pages_resent, "pages re-sent to the target at a migration's commit"),
		C(pages_cleaned, "pages written back by background write-back (they stay resident)"),
		C(pages_unprotected, "pages made writable along with a neighbour's write-protect fault (written before, clean since a write-back)"),
		C(pages_hot_prefetched, "pages fetched ahead of faults from a migration source's hot list"),
		C(faults_parked, "faults left waiting for a memory node that does not answer, or for a migration source's hand-over"),
		C(node_down_events, "memory nodes marked down (a fetch timed out or was refused)"),
		C(node_up_events, "memory nodes that answered again after being down"),
		C(integrity_failures, "fetched pages that failed authentication (a memory node changed, moved or replayed a page): never mapped"),
		C(pages_sealed, "pages encrypted with the slot's key for write-back"),
		C(pages_stashed, "sealed neighbours of a random fault kept sealed after the guest was woken"),
		C(pages_stash_opened, "sealed neighbours opened and installed later (touched, or the fault thread was idle)"),
		C(pages_stash_dropped, "sealed neighbours not installed from the stash (given up when it was full or near the budget, failed authentication, section changed); fetched again if touched"),
		C(writebacks_fenced, "write-back batches a memory node refused in part because this node no longer owns the section (dropped)"),
		C(shared_writes_waited, "writes to a shared region this VM does not hold, made to wait until it does"),
		C(shared_pages_dropped, "cached pages of shared regions dropped so that the next reads fetch what another VM released"),
		C(strict_reads, "read copies of strict shared pages asked of their directory"),
		C(strict_writes, "ownership of strict shared pages asked of their directory"),
		C(strict_recalls, "strict shared pages given up or made read-only for another node"),
		C(strict_taken, "strict shared pages a read fault got with ownership (migratory: the write that follows asks nothing)"),
		C(strict_taken_clean, "strict shared pages taken with ownership and recalled unchanged: handed back clean, read-shared from then on"),
		C(strict_held, "recalls of strict shared pages that waited for the hold window (the page had just come)"),
		C(strict_held_taken, "of those, recalls of a taken page that waited for its first write (up to the taken hold window)"),
		C(strict_grace_waits, "strict directory requests asked again while a restarted memory node waited for its holders"),
		C(release_pages_published, "pages of release shared regions whose diffs were published"),
		C(release_diff_bytes, "changed bytes of release shared regions published as diffs"),
		C(release_batches_resent, "batches of release diffs sent again from the journal (a connection broke or the agent restarted before they were settled)"),
		C(replica_failovers, "fetches served by another replica of a section after one failed"),
		C(replica_pages_written, "pages written back to the extra replicas (positions 1..) of replicated sections"),
#undef C
	};

	if (!labels)
		labels = "";
	pager_stats(p, &s);
	for (size_t i = 0; i < ARRAY_SIZE(ctrs); i++)
		metrics_counter(sb, ctrs[i].name, ctrs[i].help, labels,
				*(const uint64_t *)((const char *)&s + ctrs[i].off));
	metrics_gauge(sb, "disagg_pager_resident_bytes", "remote bytes resident locally", labels,
		      (double)s.resident_pages * PS);
	metrics_gauge(sb, "disagg_pager_dirty_pages",
		      "pages that need write-back (dirty or discarded)", labels,
		      (double)s.dirty_pages);
	metrics_gauge(sb, "disagg_pager_cleaner_floor",
		      "background write-back of rewritten pages waits delay << this at least "
		      "(0-4), as last set in one of the pager's regions", labels, (double)s.cleaner_floor);
	metrics_gauge(sb, "disagg_pager_budget_bytes", "local cache budget (-1: none)", labels,
		      s.budget_pages == UINT64_MAX ? -1.0 : (double)s.budget_pages * PS);
	metrics_gauge(sb, "disagg_pager_failed", "1 while a memory node of the pager is down", labels,
		      s.failed ? 1 : 0);
	metrics_gauge(sb, "disagg_pager_replicas_out",
		      "replicas of sections taken out (stale until repaired)", labels,
		      (double)s.replicas_out);
	metrics_gauge(sb, "disagg_pager_nodes_down", "memory nodes of the pager down now", labels,
		      (double)s.nodes_down);
	snprintf(ml, sizeof(ml), "%s%smode=\"%s\"", labels, *labels ? "," : "",
		 pager_mode_name(s.mode));
	metrics_gauge(sb, "disagg_pager_dirty_mode", "dirty tracking mode", ml, 1);
	metrics_hist(sb, "disagg_pager_fault_seconds", "remote missing fault service time", labels,
		     &s.fault);
	metrics_hist(sb, "disagg_pager_fetch_seconds", "fetch round trip", labels, &s.fetch);
	metrics_hist(sb, "disagg_pager_evict_seconds", "eviction batch time", labels, &s.evict);
	metrics_hist(sb, "disagg_pager_writeback_seconds", "write-back batch until acknowledged",
		     labels, &s.writeback);
	metrics_hist(sb, "disagg_pager_space_wait_seconds",
		     "a fault's wait for cache space (only faults that waited)", labels, &s.space_wait);
	metrics_hist(sb, "disagg_pager_busy_wait_seconds",
		     "a guest write that waited for a write-back batch in flight", labels,
		     &s.busy_wait);
	metrics_gauge(sb, "disagg_pager_memmig_active", "section migrations in progress", labels,
		      (double)s.memmig_active);
	metrics_hist(sb, "disagg_pager_memmig_pause_seconds",
		     "section fenced at a migration's commit", labels, &s.memmig_pause);
	metrics_hist(sb, "disagg_pager_strict_fault_seconds",
		     "strict shared-region fault that asked the directory, until installed", labels,
		     &s.strict);
	metrics_hist(sb, "disagg_pager_strict_recall_seconds",
		     "strict shared-region recall served here (hold window included)", labels,
		     &s.recall);
}
