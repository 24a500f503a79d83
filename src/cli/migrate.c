// SPDX-License-Identifier: MIT
/*
 * `disagg slot migrate` and `disagg slot migrate-memory`: the two slot
 * migrations of the orchestrator's API (docs/api.md, "Migration"). Both
 * are one long request with progress on stderr, then a summary: for a
 * compute migration the total time, QEMU's downtime and the bytes sent
 * between the compute nodes; for a memory migration one line per section
 * (pages copied and re-sent, the pause the VM saw) and the totals. With
 * --json, the orchestrator's answer.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int node_arg(const struct cli_args *a, const char *opt, bool required, uint64_t *ret)
{
	const char *v = cli_opt(a, opt);
	char *end;
	unsigned long long x;

	if (!v) {
		if (required)
			return cli_usage_error(a, "--%s is required", opt);
		return -1;
	}
	x = strtoull(v, &end, 10);
	if (!*v || *end || x == 0 || v[0] == '-')
		return cli_usage_error(a, "--%s must be a node id, not \"%s\"", opt, v);
	*ret = x;
	return 0;
}

/* "8 ms" or "-" for a missing number. */
static void ms_text(const json_t *o, const char *key, char *buf, size_t len)
{
	int64_t v = jint(o, key, -1);

	if (v < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%" PRId64 " ms", v);
}

int cmd_slot_migrate(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL, *path = NULL;
	const char *name = a->args[0];
	const json_t *mig;
	char total[32], down[32], sent[32];
	uint64_t to;
	int ret;

	if ((ret = node_arg(a, "to", true, &to)))
		return ret;
	path = cli_path_with("/v1/slots/", name, "/migrate");
	body = json_pack("{s:I, s:b}", "to", (json_int_t)to, "prefetch", !cli_flag(a, "no-prefetch"));
	if (!path || !body ||
	    asprintf(&label, "moving slot %s to compute node %" PRIu64, name, to) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "POST", path, body, label, &r);
	if (ret != CLI_MORE)
		return ret;
	mig = json_object_get(r.json, "migration");
	ms_text(r.json, "total_ms", total, sizeof(total));
	ms_text(mig, "downtime_ms", down, sizeof(down));
	fmt_size((uint64_t)jint(mig, "ram_transferred_bytes", 0), sent, sizeof(sent));
	printf("slot %s moved from compute node %" PRId64 " to %" PRId64
	       " in %s: downtime %s (QEMU), %s sent between compute nodes, %" PRId64
	       " pages flushed to memory nodes (final flush %" PRId64 " pages)\n",
	       name, jint(r.json, "from", -1), jint(r.json, "to", -1), total, down, sent,
	       jint(mig, "pages_flushed", 0), jint(mig, "final_flush_pages", 0));
	return CLI_EXIT_OK;
}

int cmd_slot_migrate_memory(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL, *path = NULL;
	const char *name = a->args[0], *sv;
	uint64_t from, to, section = 0;
	char copied[32], total[32];
	json_t *secs, *x;
	size_t i;
	int ret;

	if ((ret = node_arg(a, "from", true, &from)) || (ret = node_arg(a, "to", true, &to)))
		return ret;
	if ((sv = cli_opt(a, "section")) &&
	    (ret = cli_opt_u64(a, "section", 0, 1u << 20, &section)))
		return ret;
	path = cli_path_with("/v1/slots/", name, "/migrate-memory");
	body = json_pack("{s:I, s:I}", "from", (json_int_t)from, "to", (json_int_t)to);
	if (body && sv)
		json_object_set_new(body, "section", json_integer((json_int_t)section));
	if (!path || !body ||
	    asprintf(&label, "moving %s of slot %s from memory node %" PRIu64 " to %" PRIu64,
		     sv ? "a section" : "the sections", name, from, to) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "POST", path, body, label, &r);
	if (ret != CLI_MORE)
		return ret;
	secs = json_object_get(r.json, "sections");
	json_array_foreach(secs, i, x) {
		char sz[32];

		fmt_size((uint64_t)jint(x, "bytes_copied", 0), sz, sizeof(sz));
		printf("  section %" PRId64 ": memnode %" PRId64 " -> %" PRId64 " (section %" PRId64
		       "): %" PRId64 " pages (%s) copied in %" PRId64 " ms, %" PRId64
		       " re-sent, pause %.2f ms\n",
		       jint(x, "index", -1), jint(json_object_get(x, "from"), "memnode", -1),
		       jint(json_object_get(x, "to"), "memnode", -1),
		       jint(json_object_get(x, "to"), "section", -1), jint(x, "pages_copied", 0),
		       sz, jint(x, "copy_ms", 0), jint(x, "pages_resent", 0),
		       (double)jint(x, "pause_us", 0) / 1000.0);
	}
	fmt_size((uint64_t)jint(r.json, "bytes_copied", 0), copied, sizeof(copied));
	ms_text(r.json, "total_ms", total, sizeof(total));
	printf("slot %s: %zu section%s moved from memory node %" PRIu64 " to %" PRIu64
	       " in %s: %s copied, max pause %.2f ms\n",
	       name, json_array_size(secs), json_array_size(secs) == 1 ? "" : "s", from, to,
	       total, copied, (double)jint(r.json, "max_pause_us", 0) / 1000.0);
	return CLI_EXIT_OK;
}
