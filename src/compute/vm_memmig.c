// SPDX-License-Identifier: MIT
/*
 * Memory migration, compute stays: one remote section of a running VM
 * moves from its memory node (A) to a section on another memory node (B)
 * while the guest runs. The orchestrator drives it in phases through
 * POST /v1/vms/NAME/sections/migrate (docs/compute.md):
 *
 *   begin   find the section (boot RAM, a DIMM or a virtio-mem slot) whose
 *           memory node, section and generation match `from`, and start
 *           the pager's migration to `to`: write-backs go to A and B;
 *   (the orchestrator has A COPY the section to B)
 *   commit  the pager re-sends what was written back in the window, fences
 *           the section briefly and switches it to B; the agent's own
 *           record of the section becomes `to` (free_on_release kept), so
 *           status, hot-remove and release use B from now on;
 *   abort   dual writing stops; the section stays on A.
 *
 * A target that fails during the window never blocks the guest: the
 * pager keeps writing to A and commit answers 409 "target_failed"; the
 * orchestrator then frees B. A commit repeated after it succeeded (the
 * section is `to` already, no migration in progress) answers 200 with
 * "already": true.
 *
 * Each phase holds the VM's hot_lock, so it never overlaps a hot-add or a
 * hot-remove.
 */
#include "vm_memmig.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "jsonhttp.h"
#include "log.h"
#include "net.h"
#include "pager_use.h"
#include "persist.h"
#include "sections.h"
#include "state.h"
#include "vm.h"
#include "vm_internal.h"

static bool same_section(const struct pager_section *a, const struct pager_section *b)
{
	return a->kind == PAGER_SEC_REMOTE && b->kind == PAGER_SEC_REMOTE &&
	       a->grant.memnode_id == b->grant.memnode_id && a->grant.section == b->grant.section &&
	       a->grant.generation == b->grant.generation;
}

static const char *section_name(const struct pager_section *s, char *buf, size_t len)
{
	snprintf(buf, len, "%s memnode %llu section %u gen %u", s->addr,
		 (unsigned long long)s->grant.memnode_id, s->grant.section, s->grant.generation);
	return buf;
}

/* The agent's record of section `from` becomes `to` (lock held). */
static bool record_replace(struct vm *vm, const struct pager_section *from,
			   const struct pager_section *to)
{
	unsigned pos = 0;
	struct pager_section *rec = vm_replica_record(vm, from, &pos);

	if (rec && pager_rep_replicated(rec)) {
		/* That position moved (or was repaired): it is in; the others stay. */
		pager_rep_set(rec, pos, to);
		rec->out &= (uint8_t)~(1u << pos);
	} else if (rec) {
		*rec = *to;
	}
	return rec != NULL;
}

static int do_begin(struct vm *vm, struct pager *p, const struct pager_section *from,
		    const struct pager_section *to, char *err, size_t errlen)
{
	char nb[PROTO_MAX_ADDR + 64];
	unsigned index, replica;
	int region, r;

	if (vm_get_state(vm) != VM_RUNNING) {
		snprintf(err, errlen, "VM is %s", vm_state_name(vm_get_state(vm)));
		return -EBUSY;
	}
	r = pager_section_find_replica(p, from, &region, &index, &replica);
	if (r < 0) {
		snprintf(err, errlen, "the VM has no section %s", section_name(from, nb, sizeof(nb)));
		return r;
	}
	r = pager_section_migrate_begin_replica(p, region, index, replica, to);
	if (r == -EBUSY)
		snprintf(err, errlen, "a migration of this section is in progress (commit or abort it)");
	else if (r == -EINVAL)
		snprintf(err, errlen, "\"to\" must be another remote section");
	else if (r < 0)
		snprintf(err, errlen, "pager: %s", strerror(-r));
	else
		log_info("vm %s: section %s migrating to %s", vm->spec.name,
			 section_name(from, nb, sizeof(nb)), to->addr);
	return r;
}

static int do_commit(struct vm *vm, struct pager *p, const struct pager_section *from,
		     const struct pager_section *to, struct vm_memmig_result *ret, char *err,
		     size_t errlen)
{
	struct pager_memmig_result pr = { 0 };
	struct pager_section target;
	struct pager_stats st;
	char nb[PROTO_MAX_ADDR + 64];
	unsigned index, replica;
	int region, r;
	bool recorded;

	r = pager_section_find_replica(p, from, &region, &index, &replica);
	if (r == -ENOENT && pager_section_find_replica(p, to, &region, &index, &replica) == 0 &&
	    pager_section_migration(p, region, index, &target) == -ENOENT) {
		/* Committed already (a retried request): the section is `to`. */
		ret->already = true;
		return 0;
	}
	if (r < 0) {
		snprintf(err, errlen, "the VM has no section %s", section_name(from, nb, sizeof(nb)));
		return r;
	}
	r = pager_section_migration_replica(p, region, index, NULL, &target);
	if (r == -ENOENT) {
		snprintf(err, errlen, "no migration of this section is in progress (begin first)");
		return -EALREADY;
	}
	if (r < 0) {
		snprintf(err, errlen, "pager: %s", strerror(-r));
		return r;
	}
	if (!same_section(&target, to)) {
		snprintf(err, errlen, "the migration in progress goes to %s, not to this \"to\"",
			 section_name(&target, nb, sizeof(nb)));
		return -EALREADY;
	}
	r = pager_section_migrate_commit_replica(p, region, index, replica, &pr);
	if (r == -EREMOTEIO) {
		pager_stats(p, &st);
		snprintf(err, errlen,
			 "the target memory node %s failed during the migration (%s); the section "
			 "stays on its source, free the target",
			 to->addr, strerror(st.memmig_last_err ? -st.memmig_last_err : EIO));
		log_warn("vm %s: migration of section %s failed: %s", vm->spec.name,
			 section_name(from, nb, sizeof(nb)), err);
		return r;
	}
	if (r < 0) {
		snprintf(err, errlen, "commit failed (%s); the section stays on its source",
			 strerror(-r));
		return r;
	}
	/* The pager serves the section from B; so does everything the agent does with it. */
	pthread_mutex_lock(&vm->lock);
	recorded = record_replace(vm, from, &target);
	(void)vm_persist_locked(vm);
	pthread_mutex_unlock(&vm->lock);
	if (!recorded)
		log_warn("vm %s: migrated section %s is not in the VM's records", vm->spec.name,
			 section_name(from, nb, sizeof(nb)));
	ret->pages_resent = pr.pages_resent;
	ret->pages_dual = pr.pages_dual;
	ret->pause_us = pr.pause_ns / 1000;
	log_info("vm %s: section %s now on %s: %llu pages re-sent, pause %llu us", vm->spec.name,
		 section_name(from, nb, sizeof(nb)), target.addr,
		 (unsigned long long)pr.pages_resent, (unsigned long long)(pr.pause_ns / 1000));
	return 0;
}

static int do_abort(struct pager *p, const struct pager_section *from, char *err, size_t errlen)
{
	char nb[PROTO_MAX_ADDR + 64];
	unsigned index, replica;
	int region, r;

	r = pager_section_find_replica(p, from, &region, &index, &replica);
	if (r < 0) {
		snprintf(err, errlen, "the VM has no section %s", section_name(from, nb, sizeof(nb)));
		return r;
	}
	r = pager_section_migrate_abort_replica(p, region, index, replica);
	if (r == -ENOENT) {
		snprintf(err, errlen, "no migration of this section is in progress");
		return -EALREADY;
	}
	if (r < 0)
		snprintf(err, errlen, "pager: %s", strerror(-r));
	return r;
}

int vm_migrate_section(struct vm *vm, enum vm_memmig_phase phase,
		       const struct pager_section *from, const struct pager_section *to,
		       struct vm_memmig_result *ret, char *err, size_t errlen)
{
	struct vm_memmig_result res = { 0 };
	uint64_t t0 = now_ns();
	struct pager *p;
	int r;

	if (from->kind != PAGER_SEC_REMOTE || (phase != VM_MEMMIG_ABORT && to->kind != PAGER_SEC_REMOTE)) {
		snprintf(err, errlen, "\"from\" and \"to\" must be remote sections");
		return -EINVAL;
	}
	if (phase == VM_MEMMIG_BEGIN) {
		if (to->grant.holder_id != vm->env.node_id) {
			snprintf(err, errlen, "the \"to\" grant names holder %llu, not this node (%llu)",
				 (unsigned long long)to->grant.holder_id,
				 (unsigned long long)vm->env.node_id);
			return -EINVAL;
		}
		if ((to->grant.rights & (PROTO_R_READ | PROTO_R_WRITE)) !=
		    (PROTO_R_READ | PROTO_R_WRITE)) {
			snprintf(err, errlen, "the \"to\" grant must allow reading and writing");
			return -EINVAL;
		}
	}
	pthread_mutex_lock(&vm->hot_lock);
	p = vm_pager_get(vm);     /* held for the phase: QEMU may exit meanwhile */
	if (!p) {
		snprintf(err, errlen, "VM is %s (QEMU has exited)", vm_state_name(vm_get_state(vm)));
		r = -ESRCH;
	} else if (phase == VM_MEMMIG_BEGIN) {
		r = do_begin(vm, p, from, to, err, errlen);
	} else if (phase == VM_MEMMIG_COMMIT) {
		r = do_commit(vm, p, from, to, &res, err, errlen);
	} else {
		r = do_abort(p, from, err, errlen);
	}
	vm_pager_put(vm, p);
	pthread_mutex_unlock(&vm->hot_lock);
	res.ms = (now_ns() - t0) / 1000000;
	if (r >= 0 && ret)
		*ret = res;
	return r;
}

/* ---- HTTP: POST /v1/vms/NAME/sections/migrate ---------------------------- */

int vm_memmig_http_status(int r, const char **ret_code)
{
	switch (-r) {
	case EINVAL:
		*ret_code = "bad_request";
		return 400;
	case ENOENT:
		*ret_code = "no_section";
		return 404;
	case EBUSY:
	case EALREADY:
		*ret_code = "conflict";
		return 409;
	case EREMOTEIO:
		*ret_code = "target_failed";
		return 409;
	case ESRCH:
		*ret_code = "not_running";
		return 409;
	case ETIMEDOUT:
	case EPIPE:
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
		*ret_code = "memnode_unreachable";
		return 503;
	default:
		*ret_code = "internal";
		return 500;
	}
}

void vm_memmig_http(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "phase", "from", "to", NULL };
	struct pager_section from = { 0 }, to = { 0 };
	struct vm_memmig_result res = { 0 };
	enum vm_memmig_phase phase;
	const char *ph, *code;
	char err[512] = "";
	json_t *j;
	int r;

	j = http_json_args(req, resp, keys);
	if (!j)
		return;
	ph = json_string_value(json_object_get(j, "phase"));
	if (ph && !strcmp(ph, "begin"))
		phase = VM_MEMMIG_BEGIN;
	else if (ph && !strcmp(ph, "commit"))
		phase = VM_MEMMIG_COMMIT;
	else if (ph && !strcmp(ph, "abort"))
		phase = VM_MEMMIG_ABORT;
	else {
		http_resp_error(resp, 400, "bad_request",
				"\"phase\" must be \"begin\", \"commit\" or \"abort\"");
		goto out;
	}
	if (vm_parse_remote(json_object_get(j, "from"), "from", &from, err, sizeof(err)) < 0 ||
	    ((phase != VM_MEMMIG_ABORT || json_object_get(j, "to")) &&
	     vm_parse_remote(json_object_get(j, "to"), "to", &to, err, sizeof(err)) < 0)) {
		http_resp_error(resp, 400, "bad_section", "%s", err);
		goto out;
	}
	r = vm_migrate_section(vm, phase, &from, &to, &res, err, sizeof(err));
	if (r < 0) {
		int st = vm_memmig_http_status(r, &code);

		http_resp_error(resp, st, code, "%s", err);
		goto out;
	}
	if (phase == VM_MEMMIG_COMMIT)
		http_resp_json(resp, 200,
			   json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:o}", "phase", ph,
				     "pages_resent", (json_int_t)res.pages_resent, "pages_dual",
				     (json_int_t)res.pages_dual, "pause_us", (json_int_t)res.pause_us,
				     "ms", (json_int_t)res.ms, "already", res.already, "vm",
				     vm_status(vm)));
	else
		http_resp_json(resp, 200, json_pack("{s:s, s:I}", "phase", ph, "ms", (json_int_t)res.ms));
out:
	json_decref(j);
}
