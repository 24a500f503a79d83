/* SPDX-License-Identifier: MIT */
/*
 * Memory migration of one section of a running VM (vm_memmig.c).
 */
#ifndef DISAGG_VM_MEMMIG_H
#define DISAGG_VM_MEMMIG_H

#include <stddef.h>

#include "vm_types.h"

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
/* HTTP status and error code for a section operation's -errno (also evacuation's). */
int vm_memmig_http_status(int r, const char **ret_code);

#endif /* DISAGG_VM_MEMMIG_H */
