// SPDX-License-Identifier: MIT
/*
 * The agent's mappings of guest RAM, served by the pager (vm_guestmem.h).
 *
 * For each region a back end maps: find the pager region of the same file
 * range, register the mapping with a uffd of its own (MISSING|WP, not user
 * mode only: the kernel touches it too, in sendmsg and recvmsg), and add it
 * to the pager as an alias. The alias holds a reference on the VM's pager
 * (pager_use.h) until the mapping goes, so the pager outlives it.
 */
#include "vm_guestmem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pager.h"
#include "pager_use.h"
#include "vm_internal.h"

struct gm_alias {
	struct pager *p;
	int uffd;
	int64_t id;
};

static int gm_mapped(void *opaque, struct vu_map *m, int fd)
{
	struct vm *vm = opaque;
	struct gm_alias *g;
	uint64_t feat, pg;
	int region, r;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->uffd = -1;
	g->p = vm_pager_get(vm);
	if (!g->p) {
		free(g);
		return -ESHUTDOWN;   /* QEMU has exited */
	}
	r = pager_region_of_file(g->p, fd, m->r.mmap_offset, m->r.size, &region, &pg);
	if (r < 0) {
		log_info("vm %s: guest memory at %#llx (%llu MiB) is not RAM the pager serves (%s): "
			 "disks never touch it", vm->spec.name, (unsigned long long)m->r.guest_addr,
			 (unsigned long long)(m->r.size >> 20), strerror(-r));
		vm_pager_put(vm, g->p);
		free(g);
		return 1;
	}
	r = pager_uffd_open(PAGER_DIRTY_SYNC_WP, &g->uffd, &feat);
	if (r == 0)
		r = pager_uffd_register(g->uffd, (uintptr_t)m->data, m->r.size);
	if (r == 0) {
		g->id = pager_alias_add(g->p, region, pg, m->r.size / PAGER_PAGE_SIZE,
					(uintptr_t)m->data, g->uffd);
		r = g->id < 0 ? (int)g->id : 0;
	}
	if (r == -EOPNOTSUPP) {
		/* A shared region's memory (ivshmem): no disk buffer belongs there. */
		log_info("vm %s: guest memory at %#llx is a shared region's: disks never touch it",
			 vm->spec.name, (unsigned long long)m->r.guest_addr);
		close(g->uffd);
		vm_pager_put(vm, g->p);
		free(g);
		return 1;
	}
	if (r < 0) {
		log_warn("vm %s: guest memory at %#llx: the pager cannot serve the disk's mapping: %s",
			 vm->spec.name, (unsigned long long)m->r.guest_addr, strerror(-r));
		if (g->uffd >= 0)
			close(g->uffd);
		vm_pager_put(vm, g->p);
		free(g);
		return r;
	}
	log_debug("vm %s: guest memory at %#llx: pager region %d pages %llu+%llu", vm->spec.name,
		  (unsigned long long)m->r.guest_addr, region, (unsigned long long)pg,
		  (unsigned long long)(m->r.size / PAGER_PAGE_SIZE));
	m->priv = g;
	return 0;
}

static void gm_unmapping(void *opaque, struct vu_map *m)
{
	struct vm *vm = opaque;
	struct gm_alias *g = m->priv;

	if (!g)
		return;
	(void)pager_alias_remove(g->p, g->id);   /* -ENOENT: its region went first */
	close(g->uffd);                          /* the range stays mapped, unregistered */
	vm_pager_put(vm, g->p);
	free(g);
	m->priv = NULL;
}

const struct vu_mem_ops vm_guestmem_ops = {
	.mapped = gm_mapped,
	.unmapping = gm_unmapping,
};
