// SPDX-License-Identifier: MIT
/*
 * Compute migration, source side (vm_migrate): pre-copy flush rounds while
 * the guest runs, then migrate with x-ignore-shared +
 * pause-before-switchover, final flush at pre-switchover (shared regions'
 * pages too; strict regions then leave their directories), migrate-continue,
 * completed -> state migrated, QEMU quit, sections kept (they belong to
 * the destination now). How an attempt ends is QEMU's decision
 * (vm_switchover.c): before migrate-continue a failure cancels and the
 * guest runs here again; after it, only QEMU's migration state says
 * whether the guest runs here or on the destination.
 */
#include "vm_outgoing.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "net.h"
#include "pager_use.h"
#include "state.h"
#include "vm_migrate.h"
#include "vm_prefetch.h"
#include "vm_replica.h"
#include "vm_shared_mig.h"
#include "vm_switchover.h"
#include "pagemeta.h"
#include "replica_json.h"

#define SWITCHOVER_GRACE_MS 10000   /* after migrate-continue, past the deadline */
#define CANCEL_WAIT_MS      10000   /* for QEMU to end a cancelled migration */

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
	return vm_shared_mig_check(vm, err, errlen);
}

static uint64_t written_back(struct pager *p)
{
	struct pager_stats st;

	pager_stats(p, &st);
	return st.pages_written_back;
}

/*
 * Flush with a reference on the pager; *ret_pages: pages written back.
 * -ESRCH when QEMU has exited (before or during the flush).
 */
static int flush_counted(struct vm *vm, uint64_t *ret_pages)
{
	struct pager *p = vm_pager_get(vm);
	uint64_t before;
	int r;

	*ret_pages = 0;
	if (!p)
		return -ESRCH;
	before = written_back(p);
	r = pager_flush(p);
	*ret_pages = written_back(p) - before;
	vm_pager_put(vm, p);
	return r;
}

static const char *flush_error(int r)
{
	return r == -ESRCH ? "QEMU has exited" : strerror(-r);
}

struct mig_run {
	uint64_t t0, t_pause;
	unsigned rounds;
	uint64_t flushed, final_pages, final_ns;
	uint64_t rounds_ns;           /* pre-copy flush rounds, all together */
	bool paused;                  /* we saw pre-switchover */
	bool started;                 /* QEMU may be migrating: `migrate` was not refused */
	bool continued;               /* migrate-continue was sent: the guest may have left */
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
		uint64_t n;
		int r = flush_counted(vm, &n);

		if (r < 0) {
			snprintf(err, errlen, "flush round %u: %s", i + 1, flush_error(r));
			return r;
		}
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

/*
 * migrate, then the final flush at pre-switchover and migrate-continue.
 * Returns 0 once migrate-continue has been sent: from then on only QEMU's
 * migration state tells how it ends (vm_mig_settle). The deadline bounds
 * the way to pre-switchover; a failure before migrate-continue returns
 * -errno with err set, and the guest has not left (run->continued false).
 */
static int run_migration(struct vm *vm, const struct vm_migrate_opts *o, struct mig_run *run,
			 char *err, size_t errlen)
{
	uint64_t deadline = run->t0 + (uint64_t)o->timeout_ms * 1000000ull;
	int r;

	r = vm_mig_set_caps(vm->qmp, true);
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
	run->started = r != -EIO;        /* QEMU refused it: nothing started */
	if (r < 0) {
		snprintf(err, errlen, "migrate %s: %s", o->uri,
			 r == -EIO ? qmp_last_error(vm->qmp) : strerror(-r));
		return r == -EIO ? -ECONNREFUSED : r;
	}
	for (;;) {
		json_t *data = NULL, *info = NULL;
		const char *st;
		uint64_t t;

		if (now_ns() > deadline) {
			char why[400];

			/* A guest that began to wait for a lock after the check. */
			if (vm_shared_mig_waiting(vm, why, sizeof(why)))
				snprintf(err, errlen, "the migration did not reach the switchover "
					 "within %d ms: %s", o->timeout_ms, why);
			else
				snprintf(err, errlen, "the migration did not reach the switchover "
					 "within %d ms", o->timeout_ms);
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
		if (!strcmp(st, "failed") || !strcmp(st, "cancelled")) {
			snprintf(err, errlen, "migration %s (QEMU gave no reason: did the destination go away?)", st);
			if (vm_mig_query(vm->qmp, &info) >= 0 && *jstr(info, "error-desc"))
				snprintf(err, errlen, "migration %s: %s", st, jstr(info, "error-desc"));
			json_decref(info);
			json_decref(data);
			return -ECONNABORTED;
		}
		if (strcmp(st, "pre-switchover") != 0) {
			json_decref(data);
			continue;
		}
		json_decref(data);
		run->paused = true;
		run->t_pause = now_ns();
		set_phase(vm, "pre-switchover");
		if (o->hold_ms)
			usleep(o->hold_ms * 1000u);
		/* vCPUs are stopped: after this flush the memory nodes have everything. */
		t = now_ns();
		r = flush_counted(vm, &run->final_pages);
		run->final_ns = now_ns() - t;
		if (r < 0) {
			snprintf(err, errlen, "final flush at pre-switchover: %s", flush_error(r));
			return r;
		}
		/* The replicas it took out (the last flush's too) are in the VM's records. */
		vm_replicas_sync(vm);
		/* The table that names what the memory nodes hold now, for the destination. */
		r = vm_pagemeta_snapshot(vm);
		if (r < 0) {
			snprintf(err, errlen, "page-metadata snapshot: %s", strerror(-r));
			return r;
		}
		/* Strict regions leave their directories: the destination holds for this VM. */
		r = vm_shared_mig_switchover(vm, err, errlen);
		if (r < 0)
			return r;
		set_phase(vm, "completing");
		/* Unless QEMU refused it, the guest may leave from here on. */
		run->continued = true;
		r = qmp_executef(vm->qmp, QMP_CMD_MS, NULL, "migrate-continue", "{s:s}", "state",
				 "pre-switchover");
		if (r == -EIO) {
			run->continued = false;
			snprintf(err, errlen, "migrate-continue: %s", qmp_last_error(vm->qmp));
			return r;
		}
		if (r < 0)
			log_warn("vm %s: migrate-continue: %s; QEMU's state decides", vm->spec.name,
				 strerror(-r));
		return 0;
	}
}

/*
 * The replicas this VM's pager took out, as of its final flush: the
 * destination drops them before its first fault (docs/replication.md,
 * "Compute migration"). [] when none.
 */
static json_t *replicas_out(struct vm *vm)
{
	json_t *out;

	pthread_mutex_lock(&vm->lock);
	out = vm_replicas_out_json(vm);
	pthread_mutex_unlock(&vm->lock);
	return out ? out : json_array();
}

/*
 * How the attempt ended, by QEMU's own migration state (vm_switchover.c).
 * r and err come from the steps; returns 0 (completed: the caller hands
 * over), or -errno with err saying what happened and where the guest runs.
 * -EINPROGRESS: QEMU has not decided; *ret_later: settle it in the
 * background.
 */
static int outcome(struct vm *vm, const struct vm_migrate_opts *o, const struct mig_run *run,
		   int r, char *err, size_t errlen, bool *ret_later)
{
	uint64_t deadline = run->t0 + (uint64_t)o->timeout_ms * 1000000ull, until;
	char state[256], note[400], cause[512];

	*ret_later = false;
	if (!run->started) {    /* QEMU never paused the guest */
		if (r < 0 && vm_get_state(vm) == VM_RUNNING)
			snprintf(err + strlen(err), errlen - strlen(err), "; the VM keeps running here");
		return r;
	}
	snprintf(cause, sizeof(cause), "%s", r < 0 ? err : "");
	until = run->continued ? MAX(deadline, now_ns() + SWITCHOVER_GRACE_MS * 1000000ull)
			       : now_ns() + CANCEL_WAIT_MS * 1000000ull;
	switch (vm_mig_settle(vm, run->continued, until, state, sizeof(state), note,
			      sizeof(note))) {
	case VM_MIG_COMPLETED:
		if (r < 0)
			log_warn("vm %s: %s, but QEMU completed the migration", vm->spec.name, cause);
		return 0;
	case VM_MIG_RESUMED:
		if (run->continued)
			snprintf(err, errlen, "the migration failed after migrate-continue (QEMU: %s); %s",
				 state, note);
		else
			snprintf(err, errlen, "%s; %s", cause, note);
		return r < 0 ? r : -ECONNABORTED;
	case VM_MIG_GONE:
		snprintf(err, errlen, "%s", *cause ? cause : note);
		return -EPIPE;
	case VM_MIG_PENDING:
		break;
	}
	snprintf(err, errlen, "%s%s%s", cause, *cause ? "; " : "", note);
	*ret_later = true;
	return -EINPROGRESS;
}

int vm_migrate(struct vm *vm, const struct vm_migrate_opts *o, json_t **ret, char *err,
	       size_t errlen)
{
	struct mig_run run = { .t0 = now_ns() };
	struct vm_mig *m = vm_mig_get(vm);
	json_t *info = NULL, *res;
	struct vm_hb hb;
	bool later;
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
	if (r >= 0)
		r = run_migration(vm, o, &run, err, errlen);
	r = outcome(vm, o, &run, r, err, errlen, &later);
	if (r >= 0)
		(void)vm_mig_query(vm->qmp, &info);
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
		vm_mig_hand_over(vm);
		json_object_set_new(res, "replicas_out", replicas_out(vm));
		if (vm_mig_last_heartbeat(m, &hb))
			json_object_set_new(res, "last_heartbeat",
					    json_pack("{s:I, s:I, s:I}", "seq", (json_int_t)hb.seq,
						      "ns", (json_int_t)hb.ns, "rx_ns",
						      (json_int_t)hb.rx_ns));
	} else {
		json_object_set_new(res, "error", json_string(err));
		if (later)
			json_object_set_new(res, "outcome", json_string("indeterminate"));
	}
	pthread_mutex_lock(&vm->lock);
	m->migrating = later;            /* until QEMU decides */
	json_decref(m->last);
	m->last = json_deep_copy(res);   /* for status: without the hot-page list */
	json_object_del(m->last, "hot");
	pthread_mutex_unlock(&vm->lock);
	if (later && vm_mig_settle_later(vm) < 0)
		log_error("vm %s: cannot watch the indeterminate migration: it stays in switchover",
			  vm->spec.name);
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

