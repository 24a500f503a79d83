// SPDX-License-Identifier: MIT
/*
 * The recall channel of a strict shared region (docs/sharing.md, mode
 * strict): one thread per attached strict region keeps a connection to the
 * region's home memory node, attached (DIR_ATTACH) for each of its
 * sections, and answers the directory's recalls: the pager write-protects
 * or drops the page (pager_strict_recall) and only then is the recall
 * acknowledged, with the page's data when this node had changed it.
 *
 * If the channel breaks, the directory may have dropped this node (its
 * lease ran out), kept its pages for it (an away holder, docs/memnode.md)
 * or the memory node may have restarted: every cached page of the region
 * is dropped without write-back before the channel is attached again, so
 * that no copy the directory forgot is ever used. The pages this node
 * owned and had changed are kept aside first (pager_strict_keep): once
 * attached again it hands them back (DIR_RECLAIM), which a restarted
 * node's directory takes in its grace period and an away holder's
 * directory takes for the pages it still owns, and says it is done; a
 * node that dropped this one refuses them, and those writes are lost, as
 * documented. A restarted agent's region starts that way: the dead
 * agent's page state is gone, so every page of the region's file is
 * handed back (pager_strict_adopt, from vm/mappings.c).
 *
 * Answers go quiet when the node offers it (PROTO_FEAT_DIR_QUIET): the node
 * replies only to a refusal, so the thread does not wake once more per
 * recall for an empty reply. Until a later reply on the channel shows that
 * the node took them, the pages of those answers stay here (rr->sent, up
 * to RECALL_UNCONFIRMED); a ping confirms them when the list is full or the
 * channel idle. If the channel breaks first, they are handed back with
 * the others, marked as given up in a recall answer (REQ_RECALLED) and
 * with the page version the recall carried: the node stores such a page
 * only if nobody has owned it since (docs/protocol.md, "Page versions").
 *
 * The thread ends when asked (detach, and
 * vm_free or vm_detach through vm_strict_ext) or when the VM's pager is
 * gone; an adopted VM's strict regions get their thread when its guest
 * channel is back (vm_strict_ext.guest_attached).
 */
#include "vm_strict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"
#include "mnclient.h"
#include "net.h"
#include "pager_use.h"
#include "vm_internal.h"
#include "thread.h"

struct vm_recaller {
	struct vm *vm;
	int idx;                      /* vm->shared[idx] */
	_Atomic bool stop;            /* vm_strict_stop asks the thread to end */
	_Atomic bool exited;          /* the thread saw it and ended */
	_Atomic bool attached;        /* its channel is open and attached (vm_strict_wait) */
	pthread_t thread;
	struct pager_kept *kept;      /* recall answers' pages to hand back (then the file's) */
	size_t nkept;
	struct pager_kept *sent;      /* pages of quiet answers not confirmed yet (the top) */
	size_t nsent;
};

#define RECALL_RETRY_MS 200   /* a channel that cannot be opened: the next try */
/*
 * The longest wait for a recall before the thread looks at stop and at the
 * pager: vm_strict_stop (a compute migration's switchover, a detach) waits
 * that long at most. A wake-up every 10 ms per strict region costs nothing.
 */
#define RECALL_POLL_MS 10
/* Dirty pages of quiet answers kept until a ping shows the node took them. */
#define RECALL_UNCONFIRMED 16

/* The region's section index of a recall, or -1 (lock held). */
static int section_of(const struct vm_shared *s, const struct mnc_recall *rc)
{
	for (unsigned k = 0; k < s->nsec; k++)
		if (s->secs[k].sec.grant.section == rc->section &&
		    s->secs[k].sec.grant.generation == rc->generation)
			return (int)k;
	return -1;
}

/* Connect and attach every section: 0 with *ret, or -errno. */
static int channel_open(struct vm_recaller *rr, struct mnc **ret)
{
	struct vm *vm = rr->vm;
	struct vm_shared s;
	/* PROTO_FEAT_DIR_CONN: served on the directory's own worker, with the requests. */
	struct mnc_opts o = { .key = vm->env.key, .node_id = vm->env.node_id,
			      .features = PROTO_FEAT_ALL | PROTO_FEAT_DIR_CONN };
	_cleanup_mnc_ struct mnc *c = NULL;
	int r;

	pthread_mutex_lock(&vm->lock);
	s = vm->shared[rr->idx];
	pthread_mutex_unlock(&vm->lock);
	if (!s.in_use || !s.nsec)
		return -ENOENT;
	o.addr = s.secs[0].sec.addr;
	r = mnc_connect(&o, &c);
	for (unsigned k = 0; r == 0 && k < s.nsec; k++)
		r = mnc_dir_attach(c, &s.secs[k].sec.grant, s.secs[k].sec.dir_tag);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(c);
	return 0;
}

/* Keep a page given up in a recall answer: to hand back after a broken channel. */
static void keep_page(struct vm_recaller *rr, uint32_t section, uint32_t page, uint32_t version,
		      const void *data)
{
	struct pager_kept *n = realloc(rr->kept, (rr->nkept + 1) * sizeof(*n));

	if (!n) {
		log_warn("vm %s: out of memory: page %u of section %u is lost", rr->vm->spec.name,
			 page, section);
		return;
	}
	n[rr->nkept] = (struct pager_kept){ .section = section, .page = page, .recalled = true,
					    .version = version };
	memcpy(n[rr->nkept].data, data, PAGER_PAGE_SIZE);
	rr->kept = n;
	rr->nkept++;
}

/*
 * The channel broke: the quiet answers not confirmed are to hand back too,
 * but not a page kept already: that is a later answer of it (one that
 * failed on this channel), and the node stores what comes last.
 */
static void sent_to_kept(struct vm_recaller *rr)
{
	if (rr->nsent)
		log_info("vm %s: region %s: %zu quiet recall answers not confirmed: their pages "
			 "are kept to hand back", rr->vm->spec.name, rr->vm->shared[rr->idx].id,
			 rr->nsent);
	for (size_t i = 0; i < rr->nsent; i++) {
		bool newer = false;

		for (size_t j = 0; j < rr->nkept && !newer; j++)
			newer = rr->kept[j].section == rr->sent[i].section &&
				rr->kept[j].page == rr->sent[i].page;
		if (!newer)
			keep_page(rr, rr->sent[i].section, rr->sent[i].page, rr->sent[i].version,
				  rr->sent[i].data);
	}
	rr->nsent = 0;
}

/* A ping answered: the node took every quiet answer sent before it. */
static int confirm(struct vm_recaller *rr, struct mnc *c)
{
	int r;

	if (!rr->nsent)
		return 0;
	r = mnc_ping(c);
	if (r == 0)
		rr->nsent = 0;
	return r;
}

/* Send the answer; a quiet one's page stays in rr->sent until confirmed. */
static int send_answer(struct vm_recaller *rr, struct mnc *c, const struct mnc_recall *rc,
		       uint32_t section, const uint8_t *dirty)
{
	struct pager_kept *slot = NULL;
	int r;

	if (!(mnc_info(c)->features & PROTO_FEAT_DIR_QUIET))
		return mnc_dir_recall_ack(c, rc->seq, dirty);
	if (dirty) {
		if (!rr->sent && !(rr->sent = calloc(RECALL_UNCONFIRMED, sizeof(*rr->sent))))
			return mnc_dir_recall_ack(c, rc->seq, dirty);
		for (size_t i = 0; i < rr->nsent && !slot; i++)
			if (rr->sent[i].section == section && rr->sent[i].page == rc->page)
				slot = &rr->sent[i];   /* an older answer of the page: this one is newer */
		if (!slot && rr->nsent == RECALL_UNCONFIRMED && (r = confirm(rr, c)) < 0)
			return r;
	}
	r = mnc_dir_recall_ack_quiet(c, rc->seq, dirty);
	if (r == 0 && dirty) {
		if (!slot)
			slot = &rr->sent[rr->nsent++];
		*slot = (struct pager_kept){ .section = section, .page = rc->page, .recalled = true,
					     .version = rc->version };
		memcpy(slot->data, dirty, PAGER_PAGE_SIZE);
	}
	return r;
}

/* Answer one recall. */
static int answer(struct vm_recaller *rr, struct mnc *c, const struct mnc_recall *rc,
		  uint8_t *buf)
{
	struct vm *vm = rr->vm;
	struct pager *p = vm_pager_get(vm);
	bool dirty = false;
	int k, region, r;

	if (!p)
		return -ESRCH;
	pthread_mutex_lock(&vm->lock);
	k = section_of(&vm->shared[rr->idx], rc);
	region = vm->shared[rr->idx].region;
	pthread_mutex_unlock(&vm->lock);
	/* Not ours (any more), or not mapped: we hold no copy of it. */
	r = k < 0 || region < 0 ? 0 : pager_strict_recall(p, region, (uint32_t)k, rc->page,
							  rc->mode == MNC_RECALL_INVALIDATE,
							  rc->grants, rc->version, buf, &dirty);
	vm_pager_put(vm, p);
	if (r < 0) {
		log_warn("vm %s: recall of page %u of section %u: %s", vm->spec.name, rc->page,
			 rc->section, strerror(-r));
		return r;   /* unanswered: the directory's lease decides */
	}
	r = send_answer(rr, c, rc, (uint32_t)k, dirty ? buf : NULL);
	/*
	 * The node may have died before it stored the page: our copy is gone,
	 * so keep the page to hand back (the node prefers what any later
	 * owner of the page wrote).
	 */
	if (r < 0 && dirty)
		keep_page(rr, (uint32_t)k, rc->page, rc->version, buf);
	return r;
}

/*
 * After a broken channel: forget every cached page (the directory may have
 * forgotten us), keeping the ones we changed to hand back (on the region's
 * answers' file: pager_strict_keep).
 */
static void keep_copies(struct vm_recaller *rr)
{
	struct vm *vm = rr->vm;
	struct pager *p = vm_pager_get(vm);
	uint64_t dropped = 0;
	size_t n = 0;
	int region;

	sent_to_kept(rr);
	if (!p)
		return;
	pthread_mutex_lock(&vm->lock);
	region = vm->shared[rr->idx].region;
	pthread_mutex_unlock(&vm->lock);
	if (region >= 0 && pager_strict_keep(p, region, &n, &dropped) == 0 && dropped)
		log_warn("vm %s: region %s: recall channel lost: %llu cached pages dropped, "
			 "%zu changed ones kept to hand back", vm->spec.name, vm->shared[rr->idx].id,
			 (unsigned long long)dropped, n);
	vm_pager_put(vm, p);
}

/* Hand back one kept page: 1 taken, 0 not ours (skipped), or a channel error. */
static int reclaim(struct mnc *c, const struct vm_shared *s, const struct pager_kept *k)
{
	int r;

	if (k->section >= s->nsec)
		return 0;
	r = mnc_dir_reclaim(c, &s->secs[k->section].sec.grant, s->secs[k->section].sec.dir_tag,
			    k->page, k->data, k->recalled, k->version);
	return r < 0 ? r : 1;
}

/*
 * On the channel, attached again: hand back the pages kept, then say we
 * are done with each section (a directory waiting for us after a restart
 * stops waiting). First the pages of recall answers (rr->kept), then the
 * pages kept on the region's file, read one at a time: a page on file was
 * owned after any answer of it, and the node stores what comes last.
 * 0, or a channel error (try again after reconnecting: the pages stay).
 */
static int hand_back(struct vm_recaller *rr, struct mnc *c)
{
	struct vm *vm = rr->vm;
	struct pager *p = vm_pager_get(vm);
	_cleanup_free_ struct pager_kept *k = malloc(sizeof(*k));
	struct vm_shared s;
	size_t taken = 0, tried = 0;
	uint64_t pos = 0;
	int r = k ? 0 : -ENOMEM;

	pthread_mutex_lock(&vm->lock);
	s = vm->shared[rr->idx];
	pthread_mutex_unlock(&vm->lock);
	for (size_t i = 0; i < rr->nkept && r >= 0; i++) {
		r = reclaim(c, &s, &rr->kept[i]);
		tried++;
		taken += r > 0;
	}
	while (r >= 0 && p && s.region >= 0 &&
	       (r = pager_strict_kept_next(p, s.region, &pos, k)) > 0) {
		r = reclaim(c, &s, k);
		tried++;
		taken += r > 0;
	}
	for (unsigned i = 0; r >= 0 && i < s.nsec; i++)
		r = mnc_dir_reclaim(c, &s.secs[i].sec.grant, s.secs[i].sec.dir_tag, 0, NULL, false,
				    0);
	if (r < 0 && r != -EUNATCH && r != -EOPNOTSUPP) {
		vm_pager_put(vm, p);
		return r;
	}
	/* What was kept went back, or never will (pager/answers.h). */
	if (p && s.region >= 0)
		(void)pager_strict_answers_clear(p, s.region);
	vm_pager_put(vm, p);
	if (tried && taken == tried)
		log_info("vm %s: region %s: %zu changed pages handed back to the directory (it keeps "
			 "those this node still owned there)", vm->spec.name, s.id, taken);
	else if (tried)
		log_warn("vm %s: region %s: the memory node took back %zu of %zu changed pages (%s): "
			 "the writes to the others are lost", vm->spec.name, s.id, taken, tried,
			 strerror(-r));
	free(rr->kept);
	rr->kept = NULL;
	rr->nkept = 0;
	return 0;
}

/* How many pages the region's file keeps to hand back (the thread's end). */
static size_t kept_on_file(struct vm_recaller *rr)
{
	struct pager *p = vm_pager_get(rr->vm);
	_cleanup_free_ struct pager_kept *k = malloc(sizeof(*k));
	uint64_t pos = 0;
	size_t n = 0;
	int region;

	pthread_mutex_lock(&rr->vm->lock);
	region = rr->vm->shared[rr->idx].region;
	pthread_mutex_unlock(&rr->vm->lock);
	while (k && p && region >= 0 && pager_strict_kept_next(p, region, &pos, k) > 0)
		n++;
	vm_pager_put(rr->vm, p);
	return n;
}

static bool pager_gone(struct vm *vm)
{
	struct pager *p = vm_pager_get(vm);

	vm_pager_put(vm, p);
	return p == NULL;
}

/*
 * The thread's end: asked by vm_strict_stop (which then frees rr), or on
 * its own (the VM's pager is gone): unlinked from the record and freed here.
 */
static void recaller_exit(struct vm_recaller *rr)
{
	struct vm *vm = rr->vm;

	pthread_mutex_lock(&vm->lock);
	if (atomic_load(&rr->stop)) {
		atomic_store(&rr->exited, true);
		pthread_mutex_unlock(&vm->lock);
		return;   /* vm_strict_stop frees rr; nothing here touches vm any more */
	}
	if (vm->shared[rr->idx].rec == rr)
		vm->shared[rr->idx].rec = NULL;
	pthread_mutex_unlock(&vm->lock);
	free(rr);
}

/* Did a fault meet DIR_DETACHED? Then the channel is attached again. */
static bool detached(struct vm_recaller *rr)
{
	struct pager *p = vm_pager_get(rr->vm);
	bool d;
	int region;

	pthread_mutex_lock(&rr->vm->lock);
	region = rr->vm->shared[rr->idx].region;
	pthread_mutex_unlock(&rr->vm->lock);
	d = p && region >= 0 && pager_strict_detached(p, region);
	vm_pager_put(rr->vm, p);
	return d;
}

/* DIR_DETACH of every section, on the channel itself (best effort). */
static void leave(struct vm_recaller *rr, struct mnc *c)
{
	struct vm_shared s;

	pthread_mutex_lock(&rr->vm->lock);
	s = rr->vm->shared[rr->idx];
	pthread_mutex_unlock(&rr->vm->lock);
	for (unsigned k = 0; k < s.nsec; k++)
		(void)mnc_dir_detach(c, &s.secs[k].sec.grant, s.secs[k].sec.dir_tag);
}

static void *recaller_main(void *arg)
{
	struct vm_recaller *rr = arg;
	struct vm *vm = rr->vm;
	uint8_t *buf = malloc(PAGER_PAGE_SIZE);
	bool was_open = false;
	size_t lost;
	int warned = 0;

	thread_start("strict-recall", THREAD_QUICK_SLICE_NS);
	while (buf && !atomic_load(&rr->stop) && !pager_gone(vm)) {
		_cleanup_mnc_ struct mnc *c = NULL;
		int r;

		/* The directory may have forgotten us: no copy of ours survives a new attach. */
		if (was_open)
			keep_copies(rr);
		r = channel_open(rr, &c);
		if (r == 0)
			r = hand_back(rr, c);
		if (r < 0) {
			if (!warned++)
				log_warn("vm %s: region %s: cannot open its recall channel: %s",
					 vm->spec.name, vm->shared[rr->idx].id, strerror(-r));
			usleep(RECALL_RETRY_MS * 1000);
			continue;
		}
		was_open = true;
		warned = 0;
		atomic_store(&rr->attached, true);
		while (!atomic_load(&rr->stop)) {
			struct mnc_recall rc;

			r = mnc_dir_next_recall(c, RECALL_POLL_MS, &rc);
			if (r == -ETIMEDOUT) {
				if (pager_gone(vm) || confirm(rr, c) < 0 || detached(rr))
					break;
				continue;
			}
			if (r == 0)
				r = answer(rr, c, &rc, buf);
			if (r < 0)
				break;   /* reconnect (or the VM's pager is gone) */
		}
		/* Asked to stop: leave the directory before the channel closes. */
		if (atomic_load(&rr->stop) && confirm(rr, c) == 0)
			leave(rr, c);
	}
	free(buf);
	sent_to_kept(rr);
	lost = rr->nkept + kept_on_file(rr);
	if (lost)
		log_warn("vm %s: region %s: %zu changed pages never handed back: their writes are lost",
			 vm->spec.name, vm->shared[rr->idx].id, lost);
	free(rr->kept);
	rr->kept = NULL;
	rr->nkept = 0;
	free(rr->sent);
	OPENSSL_thread_stop();   /* its TLS state, before vm_strict_stop may see it exited */
	recaller_exit(rr);
	return NULL;
}

int vm_strict_start(struct vm *vm, int idx)
{
	struct vm_recaller *rr = calloc(1, sizeof(*rr));
	pthread_attr_t at;
	int r;

	if (!rr)
		return -ENOMEM;
	rr->vm = vm;      /* no reference: vm_free stops the thread first (strict_ext) */
	rr->idx = idx;
	pthread_mutex_lock(&vm->lock);
	if (vm->shared[idx].rec) {
		/*
		 * One runs already (an incoming VM's guest_attached may start it
		 * before vm_shared_mig_ready does): a second would be unknown to
		 * vm_strict_stop and outlive the VM.
		 */
		pthread_mutex_unlock(&vm->lock);
		free(rr);
		return 0;
	}
	vm->shared[idx].rec = rr;
	/* Handed back to a restarted agent: its file's pages go back first (mappings.c). */
	rr->kept = TAKE_PTR(vm->shared[idx].kept);
	rr->nkept = vm->shared[idx].nkept;
	vm->shared[idx].nkept = 0;
	pthread_mutex_unlock(&vm->lock);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&rr->thread, &at, recaller_main, rr);
	pthread_attr_destroy(&at);
	if (r < 0) {
		pthread_mutex_lock(&vm->lock);
		vm->shared[idx].rec = NULL;
		vm->shared[idx].kept = TAKE_PTR(rr->kept);
		vm->shared[idx].nkept = rr->nkept;
		pthread_mutex_unlock(&vm->lock);
		free(rr);
	}
	return r;
}

void vm_strict_stop(struct vm *vm, int idx)
{
	struct vm_recaller *rr;

	pthread_mutex_lock(&vm->lock);
	rr = vm->shared[idx].rec;
	vm->shared[idx].rec = NULL;
	if (rr)
		atomic_store(&rr->stop, true);
	pthread_mutex_unlock(&vm->lock);
	if (!rr)
		return;
	/* It looks at stop at least every RECALL_POLL_MS, and leaves the directory itself. */
	while (!atomic_load(&rr->exited))
		usleep(1000);
	free(rr);
}

int vm_strict_wait(struct vm *vm, int idx, int timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		bool ok, none;

		pthread_mutex_lock(&vm->lock);
		none = !vm->shared[idx].rec;
		ok = !none && atomic_load(&vm->shared[idx].rec->attached);
		pthread_mutex_unlock(&vm->lock);
		if (ok || none)
			return ok ? 0 : -ESRCH;
		if (now_ns() > end)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

/* Also vm_ext_ops.guest_attached: an adopted VM's strict regions get their channel again. */
void vm_strict_start_all(struct vm *vm)
{
	for (int i = 0; i < VM_MAX_SHARED; i++) {
		bool want;

		pthread_mutex_lock(&vm->lock);
		want = vm->shared[i].in_use && !vm->shared[i].rec && vm->shared[i].region >= 0 &&
		       !strcmp(vm->shared[i].mode, "strict");
		pthread_mutex_unlock(&vm->lock);
		if (want && vm_strict_start(vm, i) < 0)
			log_warn("vm %s: region %s: no recall channel: its faults will fail",
				 vm->spec.name, vm->shared[i].id);
	}
}

/* vm_ext_ops.free: before the VM goes (vm_free, vm_detach). */
static void strict_free(struct vm *vm)
{
	for (int i = 0; i < VM_MAX_SHARED; i++)
		vm_strict_stop(vm, i);
}

const struct vm_ext_ops vm_strict_ext = {
	.name = "strict",
	.guest_attached = vm_strict_start_all,
	.free = strict_free,
};
