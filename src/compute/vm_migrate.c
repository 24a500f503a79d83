// SPDX-License-Identifier: MIT
/*
 * Compute migration, memory stays: a running VM moves to another compute
 * node while its RAM stays on the memory nodes. Only CPU and device state
 * cross between the two QEMUs (x-ignore-shared skips the shared RAM
 * files); the source flushes its dirty pages to the memory nodes, the last
 * ones while its vCPUs are stopped at pre-switchover, and the destination's
 * pager fetches pages on demand after the switchover.
 *
 * Destination (vm_incoming_start): the hot sections of the source are set
 * up first (pc-dimm: one file and one -object/-device pair each on the
 * command line; virtio-mem: the sections are assigned after QEMU's realize
 * discarded the device), QEMU starts with -incoming defer, x-ignore-shared
 * and events are enabled and migrate-incoming listens. A thread waits for
 * the MIGRATION event: completed -> running, guest channel connected and
 * resynchronised; failed -> failed. An incoming VM never frees sections:
 * free_on_release is suspended until the migration completed.
 *
 * Source (vm_migrate): pre-copy flush rounds while the guest runs, then
 * migrate with x-ignore-shared + pause-before-switchover, final flush at
 * pre-switchover, migrate-continue, completed -> state migrated, QEMU quit,
 * sections kept (they belong to the destination now). Any failure before
 * completion leaves the VM running here (migrate_cancel and cont if QEMU
 * stopped).
 *
 * Heartbeats: every "HB SEQ NS" line the guest channel delivers is kept in
 * a ring (guest monotonic ns and the agent's CLOCK_MONOTONIC receive time),
 * so that tests and benchmarks can see the gap the guest felt.
 */
#include "vm_internal.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "net.h"

#define HB_RING       8192
#define QMP_CMD_MS    10000
#define MIG_EVENT_MS  200

struct vm_hb {
	uint64_t seq, ns, rx_ns;
};

struct vm_mig {
	pthread_mutex_t hb_lock;
	struct vm_hb hb[HB_RING];
	uint64_t hb_total;            /* heartbeats seen (the ring keeps the last HB_RING) */

	/* destination */
	bool incoming;
	char uri[128];                /* tcp:HOST:PORT it listens on */
	unsigned hot_order[VM_MAX_SECTIONS], nhot_order;
	bool base_free[VM_MAX_SECTIONS], hot_free[VM_MAX_SECTIONS];
	struct guestchan *early_guest; /* connected before the guest arrives */
	pthread_t waiter;
	bool waiter_on;
	atomic_bool stop;
	uint64_t incoming_ns;         /* when migrate-incoming was issued */
	int64_t incoming_ms;          /* from migrate-incoming to running (-1: not yet) */

	/* source (vm->lock) */
	bool migrating;
	const char *phase;            /* "flushing", "migrating", "pre-switchover", "completing" */
	json_t *last;                 /* figures of the last migration (success or failure) */
};

/* ---- common --------------------------------------------------------------- */

static struct vm_mig *mig_get(struct vm *vm)
{
	struct vm_mig *m;

	pthread_mutex_lock(&vm->lock);
	if (!vm->mig) {
		m = calloc(1, sizeof(*m));
		if (m) {
			pthread_mutex_init(&m->hb_lock, NULL);
			m->incoming_ms = -1;
			vm->mig = m;
		}
	}
	m = vm->mig;
	pthread_mutex_unlock(&vm->lock);
	return m;
}

void vm_mig_free(struct vm *vm)
{
	struct vm_mig *m = vm->mig;

	if (!m)
		return;
	atomic_store(&m->stop, true);
	if (m->waiter_on)
		pthread_join(m->waiter, NULL);
	if (vm->guest)
		guestchan_set_callback(vm->guest, NULL, NULL);
	guestchan_close(m->early_guest);
	json_decref(m->last);
	pthread_mutex_destroy(&m->hb_lock);
	free(m);
	vm->mig = NULL;
}

/* ---- heartbeats ----------------------------------------------------------- */

/* Unsolicited guest line (guestchan lock held): keep "HB SEQ NS". */
static void on_guest_line(const char *line, void *opaque)
{
	struct vm_mig *m = opaque;
	unsigned long long seq, ns;

	if (strncmp(line, "HB ", 3) != 0 || sscanf(line + 3, "%llu %llu", &seq, &ns) != 2)
		return;
	pthread_mutex_lock(&m->hb_lock);
	m->hb[m->hb_total % HB_RING] = (struct vm_hb){ seq, ns, now_ns() };
	m->hb_total++;
	pthread_mutex_unlock(&m->hb_lock);
}

void vm_mig_guest_attached(struct vm *vm)
{
	struct vm_mig *m = mig_get(vm);

	if (m && vm->guest)
		guestchan_set_callback(vm->guest, on_guest_line, m);
}

json_t *vm_heartbeats(struct vm *vm)
{
	struct vm_mig *m = mig_get(vm);
	json_t *arr = json_array(), *j;
	uint64_t n, first, max_gap = 0, max_rx_gap = 0;

	if (!m)
		return json_pack("{s:I, s:o}", "count", (json_int_t)0, "heartbeats", arr);
	/* Read what the guest sent meanwhile (HB lines only reach us when read). */
	if (vm->guest && vm_get_state(vm) == VM_RUNNING)
		(void)guestchan_poll(vm->guest, 0);
	pthread_mutex_lock(&m->hb_lock);
	n = m->hb_total;
	first = n > HB_RING ? n - HB_RING : 0;
	for (uint64_t i = first; i < n; i++) {
		const struct vm_hb *h = &m->hb[i % HB_RING];

		json_array_append_new(arr, json_pack("[I, I, I]", (json_int_t)h->seq,
						     (json_int_t)h->ns, (json_int_t)h->rx_ns));
		if (i > first) {
			const struct vm_hb *p = &m->hb[(i - 1) % HB_RING];

			if (h->ns > p->ns)
				max_gap = MAX(max_gap, h->ns - p->ns);
			if (h->rx_ns > p->rx_ns)
				max_rx_gap = MAX(max_rx_gap, h->rx_ns - p->rx_ns);
		}
	}
	pthread_mutex_unlock(&m->hb_lock);
	j = json_pack("{s:I, s:f, s:f, s:o}", "count", (json_int_t)n, "max_gap_ms",
		      (double)max_gap / 1e6, "max_rx_gap_ms", (double)max_rx_gap / 1e6,
		      "heartbeats", arr);
	return j;
}

static bool last_heartbeat(struct vm_mig *m, struct vm_hb *ret)
{
	bool have;

	pthread_mutex_lock(&m->hb_lock);
	have = m->hb_total > 0;
	if (have)
		*ret = m->hb[(m->hb_total - 1) % HB_RING];
	pthread_mutex_unlock(&m->hb_lock);
	return have;
}

/* ---- status --------------------------------------------------------------- */

void vm_mig_status(struct vm *vm, json_t *j)
{
	struct vm_mig *m;

	pthread_mutex_lock(&vm->lock);
	m = vm->mig;
	if (m && m->uri[0])
		json_object_set_new(j, "migration_uri", json_string(m->uri));
	if (m && m->incoming && m->incoming_ms >= 0)
		json_object_set_new(j, "incoming_ms", json_integer(m->incoming_ms));
	if (m)
		json_object_set_new(j, "migrating", json_boolean(m->migrating));
	if (m && m->migrating && m->phase)
		json_object_set_new(j, "migration_phase", json_string(m->phase));
	if (m && m->last)
		json_object_set(j, "last_migration", m->last);
	pthread_mutex_unlock(&vm->lock);
}

/* ---- QMP helpers ----------------------------------------------------------- */

static int set_caps(struct qmp *q, bool pause)
{
	return qmp_executef(q, QMP_CMD_MS, NULL, "migrate-set-capabilities",
			    "{s:[{s:s, s:b}, {s:s, s:b}, {s:s, s:b}]}", "capabilities",
			    "capability", "x-ignore-shared", "state", 1,
			    "capability", "events", "state", 1,
			    "capability", "pause-before-switchover", "state", pause ? 1 : 0);
}

/* query-migrate; *ret gets the answer (new reference). */
static int query_migrate(struct qmp *q, json_t **ret)
{
	return qmp_execute(q, "query-migrate", NULL, QMP_CMD_MS, ret);
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

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

/* ---- destination ----------------------------------------------------------- */

int vm_mig_qemu_args(struct vm *vm, char ***ret_argv)
{
	struct vm_mig *m = vm->mig;
	unsigned cap = 3 + 4 * (m ? m->nhot_order : 0), n = 0;
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
	guestchan_set_callback(*ret, on_guest_line, m);
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

	if (!g)
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
			if (query_migrate(vm->qmp, &info) >= 0 && *jstr(info, "error-desc"))
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
		      unsigned nhot, char *err, size_t errlen)
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
	m = mig_get(vm);
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
	if (guest_open(vm, m, &m->early_guest) < 0)
		m->early_guest = NULL; /* try again once it arrived */
	if (vm->spec.hotplug == VM_HOTPLUG_VIRTIO_MEM && nhot) {
		r = incoming_vmem(vm, m, hot, nhot, err, errlen);
		if (r < 0)
			goto fail;
	}
	r = set_caps(vm->qmp, false);
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
	r = query_migrate(vm->qmp, &info);
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

/* ---- source ---------------------------------------------------------------- */

/* Why this VM cannot migrate now, or 0 (lock held). */
static int check_source(struct vm *vm, char *err, size_t errlen)
{
	unsigned local = 0;

	if (vm->state != VM_RUNNING) {
		snprintf(err, errlen, "VM is %s, not running", vm_state_name(vm->state));
		return -EBUSY;
	}
	if (vm->mig && vm->mig->migrating) {
		snprintf(err, errlen, "a migration of this VM is already in progress");
		return -EBUSY;
	}
	for (unsigned i = 0; i < vm->spec.nbase; i++)
		local += vm->spec.base[i].sec.kind == PAGER_SEC_LOCAL;
	for (unsigned i = 0; i < vm->nhot; i++)
		local += vm->hot[i].in_use && vm->hot[i].sec.sec.kind == PAGER_SEC_LOCAL;
	for (unsigned i = 0; vm->vmem_secs && i < vm->vmem_plugged; i++)
		local += vm->vmem_secs[i].sec.kind == PAGER_SEC_LOCAL;
	if (local) {
		snprintf(err, errlen,
			 "the VM has %u local section%s: compute migration moves only CPU and device state and keeps memory on the memory nodes, so every section must be remote",
			 local, local > 1 ? "s" : "");
		return -EBUSY;
	}
	if (!vm->pager || !vm->qmp) {
		snprintf(err, errlen, "VM has no pager or QMP");
		return -EBUSY;
	}
	return 0;
}

static uint64_t written_back(struct pager *p)
{
	struct pager_stats st;

	pager_stats(p, &st);
	return st.pages_written_back;
}

/* The migration failed: make sure the VM runs here again. */
static void recover(struct vm *vm, char *note, size_t len)
{
	json_t *info = NULL, *st = NULL;
	const char *s;
	uint64_t deadline = now_ns() + 10000000000ull;

	(void)qmp_execute(vm->qmp, "migrate_cancel", NULL, QMP_CMD_MS, NULL);
	/* Wait until QEMU's migration thread is done (cancelled or failed). */
	for (;;) {
		json_decref(info);
		info = NULL;
		if (query_migrate(vm->qmp, &info) < 0)
			break;
		s = jstr(info, "status");
		if (!strcmp(s, "cancelled") || !strcmp(s, "failed") || !strcmp(s, "completed") ||
		    !*s || now_ns() > deadline)
			break;
		usleep(5000);
	}
	json_decref(info);
	if (qmp_execute(vm->qmp, "query-status", NULL, QMP_CMD_MS, &st) >= 0 &&
	    !json_is_true(json_object_get(st, "running"))) {
		int r = qmp_execute(vm->qmp, "cont", NULL, QMP_CMD_MS, NULL);

		snprintf(note, len, "; the VM was resumed here (cont: %s)",
			 r < 0 ? qmp_last_error(vm->qmp) : "ok");
	} else {
		snprintf(note, len, "; the VM keeps running here");
	}
	json_decref(st);
}

struct mig_run {
	uint64_t t0, t_pause;
	unsigned rounds;
	uint64_t flushed, final_pages, final_ns;
	uint64_t rounds_ns;           /* pre-copy flush rounds, all together */
	bool paused;                  /* we saw pre-switchover */
};

static void set_phase(struct vm *vm, const char *phase)
{
	pthread_mutex_lock(&vm->lock);
	vm->mig->phase = phase;
	pthread_mutex_unlock(&vm->lock);
}

/* Pre-copy: flush dirty pages while the guest runs, until few are left. */
static int precopy_rounds(struct vm *vm, const struct vm_migrate_opts *o, struct mig_run *run,
			  char *err, size_t errlen)
{
	uint64_t t = now_ns();

	set_phase(vm, "flushing");
	for (unsigned i = 0; i < o->max_flush_rounds; i++) {
		uint64_t before = written_back(vm->pager), n;
		int r = pager_flush(vm->pager);

		if (r < 0) {
			snprintf(err, errlen, "flush round %u: %s", i + 1, strerror(-r));
			return r;
		}
		n = written_back(vm->pager) - before;
		run->rounds++;
		run->flushed += n;
		log_debug("vm %s: flush round %u wrote %llu pages", vm->spec.name, i + 1,
			  (unsigned long long)n);
		if (n <= o->dirty_threshold_pages)
			break;
	}
	run->rounds_ns = now_ns() - t;
	return 0;
}

/* migrate, final flush at pre-switchover, continue, wait for completed. */
static int run_migration(struct vm *vm, const struct vm_migrate_opts *o, struct mig_run *run,
			 char *err, size_t errlen)
{
	uint64_t deadline = run->t0 + (uint64_t)o->timeout_ms * 1000000ull;
	int r;

	r = set_caps(vm->qmp, true);
	if (r >= 0)
		r = qmp_executef(vm->qmp, QMP_CMD_MS, NULL, "migrate-set-parameters", "{s:I}",
				 "max-bandwidth", (json_int_t)(10ll << 30));
	if (r < 0) {
		snprintf(err, errlen, "migration setup: %s",
			 r == -EIO ? qmp_last_error(vm->qmp) : strerror(-r));
		return r;
	}
	while (qmp_wait_event(vm->qmp, "MIGRATION", NULL, NULL, 0, NULL) == 0)
		; /* events of an earlier attempt */
	set_phase(vm, "migrating");
	r = qmp_executef(vm->qmp, QMP_CMD_MS, NULL, "migrate", "{s:s}", "uri", o->uri);
	if (r < 0) {
		snprintf(err, errlen, "migrate %s: %s", o->uri,
			 r == -EIO ? qmp_last_error(vm->qmp) : strerror(-r));
		return r == -EIO ? -ECONNREFUSED : r;
	}
	for (;;) {
		json_t *data = NULL, *info = NULL;
		const char *st;

		if (now_ns() > deadline) {
			snprintf(err, errlen, "the migration did not complete within %d ms",
				 o->timeout_ms);
			return -ETIMEDOUT;
		}
		r = qmp_wait_event(vm->qmp, "MIGRATION", NULL, NULL, MIG_EVENT_MS, &data);
		if (r == -ETIMEDOUT)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "QMP: %s (QEMU exited?)", strerror(-r));
			return r;
		}
		st = jstr(data, "status");
		if (!strcmp(st, "pre-switchover")) {
			uint64_t before, t;

			json_decref(data);
			run->paused = true;
			run->t_pause = now_ns();
			set_phase(vm, "pre-switchover");
			if (o->hold_ms)
				usleep(o->hold_ms * 1000u);
			/* vCPUs are stopped: after this flush the memory nodes have everything. */
			before = written_back(vm->pager);
			t = now_ns();
			r = pager_flush(vm->pager);
			run->final_ns = now_ns() - t;
			run->final_pages = written_back(vm->pager) - before;
			if (r < 0) {
				snprintf(err, errlen, "final flush at pre-switchover: %s", strerror(-r));
				return r;
			}
			r = qmp_executef(vm->qmp, QMP_CMD_MS, NULL, "migrate-continue", "{s:s}",
					 "state", "pre-switchover");
			if (r < 0) {
				snprintf(err, errlen, "migrate-continue: %s",
					 r == -EIO ? qmp_last_error(vm->qmp) : strerror(-r));
				return r;
			}
			set_phase(vm, "completing");
			continue;
		}
		if (!strcmp(st, "completed")) {
			json_decref(data);
			return 0;
		}
		if (!strcmp(st, "failed") || !strcmp(st, "cancelled")) {
			snprintf(err, errlen, "migration %s (QEMU gave no reason: did the destination go away?)", st);
			if (query_migrate(vm->qmp, &info) >= 0 && *jstr(info, "error-desc"))
				snprintf(err, errlen, "migration %s: %s", st, jstr(info, "error-desc"));
			json_decref(info);
			json_decref(data);
			return -ECONNABORTED;
		}
		json_decref(data);
	}
}

/*
 * The VM lives on the destination now: it is only a record here, and its
 * sections are not freed with it. Its QEMU stays paused (post-migrate)
 * until the record is deleted, which the orchestrator does once the
 * destination runs the guest: QEMU's exit and the freeing of its RAM files
 * cost hundreds of ms of CPU (a guest's worth of tmpfs pages), which would
 * otherwise compete with the guest's arrival on the destination, often on
 * this very host. A record nobody deletes is retired by the supervisor
 * after --retire-migrated-ms (VM_RETIRE_MS). All of it runs at the lowest priority.
 */
static void hand_over(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm_keep_sections_locked(vm);
	vm->state = VM_MIGRATED;
	vm->retire_ns = now_ns() + (vm->env.retire_ms ? vm->env.retire_ms : VM_RETIRE_MS) * 1000000ull;
	(void)vm_persist_locked(vm);   /* never adopted: its sections are the destination's */
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	vm_lower_priority(vm->pid);
	/* Heartbeats the source QEMU delivered before the switchover. */
	if (vm->guest)
		(void)guestchan_poll(vm->guest, 0);
}

int vm_migrate(struct vm *vm, const struct vm_migrate_opts *o, json_t **ret, char *err,
	       size_t errlen)
{
	struct mig_run run = { .t0 = now_ns() };
	struct vm_mig *m = mig_get(vm);
	json_t *info = NULL, *res;
	char note[160] = "";
	struct vm_hb hb;
	int r;

	if (!m)
		return -ENOMEM;
	if (strncmp(o->uri, "tcp:", 4) != 0) {
		snprintf(err, errlen, "\"uri\" must be tcp:HOST:PORT");
		return -EINVAL;
	}
	pthread_mutex_lock(&vm->lock);
	r = check_source(vm, err, errlen);
	if (r >= 0)
		m->migrating = true;
	pthread_mutex_unlock(&vm->lock);
	if (r < 0)
		return r;
	pthread_mutex_lock(&vm->hot_lock);    /* no hotplug while the device set moves */
	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_RUNNING) {        /* stopped while a hotplug finished */
		snprintf(err, errlen, "VM is %s, not running", vm_state_name(vm->state));
		m->migrating = false;
		r = -EBUSY;
	}
	pthread_mutex_unlock(&vm->lock);
	if (r < 0) {
		pthread_mutex_unlock(&vm->hot_lock);
		return r;
	}
	log_info("vm %s: migrating to %s", vm->spec.name, o->uri);

	r = precopy_rounds(vm, o, &run, err, errlen);
	if (r >= 0) {
		r = run_migration(vm, o, &run, err, errlen);
		if (r < 0 && vm_get_state(vm) == VM_RUNNING)
			recover(vm, note, sizeof(note));
	}
	if (r >= 0)
		(void)query_migrate(vm->qmp, &info);
	res = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "ok", r >= 0, "uri", o->uri,
			"total_ms", (json_int_t)((now_ns() - run.t0) / 1000000), "flush_rounds",
			(json_int_t)run.rounds, "pages_flushed", (json_int_t)run.flushed,
			"final_flush_pages", (json_int_t)run.final_pages, "final_flush_ms",
			(json_int_t)(run.final_ns / 1000000), "final_flush_us",
			(json_int_t)(run.final_ns / 1000));
	json_object_set_new(res, "flush_rounds_ms", json_integer((json_int_t)(run.rounds_ns / 1000000)));
	if (r >= 0) {
		json_t *ram = json_object_get(info, "ram");

		json_object_set_new(res, "downtime_ms", json_integer(jint(info, "downtime")));
		json_object_set_new(res, "setup_ms", json_integer(jint(info, "setup-time")));
		json_object_set_new(res, "qemu_total_ms", json_integer(jint(info, "total-time")));
		json_object_set_new(res, "ram_transferred_bytes",
				    json_integer(jint(ram, "transferred")));
		json_object_set_new(res, "pause_ms",
				    json_integer((json_int_t)((now_ns() - run.t_pause) / 1000000)));
		json_decref(info);
		{
			/* The guest's recent working set, for the destination to prefetch. */
			uint64_t hot_pages = 0;

			json_object_set_new(res, "hot", vm_hot_json(vm, &hot_pages));
			json_object_set_new(res, "hot_pages", json_integer((json_int_t)hot_pages));
		}
		hand_over(vm);
		if (last_heartbeat(m, &hb))
			json_object_set_new(res, "last_heartbeat",
					    json_pack("{s:I, s:I, s:I}", "seq", (json_int_t)hb.seq,
						      "ns", (json_int_t)hb.ns, "rx_ns",
						      (json_int_t)hb.rx_ns));
	} else {
		char full[700];

		snprintf(full, sizeof(full), "%s%s", err, note);
		snprintf(err, errlen, "%s", full);
		json_object_set_new(res, "error", json_string(err));
	}
	pthread_mutex_lock(&vm->lock);
	m->migrating = false;
	json_decref(m->last);
	m->last = json_deep_copy(res);   /* for status: without the hot-page list */
	json_object_del(m->last, "hot");
	pthread_mutex_unlock(&vm->lock);
	pthread_mutex_unlock(&vm->hot_lock);
	if (r < 0) {
		log_warn("vm %s: migration to %s failed: %s", vm->spec.name, o->uri, err);
		json_decref(res);
		return r;
	}
	log_info("vm %s: migrated to %s in %lld ms", vm->spec.name, o->uri,
		 (long long)json_integer_value(json_object_get(res, "total_ms")));
	*ret = res;
	return 0;
}
