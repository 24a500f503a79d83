/* SPDX-License-Identifier: MIT */
/*
 * A VM's network card (docs/compute.md, "Networks"): a virtio-net-pci
 * device on QEMU's user-mode network with the guest's port 22 forwarded
 * from a free port of the host, or on a tap that the agent puts on a bridge
 * of the host, or none. Its MAC is derived from the VM's name, so that both
 * sides of a compute migration have the same card.
 */
#ifndef DISAGG_VM_VMNET_H
#define DISAGG_VM_VMNET_H

#include <jansson.h>
#include <stddef.h>

#include "vm_types.h"

/* The tap's descriptor number in QEMU (bridge mode). */
#define VMNET_QEMU_TAP_FD 3

/*
 * The "net" member of a create request (NULL: user mode) into ret:
 * {"mode": "user"|"bridge"|"none", "bridge": NAME, "mac": "52:54:00:.."}.
 * The MAC defaults to vmnet_mac_from_name(name). A bridge that does not
 * exist on this host is refused here (-ENODEV), before any VM is made.
 * 0, or -EINVAL/-ENODEV with err saying why.
 */
int vmnet_parse(json_t *j, const char *name, struct vm_net *ret, char *err, size_t errlen);
/* 52:54:00 and three bytes of a hash of name: unicast, locally administered. */
void vmnet_mac_from_name(const char *name, uint8_t mac[6]);
/*
 * Before QEMU starts: user mode picks a free port on fwd_addr (NULL:
 * 127.0.0.1) for the ssh forward; bridge mode makes a tap, brings it up
 * and adds it to the bridge (*ret_fd, -1 otherwise, for QEMU as
 * VMNET_QEMU_TAP_FD). 0 or -errno with err saying why.
 */
int vmnet_prepare(struct vm_net *n, const char *fwd_addr, int *ret_fd, char *err,
		  size_t errlen);
/* QEMU's arguments for the card into *ret (malloc'd strings; empty for none). */
int vmnet_qemu_args(const struct vm_net *n, char ***ret);
/* {"mode", "mac", "ssh" (user, once known), "bridge" and "tap" (bridge)}. */
json_t *vmnet_json(const struct vm_net *n);
/* The VM record's "net" (vmnet_json; absent: none, an agent before cards). */
int vmnet_load(json_t *j, struct vm_net *ret, char *err, size_t errlen);

#endif /* DISAGG_VM_VMNET_H */
