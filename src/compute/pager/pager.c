// SPDX-License-Identifier: MIT
/*
 * The pager's lifecycle (pager.h): create it with its layers' state, start
 * its threads (fault threads, fault.c; the evictor, evict.c; the health
 * thread, source.c), stop and free it.
 */
#include "pager.h"

#include "cache.h"
#include "core.h"
#include "evict.h"
#include "fault.h"
#include "replica.h"

int pager_new(const struct pager_config *cfg, struct pager **ret)
{
	struct pager *p;
	int rc;

	if (!cfg || !cfg->backend || !ret)
		return -EINVAL;
	if (cfg->section_size && (cfg->section_size % PS || cfg->section_size / PS > UINT32_MAX))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->epfd = p->stopfd = -1;
	p->cfg = *cfg;
	snprintf(p->name, sizeof(p->name), "%s", cfg->name ? cfg->name : "pager");
	p->cfg.name = p->name;
	p->sec_pages = (uint32_t)((cfg->section_size ? cfg->section_size : PAGER_DEFAULT_SECTION) / PS);
	p->cluster = cfg->cluster_pages ? cfg->cluster_pages : 16;
	p->max_window = cfg->max_window_pages ? cfg->max_window_pages : 256;
	p->max_window = MIN(MAX(p->max_window, p->cluster), (uint32_t)PROTO_MAX_PAGES);
	p->cluster = MIN(p->cluster, p->max_window);
	p->pcluster = cfg->pressure_cluster_pages ? cfg->pressure_cluster_pages : 4;
	p->pcluster = MIN(p->pcluster, p->cluster);
	p->batch = cfg->evict_batch ? MIN(cfg->evict_batch, 1024u) : 64;
	if (!p->cfg.fail_timeout_ms)
		p->cfg.fail_timeout_ms = 10000;
	if (!p->cfg.writeback_delay_ms)
		p->cfg.writeback_delay_ms = 1000;
	if (!p->cfg.reconcile_ms)
		p->cfg.reconcile_ms = 10000;
	if (p->cfg.replica_timeout_ms <= 0)
		p->cfg.replica_timeout_ms = 1000;
	p->nthreads = cfg->fault_threads ? cfg->fault_threads : 1;
	atomic_store(&p->hold, (cfg->crypt && cfg->meta_pending ? PAGER_HOLD_META : 0u) |
			       (cfg->replicas_pending ? PAGER_HOLD_REPLICAS : 0u));
	atomic_store(&p->budget_pages, cfg->budget == UINT64_MAX ? UINT64_MAX : cfg->budget / PS);
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->io_lock, NULL);
	pthread_mutex_init(&p->admin_lock, NULL);
	pthread_cond_init(&p->evict_cond, NULL);
	pthread_cond_init(&p->space_cond, NULL);
	if (p->cfg.probe_ms <= 0)
		p->cfg.probe_ms = 250;
	/* A grace period cuts short a fault thread's wait for budget space. */
	p->rcu.kick = pager_budget_kick;
	p->rcu.kick_arg = p;
	rc = pager_hot_new(p);
	if (rc == 0)
		rc = pager_nodes_new(p);
	if (rc == 0)
		rc = pager_mm_new(p);
	if (rc == 0)
		rc = pager_repl_new(p);
	if (rc == 0)
		rc = pager_fault_init(p);
	if (rc < 0) {
		pager_free(p);
		return rc;
	}
	*ret = p;
	return 0;
}

static int start_locked(struct pager *p)
{
	int rc;

	if (p->started)
		return -EALREADY;
	if (p->mode == PAGER_DIRTY_ASYNC_WP && !p->cfg.allow_async_evict &&
	    atomic_load(&p->budget_pages) != UINT64_MAX)
		return -EOPNOTSUPP;
	p->threads = calloc(p->nthreads, sizeof(*p->threads));
	if (!p->threads || pager_rcu_init(&p->rcu, p->nthreads) < 0)
		return -ENOMEM;
	p->started = true;
	rc = pthread_create(&p->evictor, NULL, pager_evictor_main, p);
	if (rc)
		return -rc;
	p->evictor_started = true;
	rc = pager_nodes_start(p);
	if (rc == 0)
		rc = pager_repl_start(p);
	if (rc < 0)
		return rc;
	return pager_fault_start(p);
}

int pager_start(struct pager *p)
{
	int rc;

	pthread_mutex_lock(&p->admin_lock);
	rc = start_locked(p);
	pthread_mutex_unlock(&p->admin_lock);
	return rc;
}

void pager_free(struct pager *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, true);
	pthread_mutex_lock(&p->lock);
	pthread_cond_broadcast(&p->evict_cond);
	pthread_cond_broadcast(&p->space_cond);
	pthread_mutex_unlock(&p->lock);
	pager_fault_stop(p);
	if (p->evictor_started)
		pthread_join(p->evictor, NULL);
	pager_nodes_stop(p);
	pager_repl_stop(p);
	for (unsigned i = 0; i < PAGER_MAX_REGIONS; i++)
		pager_region_free(atomic_load(&p->regions[i]));
	pager_mm_free(p);
	free(p->threads);
	pager_rcu_fini(&p->rcu);
	pager_fault_fini(p);
	pager_hot_free(p);
	pager_nodes_free(p);
	pager_repl_free(p);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->io_lock);
	pthread_mutex_destroy(&p->admin_lock);
	pthread_cond_destroy(&p->evict_cond);
	pthread_cond_destroy(&p->space_cond);
	free(p);
}
