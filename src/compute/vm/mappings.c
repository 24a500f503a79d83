// SPDX-License-Identifier: MIT
/*
 * Pager registration: every mapping of a RAM file the shim announces
 * (shim_server.c) becomes a region of the VM's pager, with the sections
 * that back that part of the file; an UNMAP (QEMU unplugged a DIMM, or is
 * exiting) removes it again. READOPT is a MAP to a restarted agent
 * (adopt.c): the region's resident pages become dirty and its faults are
 * woken (pager_adopt_region). A READOPT of a mapping served already (the
 * shim reconnected to the same agent) changes nothing.
 */
#include "mappings.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "pager_adopt.h"
#include "pager_use.h"
#include "ramfile.h"
#include "shim_server.h"
#include "launch.h"
#include "state.h"

/* region_for_path's *ret_hot for shared region i (hot >= 0: a DIMM, -1 boot RAM, -2 virtio-mem). */
#define SHARED_HOT(i) (-3 - (int)(i))
#define HOT_SHARED(h) ((unsigned)(-3 - (h)))

/* Which RAM file is `path`, and which sections back it? (lock held) */
static int region_for_path(struct vm *vm, const char *path, const struct vm_section **ret_secs,
			   unsigned *ret_n, int *ret_hot)
{
	if (strcmp(path, vm->base_path) == 0) {
		*ret_secs = vm->spec.base;
		*ret_n = vm->spec.nbase;
		*ret_hot = -1;
		return 0;
	}
	for (unsigned i = 0; i < vm->nhot; i++)
		if (vm->hot[i].in_use && strcmp(path, vm->hot[i].path) == 0) {
			*ret_secs = &vm->hot[i].sec;
			*ret_n = 1;
			*ret_hot = (int)i;
			return 0;
		}
	if (vm->vmem_path[0] && strcmp(path, vm->vmem_path) == 0) {
		*ret_secs = vm->vmem_secs;
		*ret_n = vm->spec.max_hot;
		*ret_hot = -2;
		return 0;
	}
	for (unsigned i = 0; i < VM_MAX_SHARED; i++)
		if (vm->shared[i].in_use && strcmp(path, vm->shared[i].path) == 0) {
			*ret_secs = vm->shared[i].secs;
			*ret_n = vm->shared[i].nsec;
			*ret_hot = SHARED_HOT(i);
			return 0;
		}
	return -ENOENT;
}

/* shim_server_ops.map: MAP and READOPT. */
static int shim_map(void *opaque, const struct shim_msg *msg, int uffd, bool adopt)
{
	struct vm *vm = opaque;
	const struct vm_section *secs;
	/* On the heap: a replicated section's descriptor is about 1 KiB. */
	_cleanup_free_ struct pager_section *psecs = NULL;
	_cleanup_close_ int file_fd = -1, twin_fd = -1, answers_fd = -1;
	_cleanup_free_ struct pager_kept *kept = NULL;
	struct pager *p;
	unsigned n, first;
	uint64_t pages = 0;
	size_t nkept = 0;
	bool strict_adopt = false;
	int hot, r;

	pthread_mutex_lock(&vm->lock);
	r = region_for_path(vm, msg->path, &secs, &n, &hot);
	for (unsigned i = 0; adopt && r >= 0 && i < vm->nregions; i++)
		if (vm->regions[i].addr == msg->addr)
			r = 1;
	pthread_mutex_unlock(&vm->lock);
	if (r == 1)
		return 0;
	if (r < 0) {
		log_warn("vm %s: shim mapped an unknown file %s", vm->spec.name, msg->path);
		return r;
	}
	if (msg->offset % vm->env.section_size || msg->len % vm->env.section_size)
		return -EINVAL;
	first = (unsigned)(msg->offset / vm->env.section_size);
	if (first + msg->len / vm->env.section_size > n)
		return -ERANGE;
	n = (unsigned)(msg->len / vm->env.section_size);
	psecs = calloc(n ? n : 1, sizeof(*psecs));
	if (!psecs)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++)
		psecs[i] = secs[first + i].sec;
	file_fd = open(msg->path, O_RDWR | O_CLOEXEC);
	if (file_fd < 0)
		return -errno;

	struct pager_region_config rc = {
		.uffd = uffd,
		.uffd_features = VM_UFFD_FEATURES,
		.file_fd = file_fd,
		.file_offset = msg->offset,
		.base = msg->addr,
		.length = msg->len,
		.sections = psecs,
		.pagemap_fd = -1,
		/* A shared region travels in clear: every VM that maps it has its own key. */
		.shared = hot <= SHARED_HOT(0),
		/* The page cipher's place: the section's index in the slot (pager/crypt.h). */
		.slot_page = hot <= SHARED_HOT(0) ? 0 : (uint64_t)(hot == -1 ? first
				       : hot == -2 ? vm->spec.nbase + first
						   : vm->spec.nbase + (unsigned)hot) *
			     (vm->env.section_size / PAGER_PAGE_SIZE),
	};
	if (rc.shared) {
		pthread_mutex_lock(&vm->lock);
		rc.strict = strcmp(vm->shared[HOT_SHARED(hot)].mode, "strict") == 0;
		rc.release = strcmp(vm->shared[HOT_SHARED(hot)].mode, "release") == 0;
		/* exclusive: LOCK and UNLOCK pages at its end; release: RELEASE and ACQUIRE */
		rc.control = !rc.strict;
		rc.readonly = !rc.strict && !rc.release && !vm->shared[HOT_SHARED(hot)].writable;
		pthread_mutex_unlock(&vm->lock);
		/*
		 * Handed back to a restarted agent, a read-only region's pages
		 * are clean copies that may be stale by now: drop them, the
		 * guest fetches them again (a writable one's are adopted). A
		 * strict region's pages are handed back to its directory, which
		 * kept what this node owned while its agent was away, then
		 * dropped (pager_strict_adopt, below). A release region's pages
		 * with a twin (written since their last release) are adopted,
		 * the others dropped (pager_adopt_region).
		 */
		if (adopt && rc.readonly) {
			if (fallocate(file_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)msg->offset, (off_t)msg->len) < 0)
				return -errno;
			adopt = false;
		}
		strict_adopt = adopt && rc.strict;
		adopt = adopt && !rc.strict;
	}
	if (rc.release) {
		twin_fd = vm_twins_open(msg->path, adopt);
		if (twin_fd < 0)
			return twin_fd;
		rc.twin_fd = twin_fd;
	}
	if (rc.strict) {
		/* Recall answers the node may not have read yet (pager/answers.h). */
		answers_fd = vm_answers_open(msg->path, strict_adopt);
		if (answers_fd < 0)
			return answers_fd;
		rc.answers_fd = answers_fd;
	}
	p = vm_pager_get(vm);
	/* New memory (not handed back, not a migration's): nothing of it is stored yet. */
	rc.fresh = !adopt && p && !pager_meta_pending(p);
	r = p ? pager_add_region(p, &rc) : -ESRCH;
	if (r < 0) {
		vm_pager_put(vm, p);
		return r;
	}
	if (adopt) {
		int e = pager_adopt_region(p, r, &pages);

		if (e < 0) {
			(void)pager_remove_region(p, r, false);
			vm_pager_put(vm, p);
			return e;
		}
		log_info("vm %s: took %s back from the shim (%llu resident pages to write back)",
			 vm->spec.name, msg->path, (unsigned long long)pages);
	}
	if (strict_adopt) {
		size_t onfile = 0;
		int e = pager_strict_adopt(p, r, &kept, &nkept, &onfile, &pages);

		if (e < 0) {
			(void)pager_remove_region(p, r, false);
			vm_pager_put(vm, p);
			return e;
		}
		log_info("vm %s: took %s back from the shim: %zu pages of its file to hand back "
			 "to the directory, and %zu recall answers", vm->spec.name, msg->path, onfile,
			 nkept);
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->nregions < ARRAY_SIZE(vm->regions)) {
		vm->regions[vm->nregions].index = r;
		vm->regions[vm->nregions].addr = msg->addr;
		vm->regions[vm->nregions].file_fd = TAKE_FD(file_fd);
		vm->regions[vm->nregions].uffd = -1;
		vm->nregions++;
	}
	if (hot >= 0) {
		vm->hot[hot].addr = msg->addr;
	} else if (hot <= SHARED_HOT(0)) {
		struct vm_shared *s = &vm->shared[HOT_SHARED(hot)];

		s->addr = msg->addr;
		s->region = r;
		if (strict_adopt) {
			free(s->kept);
			s->kept = TAKE_PTR(kept);
			s->nkept = nkept;
		}
	} else if (hot == -2) {
		vm->vmem_region = r;
	} else {
		vm->base_region = r;
	}
	pthread_mutex_unlock(&vm->lock);
	vm_pager_put(vm, p);
	log_debug("vm %s: serving %s (%llu MiB at %#llx)", vm->spec.name, msg->path,
		  (unsigned long long)(msg->len >> 20), (unsigned long long)msg->addr);
	return 0;
}

/* shim_server_ops.unmap */
static int shim_unmap(void *opaque, const struct shim_msg *msg)
{
	struct vm *vm = opaque;

	/* A migrated-away QEMU's exit: drop its pages at low priority. */
	if (vm_get_state(vm) == VM_MIGRATED)
		vm_lower_priority(0);
	return vm_region_unmapped(vm, msg->addr);
}

/* shim_server_ops.readopt_done: adoption waits for it (adopt.c). */
static void shim_readopt_done(void *opaque, unsigned n)
{
	struct vm *vm = opaque;

	pthread_mutex_lock(&vm->lock);
	vm->readopt_n = (int)MIN(n, (unsigned)INT32_MAX);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

static void shim_keep_uffd(void *opaque, uint64_t addr, int uffd)
{
	vm_region_keep_uffd(opaque, addr, uffd);
}

static const struct shim_server_ops vm_shim_ops = {
	.map = shim_map,
	.unmap = shim_unmap,
	.readopt_done = shim_readopt_done,
	.keep_uffd = shim_keep_uffd,
};

int vm_shim_listen(struct vm *vm)
{
	char path[sizeof(vm->shim_path)];
	int r;

	if (snprintf(path, sizeof(path), "%s/shim.sock", vm->dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	r = shim_server_start(path, &vm_shim_ops, vm, &vm->shim);
	if (r < 0)
		return r;
	strcpy(vm->shim_path, path);
	return 0;
}

void vm_region_keep_uffd(struct vm *vm, uint64_t addr, int uffd)
{
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->nregions; i++)
		if (vm->regions[i].addr == addr && vm->regions[i].uffd < 0) {
			vm->regions[i].uffd = uffd;
			uffd = -1;
			break;
		}
	pthread_mutex_unlock(&vm->lock);
	if (uffd >= 0)
		close(uffd);
}

int vm_region_unmapped(struct vm *vm, uint64_t addr)
{
	struct vm_region gone = { .index = -1 };
	struct pager *p = vm_pager_get(vm);
	int r = 0;

	if (!p)
		return 0;
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->nregions; i++)
		if (vm->regions[i].addr == addr) {
			gone = vm->regions[i];
			vm->regions[i] = vm->regions[--vm->nregions];
			break;
		}
	for (unsigned i = 0; gone.index >= 0 && i < VM_MAX_SHARED; i++)
		if (vm->shared[i].in_use && vm->shared[i].region == gone.index) {
			vm->shared[i].region = -1;
			vm->shared[i].addr = 0;
		}
	pthread_mutex_unlock(&vm->lock);
	if (gone.index >= 0)
		r = pager_remove_region(p, gone.index, false);
	vm_pager_put(vm, p);
	if (gone.index < 0)
		return 0;
	if (r < 0)
		log_warn("vm %s: pager region %d: %s", vm->spec.name, gone.index, strerror(-r));
	if (gone.file_fd >= 0)
		close(gone.file_fd);
	if (gone.uffd >= 0)
		close(gone.uffd);
	return r;
}

int vm_vmem_set_section(struct vm *vm, unsigned idx, const struct pager_section *s,
			bool discard)
{
	struct pager *p = vm_pager_get(vm);
	int region, r;

	pthread_mutex_lock(&vm->lock);
	region = vm->vmem_region;
	pthread_mutex_unlock(&vm->lock);
	r = region >= 0 && p ? pager_region_set_section(p, region, idx, s, discard) : -ENODEV;
	vm_pager_put(vm, p);
	return r;
}
