// SPDX-License-Identifier: MIT
/*
 * The VM lifecycle state machine: created -> starting -> running (or
 * incoming) -> stopping -> stopped, failed on the way; vm_free and
 * vm_detach at the end. Each step is another file's (docs/compute.md):
 *   vm_start: section checks (section_check.c), the pager
 *   (pager_use.c), the RAM files (layout.c), the shim socket and pager
 *   registration (shim_server.c, mappings.c), QEMU (launch.c,
 *   qemu_argv.c), the supervisor (supervise.c), QMP, the hotplug handle,
 *   the guest channel (guest.c), the record (persist.c);
 *   QEMU's exit: supervise.c, then the release (pager_use.c).
 * Features above (hotplug, migration, ...) call in; those that must hear
 * of a step registered hooks (ext.h).
 */
#include "vm.h"

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/magic.h>

#include "console.h"
#include "dirtag.h"
#include "ext.h"
#include "guest.h"
#include "health.h"
#include "hotplug.h"
#include "layout.h"
#include "log.h"
#include "mappings.h"
#include "metrics.h"
#include "net.h"
#include "pagemeta.h"
#include "pager_use.h"
#include "persist.h"
#include "qemu_argv.h"
#include "qmp.h"
#include "ramfile.h"
#include "replica_json.h"
#include "section_check.h"
#include "sections.h"
#include "shim_server.h"
#include "launch.h"
#include "state.h"
#include "supervise.h"
#include "vm_internal.h"
#include "vmnet.h"

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= VM_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '-' || s[i] == '_' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

struct vm *vm_alloc(const struct vm_env *env)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->env = *env;
	vm->pidfd = vm->stop_efd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->hot_lock, NULL);
	pthread_mutex_init(&vm->check_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->vmem_region = -1;
	vm->base_region = -1;
	vm->created_ns = now_ns();
	vm->refs = 1;
	return vm;
}

size_t vm_name_room(const char *run_root)
{
	size_t used = strlen(run_root) + strlen("/.99/" VM_LONGEST_SOCK);

	return used >= QEMU_SUN_PATH_MAX ? 0 : MIN(QEMU_SUN_PATH_MAX - used, VM_NAME_MAX - 1u);
}

int vm_new(const struct vm_env *env, const struct vm_spec *spec, struct vm **ret)
{
	struct vm *vm;
	struct statfs sfs;

	if (!name_ok(spec->name))
		return -EINVAL;
	if (spec->vcpus < 1 || spec->vcpus > 64 || spec->nbase < 1 ||
	    spec->nbase > VM_MAX_SECTIONS || spec->max_hot > VM_MAX_SECTIONS)
		return -EINVAL;
	if (statfs(env->run_root, &sfs) < 0)
		return -errno;
	if (sfs.f_type != TMPFS_MAGIC)
		return -ENOTSUP; /* guest RAM files must be on tmpfs */
	vm = vm_alloc(env);
	if (!vm)
		return -ENOMEM;
	vm->spec = *spec;
	vm->spec.base = calloc(spec->nbase, sizeof(*spec->base));
	if (!vm->spec.base) {
		free(vm);
		return -ENOMEM;
	}
	memcpy(vm->spec.base, spec->base, spec->nbase * sizeof(*spec->base));
	/*
	 * RUN_DIR/NAME, or NAME.1, NAME.2 ... while an earlier VM of that name
	 * is still being torn down (a migrated-away record freed in the
	 * background) or a killed agent left its directory behind.
	 */
	for (int i = 0;; i++) {
		char sock[QEMU_SUN_PATH_MAX + 1];
		int n, r;

		if (i == 0)
			n = snprintf(vm->dir, sizeof(vm->dir), "%s/%s", env->run_root, spec->name);
		else
			n = snprintf(vm->dir, sizeof(vm->dir), "%s/%s.%d", env->run_root, spec->name,
				     i);
		/* Never a cut path; and its sockets must fit a UNIX socket address. */
		if (n < 0 || (size_t)n >= sizeof(vm->dir) ||
		    qemu_sock_path(vm->dir, VM_LONGEST_SOCK, sock) < 0)
			r = -ENAMETOOLONG;
		else if (mkdir(vm->dir, 0700) == 0)
			break;
		else
			r = -errno;
		if (r != -EEXIST || i == 99) {
			free(vm->spec.base);
			free(vm);
			return r;
		}
	}
	snprintf(vm->console_path, sizeof(vm->console_path), "%s/console.log", vm->dir);
	*ret = vm;
	return 0;
}

int vm_start(struct vm *vm, char *err, size_t errlen)
{
	uint64_t t0 = now_ns();
	int r;

	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_CREATED) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "VM is %s", vm_state_name(vm->state));
		return -EBUSY;
	}
	vm->state = VM_STARTING;
	pthread_mutex_unlock(&vm->lock);

	for (unsigned i = 0; i < vm->spec.nbase; i++) {
		char why[400];

		r = vm_check_section(vm, &vm->spec.base[i], why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "section %u: %s", i, why);
			/* Not ours: never free a section on the word of a rejected grant. */
			if (r == -EINVAL)
				vm->spec.base[i].free_on_release = false;
			goto fail;
		}
	}
	pthread_mutex_lock(&vm->lock);
	r = vm->state == VM_STARTING ? 0 : -ECANCELED;   /* a DELETE meanwhile: vm_stop() */
	pthread_mutex_unlock(&vm->lock);
	if (r < 0) {
		snprintf(err, errlen, "the VM was stopped while it started");
		goto fail;
	}
	r = vm_pager_open(vm, err, errlen);
	if (r < 0)
		goto fail;
	r = vm_layout_prepare(vm);
	if (r < 0) {
		snprintf(err, errlen, "RAM files in %s: %s", vm->dir, strerror(-r));
		goto fail;
	}
	r = vm_shim_listen(vm);
	if (r < 0) {
		snprintf(err, errlen, "shim socket: %s", strerror(-r));
		goto fail;
	}
	r = vm_spawn_qemu(vm, err, errlen);
	if (r < 0)
		goto fail;
	(void)vm_persist(vm);   /* "starting", with QEMU's pid: a restarted agent stops it */
	r = vm_supervise(vm);
	if (r < 0) {
		snprintf(err, errlen, "thread: %s", strerror(-r));
		goto fail;
	}
	r = qmp_connect(vm->qmp_path_buf[0] ? vm->qmp_path_buf : vm_qmp_path(vm), 15000, &vm->qmp);
	if (r < 0) {
		char tail[400];

		vm_qemu_log_tail(vm, tail, sizeof(tail));
		snprintf(err, errlen, "QEMU did not come up (QMP: %s): %s", strerror(-r), tail);
		goto fail;
	}
	r = vm_ext_qmp_ready(vm, err, errlen);
	if (r < 0)
		goto fail;
	r = vm_layout_attach(vm);
	if (r < 0) {
		snprintf(err, errlen, "hotplug: %s", strerror(-r));
		goto fail;
	}
	/* incoming: once it arrived; an image without disagg-guest: never */
	r = vm->spec.incoming || vm->spec.no_guest ? 0 : vm_guest_connect(vm);
	if (r < 0) {
		struct pager_stats st = { 0 };

		pthread_mutex_lock(&vm->lock);
		if (vm->pager)
			pager_stats(vm->pager, &st);
		pthread_mutex_unlock(&vm->lock);
		if (st.failed < 0) {
			snprintf(err, errlen,
				 "the pager cannot serve the guest's RAM from its memory nodes: %s",
				 strerror(-st.failed));
		} else {
			/* The guest died or hung while booting: its console says why. */
			char why[240];

			console_reason(vm->console_path, why, sizeof(why));
			snprintf(err, errlen, "guest channel: %s; the guest's console: %s",
				 strerror(-r), why[0] ? why : "(empty)");
		}
		goto fail;
	}
	vm_ext_guest_attached(vm);
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_STARTING)
		vm->state = vm->spec.incoming ? VM_INCOMING : VM_RUNNING;
	r = vm->state == VM_RUNNING || vm->state == VM_INCOMING ? 0 : -ECHILD;
	if (r == 0)
		(void)vm_persist_locked(vm);
	if (r < 0)
		snprintf(err, errlen, "%s", vm->reason);
	pthread_mutex_unlock(&vm->lock);
	log_info("vm %s: QEMU %d up in %llu ms (%u MiB base, %s)", vm->spec.name, (int)vm->pid,
		 (unsigned long long)((now_ns() - t0) / 1000000),
		 (unsigned)(vm->env.section_size * vm->spec.nbase >> 20), vm->env.accel);
	return r;
fail:
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_STARTING)
		vm_set_failed(vm, "%s", err);
	pthread_mutex_unlock(&vm->lock);
	if (vm->pid > 0)
		kill(vm->pid, SIGKILL);
	return r;
}

int vm_stop(struct vm *vm, int timeout_ms)
{
	struct timespec ts;
	int r = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->pid <= 0 || vm->exited) {
		if (vm->state == VM_CREATED || vm->state == VM_STARTING)
			vm->state = VM_STOPPED;
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	if (vm->state != VM_FAILED && vm->state != VM_MIGRATED)
		vm->state = VM_STOPPING;
	(void)vm_persist_locked(vm);   /* a restarted agent finishes the stop */
	pthread_mutex_unlock(&vm->lock);

	/*
	 * Ask QEMU to quit; the guest's state does not matter to us. One still
	 * starting has no QMP connection yet: SIGTERM is its quit.
	 */
	if (vm->qmp)
		(void)qmp_execute(vm->qmp, "quit", NULL, 2000, NULL);
	else
		kill(vm->pid, SIGTERM);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&vm->lock);
	while (!vm->exited && r == 0)
		r = pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	if (!vm->exited) {
		kill(vm->pid, SIGKILL);
		while (!vm->exited)
			pthread_cond_wait(&vm->cond, &vm->lock);
	}
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/* Stop the shim server and the supervisor thread. */
static void join_threads(struct vm *vm)
{
	shim_server_free(vm->shim);
	vm->shim = NULL;
	vm_supervise_stop(vm);
}

/* Close the connections to QEMU (guest channel, hotplug, QMP). */
static void close_conns(struct vm *vm)
{
	vm_guest_close(vm);
	hotplug_free(vm->hp);
	vm->hp = NULL;
	qmp_close(vm->qmp);
	vm->qmp = NULL;
}

/* Close the descriptors and free the struct. */
static void close_and_free(struct vm *vm)
{
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	free(vm->spec.base);
	free(vm->vmem_secs);
	json_decref(vm->ext_record);
	json_decref(vm->record);
	for (unsigned i = 0; i < VM_MAX_SHARED; i++) {
		vm_dirtag_give(&vm->shared[i]);
		free(vm->shared[i].kept);
	}
	vm_pagemeta_free(vm);
	vm_check_close(vm, true);
	explicit_bzero(vm->spec.key, sizeof(vm->spec.key));
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->hot_lock);
	pthread_mutex_destroy(&vm->check_lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}

void vm_free(struct vm *vm)
{
	if (!vm)
		return;
	vm_ext_free(vm);
	vm_health_stop(vm);
	vm_stop(vm, 5000);
	join_threads(vm);
	if (vm->pid > 0 && !vm->exited) {
		kill(vm->pid, SIGKILL);
		if (vm->adopted)
			(void)poll(&(struct pollfd){ .fd = vm->pidfd, .events = POLLIN }, 1, 10000);
		else
			waitpid(vm->pid, NULL, 0);
	}
	close_conns(vm);
	pthread_mutex_lock(&vm->lock);
	vm_release_wait(vm);
	pthread_mutex_unlock(&vm->lock);
	vm_health_free(vm);
	vm_remove_dir(vm);
	close_and_free(vm);
}

void vm_detach(struct vm *vm)
{
	if (!vm)
		return;
	vm_ext_free(vm);
	vm_health_stop(vm);
	(void)vm_persist(vm);
	join_threads(vm);
	close_conns(vm);
	/* The pager stops; faults wait in QEMU for the next agent (the shim keeps the uffds). */
	pager_free(vm->pager);
	vm->pager = NULL;
	vm_health_free(vm);   /* no pager thread calls it back any more */
	pager_backend_free(vm->backend);
	for (unsigned i = 0; i < vm->nregions; i++) {
		if (vm->regions[i].file_fd >= 0)
			close(vm->regions[i].file_fd);
		if (vm->regions[i].uffd >= 0)
			close(vm->regions[i].uffd);
	}
	log_info("vm %s: left running (QEMU %d) for the next agent", vm->spec.name, (int)vm->pid);
	close_and_free(vm);
}

void vm_close_checks(struct vm *vm)
{
	vm_check_close(vm, false);
}

struct vm *vm_ref(struct vm *vm)
{
	atomic_fetch_add(&vm->refs, 1);
	return vm;
}

void vm_unref(struct vm *vm)
{
	if (vm && atomic_fetch_sub(&vm->refs, 1) == 1)
		vm_free(vm);
}

const char *vm_qmp_path(struct vm *vm)
{
	snprintf(vm->qmp_path_buf, sizeof(vm->qmp_path_buf), "%s/qmp.sock", vm->dir);
	return vm->qmp_path_buf;
}

int vm_set_budget(struct vm *vm, uint64_t bytes)
{
	int r;

	pthread_mutex_lock(&vm->lock);
	r = vm->pager ? pager_set_budget(vm->pager, bytes) : -ESRCH;
	if (r >= 0) {
		vm->spec.budget = bytes;
		(void)vm_persist_locked(vm);
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_flush(struct vm *vm)
{
	struct pager *p = vm_pager_get(vm);
	int r = p ? pager_flush(p) : -ESRCH;

	vm_pager_put(vm, p);
	return r;
}

void vm_render_metrics(struct vm *vm, struct strbuf *sb)
{
	char labels[VM_NAME_MAX + 8];

	snprintf(labels, sizeof(labels), "vm=\"%s\"", vm->spec.name);
	pthread_mutex_lock(&vm->lock);
	if (vm->pager)
		pager_render_metrics(vm->pager, sb, labels);
	if (vm->spec.encrypt)
		metrics_counter(sb, "disagg_compute_page_meta_refused_total",
				"page-metadata parts refused (malformed, outside the VM, too late)",
				labels, atomic_load(&vm->meta_refused));
	pthread_mutex_unlock(&vm->lock);
}

/* ---- status -------------------------------------------------------------- */

json_t *vm_status(struct vm *vm)
{
	json_t *j, *base = json_array(), *hot = json_array();
	struct pager_stats st;
	bool have_stats;

	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->spec.nbase; i++)
		json_array_append_new(base, vm_section_json(&vm->spec.base[i]));
	for (unsigned i = 0; i < vm->nhot; i++) {
		json_t *h;

		if (!vm->hot[i].in_use)
			continue;
		h = vm_section_json(&vm->hot[i].sec);
		json_object_set_new(h, "index", json_integer(i));
		json_object_set_new(h, "plugged", json_boolean(vm->hot[i].plugged));
		if (vm->hot[i].gpa && vm->hot[i].slot >= 0) {
			json_object_set_new(h, "gpa", json_integer((json_int_t)vm->hot[i].gpa));
			json_object_set_new(h, "slot", json_integer(vm->hot[i].slot));
		}
		json_array_append_new(hot, h);
	}
	/* virtio-mem: the plugged slots of the device, in order (index = slot). */
	for (unsigned i = 0; vm->vmem_secs && i < vm->vmem_plugged; i++) {
		json_t *h = vm_section_json(&vm->vmem_secs[i]);

		json_object_set_new(h, "index", json_integer(i));
		json_object_set_new(h, "plugged", json_true());
		json_array_append_new(hot, h);
	}
	have_stats = vm->pager != NULL;
	if (have_stats)
		pager_stats(vm->pager, &st);
	j = json_pack("{s:s, s:s, s:i, s:i, s:s, s:s, s:I, s:I, s:o, s:o, s:I}", "name",
		      vm->spec.name, "state", vm_state_name(vm->state), "pid", (int)vm->pid,
		      "vcpus", (int)vm->spec.vcpus, "accel", vm->env.accel, "hotplug",
		      vm->spec.hotplug == VM_HOTPLUG_DIMM ? "dimm" : "virtio-mem", "section_size",
		      (json_int_t)vm->env.section_size, "memory_bytes",
		      (json_int_t)(vm->env.section_size * (vm->spec.nbase + vm_hot_count(vm))),
		      "sections", base, "hot_sections", hot, "guest_memtotal_kb",
		      (json_int_t)vm->guest_memtotal_kb);
	json_object_set_new(j, "regions", vm_shared_json(vm));
	if (vm->spec.budget == UINT64_MAX)
		json_object_set_new(j, "cache_bytes", json_null());
	else
		json_object_set_new(j, "cache_bytes", json_integer((json_int_t)vm->spec.budget));
	if (vm->state == VM_FAILED || vm->state == VM_DEGRADED)
		json_object_set_new(j, "reason", json_string(vm->reason));
	json_object_set_new(j, "encrypted", json_boolean(vm->spec.encrypt));
	json_object_set_new(j, "net", vmnet_json(&vm->spec.net));
	{
		json_t *out = vm_replicas_out_json(vm);   /* replicated sections (replica_json.h) */

		if (out)
			json_object_set_new(j, "replicas_out", out);
	}
	if (vm_replicas_pending(vm))   /* an incoming VM's faults wait for it (pager_use.h) */
		json_object_set_new(j, "replicas_pending", json_true());
	if (vm->spec.encrypt && vm->pager && !vm->released)
		json_object_set_new(j, "page_meta_pending",
				    json_boolean(pager_meta_pending(vm->pager)));
	pthread_mutex_unlock(&vm->lock);
	if (have_stats)
		json_object_set_new(
			j, "pager",
			json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "mode",
				  pager_mode_name(st.mode), "dirty_pages", (json_int_t)st.dirty_pages,
				  "faults", (json_int_t)st.faults,
				  "pages_fetched", (json_int_t)st.pages_fetched, "pages_evicted",
				  (json_int_t)st.pages_evicted, "pages_written_back",
				  (json_int_t)st.pages_written_back, "resident_pages",
				  (json_int_t)st.resident_pages, "max_resident_pages",
				  (json_int_t)st.max_resident_pages, "errors", (json_int_t)st.errors,
				  "failed", st.failed));
	if (have_stats)
	{
		json_t *pj = json_object_get(j, "pager");

		json_object_set_new(pj, "faults_missing", json_integer((json_int_t)st.faults_missing));
		json_object_set_new(pj, "faults_wp", json_integer((json_int_t)st.faults_wp));
		json_object_set_new(pj, "faults_alias", json_integer((json_int_t)st.faults_alias));
		json_object_set_new(pj, "pages_cleaned", json_integer((json_int_t)st.pages_cleaned));
		json_object_set_new(pj, "pages_unprotected",
				    json_integer((json_int_t)st.pages_unprotected));
		json_object_set_new(pj, "pages_hot_prefetched",
				    json_integer((json_int_t)st.pages_hot_prefetched));
		json_object_set_new(pj, "writebacks_fenced",
				    json_integer((json_int_t)st.writebacks_fenced));
		json_object_set_new(pj, "pages_sealed", json_integer((json_int_t)st.pages_sealed));
		json_object_set_new(pj, "integrity_failures",
				    json_integer((json_int_t)st.integrity_failures));
		json_object_set_new(pj, "shared_writes_waited",
				    json_integer((json_int_t)st.shared_writes_waited));
		json_object_set_new(pj, "shared_pages_dropped",
				    json_integer((json_int_t)st.shared_pages_dropped));
		json_object_set_new(pj, "release_pages_published",
				    json_integer((json_int_t)st.release_pages_published));
		json_object_set_new(pj, "release_diff_bytes",
				    json_integer((json_int_t)st.release_diff_bytes));
		json_object_set_new(pj, "release_batches_resent",
				    json_integer((json_int_t)st.release_batches_resent));
	}
	vm_ext_status(vm, j);
	return j;
}
