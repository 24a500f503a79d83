// SPDX-License-Identifier: MIT
/*
 * ivshmem-plain over QMP (pcishm.h): object-add + device_add to attach,
 * device_del + DEVICE_DELETED + object-del to detach; for a migration,
 * the same device on a command line, and BAR2 read (query-pci) on the
 * source and written (configuration cycles) on the destination.
 */
#include "pcishm.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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
	/* master=on: a "peer" ivshmem blocks migration (x-ignore-shared skips its RAM). */
	r = qmp_executef(q, timeout_ms, NULL, "device_add", "{s:s, s:s, s:s, s:s, s:s}", "driver",
			 "ivshmem-plain", "id", id, "memdev", mem_id, "addr", addr, "master", "on");
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

int pcishm_cmdline(const char *id, const char *mem_path, uint64_t bytes, unsigned slot,
		   char **ret_obj, char **ret_dev)
{
	char *obj = NULL, *dev = NULL;

	if (!valid_id(id) || !mem_path || strchr(mem_path, ',') || slot < 1 || slot > 31 ||
	    !pcishm_size_ok(bytes))
		return -EINVAL;
	if (asprintf(&obj, "memory-backend-file,id=%s-mem,mem-path=%s,size=%llu,share=on", id,
		     mem_path, (unsigned long long)bytes) < 0)
		return -ENOMEM;
	if (asprintf(&dev, "ivshmem-plain,id=%s,memdev=%s-mem,addr=0x%x,master=on", id, id,
		     slot) < 0) {
		free(obj);
		return -ENOMEM;
	}
	*ret_obj = obj;
	*ret_dev = dev;
	return 0;
}

int pcishm_bar(struct qmp *q, unsigned slot, int timeout_ms, uint64_t *ret_addr)
{
	json_t *ans = NULL, *bus, *dev, *reg;
	size_t i, k, m;
	int r = qmp_execute(q, "query-pci", NULL, timeout_ms, &ans);

	if (r < 0)
		return r;
	r = -ENOENT;
	json_array_foreach(ans, i, bus) {
		if (json_integer_value(json_object_get(bus, "bus")) != 0)
			continue;
		json_array_foreach(json_object_get(bus, "devices"), k, dev) {
			if (json_integer_value(json_object_get(dev, "slot")) != (json_int_t)slot ||
			    json_integer_value(json_object_get(dev, "function")) != 0)
				continue;
			json_array_foreach(json_object_get(dev, "regions"), m, reg) {
				json_int_t a = json_integer_value(json_object_get(reg, "address"));

				if (json_integer_value(json_object_get(reg, "bar")) == 2 && a > 0) {
					*ret_addr = (uint64_t)a;
					r = 0;
				}
			}
		}
	}
	json_decref(ans);
	return r;
}

/* One 32-bit configuration write to bus 0, slot `slot`, function 0, register `reg`. */
static int cfg_write(struct qmp *q, unsigned slot, unsigned reg, uint32_t val, int timeout_ms)
{
	char cmd[2][64];
	json_t *ans = NULL;
	int r = 0;

	snprintf(cmd[0], sizeof(cmd[0]), "o /w 0xcf8 0x%x", 0x80000000u | slot << 11 | reg);
	snprintf(cmd[1], sizeof(cmd[1]), "o /w 0xcfc 0x%x", val);
	for (int i = 0; i < 2 && r == 0; i++) {
		r = qmp_executef(q, timeout_ms, &ans, "human-monitor-command", "{s:s}",
				 "command-line", cmd[i]);
		/* HMP answers its errors as text. */
		if (r == 0 && json_string_value(ans) && *json_string_value(ans))
			r = -EPROTO;
		json_decref(ans);
		ans = NULL;
	}
	return r;
}

int pcishm_set_bar(struct qmp *q, unsigned slot, uint64_t addr, int timeout_ms, char *err,
		   size_t errlen)
{
	uint64_t now = 0;
	int r;

	if (slot < 1 || slot > 31 || !addr || addr & 0xf) {
		snprintf(err, errlen, "bad PCI slot or BAR address");
		return -EINVAL;
	}
	r = cfg_write(q, slot, 0x18, (uint32_t)addr, timeout_ms);          /* BAR2, low */
	if (r == 0)
		r = cfg_write(q, slot, 0x1c, (uint32_t)(addr >> 32), timeout_ms); /* BAR2, high */
	if (r == 0)
		r = cfg_write(q, slot, 0x04, 0x2, timeout_ms);    /* command: memory space on */
	if (r == 0)
		r = pcishm_bar(q, slot, timeout_ms, &now);
	if (r == 0 && now != addr)
		r = -EIO;
	if (r < 0)
		snprintf(err, errlen, "mapping BAR2 of slot 0x%x at %#llx: %s (QEMU has it at %#llx)",
			 slot, (unsigned long long)addr,
			 r == -EIO && !now ? qmp_last_error(q) : strerror(-r),
			 (unsigned long long)now);
	return r;
}
