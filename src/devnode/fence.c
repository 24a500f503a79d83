// SPDX-License-Identifier: MIT
/*
 * Ownership epochs and takeovers of volumes (fence.h). Where a volume
 * keeps its epoch is its kind's business (struct dn_epoch_ops, volume.h).
 */
#include "fence.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "volume.h"

struct dn_fvol {
	struct dn_fvol *next;
	char name[DN_VOLUME_NAME_MAX + 1];
	uint64_t key;                /* a volume made again under its name is another */
	uint32_t epoch;
	struct dn_fence *handles;
};

struct dn_fences {
	pthread_mutex_t mu;
	struct dn_fvol *vols;
};

int dn_fences_new(struct dn_fences **ret)
{
	struct dn_fences *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return -ENOMEM;
	pthread_mutex_init(&fs->mu, NULL);
	*ret = fs;
	return 0;
}

void dn_fences_free(struct dn_fences *fs)
{
	if (!fs)
		return;
	while (fs->vols) {
		struct dn_fvol *v = fs->vols;

		fs->vols = v->next;
		free(v);
	}
	pthread_mutex_destroy(&fs->mu);
	free(fs);
}

/* fs->mu held: the volume's entry, made (with its epoch from its store) if new. */
static int vol_get(struct dn_fences *fs, const char *name, uint64_t key,
		   const struct dn_epoch_store *es, struct dn_fvol **ret)
{
	struct dn_fvol *v;
	int r;

	for (v = fs->vols; v; v = v->next)
		if (!strcmp(v->name, name) && v->key == key) {
			*ret = v;
			return 0;
		}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	r = es->ops->read(es, &v->epoch);
	if (r < 0) {
		free(v);
		return r;
	}
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->key = key;
	v->next = fs->vols;
	fs->vols = v;
	*ret = v;
	return 0;
}

/* fs->mu held: the writes still on a ring of the fenced handles of v. */
static unsigned fenced_writes(const struct dn_fvol *v)
{
	unsigned n = 0;

	for (const struct dn_fence *h = v->handles; h; h = h->next)
		if (atomic_load(&h->fenced))
			n += atomic_load(&h->writes);
	return n;
}

int dn_fence_join(struct dn_fences *fs, const char *name, uint64_t key,
		  const struct dn_epoch_store *es, uint64_t holder, uint32_t epoch, bool writable,
		  bool takeover, struct dn_fence *f)
{
	uint64_t end = now_ns() + DN_FENCE_WAIT_MS * 1000000ull;
	struct dn_fvol *v;
	bool fenced_some = false;
	int r;

	pthread_mutex_lock(&fs->mu);
	r = vol_get(fs, name, key, es, &v);
	if (r == 0 && writable && epoch < v->epoch)
		r = -EKEYREVOKED;
	/*
	 * Only a writer takes ownership: a read-only open of a newer epoch
	 * (a migration's destination checking its grant before the guest
	 * runs there) leaves the epoch and the writers alone.
	 */
	if (r == 0 && writable && epoch > v->epoch)
		r = es->ops->write(es, epoch);   /* durable before anyone is told */
	if (r < 0) {
		pthread_mutex_unlock(&fs->mu);
		return r;
	}
	if (writable && epoch > v->epoch)
		v->epoch = epoch;
	for (struct dn_fence *h = v->handles; h; h = h->next) {
		if (atomic_load(&h->fenced))
			continue;
		if (h->epoch < v->epoch || (takeover && h->holder == holder)) {
			atomic_store(&h->fenced, true);
			fenced_some = true;
		}
	}
	/* Nothing fenced lands after this open's answer. */
	while (fenced_some && fenced_writes(v)) {
		pthread_mutex_unlock(&fs->mu);
		if (now_ns() >= end)
			return -ETIMEDOUT;
		usleep(1000);
		pthread_mutex_lock(&fs->mu);
	}
	*f = (struct dn_fence){ .next = v->handles, .vol = v, .holder = holder, .epoch = epoch,
				.writable = writable };
	v->handles = f;
	pthread_mutex_unlock(&fs->mu);
	return 0;
}

void dn_fence_leave(struct dn_fences *fs, struct dn_fence *f)
{
	pthread_mutex_lock(&fs->mu);
	for (struct dn_fence **p = f->vol ? &f->vol->handles : NULL; p && *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	pthread_mutex_unlock(&fs->mu);
	f->vol = NULL;
}
