// SPDX-License-Identifier: MIT
/*
 * Remote disks of a running VM (vm_disk.h).
 *
 * Attach: open the volume on the device node with the grant (the storage
 * back end, vu_devnode.h), listen on DIR/disk-ID.sock, start the disk's
 * thread, then ask QEMU for chardev-add (QEMU connects at once; the thread
 * accepts and serves the vhost-user messages of the realize that follows)
 * and device_add vhost-user-blk-pci. The guest sees a PCI hot-plug and its
 * virtio_blk driver takes the disk. Detach: device_del, DEVICE_DELETED once
 * the guest let go, chardev-remove, then the thread stops (after the
 * requests in flight are answered) and the volume is closed.
 *
 * Guest memory: the back end maps QEMU's RAM files, and the VM's pager
 * serves each of those mappings as an alias of QEMU's (vm_guestmem.h): an
 * unfetched remote page is fetched, a disk read into guest memory is a
 * write the pager sees. So disks and remote memory mix freely.
 *
 * One QMP user at a time: attach and detach hold the VM's hot_lock, as
 * the other hot-plug operations do.
 */
#include "vm_disk.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dnclient.h"
#include "ext.h"
#include "grant.h"
#include "jsonhttp.h"
#include "log.h"
#include "macro.h"
#include "net.h"
#include "persist.h"
#include "qmp.h"
#include "state.h"
#include "vm_internal.h"
#include "vu_blk.h"
#include "vu_devnode.h"
#include "vm_disk_internal.h"
#include "vm_guestmem.h"
#include "thread.h"

/* ---- the disk's thread -------------------------------------------------------- */

static void *disk_main(void *arg)
{
	struct vm_disk *dk = arg;

	thread_name("vm-disk");
	while (!__atomic_load_n(&dk->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p[2] = { { .fd = dk->lfd, .events = POLLIN },
				       { .fd = dk->stop_efd, .events = POLLIN } };
		struct vu_blk *dev;
		int fd, r;

		if (poll(p, 2, -1) < 0 || p[1].revents)
			continue;
		fd = accept4(dk->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (vu_blk_new(fd, &dk->conf, &vu_devnode_ops, dk->store, &dev) < 0) {
			close(fd);
			continue;
		}
		pthread_mutex_lock(&dk->mu);
		dk->dev = dev;
		if (dk->stop)
			vu_blk_stop(dev);
		pthread_mutex_unlock(&dk->mu);
		r = vu_blk_run(dev);
		if (r < 0)
			log_warn("disk %s: the vhost-user connection ended: %s", dk->id, strerror(-r));
		pthread_mutex_lock(&dk->mu);
		dk->dev = NULL;
		pthread_mutex_unlock(&dk->mu);
		vu_blk_free(dev);
	}
	return NULL;
}

void vm_disk_release(struct vm_disk *dk)
{
	uint64_t one = 1;

	if (dk->thread_on) {
		pthread_mutex_lock(&dk->mu);
		__atomic_store_n(&dk->stop, true, __ATOMIC_RELEASE);
		if (dk->dev)
			vu_blk_stop(dk->dev);
		pthread_mutex_unlock(&dk->mu);
		(void)!write(dk->stop_efd, &one, sizeof(one));
		pthread_join(dk->thread, NULL);
		dk->thread_on = false;
	}
	if (dk->lfd >= 0)
		close(dk->lfd);
	if (dk->stop_efd >= 0)
		close(dk->stop_efd);
	(void)unlink(dk->sock);
	vu_devnode_free(dk->store);
	pthread_mutex_destroy(&dk->mu);
	memset(dk, 0, sizeof(*dk));
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 2) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* ---- attach and detach ------------------------------------------------------------ */

int vm_disk_req_parse(json_t *j, struct vm_disk_req *q, char *err, size_t errlen)
{
	json_t *o = json_object_get(j, "outage_ms"), *ro = json_object_get(j, "read_only");

	*q = (struct vm_disk_req){ .outage_ms = -1 };
	q->volume = json_string_value(json_object_get(j, "volume"));
	q->devnode = json_string_value(json_object_get(j, "devnode"));
	q->grant_hex = json_string_value(json_object_get(j, "grant"));
	q->serial = json_string_value(json_object_get(j, "serial"));
	q->readonly = json_is_true(ro);
	if (!q->volume || dnc_name_check(q->volume) < 0 || !q->devnode || !q->grant_hex ||
	    (q->serial && strlen(q->serial) > 20) ||
	    (json_object_get(j, "serial") && !json_is_string(json_object_get(j, "serial")))) {
		snprintf(err, errlen, "\"volume\" (a volume name), \"devnode\" (HOST:PORT) and "
			 "\"grant\" are required; \"serial\" is at most 20 characters");
		return -EINVAL;
	}
	if (ro && !json_is_boolean(ro)) {
		snprintf(err, errlen, "\"read_only\" must be a boolean");
		return -EINVAL;
	}
	if (o && (!json_is_integer(o) || json_integer_value(o) < 0 ||
		  json_integer_value(o) > 86400000)) {
		snprintf(err, errlen, "\"outage_ms\" must be an integer from 0 to 86400000");
		return -EINVAL;
	}
	if (o)
		q->outage_ms = json_integer_value(o);
	return 0;
}

int vm_disk_open(struct vm *vm, struct vm_disk *dk, const struct vm_disk_req *q, char *err,
		 size_t errlen)
{
	struct vu_devnode_conf dc = {
		.conn = { .addr = q->devnode, .key = vm->env.key, .node_id = vm->env.node_id,
			  .timeout_ms = 5000 },
		.volume = q->volume, .readonly = q->readonly,
		.outage_ms = q->outage_ms >= 0 ? (unsigned)q->outage_ms : 30000,
		.deferred = q->deferred, .known_size = q->known_size,
	};
	int r;

	if (grant_from_hex(q->grant_hex, &dc.grant) < 0) {
		snprintf(err, errlen, "\"grant\" is not a grant (%u hex digits)",
			 (unsigned)GRANT_HEX_LEN);
		return -EINVAL;
	}
	r = vu_devnode_new(&dc, &dk->store, &dk->conf.capacity);
	if (r < 0) {
		snprintf(err, errlen, "device node %s, volume %s: %s", q->devnode, q->volume,
			 strerror(-r));
		return r;
	}
	snprintf(dk->volume, sizeof(dk->volume), "%s", q->volume);
	snprintf(dk->devnode, sizeof(dk->devnode), "%s", q->devnode);
	snprintf(dk->serial, sizeof(dk->serial), "%s", q->serial ? q->serial : q->volume);
	dk->readonly = q->readonly;
	dk->outage_ms = q->outage_ms;
	dk->conf.readonly = q->readonly;
	/* A queue per vCPU (the guest's blk-mq maps them), served by the disk's one thread. */
	dk->conf.num_queues = MAX(1u, MIN(vm->spec.vcpus, VU_BLK_MAX_QUEUES));
	dk->conf.serial = dk->serial;
	dk->conf.discard = dk->conf.write_zeroes = true;
	dk->conf.mem_ops = &vm_guestmem_ops;
	dk->conf.mem_opaque = vm;
	return 0;
}

int vm_disk_start(struct vm *vm, struct vm_disk *dk, unsigned idx, char *err, size_t errlen)
{
	int r;

	snprintf(dk->id, sizeof(dk->id), "disk%u", idx);
	if ((size_t)snprintf(dk->sock, sizeof(dk->sock), "%s/%s.sock", vm->dir, dk->id) >=
	    sizeof(dk->sock)) {
		snprintf(err, errlen, "the VM's directory is too long for a socket");
		return -ENAMETOOLONG;
	}
	pthread_mutex_init(&dk->mu, NULL);
	dk->lfd = listen_unix(dk->sock);
	dk->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (dk->lfd < 0 || dk->stop_efd < 0) {
		snprintf(err, errlen, "cannot listen on %s", dk->sock);
		return dk->lfd < 0 ? dk->lfd : -errno;
	}
	r = -pthread_create(&dk->thread, NULL, disk_main, dk);
	if (r < 0) {
		snprintf(err, errlen, "cannot start the disk's thread");
		return r;
	}
	dk->thread_on = true;
	return 0;
}

static int qmp_plug(struct vm *vm, struct vm_disk *dk, char *err, size_t errlen)
{
	char chr[24], addr[8];
	int r;

	snprintf(chr, sizeof(chr), "chr-%s", dk->id);
	/* A fixed slot: a migration's destination puts the device at the same address. */
	snprintf(addr, sizeof(addr), "0x%x", VM_DISK_PCI_SLOT + (unsigned)(dk - vm->disks->d));
	/* reconnect: QEMU connects again to a restarted agent (adoption) every second. */
	r = qmp_executef(vm->qmp, QMP_MS, NULL, "chardev-add",
			 "{s:s, s:{s:s, s:{s:{s:s, s:{s:s}}, s:b, s:i}}}", "id", chr, "backend",
			 "type", "socket", "data", "addr", "type", "unix", "data", "path", dk->sock,
			 "server", 0, "reconnect", 1);
	if (r == 0)
		r = qmp_executef(vm->qmp, QMP_MS, NULL, "device_add", "{s:s, s:s, s:s, s:i, s:s}",
				 "driver", "vhost-user-blk-pci", "id", dk->id, "chardev", chr,
				 "num-queues", (int)dk->conf.num_queues, "addr", addr);
	if (r < 0) {
		snprintf(err, errlen, "QEMU: %s", r == -EIO ? qmp_last_error(vm->qmp) : strerror(-r));
		(void)qmp_executef(vm->qmp, QMP_MS, NULL, "chardev-remove", "{s:s}", "id", chr);
	}
	return r;
}

static int qmp_unplug(struct vm *vm, struct vm_disk *dk, char *err, size_t errlen)
{
	char chr[24];
	int r;

	snprintf(chr, sizeof(chr), "chr-%s", dk->id);
	qmp_clear_events(vm->qmp);
	r = qmp_executef(vm->qmp, QMP_MS, NULL, "device_del", "{s:s}", "id", dk->id);
	if (r == 0)
		r = qmp_wait_event(vm->qmp, "DEVICE_DELETED", "device", dk->id, DETACH_MS, NULL);
	if (r < 0) {
		snprintf(err, errlen, "QEMU did not let go of %s: %s", dk->id,
			 r == -EIO ? qmp_last_error(vm->qmp) : strerror(-r));
		return r;
	}
	r = qmp_executef(vm->qmp, QMP_MS, NULL, "chardev-remove", "{s:s}", "id", chr);
	if (r < 0)
		log_warn("vm %s: chardev-remove %s: %s", vm->spec.name, chr, qmp_last_error(vm->qmp));
	return 0;
}

static json_t *disk_json(const struct vm *vm, const struct vm_disk *dk)
{
	char pci[24];
	json_t *j;

	snprintf(pci, sizeof(pci), "0000:00:%02x.0",
		 VM_DISK_PCI_SLOT + (unsigned)(dk - vm->disks->d));
	j = json_pack("{s:s, s:s, s:s, s:I, s:b, s:s, s:s, s:i, s:s}", "id", dk->id, "volume",
		      dk->volume, "devnode", dk->devnode, "size", (json_int_t)dk->conf.capacity,
		      "read_only", dk->readonly, "serial", dk->serial, "socket", dk->sock, "queues",
		      (int)dk->conf.num_queues, "pci", pci);
	if (j && dk->outage_ms >= 0)
		json_object_set_new(j, "outage_ms", json_integer(dk->outage_ms));
	return j;
}

void vm_disk_record(struct vm *vm, bool persist)
{
	json_t *a = json_array();
	unsigned reserved = vm->disks ? vm->disks->reserved : 0;

	for (unsigned i = 0; a && vm->disks && i < VM_MAX_DISKS; i++) {
		struct vm_disk *dk = &vm->disks->d[i];
		char hex[GRANT_HEX_LEN + 1];
		struct proto_grant g;
		json_t *e;

		if (!dk->in_use || !dk->store)
			continue;
		vu_devnode_grant(dk->store, &g);
		grant_to_hex(&g, hex);
		e = disk_json(vm, dk);
		if (e)
			json_object_set_new(e, "grant", json_string(hex));
		json_array_append_new(a, e);
		explicit_bzero(hex, sizeof(hex));
	}
	pthread_mutex_lock(&vm->lock);
	vm_ext_record_set(vm, "disks", a && json_array_size(a) ? a : NULL);
	vm_ext_record_set(vm, "disk_slots_reserved", reserved ? json_integer(reserved) : NULL);
	if (a && !json_array_size(a))
		json_decref(a);
	if (persist)
		(void)vm_persist_locked(vm);
	pthread_mutex_unlock(&vm->lock);
}

static int attach(struct vm *vm, const struct vm_disk_req *q, json_t **ret, char *err,
		  size_t errlen)
{
	struct vm_disk *dk = NULL;
	unsigned idx;
	int r;

	if (!vm->disks && !(vm->disks = calloc(1, sizeof(*vm->disks))))
		return -ENOMEM;
	for (idx = 0; idx < VM_MAX_DISKS && !dk; idx++)
		if (!vm->disks->d[idx].in_use && !(vm->disks->reserved & (1u << idx)))
			dk = &vm->disks->d[idx];
	if (!dk) {
		snprintf(err, errlen, "the VM has %d disks already", VM_MAX_DISKS);
		return -ENOSPC;
	}
	idx--;
	for (unsigned i = 0; i < VM_MAX_DISKS; i++)
		if (vm->disks->d[i].in_use && !strcmp(vm->disks->d[i].volume, q->volume)) {
			snprintf(err, errlen, "volume %s is attached already (%s)", q->volume,
				 vm->disks->d[i].id);
			return -EEXIST;
		}
	dk->lfd = dk->stop_efd = -1;
	dk->in_use = true;
	r = vm_disk_open(vm, dk, q, err, errlen);
	if (r == 0)
		r = vm_disk_start(vm, dk, idx, err, errlen);
	if (r == 0)
		r = qmp_plug(vm, dk, err, errlen);
	if (r < 0) {
		vm_disk_release(dk);
		return r;
	}
	log_info("vm %s: volume %s of %s attached as %s (%llu MiB)", vm->spec.name, dk->volume,
		 dk->devnode, dk->id, (unsigned long long)(dk->conf.capacity >> 20));
	vm_disk_record(vm, true);   /* a restarted agent serves it again */
	*ret = disk_json(vm, dk);
	return 0;
}

static struct vm_disk *disk_find(struct vm *vm, const char *id)
{
	for (unsigned i = 0; vm->disks && i < VM_MAX_DISKS; i++)
		if (vm->disks->d[i].in_use && !strcmp(vm->disks->d[i].id, id))
			return &vm->disks->d[i];
	return NULL;
}

/* ---- HTTP ---------------------------------------------------------------------------- */

static bool begin(struct vm *vm, struct http_resp *resp)
{
	pthread_mutex_lock(&vm->hot_lock);
	if (vm_get_state(vm) == VM_RUNNING && vm->qmp)
		return true;
	http_resp_error(resp, 409, "not_running", "VM is %s", vm_state_name(vm_get_state(vm)));
	pthread_mutex_unlock(&vm->hot_lock);
	return false;
}

static void h_attach(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "volume", "devnode", "grant", "read_only", "serial",
					    "outage_ms", NULL };
	struct vm_disk_req q;
	json_t *j = http_json_args(req, resp, keys), *out = NULL;
	char err[512] = "";
	int r;

	if (!j)
		return;
	if (vm_disk_req_parse(j, &q, err, sizeof(err)) < 0) {
		http_resp_error(resp, 400, "bad_request", "%s", err);
		json_decref(j);
		return;
	}
	if (!begin(vm, resp)) {
		json_decref(j);
		return;
	}
	r = attach(vm, &q, &out, err, sizeof(err));
	pthread_mutex_unlock(&vm->hot_lock);
	json_decref(j);
	if (r < 0)
		http_resp_error(resp, r == -EINVAL ? 400 : r == -ENOSPC || r == -EEXIST ? 409 : 502,
				"attach_failed", "%s", err);
	else
		http_resp_json(resp, 201, out);
}

static void h_detach(struct vm *vm, const char *id, struct http_resp *resp)
{
	struct vm_disk *dk;
	char err[512] = "";
	int r;

	if (!begin(vm, resp))
		return;
	dk = disk_find(vm, id);
	if (!dk) {
		pthread_mutex_unlock(&vm->hot_lock);
		http_resp_error(resp, 404, "not_found", "no disk %s", id);
		return;
	}
	r = qmp_unplug(vm, dk, err, sizeof(err));
	if (r == 0) {
		log_info("vm %s: %s (volume %s) detached", vm->spec.name, dk->id, dk->volume);
		vm_disk_release(dk);
		vm_disk_record(vm, true);
	}
	pthread_mutex_unlock(&vm->hot_lock);
	if (r < 0)
		http_resp_error(resp, 504, "detach_failed", "%s", err);
	else
		http_resp_json(resp, 200, json_pack("{s:s}", "detached", id));
}

static json_t *disks_json(struct vm *vm)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && vm->disks && i < VM_MAX_DISKS; i++)
		if (vm->disks->d[i].in_use)
			json_array_append_new(a, disk_json(vm, &vm->disks->d[i]));
	return a;
}

void vm_disk_http(struct vm *vm, const char *rest, const struct http_req *req,
		  struct http_resp *resp)
{
	if (!*rest && !strcmp(req->method, "POST")) {
		h_attach(vm, req, resp);
	} else if (!*rest && !strcmp(req->method, "GET")) {
		json_t *a;

		pthread_mutex_lock(&vm->hot_lock);
		a = disks_json(vm);
		pthread_mutex_unlock(&vm->hot_lock);
		http_resp_json(resp, 200, json_pack("{s:o}", "disks", a));
	} else if (rest[0] == '/' && rest[1] && !strcmp(req->method, "DELETE")) {
		h_detach(vm, rest + 1, resp);
	} else {
		http_resp_error(resp, 405, "method_not_allowed",
				"use GET or POST .../disks, DELETE .../disks/ID");
	}
}

bool vm_disk_busy(struct vm *vm)
{
	for (unsigned i = 0; vm->disks && i < VM_MAX_DISKS; i++)
		if (vm->disks->d[i].in_use)
			return true;
	return false;
}

int vm_disk_grant(struct vm *vm, const struct proto_grant *g, bool apply)
{
	for (unsigned i = 0; vm->disks && i < VM_MAX_DISKS; i++) {
		struct vm_disk *dk = &vm->disks->d[i];
		struct proto_grant cur;

		if (!dk->in_use)
			continue;
		vu_devnode_grant(dk->store, &cur);
		if (cur.memnode_id != g->memnode_id || cur.section != g->section ||
		    cur.generation != g->generation)
			continue;
		if (g->epoch < cur.epoch)
			return -ESTALE;
		if (apply) {
			vu_devnode_set_grant(dk->store, g);
			vm_disk_record(vm, false);   /* the caller writes vm.json */
		}
		return 1;
	}
	return 0;
}

/* ---- the lifecycle's hooks ------------------------------------------------------------ */

static void disk_status(struct vm *vm, json_t *j)
{
	/* A status never waits for a hot-plug operation: it shows the disks when it can. */
	if (pthread_mutex_trylock(&vm->hot_lock) != 0)
		return;
	if (vm_disk_busy(vm))
		json_object_set_new(j, "disks", disks_json(vm));
	pthread_mutex_unlock(&vm->hot_lock);
}

/* vm_ext_ops.free: the threads stop and the volumes close (QEMU goes after). */
static void disk_free(struct vm *vm)
{
	for (unsigned i = 0; vm->disks && i < VM_MAX_DISKS; i++)
		if (vm->disks->d[i].in_use)
			vm_disk_release(&vm->disks->d[i]);
	free(vm->disks);
	vm->disks = NULL;
}

const struct vm_ext_ops vm_disk_ext = {
	.name = "disk",
	.status = disk_status,
	.free = disk_free,
};
