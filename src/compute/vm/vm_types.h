/* SPDX-License-Identifier: MIT */
/*
 * The types of the VM supervisor that every layer shares: states, the
 * sections of a VM's memory, the agent-wide settings (vm_env) and what the
 * control plane asks for (vm_spec). Types only: the functions are declared
 * by the module that defines them (vm.h and its neighbours).
 */
#ifndef DISAGG_VM_TYPES_H
#define DISAGG_VM_TYPES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth.h"
#include "pager.h"

#define VM_NAME_MAX     64
#define VM_MAX_SECTIONS 256   /* ACPI DIMM slot limit */

enum vm_state {
	VM_CREATED = 0,
	VM_STARTING,
	VM_RUNNING,
	VM_STOPPING,
	VM_STOPPED,
	VM_FAILED,
	VM_INCOMING,                  /* QEMU waits for a compute migration (vm_incoming.c) */
	VM_MIGRATED,                  /* moved to another node: QEMU gone, sections kept */
	VM_DEGRADED,                  /* a memory node does not answer: paused (health.c) */
	VM_SWITCHOVER,                /* migration source after migrate-continue, QEMU undecided */
};

/* What a VM does while one of its memory nodes does not answer (health.c). */
enum vm_memnode_policy {
	VM_MEMNODE_PAUSE = 0,         /* degraded and paused; resumes by itself (default) */
	VM_MEMNODE_KILL,              /* fail the VM and kill its QEMU */
	VM_MEMNODE_SIGBUS,            /* degraded; SIGBUS to each faulting thread */
};

enum vm_hotplug {
	VM_HOTPLUG_DIMM = 0,
	VM_HOTPLUG_VIRTIO_MEM = 1,
};

/* One section of a VM's memory, as the control plane describes it. */
struct vm_section {
	struct pager_section sec;     /* local, or remote with address and grant */
	bool free_on_release;         /* the agent frees it on its memnode when done */
};

struct vm;

/* A VM's network card (vmnet.c, docs/compute.md "Networks"). */
enum vm_net_mode {
	VM_NET_NONE = 0,              /* no card (and the record of an agent before cards) */
	VM_NET_USER,                  /* QEMU's user-mode network, ssh forwarded from the host */
	VM_NET_BRIDGE,                /* a tap on a bridge of the host */
};

#define VM_NET_IFNAMSIZ 16            /* IFNAMSIZ */

struct vm_net {
	enum vm_net_mode mode;
	uint8_t mac[6];               /* locally administered, from the VM's name unless given */
	char bridge[VM_NET_IFNAMSIZ]; /* bridge: the host's bridge */
	char tap[VM_NET_IFNAMSIZ];    /* bridge: the tap the agent made ("" until QEMU starts) */
	char ssh_host[64];            /* user: the forward's host address (IPv4) */
	unsigned ssh_port;            /* user: its port (0 until QEMU starts) */
};

/* Agent-wide settings every VM shares. */
struct vm_env {
	const char *run_root;         /* tmpfs directory for run dirs */
	const char *qemu;             /* qemu-system-x86_64 */
	const char *shim;             /* path of libdisagg-shim.so */
	const char *kernel, *initrd;  /* guest image */
	const char *accel;            /* resolved: "kvm" or "tcg" */
	uint64_t section_size;
	const struct auth_key *key;
	uint64_t node_id;             /* this compute node's id (grant holder) */
	uint64_t retire_ms;           /* a migrated-away VM not deleted: stop its QEMU (0: VM_RETIRE_MS) */
	enum vm_memnode_policy memnode_policy;
	int memnode_timeout_ms;       /* a fetch stalled this long marks its node down (0: 2000) */
	int writeback_delay_ms;       /* background write-back (pager_config; 0: 1000, < 0: off) */
	/* A VM's state changed by itself (degraded, running again): may be NULL. */
	void (*on_state)(void *opaque);
	/*
	 * The guest wrote a control page of shared region `region` (pager
	 * region index): `op` is an enum pager_ctl (lock, unlock, release,
	 * acquire; vm_ctl.c). From a fault thread: must not block. May be NULL.
	 */
	void (*on_region_control)(struct vm *vm, int region, int op);
	/*
	 * The pager took a replica of a replicated section out (vm_replica.c
	 * brings the VM's records up to date). From the VM's health thread.
	 * May be NULL.
	 */
	void (*on_replica)(struct vm *vm);
	void *opaque;
	const char *ssh_forward_addr; /* user network: host address of the ssh forward (NULL: 127.0.0.1) */
};

/* A VM that migrated away keeps its paused QEMU until deleted, at most this long. */
#define VM_RETIRE_MS 30000

struct vm_spec {
	char name[VM_NAME_MAX];
	unsigned vcpus;
	unsigned nbase;               /* sections of boot RAM */
	struct vm_section *base;      /* nbase entries (copied) */
	uint64_t budget;              /* bytes of remote pages resident; UINT64_MAX: all */
	enum vm_hotplug hotplug;
	unsigned max_hot;             /* sections that can be hot-plugged */
	char append[512];             /* extra kernel command line */
	char kernel[512], initrd[512];/* "boot" (vm_boot.c): "" for the node's (env) */
	char seed[512];               /* the cloud-init seed image ("" none) */
	bool no_guest;                /* runs no disagg-guest: no guest channel ("boot") */
	bool firmware;                /* "boot": {"firmware": true}: no -kernel, the root disk boots (vm_boot.c) */
	bool incoming;                /* start with -incoming defer (vm_incoming_start) */
	/*
	 * An incoming VM of replicated sections: which replicas the source
	 * took out comes after the switchover (vm_replicas_settle); faults on
	 * remote pages wait until then.
	 */
	bool replicas_pending;
	/*
	 * Guest memory at rest (pager/crypt.h): pages leave sealed with this
	 * key, the slot's, from the control plane; kept 0600 in the run
	 * directory (page.key) for an agent restart.
	 */
	bool encrypt;
	uint8_t key[32];
	struct vm_net net;            /* its network card */
};

#endif /* DISAGG_VM_TYPES_H */
