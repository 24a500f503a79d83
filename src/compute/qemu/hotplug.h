/* SPDX-License-Identifier: MIT */
/*
 * Memory hotplug over QMP, one section (128 MiB) at a time, in one of two
 * modes (docs/hotplug.md says when each fits):
 *
 * - HOTPLUG_DIMM: one ACPI pc-dimm per section, backed by its own
 *   memory-backend-file (share=on) on a file the caller created. Add =
 *   object-add + device_add; remove = device_del, wait for DEVICE_DELETED
 *   (the guest must offline the memory first), object-del.
 * - HOTPLUG_VIRTIO_MEM: one virtio-mem-pci device over one
 *   memory-backend-file (share=on) as large as all hotpluggable memory;
 *   resizing sets "requested-size" and waits until the device's "size"
 *   (what the guest has plugged) reaches it.
 *
 * hotplug_qemu_args() gives the command-line fragment a VM needs for either
 * mode (maxmem, slots, a file backend for boot RAM, the virtio-mem device).
 *
 * Errors are -errno; hotplug_last_error() then holds a human message.
 * -EBUSY: the guest refused to give memory back (DIMM: ACPI eject failed,
 * e.g. the memory is not movable; virtio-mem: size did not come down in
 * time, the request was withdrawn); nothing was lost and the memory stays.
 * -ETIMEDOUT (DIMM removal only): the guest is still working on the eject
 * at the deadline (typically: movable memory in use and nowhere to migrate
 * it); the request stays pending in the guest and may still complete,
 * calling hotplug_dimm_remove() again waits for it.
 */
#ifndef DISAGG_HOTPLUG_H
#define DISAGG_HOTPLUG_H

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

struct qmp;

#define HOTPLUG_SECTION_BYTES (128ull << 20)
#define HOTPLUG_MAX_DIMM_SLOTS 256            /* ACPI memory hotplug limit */

enum hotplug_mode {
	HOTPLUG_DIMM = 0,
	HOTPLUG_VIRTIO_MEM = 1,
};

struct hotplug_config {
	enum hotplug_mode mode;
	uint64_t base_bytes;        /* boot RAM (-m), a multiple of 2 MiB */
	uint64_t max_bytes;         /* boot + all hotpluggable memory (maxmem) */
	unsigned slots;             /* DIMM mode: pc-dimm slots (default: enough, <= 256) */
	const char *base_path;      /* boot RAM file (NULL: QEMU's anonymous RAM) */
	const char *base_id;        /* its backend id (default "ram0") */
	/* virtio-mem mode */
	const char *vmem_path;      /* backing file, max_bytes - base_bytes long */
	const char *vmem_id;        /* device id (default "vmem0"; backend "<id>-mem") */
	uint64_t vmem_block_bytes;  /* default: HOTPLUG_SECTION_BYTES */
};

/*
 * The QEMU argv fragment for `c` (NULL-terminated, newly allocated; free
 * with hotplug_strv_free()). It contains "-m", "-object"s, "-machine
 * memory-backend=ID" (QEMU merges repeated -machine options) and, for
 * virtio-mem, the device.
 */
int hotplug_qemu_args(const struct hotplug_config *c, char ***ret_argv);
void hotplug_strv_free(char **strv);  /* accepts NULL */

struct hotplug;

/* `q` is borrowed and must outlive the returned object. */
int hotplug_new(struct qmp *q, const struct hotplug_config *c, struct hotplug **ret);
void hotplug_free(struct hotplug *h);  /* accepts NULL */
DEFINE_CLEANUP_FUNC(struct hotplug, hotplug_free)

/* The message that explains the last failure ("" if none). */
const char *hotplug_last_error(struct hotplug *h);

/*
 * DIMM mode. `id` names the device; the backend is "<id>-mem". `mem_path`
 * is a file of `bytes` bytes (a multiple of 128 MiB) that the caller made.
 */
int hotplug_dimm_add(struct hotplug *h, const char *id, const char *mem_path, uint64_t bytes,
		     int timeout_ms);
int hotplug_dimm_remove(struct hotplug *h, const char *id, int timeout_ms);
/*
 * Where QEMU put DIMM `id`: its guest-physical address and its ACPI slot
 * (query-memory-devices). A migration destination must give its DIMMs the
 * same ones. -ENOENT if there is no such DIMM.
 */
int hotplug_dimm_where(struct hotplug *h, const char *id, uint64_t *ret_addr, int *ret_slot);

/*
 * virtio-mem mode: set the plugged size (a multiple of the block size, at
 * most max_bytes - base_bytes) and wait until the guest has plugged or
 * unplugged up to it. Growing past what the guest accepts, or shrinking
 * below what it can give back, fails after timeout_ms (-ETIMEDOUT when
 * growing, -EBUSY when shrinking); the request is then reset to the size
 * reached, so the guest stops trying.
 */
int hotplug_vmem_resize(struct hotplug *h, uint64_t bytes, int timeout_ms);
/* The current plugged size and the requested size (either may be NULL). */
int hotplug_vmem_query(struct hotplug *h, uint64_t *ret_size, uint64_t *ret_requested);

#endif /* DISAGG_HOTPLUG_H */
