// SPDX-License-Identifier: MIT
/*
 * A VM's replicated sections (replicas.h, docs/replication.md).
 *
 * The pager decides that a replica is out (it failed while another one
 * took the same write) and tells us through pager_config.on_replica; the
 * health thread then calls vm_replicas_sync(), which copies the pager's
 * out positions into the VM's records (struct pager_section.out), writes
 * vm.json and kicks a heartbeat. The records are what a restarted agent
 * gives the pager again: a replica that missed writes stays out. Between
 * the pager's decision and vm.json there are a few milliseconds in which
 * an agent that dies would forget it; the orchestrator, which repairs
 * from the reports, is told through the same heartbeat.
 */
#include "replicas.h"

#include <stdio.h>
#include <string.h>

#include "grant.h"
#include "log.h"
#include "macro.h"
#include "pager_use.h"
#include "persist.h"
#include "sections.h"

#define SYNC_MAX 64u                 /* out replicas read from the pager per sync */

int vm_replicas_parse(json_t *j, struct pager_section *s, char *err, size_t errlen)
{
	json_t *arr = json_object_get(j, "replicas"), *e;
	size_t i, n;

	s->nrep = 0;
	s->out = 0;
	if (!arr || json_is_null(arr))
		return 0;
	n = json_array_size(arr);
	if (!json_is_array(arr) || n > PAGER_MAX_REPLICAS - 1) {
		snprintf(err, errlen, "\"replicas\" must be an array of at most %d sections",
			 PAGER_MAX_REPLICAS - 1);
		return -EINVAL;
	}
	if (s->kind != PAGER_SEC_REMOTE && n) {
		snprintf(err, errlen, "only a remote section has \"replicas\"");
		return -EINVAL;
	}
	json_array_foreach(arr, i, e) {
		struct pager_section r;
		char what[32];
		int rc;

		snprintf(what, sizeof(what), "replicas[%zu]", i);
		rc = vm_parse_remote(e, what, &r, err, errlen);
		if (rc < 0)
			return rc;
		if (r.grant.memnode_id == s->grant.memnode_id) {
			snprintf(err, errlen, "%s is on memory node %llu, as position 0", what,
				 (unsigned long long)r.grant.memnode_id);
			return -EINVAL;
		}
		for (size_t k = 0; k < i; k++)
			if (s->more[k].grant.memnode_id == r.grant.memnode_id) {
				snprintf(err, errlen, "%s and replicas[%zu] are on one memory node",
					 what, k);
				return -EINVAL;
			}
		snprintf(s->more[i].addr, sizeof(s->more[i].addr), "%s", r.addr);
		s->more[i].grant = r.grant;
	}
	s->nrep = n ? (uint8_t)(n + 1) : 0;
	return 0;
}

void vm_replica_view(const struct pager_section *s, unsigned pos, struct pager_section *ret)
{
	*ret = *s;
	ret->nrep = 0;
	ret->out = 0;
	if (pos == 0 || pos >= s->nrep)
		return;
	snprintf(ret->addr, sizeof(ret->addr), "%s", s->more[pos - 1].addr);
	ret->grant = s->more[pos - 1].grant;
}

json_t *vm_replicas_json(const struct pager_section *s, bool grants)
{
	json_t *arr;

	if (s->kind != PAGER_SEC_REMOTE || s->nrep < 2)
		return NULL;
	arr = json_array();
	for (unsigned pos = 1; arr && pos < s->nrep; pos++) {
		const struct pager_replica *r = &s->more[pos - 1];
		char hex[GRANT_HEX_LEN + 1];
		json_t *e;

		if (grants) {          /* as vm_replicas_parse takes it */
			grant_to_hex(&r->grant, hex);
			e = json_pack("{s:s, s:s}", "addr", r->addr, "grant", hex);
		} else {
			e = json_pack("{s:s, s:I, s:I, s:I, s:b}", "addr", r->addr, "memnode",
				      (json_int_t)r->grant.memnode_id, "section",
				      (json_int_t)r->grant.section, "generation",
				      (json_int_t)r->grant.generation, "in",
				      !(s->out & (1u << pos)));
		}
		if (!e)
			continue;
		json_array_append_new(arr, e);
	}
	return arr;
}

json_t *vm_replicas_out_positions(const struct pager_section *s)
{
	json_t *arr;

	if (!s->out)
		return NULL;
	arr = json_array();
	for (unsigned pos = 0; arr && pos < s->nrep; pos++)
		if (s->out & (1u << pos))
			json_array_append_new(arr, json_integer(pos));
	return arr;
}

int vm_replicas_out_parse(json_t *arr, struct pager_section *s, char *err, size_t errlen)
{
	unsigned in = s->nrep;
	json_t *e;
	size_t i;

	s->out = 0;
	if (!arr)
		return 0;
	if (!json_is_array(arr)) {
		snprintf(err, errlen, "\"out\" must be an array of replica positions");
		return -EINVAL;
	}
	json_array_foreach(arr, i, e) {
		json_int_t v = json_integer_value(e);

		if (!json_is_integer(e) || v < 0 || v >= s->nrep || (s->out & (1u << v))) {
			snprintf(err, errlen, "\"out\"[%zu] is not a replica position of the section",
				 i);
			return -EINVAL;
		}
		s->out |= (uint8_t)(1u << v);
		in--;
	}
	if (s->nrep && !in) {
		snprintf(err, errlen, "\"out\" names every replica of the section");
		return -EINVAL;
	}
	return 0;
}

/* ---- the pager's out replicas into the records ------------------------------- */

void vm_replicas_sync(struct vm *vm)
{
	struct pager_replica_out out[SYNC_MAX];
	struct pager *p = vm_pager_get(vm);
	bool changed = false;
	int n;

	if (!p)
		return;
	n = pager_replicas_out(p, out, ARRAY_SIZE(out));
	vm_pager_put(vm, p);
	if (n <= 0)
		return;
	pthread_mutex_lock(&vm->lock);
	for (int i = 0; i < n && i < (int)ARRAY_SIZE(out); i++) {
		struct pager_section *rec;
		unsigned pos;

		rec = vm_replica_record(vm, &out[i].view, &pos);
		if (!rec || (rec->out & (1u << pos)))
			continue;
		rec->out |= (uint8_t)(1u << pos);
		changed = true;
		log_warn("vm %s: replica %u of section %u on memory node %llu (%s) is out: %s; "
			 "the section goes on from its other replicas", vm->spec.name, pos,
			 out[i].view.grant.section, (unsigned long long)out[i].view.grant.memnode_id,
			 out[i].view.addr, out[i].err ? strerror(-out[i].err) : "dropped");
	}
	if (changed) {
		(void)vm_persist_locked(vm);
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
	if (changed && vm->env.on_state)
		vm->env.on_state(vm->env.opaque);
}

/* One record's out replicas onto arr. */
static void out_of(const struct vm_section *s, json_t *arr)
{
	const struct pager_section *sec = &s->sec;

	for (unsigned pos = 0; sec->kind == PAGER_SEC_REMOTE && pos < sec->nrep; pos++) {
		struct pager_section v;

		if (!(sec->out & (1u << pos)))
			continue;
		vm_replica_view(sec, pos, &v);
		json_array_append_new(arr, json_pack("{s:I, s:I, s:I, s:s, s:s}", "memnode",
						     (json_int_t)v.grant.memnode_id, "section",
						     (json_int_t)v.grant.section, "generation",
						     (json_int_t)v.grant.generation, "addr", v.addr,
						     "reason", "it failed while its section was "
						     "written: it missed writes"));
	}
}

json_t *vm_replicas_out_json(struct vm *vm)
{
	json_t *arr = json_array();

	if (!arr)
		return NULL;
	for (unsigned i = 0; i < vm->spec.nbase; i++)
		out_of(&vm->spec.base[i], arr);
	for (unsigned i = 0; i < vm->nhot; i++)
		if (vm->hot[i].in_use)
			out_of(&vm->hot[i].sec, arr);
	for (unsigned i = 0; vm->vmem_secs && i < vm->spec.max_hot; i++)
		out_of(&vm->vmem_secs[i], arr);
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

int vm_replica_drop(struct vm *vm, const struct pager_section *match, char *err,
		    size_t errlen)
{
	struct pager_section *rec, view;
	struct pager *p;
	unsigned pos;
	int r = 0;

	pthread_mutex_lock(&vm->lock);
	rec = vm_replica_record(vm, match, &pos);
	if (rec && (rec->out & (1u << pos))) {
		pthread_mutex_unlock(&vm->lock);
		return 0;                   /* out already */
	}
	if (rec)
		vm_replica_view(rec, pos, &view);
	pthread_mutex_unlock(&vm->lock);
	if (!rec || rec->nrep < 2) {
		snprintf(err, errlen, "the VM has no replicated section with a replica %u "
			 "(generation %u) on memory node %llu", match->grant.section,
			 match->grant.generation, (unsigned long long)match->grant.memnode_id);
		return -ENOENT;
	}
	p = vm_pager_get(vm);
	if (p)
		r = pager_replica_drop(p, &view);
	vm_pager_put(vm, p);
	if (r == -EDEADLK || r == -EBUSY) {
		snprintf(err, errlen, "it is the only replica of its section that is in");
		return -EDEADLK;
	}
	if (r < 0 && r != -ENOENT) {
		snprintf(err, errlen, "pager: %s", strerror(-r));
		return r;
	}
	pthread_mutex_lock(&vm->lock);
	rec = vm_replica_record(vm, match, &pos);
	if (rec) {
		unsigned in = 0;

		for (unsigned k = 0; k < rec->nrep; k++)
			in += !(rec->out & (1u << k)) && k != pos;
		if (!in) {
			r = -EDEADLK;
			snprintf(err, errlen, "it is the only replica of its section that is in");
		} else {
			rec->out |= (uint8_t)(1u << pos);
			(void)vm_persist_locked(vm);
		}
	}
	pthread_mutex_unlock(&vm->lock);
	if (r < 0)
		return r;
	log_warn("vm %s: replica %u of section %u on memory node %llu (%s) dropped by the "
		 "control plane", vm->spec.name, pos, view.grant.section,
		 (unsigned long long)view.grant.memnode_id, view.addr);
	if (vm->env.on_state)
		vm->env.on_state(vm->env.opaque);
	return 0;
}
