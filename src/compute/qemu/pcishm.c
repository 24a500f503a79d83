// SPDX-License-Identifier: MIT
/*
 * ivshmem-plain over QMP (pcishm.h): object-add + device_add to attach,
 * device_del + DEVICE_DELETED + object-del to detach.
 */
#include "pcishm.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "qmp.h"

static bool valid_id(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	return n > 0 && n < 48;
}

static bool not_found(struct qmp *q)
{
	return strncmp(qmp_last_error(q), "DeviceNotFound", 14) == 0 ||
	       strstr(qmp_last_error(q), "not found") != NULL;
}

static int fail(struct qmp *q, int r, char *err, size_t errlen, const char *what, const char *id)
{
	snprintf(err, errlen, "%s %s: %s", what, id, r == -EIO ? qmp_last_error(q) : strerror(-r));
	return r;
}

int pcishm_add(struct qmp *q, const char *id, const char *mem_path, uint64_t bytes,
	       unsigned slot, int timeout_ms, char *err, size_t errlen)
{
	char mem_id[64], addr[16];
	int r;

	if (!valid_id(id) || !mem_path || slot < 1 || slot > 31) {
		snprintf(err, errlen, "bad device id, path or PCI slot");
		return -EINVAL;
	}
	if (!pcishm_size_ok(bytes)) {
		snprintf(err, errlen, "%llu bytes is not a power of two: QEMU would abort",
			 (unsigned long long)bytes);
		return -EINVAL;
	}
	snprintf(mem_id, sizeof(mem_id), "%s-mem", id);
	snprintf(addr, sizeof(addr), "0x%x", slot);
	r = qmp_executef(q, timeout_ms, NULL, "object-add", "{s:s, s:s, s:s, s:I, s:b}",
			 "qom-type", "memory-backend-file", "id", mem_id, "mem-path", mem_path,
			 "size", (json_int_t)bytes, "share", 1);
	if (r < 0)
		return fail(q, r, err, errlen, "object-add", mem_id);
	r = qmp_executef(q, timeout_ms, NULL, "device_add", "{s:s, s:s, s:s, s:s}", "driver",
			 "ivshmem-plain", "id", id, "memdev", mem_id, "addr", addr);
	if (r < 0) {
		(void)fail(q, r, err, errlen, "device_add ivshmem-plain", id);
		(void)qmp_executef(q, timeout_ms, NULL, "object-del", "{s:s}", "id", mem_id);
		return r;
	}
	return 0;
}

int pcishm_remove(struct qmp *q, const char *id, int timeout_ms, char *err, size_t errlen)
{
	char mem_id[64];
	int r;

	if (!valid_id(id)) {
		snprintf(err, errlen, "bad device id");
		return -EINVAL;
	}
	snprintf(mem_id, sizeof(mem_id), "%s-mem", id);
	r = qmp_executef(q, timeout_ms, NULL, "device_del", "{s:s}", "id", id);
	if (r < 0 && !(r == -EIO && not_found(q)))
		return fail(q, r, err, errlen, "device_del", id);
	if (r == 0) {
		r = qmp_wait_event(q, "DEVICE_DELETED", "device", id, timeout_ms, NULL);
		if (r < 0)
			return fail(q, r, err, errlen, "waiting for the guest to eject", id);
	}
	r = qmp_executef(q, timeout_ms, NULL, "object-del", "{s:s}", "id", mem_id);
	if (r < 0 && !(r == -EIO && not_found(q)))
		return fail(q, r, err, errlen, "object-del", mem_id);
	return 0;
}
