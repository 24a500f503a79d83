/* SPDX-License-Identifier: MIT */
/*
 * A shared region moving to another memory node (vm_shared_memmig.c;
 * docs/compute.md, "Shared regions", and docs/sharing.md, "Moving a
 * region to another memory node"): POST /v1/vms/NAME/regions/ID/move.
 */
#ifndef DISAGG_VM_SHARED_MEMMIG_H
#define DISAGG_VM_SHARED_MEMMIG_H

#include "http.h"
#include "vm.h"

/*
 * `rest` follows /v1/vms/NAME/regions/: "ID/move" (api.c routes POST on
 * such paths here; 404 no_region for a region the VM does not map).
 * {"phase": "writeback"}: its changed pages are written back, the guest
 * running on (ahead of the quiesce). {"phase": "quiesce"}: the region's
 * faults wait, its changed pages are
 * written back and acknowledged, its cached pages dropped, a strict one
 * leaves its directory. {"phase": "switch", "sections": [...]}: the
 * quiesced region takes other sections (as attach has them: one per
 * section, held by this node; read-write if the VM writes it).
 * {"phase": "resume"}: a strict region attaches to its (new) directory,
 * then the faults that waited go on.
 */
void vm_shared_move_http(struct vm *vm, const char *rest, const struct http_req *req,
			 struct http_resp *resp);

#endif /* DISAGG_VM_SHARED_MEMMIG_H */
