/* SPDX-License-Identifier: MIT */
/*
 * struct vm: the state of one VM, shared by the layers of the supervisor
 * (this directory) and by the features above it (src/compute/vm_*.c:
 * hotplug, migration, memory migration, evacuation, prefetch), which read
 * and change its records under vm->lock. Types only: what each layer
 * offers is declared in its own header (docs/compute.md, "The VM
 * supervisor's layers").
 */
#ifndef DISAGG_VM_INTERNAL_H
#define DISAGG_VM_INTERNAL_H

#include <limits.h>
#include <pthread.h>

#include "vm_types.h"

/* The longest socket name in a VM directory (shim.sock, qmp.sock, guest.sock, con.sock). */
#define VM_LONGEST_SOCK "guest.sock"
/* The serial console's socket: the guest's input (vm/vmcon.c); output also goes to console.log. */
#define VM_CONSOLE_SOCK "con.sock"

struct guestchan;
struct hotplug;
struct qmp;
struct shim_server;
struct vm_health;
struct vm_recaller;
struct vm_mig;

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

/*
 * A shared region attached to the VM (vm_shared.c): an ivshmem-plain
 * device over its own file, served by a shared pager region
 * (pager/share.h). Changed under vm->lock; attach, detach, acquire and
 * release run under hot_lock.
 */
#define VM_MAX_SHARED          4
#define VM_SHARED_MAX_SECTIONS 8      /* 1 GiB of 128 MiB sections */
#define VM_SHARED_PCI_SLOT     0x10   /* PCI slot of shared[0]; shared[i] at 0x10 + i */
struct vm_shared {
	bool in_use;
	bool writable;                /* this VM holds the region (mode exclusive) */
	char id[64];                  /* the region's name */
	char mode[16];
	uint64_t size;
	unsigned nsec;
	struct vm_section secs[VM_SHARED_MAX_SECTIONS];
	char path[PATH_MAX];          /* backing file */
	uint64_t addr;                /* where QEMU mapped it (0: not yet) */
	int region;                   /* pager region, -1 until mapped */
	struct vm_recaller *rec;      /* mode strict: its recall channel (vm_strict.c) */
	/*
	 * Mode strict, handed back to a restarted agent: the dead agent's
	 * recall answers, for its recall thread to hand back before the pages
	 * kept on the region's answers' file (mappings.c).
	 */
	struct pager_kept *kept;
	size_t nkept;
	_Atomic int ctl_pending;      /* exclusive: 1 lock, 2 unlock asked by the guest (vm_ctl.c) */
	_Atomic int ctl_sync;         /* release: bit 0 release, bit 1 acquire asked (vm_ctl.c) */
};

/* A mapping the pager serves. */
struct vm_region {
	int index;                    /* pager region index */
	uint64_t addr;
	int file_fd;
	int uffd;
};

struct mnc;

/* A section check's connection to one memory node, kept for the next (section_check.c). */
#define VM_CHECK_CONNS 8
struct vm_checkconn {
	char addr[PROTO_MAX_ADDR];
	struct mnc *c;
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
	struct pager_crypt *crypt;    /* spec.encrypt: the page-metadata table (vm_pagemeta.c) */
	/* A migration source's snapshots of the table (vm/pagemeta.h), under lock. */
	uint8_t *meta_rec[3];         /* by enum vm_meta_kind: records, NULL if none */
	size_t meta_len[3];           /* their bytes */
	uint8_t *meta_base;           /* the pre-copy's table, dense, as the destination got it */
	size_t meta_base_len;
	uint64_t meta_gen;            /* number of the last pre-copy snapshot */
	uint64_t meta_delta_gen;      /* the pre-copy the delta is against */
	pthread_mutex_t check_lock;   /* checks[]: connections of the section checks */
	struct vm_checkconn checks[VM_CHECK_CONNS];
	unsigned check_next;          /* the slot a new address takes when all are used */
	_Atomic uint64_t meta_refused; /* page-meta parts refused (vm_pagemeta.c), in /metrics */
	struct vm_region regions[VM_MAX_SECTIONS + 2];
	unsigned nregions;

	pthread_mutex_t hot_lock;     /* one hotplug operation at a time */
	struct vm_hot hot[VM_MAX_SECTIONS];
	unsigned nhot;                /* slots used in hot[] (some may be free) */
	char vmem_path[PATH_MAX];     /* virtio-mem backing file */
	struct vm_section *vmem_secs; /* spec.max_hot entries */
	unsigned vmem_plugged;        /* sections plugged through virtio-mem */
	struct vm_shared shared[VM_MAX_SHARED];
	int base_region;              /* pager region of the boot RAM, -1 until mapped */
	int vmem_region;              /* its pager region, -1 until mapped */

	pid_t pid;
	int pidfd;
	bool exited;
	bool released;                /* QEMU is gone: no new pager users (pager_use.c) */
	bool torn_down;               /* pager, files and sections released */
	unsigned pager_users;         /* vm_pager_get() references held */
	uint64_t retire_ns;           /* migrated away: stop its paused QEMU after this (now_ns) */
	int stop_efd;                 /* stops the supervisor thread (vm_free, vm_detach) */
	pthread_t sup_thread;
	bool sup_thread_on;
	struct shim_server *shim;     /* the shim socket and its thread (mappings.c) */
	struct qmp *qmp;
	struct hotplug *hp;
	struct guestchan *guest;
	uint64_t guest_memtotal_kb;
	struct vm_health *health;     /* memory-node outages (health.c) */
	/*
	 * The compute-migration feature's record (vm_migrate.c): the
	 * supervisor never looks inside; the feature hears of the VM's steps
	 * through its vm_ext_ops (ext.h).
	 */
	struct vm_mig *mig;
	/* Remote disks (vm_disk.c): that feature's, under hot_lock; NULL until the first. */
	struct vm_disks *disks;

	/*
	 * The features' parts of the VM record (vm_ext_record_set, under
	 * lock): persist.c writes each member into vm.json as it is.
	 */
	json_t *ext_record;

	/* Adoption (adopt.c): QEMU started by an earlier instance of the agent. */
	json_t *record;               /* the record loaded (persist.c), until adoption ends */
	bool adopted;                 /* QEMU is not our child: its exit status is unknown */
	int64_t qemu_starttime;       /* QEMU's start time (proc_starttime), in the record */
	int readopt_n;                /* mappings the shim handed back; -1 until it is done */
};

#endif /* DISAGG_VM_INTERNAL_H */
