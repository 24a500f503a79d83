// SPDX-License-Identifier: MIT
/*
 * Remote disks in a compute migration (vm_disk.h; docs/compute.md,
 * "Disks" and the incoming VM).
 *
 * Source: nothing of its own. Disk N sits at PCI slot 0x18 + N (vm_disk.c
 * plugs it there), the back end keeps QEMU's dirty log (vu_log.h: QEMU
 * migrates no VM whose vhost back end lacks VHOST_F_LOG_ALL), and every
 * request is answered before a ring stops (GET_VRING_BASE), so when QEMU
 * stops the guest at the switchover nothing is in flight and the used
 * rings, which travel as guest memory, are final.
 *
 * A new VM's disks ("disks" of POST /v1/vms) are prepared the same way
 * before its QEMU starts, each volume opened for writing at once, disk N
 * being the Nth of the array unless it names its "id"; a cloud-init seed
 * (vm_boot.c) takes the next free slot, so that the guest finds it after
 * the disks.
 *
 * Destination: each disk of the incoming VM ("disks", as the source's
 * status shows them, with a grant for this node of the next ownership
 * epoch) gets its socket and thread before QEMU starts, and its device is
 * on QEMU's command line with the same id and slot. Its volume is only
 * checked read-only now (nothing is fenced); the first request of the
 * guest, which runs here only once the source stopped, opens it for
 * writing with the newer epoch and so fences the source's handle on the
 * device node (vu_devnode.h, "deferred"). The seed, if the VM has one,
 * is at the source's slot (vm_boot_mig.c reserves it before the disks are
 * prepared, and no disk may take it).
 */
#include "vm_disk_mig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonhttp.h"
#include "log.h"
#include "vm_disk_internal.h"

/* Where a VM's disks come from when they are prepared before QEMU is there or served again. */
enum vm_disk_origin {
	VM_DISK_NEW,                 /* a new VM: "disks" of POST /v1/vms, opened now */
	VM_DISK_INCOMING,            /* a migration's destination: opened at first use */
	VM_DISK_ADOPTED,             /* a restarted agent: the record's, opened now */
};

static int prepare_one(struct vm *vm, json_t *e, size_t pos, enum vm_disk_origin o, char *err,
		       size_t errlen)
{
	static const char *const how[] = { "is on the command line", "comes with the migration",
					   "is served again" };
	bool incoming = o == VM_DISK_INCOMING, named = o != VM_DISK_NEW;
	static const char *const keys[] = { "volume", "devnode", "grant", "read_only", "serial",
					    "outage_ms", "id", "pci", "size", "queues", "socket",
					    NULL };
	const char *id = json_string_value(json_object_get(e, "id"));
	const char *pci = json_string_value(json_object_get(e, "pci"));
	json_t *size = json_object_get(e, "size");
	struct vm_disk_req q;
	struct vm_disk *dk;
	char want[24], why[400];
	unsigned n;
	const char *k;
	int r;

	if (!json_is_object(e)) {
		snprintf(err, errlen, "each of \"disks\" must be an object");
		return -EINVAL;
	}
	if (json_check_keys(e, keys, &k) < 0) {
		snprintf(err, errlen, "disk: unknown member \"%s\"", k);
		return -EINVAL;
	}
	if (!named && !id) {
		n = (unsigned)pos;
		snprintf(want, sizeof(want), "disk%u", n);
		id = want;
	} else if (!id || sscanf(id, "disk%u", &n) != 1 || n >= VM_MAX_DISKS ||
		   snprintf(want, sizeof(want), "disk%u", n) < 0 || strcmp(want, id)) {
		snprintf(err, errlen, "disk: \"id\" must be disk0 to disk%d%s", VM_MAX_DISKS - 1,
			 incoming ? " (the source's)" : "");
		return -EINVAL;
	}
	snprintf(want, sizeof(want), "0000:00:%02x.0", VM_DISK_PCI_SLOT + n);
	if ((named || pci) && (!pci || strcmp(pci, want))) {
		snprintf(err, errlen, "disk %s: \"pci\" must be %s, where the source has it", id,
			 want);
		return -EINVAL;
	}
	r = vm_disk_req_parse(e, &q, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "disk %s: %s", id, why);
		return r;
	}
	dk = &vm->disks->d[n];
	if (vm->disks->reserved & (1u << n)) {
		snprintf(err, errlen, "disk %s: its slot is the cloud-init seed's", id);
		return -EINVAL;
	}
	if (dk->in_use) {
		snprintf(err, errlen, "disk %s is given twice", id);
		return -EINVAL;
	}
	q.deferred = incoming;
	if (o == VM_DISK_ADOPTED && json_is_integer(size) && json_integer_value(size) > 0)
		q.known_size = (uint64_t)json_integer_value(size);
	dk->lfd = dk->stop_efd = -1;
	dk->in_use = true;
	r = vm_disk_open(vm, dk, &q, why, sizeof(why));
	if (r == 0 && size && (!json_is_integer(size) ||
			       (uint64_t)json_integer_value(size) != dk->conf.capacity)) {
		snprintf(why, sizeof(why), "the volume has %llu bytes, the source's disk had %lld",
			 (unsigned long long)dk->conf.capacity, (long long)json_integer_value(size));
		r = -EINVAL;
	}
	if (r == 0)
		r = vm_disk_start(vm, dk, n, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "disk %s (volume %s): %s", id, q.volume, why);
		return r;   /* vm_disk_ext.free releases it with the VM */
	}
	log_info("vm %s: %s (volume %s of %s) %s", vm->spec.name, dk->id, dk->volume, dk->devnode,
		 how[o]);
	return 0;
}

static int prepare_as(struct vm *vm, json_t *disks, enum vm_disk_origin o, char *err,
		      size_t errlen)
{
	size_t i;
	json_t *e;

	if (!disks)
		return 0;
	if (!json_is_array(disks) || json_array_size(disks) > VM_MAX_DISKS) {
		snprintf(err, errlen, "\"disks\" must be an array of at most %d disks", VM_MAX_DISKS);
		return -EINVAL;
	}
	if (!vm->disks && !(vm->disks = calloc(1, sizeof(*vm->disks))))
		return -ENOMEM;
	json_array_foreach(disks, i, e) {
		int r = prepare_one(vm, e, i, o, err, errlen);

		if (r < 0)
			return r;
	}
	vm_disk_record(vm, false);   /* vm.json has it once QEMU is spawned */
	return 0;
}

int vm_disk_prepare(struct vm *vm, json_t *disks, bool incoming, char *err, size_t errlen)
{
	return prepare_as(vm, disks, incoming ? VM_DISK_INCOMING : VM_DISK_NEW, err, errlen);
}

/* A comma in a QEMU option value is written twice. */
static char *opt_escape(const char *s)
{
	char *o = malloc(2 * strlen(s) + 1), *p = o;

	for (; o && *s; s++) {
		*p++ = *s;
		if (*s == ',')
			*p++ = ',';
	}
	if (o)
		*p = '\0';
	return o;
}

int vm_disk_seed_slot(struct vm *vm)
{
	if (!vm->disks && !(vm->disks = calloc(1, sizeof(*vm->disks))))
		return -ENOMEM;
	for (unsigned i = 0; i < VM_MAX_DISKS; i++)
		if (!vm->disks->d[i].in_use && !(vm->disks->reserved & (1u << i))) {
			vm->disks->reserved |= 1u << i;
			vm_disk_record(vm, false);
			return (int)(VM_DISK_PCI_SLOT + i);
		}
	return -ENOSPC;
}

/* The slot reserved for the seed, or -ENOENT. */
static int seed_slot(struct vm *vm)
{
	for (unsigned i = 0; vm->disks && i < VM_MAX_DISKS; i++)
		if (vm->disks->reserved & (1u << i))
			return (int)(VM_DISK_PCI_SLOT + i);
	return -ENOENT;
}

int vm_disk_seed_slot_at(struct vm *vm, const char *pci)
{
	unsigned slot, i;
	char back[24];

	if (!pci || sscanf(pci, "0000:00:%2x.0", &slot) != 1 || slot < VM_DISK_PCI_SLOT ||
	    (i = slot - VM_DISK_PCI_SLOT) >= VM_MAX_DISKS ||
	    snprintf(back, sizeof(back), "0000:00:%02x.0", slot) < 0 || strcmp(back, pci))
		return -EINVAL;
	if (!vm->disks && !(vm->disks = calloc(1, sizeof(*vm->disks))))
		return -ENOMEM;
	if (vm->disks->d[i].in_use || vm->disks->reserved)
		return -EBUSY;
	vm->disks->reserved |= 1u << i;
	vm_disk_record(vm, false);
	return 0;
}

int vm_disk_seed_pci(struct vm *vm, char *ret, size_t n)
{
	int slot = seed_slot(vm);

	if (slot < 0)
		return slot;
	snprintf(ret, n, "0000:00:%02x.0", (unsigned)slot);
	return 0;
}

/* The read-only cloud-init seed, a local virtio disk (vm_boot.c). */
static void seed_args(struct vm *vm, char **v, unsigned *n)
{
	int slot = seed_slot(vm);
	char *path;

	if (!vm->spec.seed[0] || slot < 0)
		return;
	path = opt_escape(vm->spec.seed);
	v[(*n)++] = strdup("-drive");
	if (!path || asprintf(&v[(*n)++], "file=%s,if=none,id=seed,format=raw,readonly=on",
			      path) < 0)
		v[*n - 1] = NULL;
	free(path);
	v[(*n)++] = strdup("-device");
	if (asprintf(&v[(*n)++], "virtio-blk-pci,id=seed-dev,drive=seed,addr=0x%x",
		     (unsigned)slot) < 0)
		v[*n - 1] = NULL;
}

/* vm_disk_mig_ext.qemu_args: the disks there are before QEMU starts, on its command line. */
static int disk_qemu_args(struct vm *vm, char ***ret_argv)
{
	unsigned n = 0;
	char **v;

	*ret_argv = NULL;
	if (!vm->disks)
		return 0;
	v = calloc(4 * VM_MAX_DISKS + 5, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (unsigned i = 0; i < VM_MAX_DISKS; i++) {
		const struct vm_disk *dk = &vm->disks->d[i];
		char *path;

		if (!dk->in_use)
			continue;
		path = opt_escape(dk->sock);
		v[n++] = strdup("-chardev");
		/* reconnect: a restarted agent serves the disk again (vm_disk.c). */
		if (!path || asprintf(&v[n++], "socket,id=chr-%s,path=%s,reconnect=1", dk->id,
				      path) < 0)
			v[n - 1] = NULL;
		free(path);
		v[n++] = strdup("-device");
		/* Booting through the firmware: it boots the first disk's own boot loader. */
		if (asprintf(&v[n++], "vhost-user-blk-pci,id=%s,chardev=chr-%s,num-queues=%u,addr=0x%x%s",
			     dk->id, dk->id, dk->conf.num_queues, VM_DISK_PCI_SLOT + i,
			     vm->spec.firmware && i == 0 ? ",bootindex=0" : "") < 0)
			v[n - 1] = NULL;
	}
	seed_args(vm, v, &n);
	for (unsigned i = 0; i < n; i++)
		if (!v[i]) {
			for (unsigned k = 0; k < n; k++)
				free(v[k]);
			free(v);
			return -ENOMEM;
		}
	*ret_argv = v;
	return 0;
}

/*
 * vm_ext_ops.adopt: the disks of the record are served again. Each socket
 * listens where it did; QEMU's chardev (reconnect=1) connects within a
 * second and starts the device again, handing back the in-flight logs
 * (vu_blk.h), so what the earlier agent took and never answered is sent
 * to the device node again. The volume is opened for writing at once: the
 * takeover fences the earlier agent's handle, which the device node may
 * still hold.
 */
static int disk_adopt(struct vm *vm, json_t *rec, char *err, size_t errlen)
{
	json_t *disks = json_object_get(rec, "disks");
	json_t *res = json_object_get(rec, "disk_slots_reserved");
	int r;

	if (res && (!json_is_integer(res) || json_integer_value(res) < 0 ||
		    json_integer_value(res) >= 1 << VM_MAX_DISKS)) {
		snprintf(err, errlen, "bad \"disk_slots_reserved\" in the record");
		return -EINVAL;
	}
	if (!disks && !res)
		return 0;
	pthread_mutex_lock(&vm->hot_lock);
	r = prepare_as(vm, disks, VM_DISK_ADOPTED, err, errlen);
	if (r == 0 && res && !vm->disks && !(vm->disks = calloc(1, sizeof(*vm->disks))))
		r = -ENOMEM;
	if (r == 0 && res) {
		vm->disks->reserved = (unsigned)json_integer_value(res);
		vm_disk_record(vm, false);
	}
	pthread_mutex_unlock(&vm->hot_lock);
	return r;
}

const struct vm_ext_ops vm_disk_mig_ext = {
	.name = "disk-migration",
	.qemu_args = disk_qemu_args,
	.adopt = disk_adopt,
};
