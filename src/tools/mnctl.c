// SPDX-License-Identifier: MIT
/*
 * disagg-mnctl: a small memory-node client for tests, the demo and humans.
 *
 *   disagg-mnctl --addr HOST:PORT --key FILE --grant-key FILE --node-id ID
 *                [--timeout MS] CMD ...
 *
 *   ping | stats | list | alloc [--owner ID] | free SECTION GEN
 *   fill SECTION GEN --seed S [--pages N] [--first P]
 *   verify SECTION GEN (--seed S | --zero) [--pages N] [--first P]
 *          [--pattern-node ID] [--pattern-section N]
 *   copy SECTION GEN --to HOST:PORT --to-section N --to-generation G --to-node-id ID
 *   cas SECTION GEN --offset O --expect E --value V
 *   fadd SECTION GEN --offset O --value V
 *   fence SECTION GEN --epoch E
 *
 * It holds the cluster key and the grant key's private half, so it acts as
 * the orchestrator: it proves the orchestrator's capability at AUTH (alloc,
 * list, free and copy need it) and mints its own grants (holder =
 * --node-id, memnode = the id the node proved in HELLO, ownership epoch
 * --epoch, default 0). --grant-key defaults to grant.key beside the --key
 * file (the layout `disagg up` makes).
 * fill/verify use the pattern of toolutil.h, derived from the seed, the
 * memory node id, the section and the page index; --pattern-node and
 * --pattern-section verify a copy made to another node or section.
 * Results are JSON on stdout; errors go to stderr and exit with status 1.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "grant.h"
#include "mnadmin.h"
#include "mnclient.h"
#include "net.h"
#include "tls.h"
#include "toolutil.h"
#include "wire.h"

#define QD 8 /* requests in flight for fill/verify */

struct args {
	const char *addr, *keyfile, *grant_keyfile, *to;
	uint64_t node_id, owner, seed, pages, first, timeout;
	struct fabric_conf fabric;
	uint64_t to_section, to_generation, to_node_id;
	uint64_t offset, expect, value, pattern_node, pattern_section, epoch;
	bool have_seed, have_pages, zero, have_pnode, have_psec;
	bool have_to_sec, have_to_gen, have_to_node, have_expect, have_value;
	char **pos;
	int npos;
};

static int fail(const char *what, int r)
{
	const char *node = NULL;

	/* Refusals by the node whose errno text alone is misleading ("Key was rejected"). */
	switch (-r) {
	case EKEYREJECTED: case EPERM: case ESTALE: case ENOENT: case EKEYREVOKED:
		node = proto_status_str(proto_errno_to_status(r));
		break;
	}
	fprintf(stderr, "disagg-mnctl: %s: %s%s%s%s\n", what, strerror(-r), node ? " (" : "",
		node ? node : "", node ? ")" : "");
	return 1;
}

static int print_json(json_t *j)
{
	if (!j || json_dumpf(j, stdout, 0) < 0) {
		json_decref(j);
		return fail("json", -ENOMEM);
	}
	putchar('\n');
	json_decref(j);
	return 0;
}

/* SECTION GEN positional arguments. */
static int sec_gen(const struct args *a, uint32_t *ret_sec, uint32_t *ret_gen)
{
	uint64_t s, g;

	if (a->npos != 3) {
		fprintf(stderr, "disagg-mnctl: %s needs SECTION GEN\n", a->pos[0]);
		return -EINVAL;
	}
	if (tool_u64("SECTION", a->pos[1], &s) < 0 || tool_u64("GEN", a->pos[2], &g) < 0)
		return -EINVAL;
	if (s > UINT32_MAX || g > UINT32_MAX) {
		fprintf(stderr, "disagg-mnctl: section and generation are 32-bit numbers\n");
		return -EINVAL;
	}
	*ret_sec = (uint32_t)s;
	*ret_gen = (uint32_t)g;
	return 0;
}

static int mint(const struct grant_key *key, const struct args *a, uint64_t memnode,
		uint64_t holder, uint32_t sec, uint32_t gen, uint32_t rights,
		struct proto_grant *ret)
{
	int r = grant_mint(key, memnode, holder, sec, gen, (uint32_t)a->epoch, rights,
			   (uint64_t)time(NULL) + 3600, ret);

	return r < 0 ? fail("mint grant", r) : 0;
}

/* ---- fill / verify ------------------------------------------------------ */

struct chunk {
	struct xfer *x;
	uint8_t *buf;
	uint32_t page, count;
	bool busy;
};

struct xfer {
	struct chunk ch[QD];
	const struct args *a;
	uint64_t pnode;
	uint32_t psec;
	bool verify;
	int err;
	uint64_t bad, checked;
	uint32_t first_bad;
};

static void check_chunk(struct chunk *k)
{
	struct xfer *x = k->x;
	uint8_t want[PROTO_PAGE_SIZE];

	for (uint32_t i = 0; i < k->count; i++) {
		const uint8_t *got = k->buf + (size_t)i * PROTO_PAGE_SIZE;

		if (x->a->zero)
			memset(want, 0, sizeof(want));
		else
			tool_pattern(x->a->seed, x->pnode, x->psec, k->page + i, want);
		if (memcmp(got, want, sizeof(want)) != 0) {
			if (x->bad++ == 0 || k->page + i < x->first_bad)
				x->first_bad = k->page + i;
		}
		x->checked++;
	}
}

static void chunk_done(void *opaque, int status, size_t len)
{
	struct chunk *k = opaque;

	k->busy = false;
	if (status < 0) {
		if (!k->x->err)
			k->x->err = status;
		return;
	}
	if (k->x->verify)
		check_chunk(k);
}

static int fill_verify(struct mnc *c, const struct grant_key *key, const struct args *a,
		       bool write)
{
	const struct mnc_info *info = mnc_info(c);
	uint64_t sec_pages = info->section_size / PROTO_PAGE_SIZE, pages, t0;
	uint32_t sec, gen, per = MIN(info->max_pages, 64u), next;
	struct proto_grant g;
	struct xfer x = { .a = a, .verify = !write };
	int r;

	if (sec_gen(a, &sec, &gen) < 0)
		return 1;
	if (!a->have_seed && !(a->zero && !write)) {
		fprintf(stderr, "disagg-mnctl: %s needs --seed%s\n", a->pos[0],
			write ? "" : " or --zero");
		return 1;
	}
	if (a->first >= sec_pages) {
		fprintf(stderr, "disagg-mnctl: --first %" PRIu64 " is outside the section (%" PRIu64
			" pages)\n", a->first, sec_pages);
		return 1;
	}
	pages = a->have_pages ? a->pages : sec_pages - a->first;
	if (pages > sec_pages - a->first) {
		fprintf(stderr, "disagg-mnctl: --pages %" PRIu64 " runs past the section end\n", pages);
		return 1;
	}
	x.pnode = a->have_pnode ? a->pattern_node : info->node_id;
	x.psec = a->have_psec ? (uint32_t)a->pattern_section : sec;
	if (mint(key, a, info->node_id, a->node_id, sec, gen, write ? PROTO_R_WRITE : PROTO_R_READ,
		 &g))
		return 1;
	for (int i = 0; i < QD; i++) {
		x.ch[i].x = &x;
		x.ch[i].buf = malloc((size_t)per * PROTO_PAGE_SIZE);
		if (!x.ch[i].buf)
			return fail("malloc", -ENOMEM);
	}

	t0 = now_ns();
	next = (uint32_t)a->first;
	for (uint64_t left = pages; (left > 0 || mnc_inflight(c) > 0) && !x.err;) {
		struct chunk *k = NULL;

		for (int i = 0; i < QD && !k && left > 0; i++)
			if (!x.ch[i].busy)
				k = &x.ch[i];
		if (!k) {
			r = mnc_poll(c, a->timeout ? (int)a->timeout : 5000);
			if (r == 0)
				r = -ETIMEDOUT;
			if (r < 0) {
				x.err = x.err ? x.err : r;
				break;
			}
			continue;
		}
		struct proto_extent e = { next, (uint32_t)MIN(left, (uint64_t)per) };

		k->page = e.page;
		k->count = e.count;
		if (write)
			for (uint32_t i = 0; i < e.count; i++)
				tool_pattern(a->seed, x.pnode, x.psec, e.page + i,
					     k->buf + (size_t)i * PROTO_PAGE_SIZE);
		k->busy = true;
		r = write ? mnc_write_async(c, &g, &e, 1, k->buf, chunk_done, k)
			  : mnc_read_async(c, &g, &e, 1, k->buf, chunk_done, k);
		if (r < 0) {
			k->busy = false;
			x.err = r;
			break;
		}
		next += e.count;
		left -= e.count;
	}
	/* Also after an error: nothing may stay in flight pointing at x. */
	r = mnc_drain(c);
	if (r < 0 && !x.err)
		x.err = r;
	for (int i = 0; i < QD; i++)
		free(x.ch[i].buf);
	if (x.err)
		return fail(write ? "write" : "read", x.err);

	double secs = (double)(now_ns() - t0) / 1e9;
	if (write) {
		fprintf(stderr, "wrote %" PRIu64 " pages of section %u in %.2f s (%.0f MB/s)\n",
			pages, sec, secs, (double)pages * PROTO_PAGE_SIZE / 1e6 / secs);
		return 0;
	}
	if (x.bad) {
		fprintf(stderr, "disagg-mnctl: verify: %" PRIu64 " of %" PRIu64
			" pages mismatch (first at page %u)\n", x.bad, x.checked, x.first_bad);
		printf("{\"pages\": %" PRIu64 ", \"mismatches\": %" PRIu64 "}\n", x.checked, x.bad);
		return 1;
	}
	fprintf(stderr, "verified %" PRIu64 " pages of section %u in %.2f s (%.0f MB/s)\n",
		x.checked, sec, secs, (double)x.checked * PROTO_PAGE_SIZE / 1e6 / secs);
	printf("{\"pages\": %" PRIu64 ", \"mismatches\": 0}\n", x.checked);
	return 0;
}

/* ---- other commands ----------------------------------------------------- */

static int cmd_ping(struct mnc *c, const struct args *a)
{
	uint64_t t0 = now_ns();
	int r = mnc_ping(c);

	if (r < 0)
		return fail("ping", r);
	printf("{\"node_id\": %" PRIu64 ", \"rtt_us\": %.1f}\n", mnc_info(c)->node_id,
	       (double)(now_ns() - t0) / 1000.0);
	return 0;
}

static int cmd_stats(struct mnc *c, const struct args *a)
{
	const struct mnc_info *i = mnc_info(c);
	struct proto_stats_rep s;
	int r = mnc_stats(c, &s);

	if (r < 0)
		return fail("stats", r);
	return print_json(json_pack(
		"{s:I, s:I, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:i}",
		"node_id", (json_int_t)s.node_id, "section_size", (json_int_t)s.section_size,
		"nsections", (int)s.nsections, "nused", (int)s.nused,
		"requests", (json_int_t)s.requests, "errors", (json_int_t)s.errors,
		"bytes_read", (json_int_t)s.bytes_read, "bytes_written", (json_int_t)s.bytes_written,
		"connections", (json_int_t)s.connections, "max_pages", (int)i->max_pages,
		"max_inflight", (int)i->max_inflight, "features", (int)i->features,
		"version", (int)i->version));
}

static int cmd_alloc(struct mnc *c, const struct args *a)
{
	struct proto_section s;
	int r = mnc_alloc(c, a->owner, &s);

	if (r < 0)
		return fail("alloc", r);
	return print_json(json_pack("{s:i, s:i, s:I}", "section", (int)s.section, "generation",
				    (int)s.generation, "owner", (json_int_t)s.owner_id));
}

static int cmd_free(struct mnc *c, const struct args *a)
{
	uint32_t sec, gen;
	int r;

	if (sec_gen(a, &sec, &gen) < 0)
		return 1;
	r = mnc_free(c, sec, gen, (uint32_t)a->epoch);
	return r < 0 ? fail("free", r) : 0;
}

static int cmd_list(struct mnc *c, const struct args *a)
{
	_cleanup_free_ struct proto_section *s = malloc(PROTO_MAX_LIST * sizeof(*s));
	json_t *arr = json_array();
	uint32_t start = 0, count, next;
	int r;

	if (!s || !arr)
		return fail("list", -ENOMEM);
	do {
		r = mnc_list(c, start, PROTO_MAX_LIST, s, &count, &next);
		if (r < 0) {
			json_decref(arr);
			return fail("list", r);
		}
		for (uint32_t i = 0; i < count; i++)
			json_array_append_new(arr, json_pack("{s:i, s:i, s:I}", "section",
							     (int)s[i].section, "generation",
							     (int)s[i].generation, "owner",
							     (json_int_t)s[i].owner_id));
		if (next <= start)
			break; /* no progress: do not loop for ever */
		start = next;
	} while (count > 0 && next < mnc_info(c)->nsections);
	return print_json(arr);
}

static int cmd_copy(struct mnc *c, const struct grant_key *key, const struct args *a)
{
	struct proto_copy_rep rep;
	struct proto_grant src, dst;
	uint32_t sec, gen;
	int r;

	if (sec_gen(a, &sec, &gen) < 0)
		return 1;
	if (!a->to || !a->have_to_sec || !a->have_to_gen || !a->have_to_node) {
		fprintf(stderr, "disagg-mnctl: copy needs --to, --to-section, --to-generation "
				"and --to-node-id\n");
		return 1;
	}
	if (a->to_section > UINT32_MAX || a->to_generation > UINT32_MAX)
		return fail("copy", -ERANGE);
	/* The source node writes to the target: it is the grant's holder. */
	if (mint(key, a, a->to_node_id, mnc_info(c)->node_id, (uint32_t)a->to_section,
		 (uint32_t)a->to_generation, PROTO_R_WRITE, &dst))
		return 1;
	if (mint(key, a, mnc_info(c)->node_id, a->node_id, sec, gen, PROTO_R_READ, &src))
		return 1;
	r = mnc_copy(c, &src, &dst, a->to, &rep);
	if (r < 0)
		return fail("copy", r);
	return print_json(json_pack("{s:I, s:I}", "pages", (json_int_t)rep.pages, "usec",
				    (json_int_t)rep.usec));
}

static int cmd_atomic(struct mnc *c, const struct grant_key *key, const struct args *a, bool cas)
{
	struct proto_grant g;
	uint32_t sec, gen;
	uint64_t old;
	int r;

	if (sec_gen(a, &sec, &gen) < 0)
		return 1;
	if (!a->have_value || (cas && !a->have_expect)) {
		fprintf(stderr, "disagg-mnctl: %s needs --offset, %s--value\n", a->pos[0],
			cas ? "--expect, " : "");
		return 1;
	}
	if (mint(key, a, mnc_info(c)->node_id, a->node_id, sec, gen, PROTO_R_READ | PROTO_R_WRITE, &g))
		return 1;
	r = cas ? mnc_cas(c, &g, a->offset, a->expect, a->value, &old)
		: mnc_fadd(c, &g, a->offset, a->value, &old);
	if (r < 0)
		return fail(a->pos[0], r);
	printf("{\"old\": %" PRIu64 "}\n", old);
	return 0;
}

static int cmd_fence(struct mnc *c, const struct grant_key *key, const struct args *a)
{
	struct proto_grant g;
	uint32_t sec, gen, epoch;
	int r;

	if (sec_gen(a, &sec, &gen) < 0)
		return 1;
	if (mint(key, a, mnc_info(c)->node_id, a->node_id, sec, gen, PROTO_R_WRITE, &g))
		return 1;
	r = mnc_fence(c, &g, &epoch);
	if (r < 0)
		return fail("fence", r);
	printf("{\"epoch\": %" PRIu32 "}\n", epoch);
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: disagg-mnctl --addr HOST:PORT --key FILE [--grant-key FILE] --node-id ID\n"
	      "                    [--timeout MS] CMD\n"
	      "  ping | stats | list | alloc [--owner ID] | free SECTION GEN\n"
	      "  fill SECTION GEN --seed S [--pages N] [--first P]\n"
	      "  verify SECTION GEN (--seed S | --zero) [--pages N] [--first P]\n"
	      "         [--pattern-node ID] [--pattern-section N]\n"
	      "  copy SECTION GEN --to HOST:PORT --to-section N --to-generation G --to-node-id ID\n"
	      "  cas SECTION GEN --offset O --expect E --value V\n"
	      "  fadd SECTION GEN --offset O --value V\n"
	      "  fence SECTION GEN --epoch E\n"
	      "grants are minted with ownership epoch --epoch E (default 0); --grant-key\n"
	      "defaults to grant.key beside the --key file\n"
	      "fabric: --tls-ca FILE --tls-cert FILE --tls-key FILE (defaults from\n"
	      "DISAGG_TLS_CA, DISAGG_TLS_CERT, DISAGG_TLS_KEY), or --fabric-plaintext\n"
	      "(or DISAGG_FABRIC_PLAINTEXT=1); the certificate's node id is --node-id\n",
	      f);
}

static int parse(int argc, char **argv, struct args *a)
{
	enum {
		O_ADDR = 256, O_KEY, O_GKEY, O_NODE, O_TIMEOUT, O_OWNER, O_SEED, O_PAGES, O_FIRST, O_ZERO,
		O_TO, O_TOSEC, O_TOGEN, O_TONODE, O_OFFSET, O_EXPECT, O_VALUE, O_PNODE, O_PSEC,
		O_EPOCH,
	};
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, O_ADDR },
		{ "key", required_argument, NULL, O_KEY },
		{ "grant-key", required_argument, NULL, O_GKEY },
		{ "node-id", required_argument, NULL, O_NODE },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "owner", required_argument, NULL, O_OWNER },
		{ "seed", required_argument, NULL, O_SEED },
		{ "pages", required_argument, NULL, O_PAGES },
		{ "first", required_argument, NULL, O_FIRST },
		{ "zero", no_argument, NULL, O_ZERO },
		{ "to", required_argument, NULL, O_TO },
		{ "to-section", required_argument, NULL, O_TOSEC },
		{ "to-generation", required_argument, NULL, O_TOGEN },
		{ "to-node-id", required_argument, NULL, O_TONODE },
		{ "offset", required_argument, NULL, O_OFFSET },
		{ "expect", required_argument, NULL, O_EXPECT },
		{ "value", required_argument, NULL, O_VALUE },
		{ "pattern-node", required_argument, NULL, O_PNODE },
		{ "pattern-section", required_argument, NULL, O_PSEC },
		{ "epoch", required_argument, NULL, O_EPOCH },
		FABRIC_LONG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	bool have_node = false;
	int c, r = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (fabric_opt(c, optarg, &a->fabric))
			continue;
		switch (c) {
		case O_ADDR: a->addr = optarg; break;
		case O_KEY: a->keyfile = optarg; break;
		case O_GKEY: a->grant_keyfile = optarg; break;
		case O_NODE: have_node = true; r = tool_u64("--node-id", optarg, &a->node_id); break;
		case O_TIMEOUT: r = tool_u64("--timeout", optarg, &a->timeout); break;
		case O_OWNER: r = tool_u64("--owner", optarg, &a->owner); break;
		case O_SEED: a->have_seed = true; r = tool_u64("--seed", optarg, &a->seed); break;
		case O_PAGES: a->have_pages = true; r = tool_u64("--pages", optarg, &a->pages); break;
		case O_FIRST: r = tool_u64("--first", optarg, &a->first); break;
		case O_ZERO: a->zero = true; break;
		case O_TO: a->to = optarg; break;
		case O_TOSEC: a->have_to_sec = true; r = tool_u64("--to-section", optarg, &a->to_section); break;
		case O_TOGEN: a->have_to_gen = true; r = tool_u64("--to-generation", optarg, &a->to_generation); break;
		case O_TONODE: a->have_to_node = true; r = tool_u64("--to-node-id", optarg, &a->to_node_id); break;
		case O_OFFSET: r = tool_u64("--offset", optarg, &a->offset); break;
		case O_EXPECT: a->have_expect = true; r = tool_u64("--expect", optarg, &a->expect); break;
		case O_VALUE: a->have_value = true; r = tool_u64("--value", optarg, &a->value); break;
		case O_PNODE: a->have_pnode = true; r = tool_u64("--pattern-node", optarg, &a->pattern_node); break;
		case O_PSEC: a->have_psec = true; r = tool_u64("--pattern-section", optarg, &a->pattern_section); break;
		case O_EPOCH: r = tool_u64("--epoch", optarg, &a->epoch); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
		if (r < 0)
			return r;
	}
	if (!a->addr || !a->keyfile || !have_node || optind >= argc) {
		fprintf(stderr, "disagg-mnctl: --addr, --key, --node-id and a command are required\n");
		usage(stderr);
		return -EINVAL;
	}
	if (a->epoch > UINT32_MAX) {
		fprintf(stderr, "disagg-mnctl: --epoch is a 32-bit number\n");
		return -EINVAL;
	}
	if (a->timeout > INT32_MAX) {
		fprintf(stderr, "disagg-mnctl: --timeout %" PRIu64 " ms is too large\n", a->timeout);
		return -EINVAL;
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	return 0;
}

int main(int argc, char **argv)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	struct args a = { 0 };
	struct auth_key key;
	_cleanup_grant_key_ struct grant_key *gkey = NULL;
	_cleanup_free_ char *gkeybuf = NULL;
	_cleanup_(tls_ctx_freep) struct tls_ctx *tls = NULL;
	const char *cmd;
	int r;

	if (parse(argc, argv, &a) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);      /* TLS writes go through write(2): a closed peer is EPIPE */
	cmd = a.pos[0];
	static const char *const known[] = { "ping", "stats", "list", "alloc", "free", "fill",
					     "verify", "copy", "cas", "fadd", "fence" };
	bool ok = false;
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		ok |= strcmp(cmd, known[i]) == 0;
	if (!ok) {
		fprintf(stderr, "disagg-mnctl: unknown command '%s'\n", cmd);
		usage(stderr);
		return 1;
	}
	r = auth_key_load(a.keyfile, &key);
	if (r < 0) {
		fprintf(stderr, "disagg-mnctl: cannot load key %s: %s%s\n", a.keyfile, strerror(-r),
			auth_key_hint(r));
		return 1;
	}
	if (!a.grant_keyfile) {
		/* grant.key beside the cluster key, as `disagg up` lays them out. */
		const char *slash = strrchr(a.keyfile, '/');
		int n = slash ? (int)(slash - a.keyfile + 1) : 0;

		if (asprintf(&gkeybuf, "%.*sgrant.key", n, a.keyfile) < 0) {
			gkeybuf = NULL;
			return 1;
		}
		a.grant_keyfile = gkeybuf;
	}
	r = grant_key_load(a.grant_keyfile, true, &gkey);
	if (r < 0) {
		OPENSSL_cleanse(&key, sizeof(key));
		fprintf(stderr, "disagg-mnctl: cannot load grant key %s: %s%s\n", a.grant_keyfile,
			strerror(-r), grant_key_hint(r));
		return 1;
	}
	fabric_conf_env(&a.fabric);
	if (fabric_conf_check(&a.fabric) < 0) {
		OPENSSL_cleanse(&key, sizeof(key));
		return 1;
	}
	r = tls_ctx_new(&a.fabric, CERT_ROLE_NONE, a.node_id, &tls);
	if (r < 0) {
		OPENSSL_cleanse(&key, sizeof(key));
		return 1;
	}
	struct mnc_opts o = {
		.addr = a.addr, .key = &key, .orch_key = gkey, .node_id = a.node_id,
		.timeout_ms = (int)a.timeout, .tls = tls,
	};
	r = mnc_connect(&o, &c);
	if (r < 0) {
		OPENSSL_cleanse(&key, sizeof(key));
		fprintf(stderr, "disagg-mnctl: cannot connect to %s: %s%s\n", a.addr, strerror(-r),
			r == -EKEYREJECTED ? " (the node does not hold our cluster key)" : "");
		return 1;
	}

	if (!strcmp(cmd, "ping"))
		r = cmd_ping(c, &a);
	else if (!strcmp(cmd, "stats"))
		r = cmd_stats(c, &a);
	else if (!strcmp(cmd, "list"))
		r = cmd_list(c, &a);
	else if (!strcmp(cmd, "alloc"))
		r = cmd_alloc(c, &a);
	else if (!strcmp(cmd, "free"))
		r = cmd_free(c, &a);
	else if (!strcmp(cmd, "fill"))
		r = fill_verify(c, gkey, &a, true);
	else if (!strcmp(cmd, "verify"))
		r = fill_verify(c, gkey, &a, false);
	else if (!strcmp(cmd, "copy"))
		r = cmd_copy(c, gkey, &a);
	else if (!strcmp(cmd, "fence"))
		r = cmd_fence(c, gkey, &a);
	else
		r = cmd_atomic(c, gkey, &a, !strcmp(cmd, "cas"));
	OPENSSL_cleanse(&key, sizeof(key));
	fflush(stdout);
	return r;
}
