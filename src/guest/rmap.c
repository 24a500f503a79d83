// SPDX-License-Identifier: MIT
/*
 * Finding and mapping shared regions (ivshmem-plain BAR2) in the guest:
 * the device list from /sys/bus/pci/devices, a region name (PCI address
 * or #N) to a mapping of resource2, and checked word offsets (rmap.h).
 *
 * A device hot-plugged into a running guest shows in sysfs before the
 * kernel has assigned its BARs (`resource` then says start 0) and before
 * `resource2` exists: such a device is not ready, REGIONS leaves it out
 * and opening it by address answers "ERR region ADDR is not ready". Once
 * ready it maps like a boot-time device, without a driver and without
 * writing the device's `enable` attribute (checked with QEMU 7.2's ACPI
 * hotplug and the 6.1 cloud kernel: stores reach the host file).
 */
#include "rmap.h"

#include "guestutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PCIDIR "/sys/bus/pci/devices"
#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110

/* "DDDD:BB:DD.F" in lower-case hex, as sysfs names devices. */
static bool addr_valid(const char *s)
{
	static const char shape[] = "xxxx:xx:xx.f";

	if (strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++) {
		char c = s[i];

		if (shape[i] == 'x' && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		if (shape[i] == 'f' && !(c >= '0' && c <= '7'))
			return false;
		if ((shape[i] == ':' || shape[i] == '.') && c != shape[i])
			return false;
	}
	return true;
}

static long sysfs_hex(const char *addr, const char *attr)
{
	char path[128], buf[32];

	snprintf(path, sizeof(path), PCIDIR "/%s/%s", addr, attr);
	if (guest_read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	return strtol(buf, NULL, 16);
}

/* BAR2's size from the third line of `resource` ("start end flags"); 0 if unassigned. */
static uint64_t bar2_bytes(const char *addr)
{
	char path[128], buf[2048], *line = buf;
	unsigned long long start, end, flags;

	snprintf(path, sizeof(path), PCIDIR "/%s/resource", addr);
	if (guest_read_file(path, buf, sizeof(buf)) < 0)
		return 0;
	for (int i = 0; i < 2 && line; i++) {
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	if (!line || sscanf(line, "%llx %llx %llx", &start, &end, &flags) != 3 || start == 0 ||
	    end <= start)
		return 0;
	return end - start + 1;
}

/*
 * What ADDR (a valid address) is: 0 and *bytes for a ready ivshmem device,
 * -ENOENT (no such device), -ENODEV (not ivshmem) or -EAGAIN (hot-plugged,
 * BAR2 not assigned or resource2 not created yet).
 */
static int dev_state(const char *addr, uint64_t *bytes)
{
	long vendor = sysfs_hex(addr, "vendor");
	char path[128];

	if (vendor < 0)
		return -ENOENT;
	if (vendor != IVSHMEM_VENDOR || sysfs_hex(addr, "device") != IVSHMEM_DEVICE)
		return -ENODEV;
	snprintf(path, sizeof(path), PCIDIR "/%s/resource2", addr);
	*bytes = bar2_bytes(addr);
	if (*bytes == 0 || access(path, F_OK) < 0)
		return -EAGAIN;
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int rmap_list(struct rmap_dev *devs, int max)
{
	struct dirent **ents;
	int n = scandir(PCIDIR, &ents, NULL, by_name), count = 0;

	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		const char *a = ents[i]->d_name;

		if (count < max && addr_valid(a) && dev_state(a, &devs[count].bytes) == 0) {
			snprintf(devs[count].addr, sizeof(devs[count].addr), "%s", a);
			count++;
		}
		free(ents[i]);
	}
	free(ents);
	return count;
}

/* NAME to the address and size of a ready ivshmem device, or an ERR answer and -errno. */
static int resolve(const char *name, char addr[RMAP_ADDR_LEN], uint64_t *ret_bytes)
{
	uint64_t bytes = 0;

	if (name[0] == '#') {
		struct rmap_dev devs[RMAP_MAX];
		uint64_t idx;
		int n;

		if (guest_parse_u64(name + 1, 0, RMAP_MAX - 1, &idx) < 0) {
			guest_reply("ERR bad region name %s (#N counts from 0)", name);
			return -EINVAL;
		}
		n = rmap_list(devs, RMAP_MAX);
		if (n < 0) {
			guest_reply("ERR %s: %s", PCIDIR, strerror(-n));
			return n;
		}
		if ((int)idx >= n) {
			guest_reply("ERR no region %s (%d ivshmem device%s)", name, n, n == 1 ? "" : "s");
			return -ENOENT;
		}
		memcpy(addr, devs[idx].addr, RMAP_ADDR_LEN);
		*ret_bytes = devs[idx].bytes;
		return 0;
	}
	if (!addr_valid(name)) {
		guest_reply("ERR bad region name %.40s (a PCI address like 0000:00:04.0, or #N)", name);
		return -EINVAL;
	}
	switch (dev_state(name, &bytes)) {
	case 0:
		break;
	case -ENOENT:
		guest_reply("ERR no region %s", name);
		return -ENOENT;
	case -ENODEV:
		guest_reply("ERR no region %s (not an ivshmem device)", name);
		return -ENODEV;
	default:
		guest_reply("ERR region %s is not ready (BAR2 not assigned yet)", name);
		return -EAGAIN;
	}
	memcpy(addr, name, RMAP_ADDR_LEN);
	*ret_bytes = bytes;
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

int rmap_open(const char *name, struct rmap *m)
{
	char path[128];
	_cleanup_(close_fd) int fd = -1;
	void *mem;
	int r = resolve(name, m->addr, &m->bytes);

	if (r < 0)
		return r;
	snprintf(path, sizeof(path), PCIDIR "/%s/resource2", m->addr);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		guest_reply("ERR region %s: open resource2: %s", m->addr, strerror(-r));
		return r;
	}
	mem = mmap(NULL, m->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		r = -errno;
		guest_reply("ERR region %s: mmap %" PRIu64 " bytes: %s", m->addr, m->bytes,
			    strerror(-r));
		return r;
	}
	m->mem = mem;
	return 0;
}

void rmap_close(struct rmap *m)
{
	if (m->mem)
		munmap(m->mem, m->bytes);
	m->mem = NULL;
}

uint64_t *rmap_word_arg(const struct rmap *m, const char *offset)
{
	uint64_t off;

	if (guest_parse_u64(offset, 0, UINT64_MAX, &off) < 0) {
		guest_reply("ERR bad offset %.40s", offset);
		return NULL;
	}
	if (off % 8) {
		guest_reply("ERR offset %" PRIu64 " is not 8-aligned", off);
		return NULL;
	}
	if (off >= m->bytes) {
		guest_reply("ERR offset beyond region (%" PRIu64 " >= %" PRIu64 " bytes)", off,
			    m->bytes);
		return NULL;
	}
	return rmap_word(m, off);
}
