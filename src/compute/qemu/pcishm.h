/* SPDX-License-Identifier: MIT */
/*
 * Shared memory as a PCI device, over QMP: an ivshmem-plain device
 * (1af4:1110) whose BAR2 is a memory-backend-file (share=on) on a file the
 * caller made. The guest maps BAR2 through sysfs (resource2) with no
 * driver. FACTS: the size must be a power of two (QEMU 7.2 aborts
 * otherwise, killing the VM: checked here first); the guest sees a
 * hot-plugged device through ACPI PCI hotplug; device_del does not wait
 * for guest users, so detach only once they are done.
 *
 * Migration (x-ignore-shared): the device is made with master=on (an
 * ivshmem "peer" blocks migration); the destination starts with the same
 * device on its command line (pcishm_cmdline) and, before the stream
 * comes, gets BAR2 mapped where the source's guest put it
 * (pcishm_bar, pcishm_set_bar): QEMU 7.2 refuses a shared RAM block
 * whose address differs ("Mismatched GPAs"), and an unprogrammed BAR is
 * at 0.
 *
 * Errors are -errno with a message in `err`.
 */
#ifndef DISAGG_PCISHM_H
#define DISAGG_PCISHM_H

#include <stddef.h>
#include <stdint.h>

struct qmp;

/* Is `bytes` a size QEMU takes for an ivshmem BAR (a power of two, >= 4 KiB)? */
static inline int pcishm_size_ok(uint64_t bytes)
{
	return bytes >= 4096 && (bytes & (bytes - 1)) == 0;
}

/*
 * Add device `id` (backend "<id>-mem") over `mem_path` (`bytes` long) at
 * PCI slot `slot` of bus 0. On failure nothing is left behind.
 */
int pcishm_add(struct qmp *q, const char *id, const char *mem_path, uint64_t bytes,
	       unsigned slot, int timeout_ms, char *err, size_t errlen);
/*
 * Unplug device `id` (wait for DEVICE_DELETED: the guest ejects it), then
 * delete its backend (QEMU unmaps the file). A device that is gone
 * already is not an error.
 */
int pcishm_remove(struct qmp *q, const char *id, int timeout_ms, char *err, size_t errlen);

/*
 * The -object and -device arguments of the same device for a QEMU command
 * line (malloc'd, into *ret_obj and *ret_dev): 0 or -EINVAL / -ENOMEM.
 */
int pcishm_cmdline(const char *id, const char *mem_path, uint64_t bytes, unsigned slot,
		   char **ret_obj, char **ret_dev);
/*
 * Where the guest mapped BAR2 of the device at PCI slot `slot` of bus 0
 * (query-pci): 0 with *ret_addr, -ENOENT when it is not mapped (or no
 * such device), else -errno.
 */
int pcishm_bar(struct qmp *q, unsigned slot, int timeout_ms, uint64_t *ret_addr);
/*
 * Map BAR2 of the device at slot `slot` at `addr` and turn memory decoding
 * on, through PCI configuration cycles (ports 0xcf8/0xcfc, HMP `o`), in a
 * QEMU that waits for an incoming migration. The device state that
 * arrives then writes the same values.
 */
int pcishm_set_bar(struct qmp *q, unsigned slot, uint64_t addr, int timeout_ms, char *err,
		   size_t errlen);

#endif /* DISAGG_PCISHM_H */
