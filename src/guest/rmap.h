/* SPDX-License-Identifier: MIT */
/*
 * Shared regions as the guest sees them: ivshmem-plain PCI devices (vendor
 * 1af4, device 1110) whose BAR2 is the region's memory. A region is named
 * by its PCI address as in /sys/bus/pci/devices ("0000:00:04.0") or by
 * "#N", the N-th ivshmem device in address order, counting from 0.
 *
 * rmap_open() maps BAR2 through /sys/bus/pci/devices/ADDR/resource2
 * (O_RDWR|O_SYNC, MAP_SHARED): loads and stores go straight to the
 * region's backing file in the host. The device list is read from sysfs on
 * every call, so a device hot-plugged a moment ago is found (ACPI PCI
 * hotplug adds it without a rescan).
 */
#ifndef DISAGG_GUEST_RMAP_H
#define DISAGG_GUEST_RMAP_H

#include <stddef.h>
#include <stdint.h>

#define RMAP_ADDR_LEN 16 /* "0000:00:04.0" and its NUL */
#define RMAP_MAX 64      /* ivshmem devices listed at the most */

struct rmap {
	char addr[RMAP_ADDR_LEN];
	uint8_t *mem; /* NULL when not mapped */
	uint64_t bytes;
};

struct rmap_dev {
	char addr[RMAP_ADDR_LEN];
	uint64_t bytes; /* BAR2 size from the `resource` file; 0: not assigned */
};

/* The ivshmem devices in address order: how many (at most max), or -errno. */
int rmap_list(struct rmap_dev *devs, int max);

/*
 * Map the region NAME into m (which must be unmapped). On failure answers
 * the command itself with one ERR line ("ERR no region ADDR", "ERR bad
 * region name ...") and returns -errno.
 */
int rmap_open(const char *name, struct rmap *m);

/* Unmap (a no-op when not mapped). */
void rmap_close(struct rmap *m);

/*
 * The 64-bit word at byte OFFSET (text, decimal or 0x-hex): 8-aligned and
 * inside the region, else answers "ERR offset ..." and returns NULL.
 */
uint64_t *rmap_word_arg(const struct rmap *m, const char *offset);

/* The word at a fixed offset the caller has checked against m->bytes. */
static inline uint64_t *rmap_word(const struct rmap *m, uint64_t offset)
{
	return (uint64_t *)(void *)(m->mem + offset);
}

#endif
