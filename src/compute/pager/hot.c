// SPDX-License-Identifier: MIT
/*
 * Hot pages and prefetch, for compute migration (hot.h).
 *
 * The source: every fault thread notes the page of each fault it serves in
 * a ring (pager_hot_note, lock-free, the oldest overwritten). At the
 * switchover pager_hot_export() turns the ring into runs of pages that are
 * resident now, per section: the guest's recent working set.
 *
 * The destination: pager_prefetch() queues such runs. The queue's eventfd
 * is in the fault threads' epoll set; a fault thread takes one window of a
 * run at a time (fault.c, prefetch_step) and serves it like a read fault
 * that no vCPU waits for, so prefetch never holds up a real fault for more
 * than one round trip, claims pages with the same BUSY protocol, and skips
 * what is resident or in flight. Nothing is fetched beyond the budget, and
 * a failed fetch drops the run instead of failing the pager.
 */
#include "hot.h"

#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cache.h"

#define PAGER_HOT_RING 4096u        /* faults remembered for a migration's destination */

/* The ring and the queue (p->hot). */
struct pager_hot {
	uint64_t *ring;                /* [PAGER_HOT_RING] (region << 40 | page) + 1; 0: empty */
	_Atomic uint64_t head;
	pthread_mutex_t pf_lock;       /* the queue (a leaf lock) */
	struct pager_pf *pf;           /* runs to fetch, oldest first: [pf_head, pf_n) */
	unsigned pf_head, pf_n, pf_cap;
	int pf_efd;                    /* in the fault threads' epoll set: the queue has work */
};

int pager_hot_new(struct pager *p)
{
	struct pager_hot *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->pf_efd = -1;
	pthread_mutex_init(&h->pf_lock, NULL);
	p->hot = h;    /* pager_hot_free() cleans up after a failure */
	h->ring = calloc(PAGER_HOT_RING, sizeof(*h->ring));
	if (!h->ring)
		return -ENOMEM;
	h->pf_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return h->pf_efd < 0 ? -errno : 0;
}

void pager_hot_free(struct pager *p)
{
	struct pager_hot *h = p->hot;

	if (!h)
		return;
	if (h->pf_efd >= 0)
		close(h->pf_efd);
	free(h->pf);
	free(h->ring);
	pthread_mutex_destroy(&h->pf_lock);
	free(h);
	p->hot = NULL;
}

void pager_hot_note(struct pager *p, const struct pager_region *r, uint64_t pg)
{
	struct pager_hot *h = p->hot;
	uint64_t i = atomic_fetch_add_explicit(&h->head, 1, memory_order_relaxed);

	__atomic_store_n(&h->ring[i % PAGER_HOT_RING], ((uint64_t)r->idx << 40 | pg) + 1,
			 __ATOMIC_RELAXED);
}

int pager_pf_fd(struct pager *p)
{
	return p->hot->pf_efd;
}

#define PF_MAX_RUNS 65536u

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int pager_hot_export(struct pager *p, uint64_t max_pages, struct pager_hot_run **ret,
		     size_t *ret_n)
{
	_cleanup_free_ uint64_t *v = NULL;
	struct pager_hot_run *runs = NULL;
	const uint64_t *ring;
	size_t n = 0, nruns = 0;
	uint64_t total = 0;

	*ret = NULL;
	*ret_n = 0;
	if (!p || !p->hot)
		return -EINVAL;
	ring = p->hot->ring;
	v = malloc(PAGER_HOT_RING * sizeof(*v));
	runs = calloc(PAGER_HOT_RING, sizeof(*runs));
	if (!v || !runs) {
		free(runs);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < PAGER_HOT_RING; i++) {
		uint64_t e = __atomic_load_n(&ring[i], __ATOMIC_RELAXED);

		if (e)
			v[n++] = e - 1;
	}
	/*
	 * A fault fetched the aligned cluster around its page: that is what
	 * the guest needed there. Each noted page stands for its cluster.
	 */
	for (size_t i = 0; i < n; i++)
		v[i] -= (v[i] & ((1ull << 40) - 1)) % p->cluster;
	qsort(v, n, sizeof(*v), cmp_u64);
	pthread_mutex_lock(&p->admin_lock);   /* regions stay as they are */
	for (size_t i = 0; i < n && total < max_pages; i++) {
		unsigned idx = (unsigned)(v[i] >> 40);
		struct pager_region *r;

		if ((i && v[i] == v[i - 1]) || idx >= PAGER_MAX_REGIONS)
			continue;
		r = atomic_load(&p->regions[idx]);
		if (!r)
			continue;
		for (uint64_t pg = v[i] & ((1ull << 40) - 1), k = 0;
		     k < p->cluster && pg < r->npages && total < max_pages; pg++, k++) {
			struct pager_hot_run *last = nruns ? &runs[nruns - 1] : NULL;
			uint64_t sec = pg / p->sec_pages;

			/* BUSY: installed a moment ago (or leaving: prefetching it costs little). */
			if (!pager_sec_remote(p, r, pg) || !(st_get(r, pg) & (ST_PRESENT | ST_BUSY)))
				continue;
			if (last && pager_same_section(&last->sec, &r->sections[sec]) &&
			    last->page + last->count == pg % p->sec_pages) {
				last->count++;
			} else if (nruns < PAGER_HOT_RING) {
				runs[nruns++] = (struct pager_hot_run){
					r->sections[sec], (uint32_t)(pg % p->sec_pages), 1
				};
			} else {
				break;
			}
			total++;
		}
	}
	pthread_mutex_unlock(&p->admin_lock);
	*ret = runs;
	*ret_n = nruns;
	return 0;
}

int pager_prefetch(struct pager *p, int region, unsigned index, uint32_t page, uint32_t count)
{
	struct pager_region *r;
	struct pager_hot *h;
	uint64_t one = 1;
	int rc = 0;

	if (!p || region < 0 || region >= PAGER_MAX_REGIONS || !count)
		return -EINVAL;
	h = p->hot;
	pthread_mutex_lock(&p->admin_lock);
	r = atomic_load(&p->regions[region]);
	if (!r) {
		rc = -ENOENT;
	} else if (index >= r->nsections || (uint64_t)page + count > p->sec_pages) {
		rc = -ERANGE;
	} else {
		pthread_mutex_lock(&h->pf_lock);
		if (h->pf_n == h->pf_cap) {
			unsigned cap = h->pf_cap ? h->pf_cap * 2 : 256;
			struct pager_pf *nv = cap <= PF_MAX_RUNS ? realloc(h->pf, cap * sizeof(*nv))
								  : NULL;

			if (nv) {
				h->pf = nv;
				h->pf_cap = cap;
			}
		}
		if (h->pf_n < h->pf_cap)
			h->pf[h->pf_n++] = (struct pager_pf){
				(unsigned)region, r->gen, (uint64_t)index * p->sec_pages + page, count
			};
		else
			rc = -ENOSPC;
		pthread_mutex_unlock(&h->pf_lock);
	}
	pthread_mutex_unlock(&p->admin_lock);
	if (rc == 0)
		(void)!write(h->pf_efd, &one, sizeof(one));
	return rc;
}

bool pager_pf_take(struct pager *p, uint64_t max, struct pager_pf *ret)
{
	struct pager_hot *h = p->hot;
	bool got = false;

	pthread_mutex_lock(&h->pf_lock);
	if (h->pf_head < h->pf_n) {
		struct pager_pf *f = &h->pf[h->pf_head];

		*ret = *f;
		ret->n = MIN(f->n, max);
		f->pg += ret->n;
		f->n -= ret->n;
		if (!f->n && ++h->pf_head == h->pf_n)
			h->pf_head = h->pf_n = 0;
		got = true;
	}
	pthread_mutex_unlock(&h->pf_lock);
	return got;
}

bool pager_pf_pending(struct pager *p)
{
	struct pager_hot *h = p->hot;
	bool any;

	pthread_mutex_lock(&h->pf_lock);
	any = h->pf_head < h->pf_n;
	pthread_mutex_unlock(&h->pf_lock);
	return any;
}
