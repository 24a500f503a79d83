// SPDX-License-Identifier: MIT
/*
 * Compute migration, memory stays: a running VM moves to another compute
 * node while its RAM stays on the memory nodes. Only CPU and device state
 * cross between the two QEMUs (x-ignore-shared skips the shared RAM
 * files); the source flushes its dirty pages to the memory nodes, the last
 * ones while its vCPUs are stopped at pre-switchover, and the destination's
 * pager fetches pages on demand after the switchover.
 *
 * Destination (vm_incoming.c): QEMU starts with -incoming defer and the
 * source's hot sections; a thread waits for QEMU's MIGRATION event.
 *
 * Source (vm_outgoing.c): pre-copy flush rounds, migrate with
 * pause-before-switchover, final flush, migrate-continue; how it ends is
 * decided by QEMU's migration state (vm_switchover.c).
 *
 * This file keeps what both share: the per-VM migration record, the
 * guest's heartbeats, the status fields and the QMP helpers. The record
 * hears of the VM's lifecycle through its hooks (vm_mig_ext, ext.h): the
 * supervisor never calls migration code by name.
 *
 * Heartbeats: every "HB SEQ NS" line the guest channel delivers is kept in
 * a ring (guest monotonic ns and the agent's CLOCK_MONOTONIC receive time),
 * so that tests and benchmarks can see the gap the guest felt.
 */
#include "vm_migrate.h"

#include <stdio.h>
#include <string.h>

#include "guestchan.h"
#include "log.h"
#include "net.h"
#include "state.h"

/* ---- common --------------------------------------------------------------- */

struct vm_mig *vm_mig_get(struct vm *vm)
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

static void mig_free(struct vm *vm)
{
	struct vm_mig *m = vm->mig;

	if (!m)
		return;
	atomic_store(&m->stop, true);
	if (m->waiter_on)
		pthread_join(m->waiter, NULL);
	if (m->settler_on)
		pthread_join(m->settler, NULL);
	if (vm->guest)
		guestchan_set_callback(vm->guest, NULL, NULL);
	guestchan_close(m->early_guest);
	json_decref(m->last);
	pthread_mutex_destroy(&m->hb_lock);
	free(m);
	vm->mig = NULL;
}

/* ---- heartbeats ----------------------------------------------------------- */

void vm_mig_on_guest_line(const char *line, void *opaque)
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

static void mig_guest_attached(struct vm *vm)
{
	struct vm_mig *m = vm_mig_get(vm);

	if (m && vm->guest)
		guestchan_set_callback(vm->guest, vm_mig_on_guest_line, m);
}

json_t *vm_heartbeats(struct vm *vm)
{
	struct vm_mig *m = vm_mig_get(vm);
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

bool vm_mig_last_heartbeat(struct vm_mig *m, struct vm_hb *ret)
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

static void mig_status(struct vm *vm, json_t *j)
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

int vm_mig_set_caps(struct qmp *q, bool pause)
{
	return qmp_executef(q, QMP_CMD_MS, NULL, "migrate-set-capabilities",
			    "{s:[{s:s, s:b}, {s:s, s:b}, {s:s, s:b}]}", "capabilities",
			    "capability", "x-ignore-shared", "state", 1,
			    "capability", "events", "state", 1,
			    "capability", "pause-before-switchover", "state", pause ? 1 : 0);
}

int vm_mig_query(struct qmp *q, json_t **ret)
{
	return qmp_execute(q, "query-migrate", NULL, QMP_CMD_MS, ret);
}

/* ---- hooks into the lifecycle (ext.h) -------------------------------------- */

const struct vm_ext_ops vm_mig_ext = {
	.name = "migration",
	.guest_attached = mig_guest_attached,
	.status = mig_status,
	.free = mig_free,
};
