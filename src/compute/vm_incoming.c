// SPDX-License-Identifier: MIT
/*
 * Compute migration, destination side (vm_incoming_start): the hot
 * sections of the source are set up first (pc-dimm: one file and one
 * -object/-device pair each on the command line; virtio-mem: the sections
 * are assigned after QEMU's realize discarded the device), QEMU starts
 * with -incoming defer, x-ignore-shared and events are enabled and
 * migrate-incoming listens. A thread waits for the MIGRATION event:
 * completed -> running, guest channel connected and resynchronised;
 * failed -> failed. An incoming VM never frees sections: free_on_release
 * is suspended until the migration completed. Shared regions come along
 * (vm_shared_mig.c): recorded before QEMU starts, their devices on its
 * command line, mapped and attached before migrate-incoming. So do remote
 * disks (vm_disk_mig.c): their back ends listen before QEMU starts. A VM
 * booting an image's own kernel (no disagg-guest) gets no guest channel.
 */
#include "vm_incoming.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "guestchan.h"
#include "log.h"
#include "mappings.h"
#include "net.h"
#include "persist.h"
#include "ramfile.h"
#include "section_check.h"
#include "state.h"
#include "vm.h"
#include "vm_disk_mig.h"
#include "vm_migrate.h"
#include "vm_shared_mig.h"
#include "thread.h"

static bool split_host_port(const char *s, char *host, size_t hlen, unsigned *ret_port)
{
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;

	if (!colon || colon == s || (size_t)(colon - s) >= hlen)
		return false;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || port > 65535)
		return false;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (strpbrk(host, ", \t\n"))
		return false;
	*ret_port = (unsigned)port;
	return true;
}

/* vm_incoming_ext.qemu_args: -incoming defer and the source's DIMMs. */
static int incoming_qemu_args(struct vm *vm, char ***ret_argv)
{
	struct vm_mig *m = vm->mig;
	unsigned cap = 3 + 4 * (m ? m->nhot_order : 0) + 4 * VM_MAX_SHARED, n = 0;
	int r;
	char **v;

	*ret_argv = NULL;
	if (!vm->spec.incoming)
		return 0;
	v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v[n++] = strdup("-incoming");
	v[n++] = strdup("defer");
	for (unsigned i = 0; m && i < m->nhot_order && vm->spec.hotplug == VM_HOTPLUG_DIMM; i++) {
		const struct vm_hot *h = &vm->hot[m->hot_order[i]];

		v[n++] = strdup("-object");
		if (asprintf(&v[n++], "memory-backend-file,id=%s-mem,mem-path=%s,size=%llu,share=on",
			     h->id, h->path, (unsigned long long)vm->env.section_size) < 0)
			v[n - 1] = NULL;
		v[n++] = strdup("-device");
		/* The source's address and slot: QEMU checks the first, ACPI state the second. */
		if ((h->gpa ? asprintf(&v[n++], "pc-dimm,id=%s,memdev=%s-mem,addr=%#llx,slot=%d",
				       h->id, h->id, (unsigned long long)h->gpa, h->slot)
			    : asprintf(&v[n++], "pc-dimm,id=%s,memdev=%s-mem", h->id, h->id)) < 0)
			v[n - 1] = NULL;
	}
	r = vm_shared_mig_qemu_args(vm, v, &n);
	for (unsigned i = 0; i < n; i++)
		if (r < 0 || !v[i]) {
			for (unsigned k = 0; k < n; k++)
				free(v[k]);
			free(v);
			return r < 0 ? r : -ENOMEM;
		}
	*ret_argv = v;
	return 0;
}

/* Give the suspended free_on_release flags back (lock held). */
static void restore_free_flags(struct vm *vm, struct vm_mig *m)
{
	for (unsigned i = 0; i < vm->spec.nbase; i++)
		vm->spec.base[i].free_on_release = m->base_free[i];
	for (unsigned i = 0; i < vm->nhot; i++)
		if (vm->hot[i].in_use)
			vm->hot[i].sec.free_on_release = m->hot_free[i];
	for (unsigned i = 0; vm->vmem_secs && i < vm->vmem_plugged; i++)
		vm->vmem_secs[i].free_on_release = m->hot_free[i];
}

/*
 * Connect to the guest channel of the incoming QEMU. Done before the guest
 * arrives, so that its first line after the switchover finds a reader (a
 * guest writes to an unconnected port block).
 */
static int guest_open(struct vm *vm, struct vm_mig *m, struct guestchan **ret)
{
	char path[PATH_MAX];
	int r;

	snprintf(path, sizeof(path), "%s/guest.sock", vm->dir);
	r = guestchan_connect(path, 5000, ret);
	if (r < 0)
		return r;
	guestchan_set_callback(*ret, vm_mig_on_guest_line, m);
	/* Answers to commands the source sent may still come: drop them. */
	guestchan_resync(*ret);
	return 0;
}

/* The migration arrived: the guest runs here now. */
static void incoming_done(struct vm *vm, struct vm_mig *m)
{
	struct guestchan *g = TAKE_PTR(m->early_guest);
	char line[512];
	uint64_t kb = 0;
	int r = 0;

	if (!g && !vm->spec.no_guest)   /* an image's own kernel runs no disagg-guest */
		r = guest_open(vm, m, &g);
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_INCOMING) {
		restore_free_flags(vm, m);
		vm->guest = g;
		g = NULL;
		vm->state = VM_RUNNING;
		m->incoming_ms = (int64_t)((now_ns() - m->incoming_ns) / 1000000);
		(void)vm_persist_locked(vm);
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
	guestchan_close(g);
	if (r < 0)
		log_warn("vm %s: migration arrived but the guest channel did not connect: %s",
			 vm->spec.name, strerror(-r));
	else if (vm->guest && guestchan_cmd(vm->guest, 3000, line, sizeof(line), "MEMINFO") >= 0 &&
		 guestchan_field_u64(line, "memtotal_kb", &kb) >= 0) {
		pthread_mutex_lock(&vm->lock);
		vm->guest_memtotal_kb = kb;
		pthread_mutex_unlock(&vm->lock);
	}
	log_info("vm %s: incoming migration completed, running here (%lld ms after listen)",
		 vm->spec.name, (long long)m->incoming_ms);
}

static void incoming_failed(struct vm *vm, const char *why)
{
	enum vm_state s;

	log_error("vm %s: incoming migration failed: %s", vm->spec.name, why);
	(void)vm_stop(vm, 5000);
	pthread_mutex_lock(&vm->lock);
	s = vm->state;
	if (s == VM_INCOMING || s == VM_STOPPED || s == VM_STOPPING)
		vm_set_failed(vm, "incoming migration failed: %s", why);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

/* Wait until the supervisor has seen QEMU exit (or timeout_ms). */
static void wait_exit(struct vm *vm, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;

	pthread_mutex_lock(&vm->lock);
	while (!vm->exited && now_ns() < deadline) {
		pthread_mutex_unlock(&vm->lock);
		usleep(10000);
		pthread_mutex_lock(&vm->lock);
	}
	pthread_mutex_unlock(&vm->lock);
}

static void *incoming_main(void *arg)
{
	struct vm *vm = arg;
	struct vm_mig *m = vm->mig;

	thread_name("vm-incoming");
	while (!atomic_load(&m->stop)) {
		json_t *data = NULL, *info = NULL;
		const char *st;
		char why[512];
		int r;

		r = qmp_wait_event(vm->qmp, "MIGRATION", NULL, NULL, MIG_EVENT_MS, &data);
		if (r == -ETIMEDOUT)
			continue;
		if (r < 0) {
			/* QEMU is gone: the supervisor records why (the sections are kept). */
			wait_exit(vm, 5000);
			if (vm_get_state(vm) == VM_INCOMING) {
				snprintf(why, sizeof(why), "QMP: %s", strerror(-r));
				incoming_failed(vm, why);
			}
			return NULL;
		}
		st = jstr(data, "status");
		if (strcmp(st, "completed") == 0) {
			json_decref(data);
			incoming_done(vm, m);
			return NULL;
		}
		if (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0) {
			snprintf(why, sizeof(why), "status %s", st);
			if (vm_mig_query(vm->qmp, &info) >= 0 && *jstr(info, "error-desc"))
				snprintf(why, sizeof(why), "%s", jstr(info, "error-desc"));
			json_decref(info);
			json_decref(data);
			incoming_failed(vm, why);
			return NULL;
		}
		json_decref(data);
	}
	return NULL;
}

/* Record the source's hot sections before QEMU starts (they go on its command line). */
static int incoming_hot(struct vm *vm, struct vm_mig *m, const struct vm_hot_in *hot,
			unsigned nhot, char *err, size_t errlen)
{
	for (unsigned i = 0; i < nhot; i++) {
		unsigned idx = hot[i].index;
		char leaf[32];
		int r;

		if (idx >= vm->spec.max_hot) {
			snprintf(err, errlen, "hot section index %u: the VM has %u hotplug slots", idx,
				 vm->spec.max_hot);
			return -EINVAL;
		}
		if (vm->spec.hotplug == VM_HOTPLUG_VIRTIO_MEM) {
			if (idx != i) {
				snprintf(err, errlen,
					 "virtio-mem hot sections must be indexes 0..%u in order", nhot - 1);
				return -EINVAL;
			}
			m->hot_free[i] = hot[i].sec.free_on_release;
			continue;
		}
		if (vm->hot[idx].in_use) {
			snprintf(err, errlen, "hot section index %u given twice", idx);
			return -EINVAL;
		}
		snprintf(leaf, sizeof(leaf), "dimm-%u", idx);
		r = vm_make_file(vm, leaf, vm->env.section_size, vm->hot[idx].path,
				 sizeof(vm->hot[idx].path));
		if (r < 0) {
			snprintf(err, errlen, "cannot create %s: %s", leaf, strerror(-r));
			return r;
		}
		pthread_mutex_lock(&vm->lock);
		vm->hot[idx].in_use = vm->hot[idx].plugged = true;
		vm->hot[idx].sec = hot[i].sec;
		vm->hot[idx].gpa = hot[i].gpa;
		vm->hot[idx].slot = hot[i].gpa ? hot[i].slot : -1;
		vm->hot[idx].sec.free_on_release = false;
		m->hot_free[idx] = hot[i].sec.free_on_release;
		snprintf(vm->hot[idx].id, sizeof(vm->hot[idx].id), "hot%u", idx);
		vm->nhot = MAX(vm->nhot, idx + 1);
		pthread_mutex_unlock(&vm->lock);
		m->hot_order[m->nhot_order++] = idx;
	}
	return 0;
}

/* virtio-mem: QEMU discarded the device at realize; now give it the sections. */
static int incoming_vmem(struct vm *vm, struct vm_mig *m, const struct vm_hot_in *hot,
			 unsigned nhot, char *err, size_t errlen)
{
	for (unsigned i = 0; i < nhot; i++) {
		int r;

		pthread_mutex_lock(&vm->lock);
		vm->vmem_secs[i] = hot[i].sec;
		vm->vmem_secs[i].free_on_release = false;
		pthread_mutex_unlock(&vm->lock);
		r = vm_vmem_set_section(vm, i, &hot[i].sec.sec, true);
		if (r < 0) {
			snprintf(err, errlen, "virtio-mem section %u: %s", i, strerror(-r));
			return r;
		}
		pthread_mutex_lock(&vm->lock);
		vm->vmem_plugged = i + 1;
		pthread_mutex_unlock(&vm->lock);
	}
	(void)m;
	return 0;
}

int vm_incoming_start(struct vm *vm, const char *listen, const struct vm_hot_in *hot,
		      unsigned nhot, json_t *regions, json_t *disks, char *err, size_t errlen)
{
	char host[128], uri[160];
	json_t *info = NULL, *sa;
	struct vm_mig *m;
	unsigned port;
	int r;

	if (!vm->spec.incoming || !listen || !split_host_port(listen, host, sizeof(host), &port)) {
		snprintf(err, errlen, "\"incoming\": {\"listen\": \"HOST:PORT\"} is required");
		return -EINVAL;
	}
	if (nhot > vm->spec.max_hot) {
		snprintf(err, errlen, "%u hot sections but only %u hotplug slots", nhot,
			 vm->spec.max_hot);
		return -EINVAL;
	}
	m = vm_mig_get(vm);
	if (!m)
		return -ENOMEM;
	m->incoming = true;
	/* A VM that has not arrived yet must never free what the source still uses. */
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->spec.nbase; i++) {
		m->base_free[i] = vm->spec.base[i].free_on_release;
		vm->spec.base[i].free_on_release = false;
	}
	pthread_mutex_unlock(&vm->lock);
	r = incoming_hot(vm, m, hot, nhot, err, errlen);
	if (r == 0)
		r = vm_shared_mig_incoming(vm, regions, err, errlen);
	if (r == 0)
		r = vm_disk_prepare(vm, disks, true, err, errlen);
	if (r < 0)
		return r;
	/* vm_start checks the boot sections' grants; the hot ones are ours to check. */
	for (unsigned i = 0; i < nhot; i++) {
		char why[400];

		r = vm_check_section(vm, &hot[i].sec, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "hot section %u: %s", hot[i].index, why);
			return r;
		}
	}
	r = vm_start(vm, err, errlen);
	if (r < 0)
		return r;
	if (vm->spec.no_guest || guest_open(vm, m, &m->early_guest) < 0)
		m->early_guest = NULL; /* try again once it arrived */
	if (vm->spec.hotplug == VM_HOTPLUG_VIRTIO_MEM && nhot) {
		r = incoming_vmem(vm, m, hot, nhot, err, errlen);
		if (r < 0)
			goto fail;
	}
	/* The regions' BARs where the source has them, strict ones attached: before the stream. */
	r = vm_shared_mig_ready(vm, err, errlen);
	if (r < 0)
		goto fail;
	r = vm_mig_set_caps(vm->qmp, false);
	if (r < 0) {
		snprintf(err, errlen, "migrate-set-capabilities: %s",
			 r == -EIO ? qmp_last_error(vm->qmp) : strerror(-r));
		goto fail;
	}
	snprintf(uri, sizeof(uri), "tcp:%s:%u", host, port);
	m->incoming_ns = now_ns();
	r = qmp_executef(vm->qmp, QMP_CMD_MS, NULL, "migrate-incoming", "{s:s}", "uri", uri);
	if (r < 0) {
		snprintf(err, errlen, "migrate-incoming %s: %s", uri,
			 r == -EIO ? qmp_last_error(vm->qmp) : strerror(-r));
		if (r == -EIO)
			r = -EADDRINUSE;
		goto fail;
	}
	/* The port QEMU really listens on (port 0 picks one). */
	r = vm_mig_query(vm->qmp, &info);
	sa = json_array_get(json_object_get(info, "socket-address"), 0);
	if (r < 0 || !sa) {
		snprintf(err, errlen, "query-migrate did not tell the listening address");
		json_decref(info);
		r = r < 0 ? r : -EPROTO;
		goto fail;
	}
	pthread_mutex_lock(&vm->lock);
	snprintf(m->uri, sizeof(m->uri), "tcp:%s:%s", jstr(sa, "host"), jstr(sa, "port"));
	pthread_mutex_unlock(&vm->lock);
	json_decref(info);
	r = -pthread_create(&m->waiter, NULL, incoming_main, vm);
	if (r < 0) {
		snprintf(err, errlen, "thread: %s", strerror(-r));
		goto fail;
	}
	m->waiter_on = true;
	log_info("vm %s: waiting for a migration on %s", vm->spec.name, m->uri);
	return 0;
fail:
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_INCOMING)
		vm_set_failed(vm, "%s", err);
	pthread_mutex_unlock(&vm->lock);
	if (vm->pid > 0)
		kill(vm->pid, SIGKILL);
	return r;
}

const struct vm_ext_ops vm_incoming_ext = {
	.name = "incoming",
	.qemu_args = incoming_qemu_args,
};
