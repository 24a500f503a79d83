// SPDX-License-Identifier: MIT
/*
 * A VM's remote sections as JSON, with their replicas (replica_json.h,
 * docs/replication.md): parsing and printing them, and the out positions
 * the VM's records keep (what the pager took out, vm_replica.c).
 */
#include "replica_json.h"

#include <stdio.h>
#include <string.h>

#include "grant.h"
#include "log.h"
#include "macro.h"
#include "jsonhttp.h"

int vm_parse_remote(json_t *j, const char *name, struct pager_section *ret, char *err,
		    size_t errlen)
{
	static const char *const keys[] = { "kind", "addr", "grant", NULL };
	const char *bad = NULL, *addr, *grant, *kind;
	struct pager_section s = { .kind = PAGER_SEC_REMOTE };

	if (!json_is_object(j)) {
		snprintf(err, errlen, "\"%s\" must be an object {\"addr\": ..., \"grant\": ...}", name);
		return -EINVAL;
	}
	if (json_check_keys(j, keys, &bad) < 0) {
		snprintf(err, errlen, "unknown field \"%s\" in \"%s\"", bad, name);
		return -EINVAL;
	}
	kind = json_string_value(json_object_get(j, "kind"));
	addr = json_string_value(json_object_get(j, "addr"));
	grant = json_string_value(json_object_get(j, "grant"));
	if ((json_object_get(j, "kind") && (!kind || strcmp(kind, "remote"))) || !addr || !*addr ||
	    strlen(addr) >= sizeof(s.addr) || !grant) {
		snprintf(err, errlen, "\"%s\" needs \"addr\" (host:port) and \"grant\"", name);
		return -EINVAL;
	}
	if (grant_from_hex(grant, &s.grant) < 0) {
		snprintf(err, errlen, "\"%s\".grant must be %zu hex digits", name, (size_t)GRANT_HEX_LEN);
		return -EINVAL;
	}
	snprintf(s.addr, sizeof(s.addr), "%s", addr);
	*ret = s;
	return 0;
}

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

