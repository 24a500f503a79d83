/* SPDX-License-Identifier: MIT */
/*
 * One virtual machine supervised by the compute agent.
 *
 * A VM is a stock QEMU process with libdisagg-shim.so preloaded. Its RAM is
 * a set of tmpfs files in the VM's run directory: the boot RAM ("base", a
 * whole number of sections) and one file per hot-plugged section (pc-dimm
 * mode) or one file for the virtio-mem device. The shim hands every mapping
 * of those files to the agent, which serves its faults with the VM's pager
 * according to the section map: each section is local, or remote on a
 * memory node with a grant.
 *
 * Lifecycle: vm_new (validate, create the run directory) -> vm_start
 * (pager, shim socket, QEMU, QMP, guest channel) -> running -> vm_stop or an
 * unexpected exit (state "failed", reason recorded) -> vm_free. A
 * supervisor thread watches QEMU through a pidfd; when QEMU dies, the pager,
 * files and sections are released. QEMU outlives the agent: every change
 * is recorded in the run directory (vm_persist.c), vm_detach lets go of a
 * running VM at exit, and the next agent adopts it (vm_recover).
 *
 * All entry points are thread-safe (one mutex per VM).
 */
#ifndef DISAGG_VM_H
#define DISAGG_VM_H

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
	VM_INCOMING,                  /* QEMU waits for a compute migration (vm_migrate.c) */
	VM_MIGRATED,                  /* moved to another node: QEMU gone, sections kept */
	VM_DEGRADED,                  /* a memory node does not answer: paused (vm_health.c) */
	VM_SWITCHOVER,                /* migration source after migrate-continue, QEMU undecided */
};

/* What a VM does while one of its memory nodes does not answer (vm_health.c). */
enum vm_memnode_policy {
	VM_MEMNODE_PAUSE = 0,         /* degraded and paused; resumes by itself (default) */
	VM_MEMNODE_KILL,              /* fail the VM and kill its QEMU */
	VM_MEMNODE_SIGBUS,            /* degraded; SIGBUS to each faulting thread */
};
const char *vm_memnode_policy_name(enum vm_memnode_policy p);
int vm_memnode_policy_parse(const char *s, enum vm_memnode_policy *ret);   /* -EINVAL */

enum vm_hotplug {
	VM_HOTPLUG_DIMM = 0,
	VM_HOTPLUG_VIRTIO_MEM = 1,
};

/* One section of a VM's memory, as the control plane describes it. */
struct vm_section {
	struct pager_section sec;     /* local, or remote with address and grant */
	bool free_on_release;         /* the agent frees it on its memnode when done */
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
	/* A VM's state changed by itself (degraded, running again): may be NULL. */
	void (*on_state)(void *opaque);
	void *opaque;
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
	bool incoming;                /* start with -incoming defer (vm_incoming_start) */
};

struct vm;

int vm_new(const struct vm_env *env, const struct vm_spec *spec, struct vm **ret);
int vm_start(struct vm *vm, char *err, size_t errlen);
/* Graceful stop (ACPI powerdown, then quit, then SIGKILL). */
int vm_stop(struct vm *vm, int timeout_ms);
/* Stop if needed and free everything. Accepts NULL. */
void vm_free(struct vm *vm);
/*
 * References: vm_new returns one. Whoever uses a VM found in a shared
 * table takes one (vm_ref) and drops it (vm_unref); the last vm_unref
 * calls vm_free.
 */
struct vm *vm_ref(struct vm *vm);
void vm_unref(struct vm *vm);
void vm_lower_priority(pid_t pid);   /* nice 19 for all its threads; 0: the calling thread */

/*
 * At agent start (vm_stale.c, vm_adopt.c): what an earlier instance of
 * this agent left in env->run_root (the caller owns the directory:
 * rundir.h). A VM that was running and whose QEMU still runs is adopted:
 * QEMU keeps running, the shim hands its uffds back, QMP and the guest
 * channel are reconnected; `fn` gets it (one reference, state running;
 * fn < 0: it is detached again). A VM whose QEMU is gone is removed (its
 * directory; sections stay allocated: the control plane has them). A QEMU
 * of this run directory that cannot be adopted (the VM was starting,
 * stopping, migrating in or away, or adoption failed) is stopped first.
 * Nothing outside VM directories is touched.
 */
struct vm_recover_stats {
	unsigned adopted, stopped, removed;
};
typedef int (*vm_adopt_fn)(void *opaque, struct vm *vm);
int vm_recover(const struct vm_env *env, vm_adopt_fn fn, void *opaque,
	       struct vm_recover_stats *ret);
/* Is rootfd/name a VM directory (vm.json, or shim.sock and qemu.log)? */
bool vm_dir_is_vm(int rootfd, const char *name);
/*
 * At agent exit, instead of vm_free for a running VM that must keep
 * running: record it, stop serving it (its faults wait for the next
 * agent), close everything, free the struct. QEMU and the VM's files stay.
 */
void vm_detach(struct vm *vm);

/* Hot-add one section; *ret_index gets its index among hot sections. */
int vm_add_section(struct vm *vm, const struct vm_section *s, int timeout_ms,
		   unsigned *ret_index, char *err, size_t errlen);
/* Hot-remove the last-added section (virtio-mem) or section `index` (DIMM). */
int vm_remove_section(struct vm *vm, unsigned index, int timeout_ms, char *err, size_t errlen);

int vm_set_budget(struct vm *vm, uint64_t bytes);
int vm_flush(struct vm *vm);

/*
 * Memory migration (vm_memmig.c): move the remote section that matches
 * `from` (memory node id, section, generation) to section `to` on another
 * memory node while the VM runs. begin starts dual write-backs, commit
 * (after the source memory node's COPY to `to` answered) re-sends what was
 * written back meanwhile and switches the section to `to`, also in the
 * VM's records; abort keeps `from` (`to` may be zeroed then).
 * -EINVAL (bad sections or grant), -ENOENT (no such section), -EBUSY
 * (migration in progress, VM not running), -EALREADY (commit/abort
 * without a migration, or to another target), -EREMOTEIO (commit: the
 * target failed; the section stays on `from`), -ESRCH (no pager).
 */
enum vm_memmig_phase {
	VM_MEMMIG_BEGIN = 0,
	VM_MEMMIG_COMMIT,
	VM_MEMMIG_ABORT,
};

struct vm_memmig_result {
	uint64_t pages_resent;        /* commit: pages sent to the target again */
	uint64_t pages_dual;          /* commit: pages written back to both nodes */
	uint64_t pause_us;            /* commit: the section was fenced this long */
	uint64_t ms;                  /* the phase took this long */
	bool already;                 /* commit: it had been committed before */
};

int vm_migrate_section(struct vm *vm, enum vm_memmig_phase phase,
		       const struct pager_section *from, const struct pager_section *to,
		       struct vm_memmig_result *ret, char *err, size_t errlen);
/* POST /v1/vms/NAME/sections/migrate: {"phase", "from", "to"} (docs/compute.md). */
struct http_req;
struct http_resp;
void vm_memmig_http(struct vm *vm, const struct http_req *req, struct http_resp *resp);
/*
 * Move a local section (boot index, or hot index if hot) to the remote
 * section `to`, keeping its content (vm_evacuate.c). ret_pages: pages
 * still to write back. -ENOENT, -EALREADY (remote), -ESRCH (not running),
 * the grant check's error (-EINVAL: refused), or the pager's.
 */
int vm_evacuate_section(struct vm *vm, bool hot, unsigned idx, const struct vm_section *to,
			uint64_t *ret_pages, char *err, size_t errlen);
void vm_evacuate_http(struct vm *vm, const struct http_req *req, struct http_resp *resp);
/* The pager's hot pages as JSON runs (vm_prefetch.c); *ret_pages: how many pages. */
json_t *vm_hot_json(struct vm *vm, uint64_t *ret_pages);
/* POST /v1/vms/NAME/prefetch: fetch a migration source's hot pages ahead of faults. */
void vm_prefetch_http(struct vm *vm, const struct http_req *req, struct http_resp *resp);

/* Send one command line to disagg-guest and get its "OK ..." answer. */
int vm_guest_cmd(struct vm *vm, const char *cmd, int timeout_ms, char *ret, size_t len);

const char *vm_name(const struct vm *vm);
enum vm_state vm_get_state(struct vm *vm);
const char *vm_state_name(enum vm_state s);
int vm_state_parse(const char *name, enum vm_state *ret);   /* -EINVAL: unknown */
/*
 * Wait until the VM is in state `want`, or in one it cannot leave by
 * itself (stopped, failed, migrated), or timeout_ms passed: the state then.
 */
enum vm_state vm_wait_state(struct vm *vm, enum vm_state want, int timeout_ms);
/* {"name", "state"[, "reason"]}: the VM in brief (new reference; vm_health.c). */
json_t *vm_brief(struct vm *vm);
/* Status as JSON (new reference). */
json_t *vm_status(struct vm *vm);
/* The serial console log path. */
const char *vm_console_path(const struct vm *vm);
/* Prometheus text of the VM's pager. */
void vm_render_metrics(struct vm *vm, struct strbuf *sb);

/* ---- compute migration (vm_migrate.c, docs/compute.md) ------------------ */

/* A section hot-plugged on the migration source, at its index there. */
struct vm_hot_in {
	unsigned index;
	struct vm_section sec;
	uint64_t gpa;                 /* DIMM: the source's guest-physical address (0: unknown) */
	int slot;                     /* DIMM: the source's ACPI slot (-1: unknown) */
};

/*
 * Destination: start a VM created with spec.incoming. Prepares the hot
 * sections (same DIMMs / virtio-mem size as the source), starts the pager
 * and QEMU with -incoming defer, listens on `listen` ("HOST:PORT", port 0
 * picks one) and returns at once with state VM_INCOMING; a thread waits for
 * the migration to complete (state running) or fail (state failed; the
 * sections are never freed by a failed incoming VM).
 */
int vm_incoming_start(struct vm *vm, const char *listen, const struct vm_hot_in *hot,
		      unsigned nhot, char *err, size_t errlen);

struct vm_migrate_opts {
	char uri[128];                /* "tcp:HOST:PORT" of the destination */
	unsigned max_flush_rounds;    /* pre-copy flush rounds at most (default 10) */
	uint64_t dirty_threshold_pages; /* stop the rounds below this (default 256) */
	unsigned hold_ms;             /* tests: wait this long at pre-switchover */
	int timeout_ms;               /* whole migration (default 120000) */
};

/*
 * Source: move the running VM to the destination that listens on o->uri,
 * memory staying on the memory nodes. On success *ret gets the figures
 * (JSON, new reference) and the VM is VM_MIGRATED. On failure the VM keeps
 * running here: -EBUSY (not running, already migrating, local sections),
 * -EINVAL (bad options), or the migration's error (err says what).
 * -EINPROGRESS: after migrate-continue QEMU has not decided in time; the
 * VM is VM_SWITCHOVER (paused, not resumed) until QEMU decides, then
 * VM_MIGRATED or VM_RUNNING (vm_switchover.c).
 */
int vm_migrate(struct vm *vm, const struct vm_migrate_opts *o, json_t **ret, char *err,
	       size_t errlen);
/* Heartbeats ("HB SEQ NS") the guest sent on this node (JSON, new reference). */
json_t *vm_heartbeats(struct vm *vm);

/* Pick the accelerator: "kvm" when a probe guest boots under KVM, else "tcg". */
const char *vm_probe_accel(const struct vm_env *env);

#endif /* DISAGG_VM_H */
