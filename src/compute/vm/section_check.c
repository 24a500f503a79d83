// SPDX-License-Identifier: MIT
/*
 * Section health checks. Without them a bad grant only shows when the
 * pager's first fetch is rejected, and the faulting vCPU then waits for
 * ever. Only a READ: another node (a migration's source) may still be
 * writing. Used before a VM starts (its boot sections), before a hot-add,
 * an incoming migration's hot sections and an evacuation's target.
 */
#include "section_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "mnclient.h"

int vm_check_section(struct vm *vm, const struct vm_section *s, char *err, size_t errlen)
{
	const struct proto_grant *g = &s->sec.grant;
	struct mnc_opts o = {
		.addr = s->sec.addr, .key = vm->env.key, .node_id = vm->env.node_id,
		.timeout_ms = 5000,
	};
	struct proto_extent ext = { .page = 0, .count = 1 };
	_cleanup_mnc_ struct mnc *c = NULL;
	_cleanup_free_ void *buf = NULL;
	int r;

	if (s->sec.kind != PAGER_SEC_REMOTE)
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
	r = mnc_connect(&o, &c);
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
	if (r < 0) {
		snprintf(err, errlen, "memory node %s refused a read of section %u: %s", s->sec.addr,
			 g->section, strerror(-r));
		switch (-r) {
		case EKEYREJECTED: case EKEYEXPIRED: case EPERM: case ESTALE: case ENOENT:
		case ERANGE:
			return -EINVAL;
		default:
			return r;
		}
	}
	return 0;
}
