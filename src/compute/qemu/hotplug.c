// SPDX-License-Identifier: MIT
/*
 * Memory hotplug over QMP. See hotplug.h; the QEMU behaviour it relies on
 * (checked with QEMU 7.2 and a Linux 6.1 guest) is in docs/hotplug.md.
 *
 * DIMM removal: after device_del the guest's ACPI code reports progress
 * with _OST, which QEMU turns into ACPI_DEVICE_OST events (source 3 =
 * eject): status 0x84 "ejection in progress" first, then either the
 * device goes (DEVICE_DELETED) or a failure status (0x82 "device busy"
 * when the memory cannot be offlined, e.g. unmovable pages in
 * ZONE_NORMAL). A movable block whose pages cannot be migrated anywhere
 * stays "in progress": Linux retries the offline until it succeeds.
 */
#include "hotplug.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "qmp.h"

#define SLICE_MS 50              /* event/poll granularity while waiting */
#define QMP_CMD_TIMEOUT_MS 10000 /* a single QMP command */

/* ACPI _OST status codes for an eject request (ACPI 6.x, table 6.x). */
#define OST_SOURCE_EJECT 3
#define OST_SUCCESS 0
#define OST_EJECT_IN_PROGRESS 0x84

struct hotplug {
	struct qmp *q;
	enum hotplug_mode mode;
	uint64_t vmem_max;
	uint64_t vmem_block;
	char vmem_id[64];
	char vmem_path[96];       /* QOM path of the device */
	pthread_mutex_t lock;     /* one operation at a time */
	char error[512];
};

_printf_(2, 3) static void set_error(struct hotplug *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->error, sizeof(h->error), fmt, ap);
	va_end(ap);
}

static int left_ms(uint64_t deadline_ns)
{
	uint64_t now = now_ns();

	return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

static int cmd_timeout(uint64_t deadline_ns)
{
	return MAX(MIN(left_ms(deadline_ns), QMP_CMD_TIMEOUT_MS), 1000);
}

/* ---- command line ------------------------------------------------------ */

void hotplug_strv_free(char **strv)
{
	if (!strv)
		return;
	for (char **p = strv; *p; p++)
		free(*p);
	free(strv);
}

struct strv {
	char **v;
	size_t n, cap;
	bool oom;
};

_printf_(2, 3) static void strv_addf(struct strv *s, const char *fmt, ...)
{
	va_list ap;
	char *str;

	if (s->oom)
		return;
	if (s->n + 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 16;
		char **nv = realloc(s->v, ncap * sizeof(*nv));

		if (!nv) {
			s->oom = true;
			return;
		}
		s->v = nv;
		s->cap = ncap;
	}
	va_start(ap, fmt);
	if (vasprintf(&str, fmt, ap) < 0) {
		s->oom = true;
		va_end(ap);
		return;
	}
	va_end(ap);
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
}

static bool bad_opt(const char *s)
{
	return s && strchr(s, ','); /* a comma would break QEMU's option syntax */
}

int hotplug_qemu_args(const struct hotplug_config *c, char ***ret_argv)
{
	const char *base_id = c->base_id ? c->base_id : "ram0";
	const char *vmem_id = c->vmem_id ? c->vmem_id : "vmem0";
	uint64_t block = c->vmem_block_bytes ? c->vmem_block_bytes : HOTPLUG_SECTION_BYTES;
	uint64_t hp = c->max_bytes > c->base_bytes ? c->max_bytes - c->base_bytes : 0;
	struct strv s = { 0 };
	unsigned slots = c->slots;

	if (!ret_argv || c->base_bytes == 0 || c->base_bytes % (2u << 20) ||
	    c->max_bytes < c->base_bytes || bad_opt(c->base_path) || bad_opt(c->base_id) ||
	    bad_opt(c->vmem_path) || bad_opt(c->vmem_id))
		return -EINVAL;
	if (c->mode == HOTPLUG_DIMM) {
		if (slots == 0)
			slots = (unsigned)MIN(hp / HOTPLUG_SECTION_BYTES, HOTPLUG_MAX_DIMM_SLOTS);
		if (slots > HOTPLUG_MAX_DIMM_SLOTS || (hp && slots == 0))
			return -EINVAL;
		strv_addf(&s, "-m");
		if (hp)
			strv_addf(&s, "%" PRIu64 "M,slots=%u,maxmem=%" PRIu64 "M",
				  c->base_bytes >> 20, slots, c->max_bytes >> 20);
		else
			strv_addf(&s, "%" PRIu64 "M", c->base_bytes >> 20);
	} else if (c->mode == HOTPLUG_VIRTIO_MEM) {
		if (!c->vmem_path || hp == 0 || !IS_POW2(block) || block < (2u << 20) ||
		    hp % block)
			return -EINVAL;
		/* No slots: virtio-mem is a PCI device, not an ACPI DIMM slot. */
		strv_addf(&s, "-m");
		strv_addf(&s, "%" PRIu64 "M,maxmem=%" PRIu64 "M", c->base_bytes >> 20,
			  c->max_bytes >> 20);
	} else {
		return -EINVAL;
	}
	if (c->base_path) {
		strv_addf(&s, "-object");
		strv_addf(&s, "memory-backend-file,id=%s,mem-path=%s,size=%" PRIu64 "M,share=on",
			  base_id, c->base_path, c->base_bytes >> 20);
		strv_addf(&s, "-machine");
		strv_addf(&s, "memory-backend=%s", base_id);
	}
	if (c->mode == HOTPLUG_VIRTIO_MEM) {
		strv_addf(&s, "-object");
		strv_addf(&s, "memory-backend-file,id=%s-mem,mem-path=%s,size=%" PRIu64 "M,share=on",
			  vmem_id, c->vmem_path, hp >> 20);
		strv_addf(&s, "-device");
		strv_addf(&s, "virtio-mem-pci,id=%s,memdev=%s-mem,block-size=%" PRIu64
			  "M,requested-size=0", vmem_id, vmem_id, block >> 20);
	}
	if (s.oom) {
		hotplug_strv_free(s.v);
		return -ENOMEM;
	}
	*ret_argv = s.v;
	return 0;
}

/* ---- object ------------------------------------------------------------ */

int hotplug_new(struct qmp *q, const struct hotplug_config *c, struct hotplug **ret)
{
	struct hotplug *h;

	if (!q || !c || !ret || (c->mode != HOTPLUG_DIMM && c->mode != HOTPLUG_VIRTIO_MEM))
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->q = q;
	h->mode = c->mode;
	h->vmem_block = c->vmem_block_bytes ? c->vmem_block_bytes : HOTPLUG_SECTION_BYTES;
	h->vmem_max = c->max_bytes > c->base_bytes ? c->max_bytes - c->base_bytes : 0;
	snprintf(h->vmem_id, sizeof(h->vmem_id), "%s", c->vmem_id ? c->vmem_id : "vmem0");
	snprintf(h->vmem_path, sizeof(h->vmem_path), "/machine/peripheral/%s", h->vmem_id);
	pthread_mutex_init(&h->lock, NULL);
	*ret = h;
	return 0;
}

void hotplug_free(struct hotplug *h)
{
	if (!h)
		return;
	pthread_mutex_destroy(&h->lock);
	free(h);
}

const char *hotplug_last_error(struct hotplug *h)
{
	return h->error;
}

/* ---- DIMM -------------------------------------------------------------- */

static bool valid_id(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	return n > 0 && n < 48;
}

int hotplug_dimm_add(struct hotplug *h, const char *id, const char *mem_path, uint64_t bytes,
		     int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)MAX(timeout_ms, 1) * 1000000ull;
	char mem_id[64];
	int r;

	if (!valid_id(id) || !mem_path || bytes == 0 || bytes % HOTPLUG_SECTION_BYTES)
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	h->error[0] = '\0';
	if (h->mode != HOTPLUG_DIMM) {
		set_error(h, "not in DIMM mode");
		r = -EOPNOTSUPP;
		goto out;
	}
	snprintf(mem_id, sizeof(mem_id), "%s-mem", id);
	r = qmp_executef(h->q, cmd_timeout(deadline), NULL, "object-add",
			 "{s:s, s:s, s:s, s:I, s:b}", "qom-type", "memory-backend-file",
			 "id", mem_id, "mem-path", mem_path, "size", (json_int_t)bytes,
			 "share", 1);
	if (r < 0) {
		set_error(h, "object-add %s: %s", mem_id,
			  r == -EIO ? qmp_last_error(h->q) : strerror(-r));
		goto out;
	}
	r = qmp_executef(h->q, cmd_timeout(deadline), NULL, "device_add", "{s:s, s:s, s:s}",
			 "driver", "pc-dimm", "id", id, "memdev", mem_id);
	if (r < 0) {
		set_error(h, "device_add pc-dimm %s: %s", id,
			  r == -EIO ? qmp_last_error(h->q) : strerror(-r));
		/* Undo the backend so that nothing is left behind. */
		(void)qmp_executef(h->q, QMP_CMD_TIMEOUT_MS, NULL, "object-del", "{s:s}", "id",
				   mem_id);
		goto out;
	}
	r = 0;
out:
	pthread_mutex_unlock(&h->lock);
	return r;
}

static const char *ost_status_text(int64_t st)
{
	switch (st) {
	case 0x01: return "non-specific failure";
	case 0x02: return "unrecognized notify code";
	case 0x80: return "ejection not supported by the guest";
	case 0x81: return "device in use by an application";
	case 0x82: return "device busy (memory could not be offlined: not movable or pinned)";
	case 0x83: return "ejection dependency busy";
	case 0x84: return "ejection in progress";
	default: return "unknown status";
	}
}

/*
 * Look at queued ACPI_DEVICE_OST events for an eject of `id`: returns the
 * last status seen (-1 if none). Events about other devices are consumed
 * too; nobody else waits for them.
 */
static int64_t take_eject_status(struct hotplug *h, const char *id)
{
	int64_t status = -1;
	json_t *data = NULL;

	while (qmp_wait_event(h->q, "ACPI_DEVICE_OST", NULL, NULL, 0, &data) == 0) {
		json_t *info = json_object_get(data, "info");
		const char *dev = json_string_value(json_object_get(info, "device"));
		json_int_t src = json_integer_value(json_object_get(info, "source"));

		if (dev && strcmp(dev, id) == 0 && src == OST_SOURCE_EJECT)
			status = json_integer_value(json_object_get(info, "status"));
		json_decref(data);
		data = NULL;
	}
	return status;
}

static bool is_not_found(struct qmp *q)
{
	return strncmp(qmp_last_error(q), "DeviceNotFound", 14) == 0 ||
	       strstr(qmp_last_error(q), "not found") != NULL;
}

int hotplug_dimm_where(struct hotplug *h, const char *id, uint64_t *ret_addr, int *ret_slot)
{
	json_t *list = NULL, *dev;
	size_t i;
	int r;

	pthread_mutex_lock(&h->lock);
	r = qmp_execute(h->q, "query-memory-devices", NULL, QMP_CMD_TIMEOUT_MS, &list);
	pthread_mutex_unlock(&h->lock);
	if (r < 0)
		return r;
	r = -ENOENT;
	json_array_foreach(list, i, dev) {
		json_t *d = json_object_get(dev, "data");
		const char *did = json_string_value(json_object_get(d, "id"));

		if (!did || strcmp(did, id) != 0 ||
		    !json_is_integer(json_object_get(d, "addr")) ||
		    !json_is_integer(json_object_get(d, "slot")))
			continue;
		*ret_addr = (uint64_t)json_integer_value(json_object_get(d, "addr"));
		*ret_slot = (int)json_integer_value(json_object_get(d, "slot"));
		r = 0;
		break;
	}
	json_decref(list);
	return r;
}

int hotplug_dimm_remove(struct hotplug *h, const char *id, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)MAX(timeout_ms, 1) * 1000000ull;
	bool gone = false;
	int64_t last = -1;
	char mem_id[64];
	int r;

	if (!valid_id(id))
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	h->error[0] = '\0';
	if (h->mode != HOTPLUG_DIMM) {
		set_error(h, "not in DIMM mode");
		r = -EOPNOTSUPP;
		goto out;
	}
	snprintf(mem_id, sizeof(mem_id), "%s-mem", id);
	/* Forget stale eject reports about this id. */
	(void)take_eject_status(h, id);
	r = qmp_executef(h->q, cmd_timeout(deadline), NULL, "device_del", "{s:s}", "id", id);
	if (r == -EIO && is_not_found(h->q)) {
		gone = true; /* removed already (e.g. a previous eject completed late) */
	} else if (r < 0) {
		set_error(h, "device_del %s: %s", id,
			  r == -EIO ? qmp_last_error(h->q) : strerror(-r));
		goto out;
	}
	while (!gone) {
		int64_t st;

		r = qmp_wait_event(h->q, "DEVICE_DELETED", "device", id,
				   MIN(SLICE_MS, MAX(left_ms(deadline), 1)), NULL);
		if (r == 0)
			break;
		if (r != -ETIMEDOUT) {
			set_error(h, "waiting for DEVICE_DELETED %s: %s", id, strerror(-r));
			goto out;
		}
		st = take_eject_status(h, id);
		if (st >= 0)
			last = st;
		if (last >= 0 && last != OST_SUCCESS && last != OST_EJECT_IN_PROGRESS) {
			/* Did it go after all, just before the failure report? */
			if (qmp_wait_event(h->q, "DEVICE_DELETED", "device", id, 0, NULL) == 0)
				break;
			set_error(h, "guest refused to eject DIMM %s: ACPI _OST status 0x%" PRIx64
				  " (%s); the DIMM stays plugged", id, (uint64_t)last,
				  ost_status_text(last));
			r = -EBUSY;
			goto out;
		}
		if (left_ms(deadline) == 0) {
			set_error(h, "DIMM %s not released by the guest within %d ms (%s); "
				  "the eject stays pending in the guest (memory in use?) and may "
				  "still complete", id, timeout_ms,
				  last == OST_EJECT_IN_PROGRESS ? "eject in progress" :
								  "no answer from the guest");
			r = -ETIMEDOUT;
			goto out;
		}
	}
	r = qmp_executef(h->q, cmd_timeout(deadline), NULL, "object-del", "{s:s}", "id", mem_id);
	if (r == -EIO && is_not_found(h->q))
		r = 0;
	if (r < 0) {
		set_error(h, "object-del %s: %s", mem_id,
			  r == -EIO ? qmp_last_error(h->q) : strerror(-r));
		goto out;
	}
	r = 0;
out:
	pthread_mutex_unlock(&h->lock);
	return r;
}

/* ---- virtio-mem -------------------------------------------------------- */

static int qom_get_u64(struct hotplug *h, const char *prop, uint64_t *ret)
{
	json_t *v = NULL;
	int r;

	r = qmp_executef(h->q, QMP_CMD_TIMEOUT_MS, &v, "qom-get", "{s:s, s:s}", "path",
			 h->vmem_path, "property", prop);
	if (r < 0)
		return r;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		json_decref(v);
		return -EBADMSG;
	}
	*ret = (uint64_t)json_integer_value(v);
	json_decref(v);
	return 0;
}

static int set_requested(struct hotplug *h, uint64_t bytes)
{
	return qmp_executef(h->q, QMP_CMD_TIMEOUT_MS, NULL, "qom-set", "{s:s, s:s, s:I}", "path",
			    h->vmem_path, "property", "requested-size", "value", (json_int_t)bytes);
}

int hotplug_vmem_query(struct hotplug *h, uint64_t *ret_size, uint64_t *ret_requested)
{
	uint64_t size = 0, req = 0;
	int r;

	if (h->mode != HOTPLUG_VIRTIO_MEM)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&h->lock);
	r = qom_get_u64(h, "size", &size);
	if (r >= 0)
		r = qom_get_u64(h, "requested-size", &req);
	pthread_mutex_unlock(&h->lock);
	if (r < 0)
		return r;
	if (ret_size)
		*ret_size = size;
	if (ret_requested)
		*ret_requested = req;
	return 0;
}

int hotplug_vmem_resize(struct hotplug *h, uint64_t bytes, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)MAX(timeout_ms, 1) * 1000000ull;
	uint64_t size = 0, start = 0;
	int r;

	pthread_mutex_lock(&h->lock);
	h->error[0] = '\0';
	if (h->mode != HOTPLUG_VIRTIO_MEM) {
		set_error(h, "not in virtio-mem mode");
		r = -EOPNOTSUPP;
		goto out;
	}
	if (bytes > h->vmem_max || bytes % h->vmem_block) {
		set_error(h, "size %" PRIu64 " is not a multiple of the block size %" PRIu64
			  " within 0..%" PRIu64, bytes, h->vmem_block, h->vmem_max);
		r = -EINVAL;
		goto out;
	}
	r = qom_get_u64(h, "size", &start);
	if (r >= 0)
		r = set_requested(h, bytes);
	if (r < 0) {
		set_error(h, "qom-set %s requested-size: %s", h->vmem_id,
			  r == -EIO ? qmp_last_error(h->q) : strerror(-r));
		goto out;
	}
	/*
	 * QEMU's MEMORY_DEVICE_SIZE_CHANGE event is rate-limited (one a second
	 * per device), so poll the size instead; a qom-get costs ~100 µs.
	 */
	for (;;) {
		r = qom_get_u64(h, "size", &size);
		if (r < 0) {
			set_error(h, "qom-get %s size: %s", h->vmem_id,
				  r == -EIO ? qmp_last_error(h->q) : strerror(-r));
			goto out;
		}
		if (size == bytes)
			break;
		if (left_ms(deadline) == 0) {
			bool shrink = bytes < start;

			/* Withdraw the rest of the request so the guest stops trying. */
			(void)set_requested(h, size);
			set_error(h, "virtio-mem %s: the guest %s %" PRIu64 " of %" PRIu64
				  " MiB within %d ms (%s); requested-size reset to %" PRIu64 " MiB",
				  h->vmem_id, shrink ? "gave back" : "plugged",
				  (shrink ? start - size : size - start) >> 20,
				  (shrink ? start - bytes : bytes - start) >> 20, timeout_ms,
				  shrink ? "memory in use or not movable?" :
					   "virtio_mem driver not loaded?",
				  size >> 20);
			r = shrink ? -EBUSY : -ETIMEDOUT;
			goto out;
		}
		usleep(2000);
	}
	r = 0;
out:
	pthread_mutex_unlock(&h->lock);
	return r;
}
