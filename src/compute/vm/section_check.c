// SPDX-License-Identifier: MIT
/*
 * Section health checks. Without them a bad grant only shows when the
 * pager's first fetch is rejected, and the faulting vCPU then waits for
 * ever. Only a READ: another node (a migration's source) may still be
 * writing. Every replica of a replicated section that is in is checked.
 * Used before a VM starts (its boot sections), before a hot-add,
 * an incoming migration's hot sections and an evacuation's target.
 */
#include "section_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "mnclient.h"

/* A grant the memory node refused (bad input, not a node that cannot answer). */
static bool refused(int r)
{
	switch (-r) {
	case EKEYREJECTED: case EKEYEXPIRED: case EPERM: case ESTALE: case ENOENT: case ERANGE:
		return true;
	default:
		return false;
	}
}

/* The kept connection to addr (*ret_kept), or a new one (check_lock held). */
static int conn_get(struct vm *vm, const char *addr, bool fresh, struct mnc **ret,
		    bool *ret_kept)
{
	struct mnc_opts o = {
		.addr = addr, .key = vm->env.key, .node_id = vm->env.node_id, .timeout_ms = 5000,
	};
	struct vm_checkconn *k = NULL;
	int r;

	for (unsigned i = 0; i < VM_CHECK_CONNS && !k; i++)
		if (vm->checks[i].c && !strcmp(vm->checks[i].addr, addr))
			k = &vm->checks[i];
	*ret_kept = k && !fresh && !mnc_broken(k->c);
	if (*ret_kept) {
		*ret = k->c;
		return 0;
	}
	if (!k) {
		for (unsigned i = 0; i < VM_CHECK_CONNS && !k; i++)
			if (!vm->checks[i].c)
				k = &vm->checks[i];
		if (!k)
			k = &vm->checks[vm->check_next++ % VM_CHECK_CONNS];
	}
	mnc_close(k->c);
	k->c = NULL;
	r = mnc_connect(&o, &k->c);
	if (r < 0)
		return r;
	snprintf(k->addr, sizeof(k->addr), "%s", addr);
	*ret = k->c;
	return 0;
}

static int check_locked(struct vm *vm, const struct vm_section *s, void *buf, char *err,
			size_t errlen)
{
	const struct proto_grant *g = &s->sec.grant;
	struct proto_extent ext = { .page = 0, .count = 1 };
	bool kept = false;
	struct mnc *c;
	int r = -EIO;

	for (int attempt = 0; attempt < 2; attempt++) {
		r = conn_get(vm, s->sec.addr, attempt > 0, &c, &kept);
		if (r < 0) {
			snprintf(err, errlen, "memory node %s: %s", s->sec.addr, strerror(-r));
			return r;
		}
		if (mnc_info(c)->node_id != g->memnode_id) {
			snprintf(err, errlen, "the grant for section %u is for memory node %llu, but %s is node %llu",
				 g->section, (unsigned long long)g->memnode_id, s->sec.addr,
				 (unsigned long long)mnc_info(c)->node_id);
			return -EINVAL;
		}
		r = mnc_read(c, g, &ext, 1, buf);
		/* A kept connection the node closed meanwhile (a restart): once more, anew. */
		if (r >= 0 || !kept || r == -ETIMEDOUT || !mnc_broken(c))
			break;
	}
	if (r < 0) {
		snprintf(err, errlen, "memory node %s refused a read of section %u: %s", s->sec.addr,
			 g->section, strerror(-r));
		return refused(r) ? -EINVAL : r;
	}
	return 0;
}

int vm_check_section(struct vm *vm, const struct vm_section *s, char *err, size_t errlen)
{
	const struct proto_grant *g = &s->sec.grant;
	_cleanup_free_ void *buf = NULL;
	int r;

	if (s->sec.kind != PAGER_SEC_REMOTE)
		return 0;
	/* A replicated section (docs/replication.md): each replica that is in, the same way. */
	for (unsigned pos = 1; pos < s->sec.nrep; pos++) {
		struct vm_section v = *s;

		if (s->sec.out & (1u << pos))
			continue;
		v.sec.nrep = 0;
		v.sec.out = 0;
		snprintf(v.sec.addr, sizeof(v.sec.addr), "%s", s->sec.more[pos - 1].addr);
		v.sec.grant = s->sec.more[pos - 1].grant;
		r = vm_check_section(vm, &v, err, errlen);
		if (r < 0)
			return r;
	}
	if (s->sec.out & 1u)
		return 0;
	if (g->holder_id != vm->env.node_id) {
		snprintf(err, errlen, "the grant for section %u on %s names node %llu as its holder, not this node (%llu)",
			 g->section, s->sec.addr, (unsigned long long)g->holder_id,
			 (unsigned long long)vm->env.node_id);
		return -EINVAL;
	}
	buf = malloc(PROTO_PAGE_SIZE);
	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&vm->check_lock);
	r = check_locked(vm, s, buf, err, errlen);
	pthread_mutex_unlock(&vm->check_lock);
	return r;
}

void vm_check_close(struct vm *vm, bool wait)
{
	if (wait)
		pthread_mutex_lock(&vm->check_lock);
	else if (pthread_mutex_trylock(&vm->check_lock))
		return;
	for (unsigned i = 0; i < VM_CHECK_CONNS; i++) {
		mnc_close(vm->checks[i].c);
		vm->checks[i].c = NULL;
	}
	pthread_mutex_unlock(&vm->check_lock);
}
