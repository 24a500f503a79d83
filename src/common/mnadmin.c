// SPDX-License-Identifier: MIT
/*
 * Section allocation and release for the memory-node client library
 * (mnadmin.h): SECTION_ALLOC and SECTION_FREE, the requests of the
 * orchestrator's capability (a connection made with opts.orch_key), and
 * the grant form of FREE that any holder of a grant with the free right
 * may send (docs/protocol.md, "Sections").
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>

#include "mnadmin.h"
#include "wire.h"

int mnc_alloc(struct mnc *c, uint64_t owner_id, struct proto_section *ret)
{
	struct proto_alloc_req req = { .owner_id = owner_id };
	struct proto_section s;
	int r;

	wire_alloc_req_swap(&req);
	r = mnc_call(c, PROTO_OP_SECTION_ALLOC, &req, sizeof(req), &s, sizeof(s));
	if (r < 0)
		return r;
	wire_section_swap(&s);
	*ret = s;
	return 0;
}

int mnc_free(struct mnc *c, uint32_t section, uint32_t generation, uint32_t epoch)
{
	struct proto_free_req req = { .section = section, .generation = generation,
				       .epoch = epoch };

	wire_free_req_swap(&req);
	return mnc_call(c, PROTO_OP_SECTION_FREE, &req, sizeof(req), NULL, 0);
}

int mnc_revoke(struct mnc *c, const uint64_t *ids, size_t n)
{
	struct proto_revoke_req req = { .count = htole32((uint32_t)n) };
	_cleanup_free_ uint64_t *le = NULL;

	if (!c || (n && !ids))
		return -EINVAL;
	if (n > PROTO_MAX_REVOKED)
		return -E2BIG;
	if (!(mnc_info(c)->features & PROTO_FEAT_REVOKE))
		return -EOPNOTSUPP;
	le = malloc((n ? n : 1) * sizeof(*le));
	if (!le)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		le[i] = htole64(ids[i]);
	return mnc_call_data(c, PROTO_OP_REVOKE, &req, sizeof(req), le, n * sizeof(*le), NULL, 0);
}

int mnc_free_grant(struct mnc *c, const struct proto_grant *g)
{
	struct proto_grant le;

	if (!g)
		return -EINVAL;
	le = *g;
	wire_grant_swap(&le);
	return mnc_call(c, PROTO_OP_SECTION_FREE, &le, sizeof(le), NULL, 0);
}

int mnc_stats(struct mnc *c, struct proto_stats_rep *ret)
{
	struct proto_stats_rep rep;
	int r = mnc_call(c, PROTO_OP_STATS, NULL, 0, &rep, sizeof(rep));

	if (r < 0)
		return r;
	wire_stats_rep_swap(&rep);
	*ret = rep;
	return 0;
}
