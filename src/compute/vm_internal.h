/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by vm.c (lifecycle, shim, supervision) and vm_hot.c
 * (hotplug, guest channel). Not for use outside the VM module.
 */
#ifndef DISAGG_VM_INTERNAL_H
#define DISAGG_VM_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>

#include "guestchan.h"
#include "hotplug.h"
#include "qmp.h"
#include "vm.h"

/* A hot-plugged section (pc-dimm: one file and one DIMM each). */
struct vm_hot {
	bool in_use;
	bool plugged;                 /* the guest has it */
	struct vm_section sec;
	char id[32];                  /* QOM/device id suffix */
	char path[PATH_MAX];          /* backing file (DIMM mode) */
	uint64_t addr;                /* where QEMU mapped it (0: not yet) */
	uint64_t gpa;                 /* guest-physical address of the DIMM (0: unknown) */
	int slot;                     /* its ACPI memory slot (-1: unknown) */
};

/* A mapping the pager serves. */
struct vm_region {
	int index;                    /* pager region index */
	uint64_t addr;
	int file_fd;
	int uffd;
};

struct vm {
	struct vm_env env;
	struct vm_spec spec;          /* spec.base is our own copy */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic unsigned refs;
	enum vm_state state;
	char reason[512];             /* why it failed */
	uint64_t created_ns;

	char dir[PATH_MAX - 64];
	char base_path[PATH_MAX];
	char console_path[PATH_MAX];
	char shim_path[108];
	char qmp_path_buf[PATH_MAX];

	struct pager_backend *backend;
	struct pager *pager;
	struct vm_region regions[VM_MAX_SECTIONS + 2];
	unsigned nregions;

	pthread_mutex_t hot_lock;     /* one hotplug operation at a time */
	struct vm_hot hot[VM_MAX_SECTIONS];
	unsigned nhot;                /* slots used in hot[] (some may be free) */
	char vmem_path[PATH_MAX];     /* virtio-mem backing file */
	struct vm_section *vmem_secs; /* spec.max_hot entries */
	unsigned vmem_plugged;        /* sections plugged through virtio-mem */
	int base_region;              /* pager region of the boot RAM, -1 until mapped */
	int vmem_region;              /* its pager region, -1 until mapped */

	pid_t pid;
	int pidfd;
	bool exited;
	bool released;                /* QEMU is gone: no new pager users (vm_pager.c) */
	bool torn_down;               /* pager, files and sections released */
	unsigned pager_users;         /* vm_pager_get() references held */
	uint64_t retire_ns;           /* migrated away: stop its paused QEMU after this (now_ns) */
	int shim_listen, stop_efd;
	pthread_t shim_thread, sup_thread;
	bool shim_thread_on, sup_thread_on;
	struct qmp *qmp;
	struct hotplug *hp;
	struct guestchan *guest;
	uint64_t guest_memtotal_kb;
	struct vm_mig *mig;           /* compute migration and heartbeats (vm_migrate.c) */
	struct vm_health *health;     /* memory-node outages (vm_health.c) */

	/* Adoption (vm_adopt.c): QEMU started by an earlier instance of the agent. */
	bool adopted;                 /* QEMU is not our child: its exit status is unknown */
	int64_t qemu_starttime;       /* QEMU's start time (proc_starttime), in the record */
	int readopt_n;                /* mappings the shim handed back; -1 until it is done */
};

/* A VM with nothing yet: one reference, fds -1, no region (vm_new, adoption). */
struct vm *vm_alloc(const struct vm_env *env);
void vm_set_failed(struct vm *vm, const char *fmt, ...) _printf_(2, 3);
int vm_make_file(struct vm *vm, const char *leaf, uint64_t size, char *ret_path, size_t len);
void vm_qemu_log_tail(struct vm *vm, char *buf, size_t len);
void vm_remove_dir(struct vm *vm);
/* Remove the files of directory `name` (at rootfd), then the directory: 0 or -errno. */
int vm_remove_tree(int rootfd, const char *name);
void vm_free_section(struct vm *vm, const struct vm_section *s);
int vm_check_section(struct vm *vm, const struct vm_section *s, char *err, size_t errlen);
/* {"addr", "grant"[, "kind": "remote"]} -> a remote section (vm_memmig.c). */
int vm_parse_remote(json_t *j, const char *name, struct pager_section *ret, char *err,
		    size_t errlen);
/* HTTP status and error code for a section operation's -errno (vm_memmig.c). */
int vm_memmig_http_status(int r, const char **ret_code);
const char *vm_qmp_path(struct vm *vm);

/*
 * vm_pager.c: the pager of a live VM, or NULL once QEMU has exited ("the
 * VM has exited"). Every use outside vm->lock holds a reference; the last
 * put after the release tears the VM down.
 */
struct pager *vm_pager_get(struct vm *vm);
void vm_pager_put(struct vm *vm, struct pager *p);   /* accepts NULL */
void vm_release(struct vm *vm);        /* lock held: release now, or at the last put */
void vm_release_wait(struct vm *vm);   /* lock held (vm_free): release, wait for the users */

/* vm_persist.c: DIR/vm.json, the record a restarted agent adopts the VM from */
int vm_persist_locked(struct vm *vm);   /* lock held */
int vm_persist(struct vm *vm);
/* Fill spec, hot sections, virtio-mem state, state, pid from DIR/vm.json (vm->dir, env set). */
int vm_persist_load(struct vm *vm, char *err, size_t errlen);

/* vm_adopt.c */
/*
 * Take over the running QEMU of a VM loaded with vm_persist_load (its
 * QEMU checked to be the recorded one). On failure err says why and the
 * sections are marked not to be freed; vm_unref then stops QEMU.
 */
int vm_adopt(struct vm *vm, char *err, size_t errlen);
/* Never free a section when this VM goes (its sections are the control plane's to free). */
void vm_keep_sections(struct vm *vm);
void vm_keep_sections_locked(struct vm *vm);   /* lock held */
/* The shim's READOPT_DONE: it handed n mappings back. */
void vm_adopt_shim_done(struct vm *vm, unsigned n);
/* The pager and the RAM files' regions for a VM (vm_start, adoption). */
int vm_pager_open(struct vm *vm, char *err, size_t errlen);
int vm_shim_listen(struct vm *vm);    /* the shim socket and its thread */
int vm_supervise(struct vm *vm);      /* the supervisor thread */

/* vm_migrate.c, vm_incoming.c (-incoming arguments) */
int vm_mig_qemu_args(struct vm *vm, char ***ret_argv);   /* -incoming, the source's DIMMs */
void vm_mig_guest_attached(struct vm *vm);   /* after the guest channel connected */
void vm_mig_status(struct vm *vm, json_t *j);   /* lock not held */
void vm_mig_free(struct vm *vm);   /* first thing in vm_free: joins its threads */

/* vm_health.c */
int vm_health_start(struct vm *vm);
void vm_health_stop(struct vm *vm);   /* joins its thread */
void vm_health_free(struct vm *vm);   /* after the pager is freed */
void vm_health_node(void *opaque, uint64_t memnode_id, const char *addr, bool down, int err);

/* vm_hot.c */
int vm_hot_prepare(struct vm *vm);
void vm_hot_config(struct vm *vm, struct hotplug_config *ret);
int vm_hot_attach(struct vm *vm);     /* after QMP is up */
void vm_hot_release(struct vm *vm);
int vm_region_unmapped(struct vm *vm, uint64_t addr);
void vm_region_keep_uffd(struct vm *vm, uint64_t addr, int uffd);
int vm_vmem_set_section(struct vm *vm, unsigned idx, const struct pager_section *s,
			bool discard);
int vm_guest_connect(struct vm *vm);
unsigned vm_hot_count(struct vm *vm);   /* plugged hot sections; lock held */
void vm_guest_close(struct vm *vm);

#endif /* DISAGG_VM_INTERNAL_H */
