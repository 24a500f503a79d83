// SPDX-License-Identifier: MIT
/*
 * disagg-memnode: the memory node daemon.
 *
 * Parses the options, loads the cluster key, opens the pool and its
 * section table, starts the workers and the optional HTTP endpoint, prints
 * the ready line ("disagg-memnode listening on ADDR [http ADDR]") on
 * stdout (and READY=1 to a service manager that asked, notify.h), and
 * accepts connections until SIGTERM or SIGINT. Shutdown stops
 * the copies, the workers and the HTTP server, then releases everything,
 * so a sanitizer build exits without leak reports. This is the boundary
 * where errors are logged; the modules below only return -errno.
 *
 * With --orchestrator URL, a registrar (registrar.h) registers the node
 * (kind memnode, its data and HTTP addresses, --label k=v labels, section
 * geometry) and heartbeats with the current free section count.
 */
#include "accept.h"
#include "memnode.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cpulist.h"
#include "daemon.h"
#include "dir_grace.h"
#include "dirtab.h"
#include "grantcache.h"
#include "jsonhttp.h"
#include "log.h"
#include "mnclient.h"
#include "nodehttp.h"
#include "once.h"
#include "tls.h"
#include "opts.h"
#include "macro.h"

struct mn_opts {
	const char *listen;
	uint64_t pool_size;
	uint64_t section_size;
	enum mn_backing backing;
	const char *path;
	const char *keyfile;
	const char *grant_keyfile;
	uint64_t node_id;
	unsigned workers;
	json_t *labels;
	struct mn_limits limits;
	struct nodehttp_opts node; /* --http, --orchestrator, --node-credential ... */
	struct fabric_conf fabric;
	const char *state_dir;
	unsigned dir_lease_ms, dir_grace_ms;
};

/* Who may read /metrics (--node-credential); the HTTP handlers' only state of ours. */
static struct apiauth_node mn_auth;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: disagg-memnode --key FILE --grant-pubkey FILE --node-id ID [options]\n"
		"\n"
		"Memory node of a disagg cluster: serves sections of a memory pool to\n"
		"compute nodes over the disagg wire protocol.\n"
		"\n"
		"  --listen HOST:PORT     protocol address (default 127.0.0.1:7100; port 0 picks one)\n"
		"  --http HOST:PORT       serve GET /healthz and GET /metrics here (default: off)\n"
		"  --pool SIZE            pool size, a multiple of the section size (default 1G)\n"
		"  --section-size SIZE    section size, a power of two >= 2M (default 128M)\n"
		"  --backing KIND         anon (default), tmpfs:PATH or file:PATH (persistent)\n"
		"  --key FILE             cluster key: 32 bytes, mode 0600 (required)\n"
		"  --grant-pubkey FILE    the orchestrator's grant key, public half, PEM (required):\n"
		"                         verifies grants and the orchestrator's capability\n"
		"  --node-id ID           this node's id, nonzero (required)\n"
		FABRIC_HELP
		"  --state-dir DIR        keep the revocation list in DIR/revoked (made 0700);\n"
		"                         without it the list lives in memory only\n"
		"  --workers N            network worker threads (default 2)\n"
		"  --cpus LIST            run every thread on these host CPUs (\"0-1\"; default: all)\n"
		"  --orchestrator URL     register with the orchestrator and send heartbeats\n"
		"  --name NAME            name shown by the orchestrator (default memnode-ID)\n"
		"  --label KEY=VALUE      a placement label (repeatable), e.g. rack=r1\n"
		"  --advertise HOST:PORT  data address to register (default: the bound address)\n"
		"  --node-credential FILE this node's credential (disagg-grant --node-credential),\n"
		"                         mode 0600: register with it; /metrics then answers the\n"
		"                         orchestrator only. With --http, required unless\n"
		"                         --api-open\n"
		APIAUTH_OPEN_HELP
		"  --metrics-tokens FILE  tokens (one a line, mode 0600) that may also read /metrics\n"
		"  --http-cert FILE       serve HTTP over TLS with this PEM certificate ...\n"
		"  --http-key FILE        ... and this PEM private key\n"
		"  --http-ca FILE         CA certificate (PEM) that an https:// --orchestrator must\n"
		"                         verify against (default: the system's)\n"
		"  --max-conns N          protocol connections in all (default %u)\n"
		"  --max-conns-per-addr N   ... from one address (default %u)\n"
		"  --max-unauth N         connections not authenticated yet, in all (default %u)\n"
		"  --max-unauth-per-addr N  ... from one address (default %u)\n"
		"  --handshake-timeout-ms MS  close a connection not authenticated by then\n"
		"                         (default %u)\n"
		"  --idle-timeout-ms MS   close an authenticated connection idle that long\n"
		"                         (default 0: never; never a recall channel)\n"
		"  --dir-lease-ms MS      a holder of a shared page that leaves a recall\n"
		"                         unanswered that long is dropped (default %u)\n"
		"  --dir-grace-ms MS      after a restart of a tmpfs/file pool, the holders of\n"
		"                         shared pages get that long to hand back what they\n"
		"                         changed, and so does a holder whose recall channel\n"
		"                         closed (its agent restarting); 0: they lose it\n"
		"                         (default %u)\n"
		"  --log-level LEVEL      error, warn, info (default) or debug\n"
		"  --help                 show this help\n"
		"\n"
		"SIZE takes a K, M, G or T suffix (powers of 1024).\n",
		MN_MAX_CONNS, MN_MAX_CONNS_PER_ADDR, MN_MAX_UNAUTH, MN_MAX_UNAUTH_PER_ADDR,
		MN_HANDSHAKE_MS, MN_DIR_LEASE_MS, MN_DIR_GRACE_MS);
}

static int parse_backing(const char *s, struct mn_opts *o)
{
	if (strcmp(s, "anon") == 0) {
		o->backing = MN_BACK_ANON;
		o->path = NULL;
	} else if (strncmp(s, "tmpfs:", 6) == 0 && s[6]) {
		o->backing = MN_BACK_TMPFS;
		o->path = s + 6;
	} else if (strncmp(s, "file:", 5) == 0 && s[5]) {
		o->backing = MN_BACK_FILE;
		o->path = s + 5;
	} else {
		return -EINVAL;
	}
	return 0;
}

enum {
	OPT_LISTEN = 256,
	OPT_POOL,
	OPT_SECTION,
	OPT_BACKING,
	OPT_KEY,
	OPT_GRANT_KEY,
	OPT_NODE,
	OPT_WORKERS,
	OPT_LABEL,
	OPT_MAX_CONNS,
	OPT_MAX_PER_ADDR,
	OPT_MAX_UNAUTH,
	OPT_MAX_UNAUTH_PER_ADDR,
	OPT_HANDSHAKE,
	OPT_IDLE,
	OPT_STATE_DIR,
	OPT_DIR_LEASE,
	OPT_DIR_GRACE,
	OPT_CPUS,
};

/* One of the connection caps and timeouts: a number in [min, max]. */
static int parse_limit(int opt, const char *arg, struct mn_limits *l)
{
	static const struct {
		int opt;
		const char *name;
		uint64_t min, max;
		const char *unit;
		size_t off;
	} t[] = {
		{ OPT_MAX_CONNS, "max-conns", 1, 1u << 20, NULL,
		  offsetof(struct mn_limits, max_conns) },
		{ OPT_MAX_PER_ADDR, "max-conns-per-addr", 1, 1u << 20, NULL,
		  offsetof(struct mn_limits, max_per_addr) },
		{ OPT_MAX_UNAUTH, "max-unauth", 1, 1u << 20, NULL,
		  offsetof(struct mn_limits, max_unauth) },
		{ OPT_MAX_UNAUTH_PER_ADDR, "max-unauth-per-addr", 1, 1u << 20, NULL,
		  offsetof(struct mn_limits, max_unauth_per_addr) },
		{ OPT_HANDSHAKE, "handshake-timeout-ms", 100, 600000, "ms",
		  offsetof(struct mn_limits, handshake_ms) },
		{ OPT_IDLE, "idle-timeout-ms", 0, 86400000, "ms",
		  offsetof(struct mn_limits, idle_ms) },
	};
	uint64_t v;

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		if (t[i].opt != opt)
			continue;
		if (opt_u64(t[i].name, arg, t[i].min, t[i].max, t[i].unit, &v) < 0)
			return -EINVAL;
		*(unsigned *)((char *)l + t[i].off) = (unsigned)v;
		return 0;
	}
	return -EINVAL;
}

static int add_label(struct mn_opts *o, const char *kv)
{
	const char *eq = strchr(kv, '=');
	_cleanup_free_ char *k = NULL;

	if (!eq || eq == kv || !eq[1])
		return -EINVAL;
	k = strndup(kv, (size_t)(eq - kv));
	if (!k)
		return -ENOMEM;
	if (!o->labels)
		o->labels = json_object();
	if (!o->labels || json_object_set_new(o->labels, k, json_string(eq + 1)) < 0)
		return -EINVAL;
	return 0;
}

/* Returns 0 to run, 1 after --help, <0 on a bad option (already reported). */
static int parse_args(int argc, char **argv, struct mn_opts *o)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "http", required_argument, NULL, NODEHTTP_OPT_HTTP },
		{ "pool", required_argument, NULL, OPT_POOL },
		{ "section-size", required_argument, NULL, OPT_SECTION },
		{ "backing", required_argument, NULL, OPT_BACKING },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "grant-pubkey", required_argument, NULL, OPT_GRANT_KEY },
		{ "node-id", required_argument, NULL, OPT_NODE },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		DAEMON_LOG_LEVEL_OPTION,
		{ "orchestrator", required_argument, NULL, NODEHTTP_OPT_ORCH },
		{ "name", required_argument, NULL, NODEHTTP_OPT_NAME },
		{ "label", required_argument, NULL, OPT_LABEL },
		{ "advertise", required_argument, NULL, NODEHTTP_OPT_ADVERTISE },
		{ "max-conns", required_argument, NULL, OPT_MAX_CONNS },
		{ "max-conns-per-addr", required_argument, NULL, OPT_MAX_PER_ADDR },
		{ "max-unauth", required_argument, NULL, OPT_MAX_UNAUTH },
		{ "max-unauth-per-addr", required_argument, NULL, OPT_MAX_UNAUTH_PER_ADDR },
		{ "handshake-timeout-ms", required_argument, NULL, OPT_HANDSHAKE },
		{ "idle-timeout-ms", required_argument, NULL, OPT_IDLE },
		NODEHTTP_AUTH_OPTIONS,
		FABRIC_LONG_OPTIONS,
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "dir-lease-ms", required_argument, NULL, OPT_DIR_LEASE },
		{ "dir-grace-ms", required_argument, NULL, OPT_DIR_GRACE },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t v;
	int c, r;

	*o = (struct mn_opts){
		.listen = "127.0.0.1:7100",
		.pool_size = 1ull << 30,
		.section_size = MN_DEFAULT_SECTION_SIZE,
		.backing = MN_BACK_ANON,
		.workers = 2,
		.dir_lease_ms = MN_DIR_LEASE_MS,
		.dir_grace_ms = MN_DIR_GRACE_MS,
		.limits = {
			.max_conns = MN_MAX_CONNS,
			.max_per_addr = MN_MAX_CONNS_PER_ADDR,
			.max_unauth = MN_MAX_UNAUTH,
			.max_unauth_per_addr = MN_MAX_UNAUTH_PER_ADDR,
			.handshake_ms = MN_HANDSHAKE_MS,
		},
	};
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (fabric_opt(c, optarg, &o->fabric) || nodehttp_opt(c, optarg, &o->node))
			continue;
		switch (c) {
		case OPT_LISTEN:
			o->listen = optarg;
			break;
		case OPT_POOL:
			if (opt_size("pool", optarg, 0, &o->pool_size) < 0)
				return -EINVAL;
			break;
		case OPT_SECTION:
			if (opt_size("section-size", optarg, 0, &o->section_size) < 0)
				return -EINVAL;
			break;
		case OPT_BACKING:
			if (parse_backing(optarg, o) < 0) {
				log_error("invalid --backing '%s': use anon, tmpfs:PATH or file:PATH",
					  optarg);
				return -EINVAL;
			}
			break;
		case OPT_KEY:
			o->keyfile = optarg;
			break;
		case OPT_GRANT_KEY:
			o->grant_keyfile = optarg;
			break;
		case OPT_NODE:
			if (opt_node_id(optarg, &o->node_id) < 0)
				return -EINVAL;
			break;
		case OPT_WORKERS:
			if (opt_u64("workers", optarg, 1, 256, NULL, &v) < 0)
				return -EINVAL;
			o->workers = (unsigned)v;
			break;
		case OPT_LABEL:
			if (add_label(o, optarg) < 0) {
				log_error("invalid --label '%s': use KEY=VALUE", optarg);
				return -EINVAL;
			}
			break;
		case OPT_STATE_DIR:
			o->state_dir = optarg;
			break;
		case OPT_DIR_LEASE:
			if (opt_u64("dir-lease-ms", optarg, 10, 3600000, "ms", &v) < 0)
				return -EINVAL;
			o->dir_lease_ms = (unsigned)v;
			break;
		case OPT_CPUS: {
			cpu_set_t set;

			/* Now, before any thread: they all inherit it. */
			if (opt_cpus("cpus", optarg, &set) < 0)
				return -EINVAL;
			if (sched_setaffinity(0, sizeof(set), &set) < 0) {
				log_error("--cpus %s: %s", optarg, strerror(errno));
				return -EINVAL;
			}
			break;
		}
		case OPT_DIR_GRACE:
			if (opt_u64("dir-grace-ms", optarg, 0, 3600000, "ms", &v) < 0)
				return -EINVAL;
			o->dir_grace_ms = (unsigned)v;
			break;
		case OPT_MAX_CONNS:
		case OPT_MAX_PER_ADDR:
		case OPT_MAX_UNAUTH:
		case OPT_MAX_UNAUTH_PER_ADDR:
		case OPT_HANDSHAKE:
		case OPT_IDLE:
			if (parse_limit(c, optarg, &o->limits) < 0)
				return -EINVAL;
			break;
		default:
			r = daemon_opt(c, optarg, usage);
			if (r != 0)
				return r;
		}
	}
	if (opt_done(argc, argv, o->keyfile) < 0 ||
	    daemon_node_opts_check(o->grant_keyfile, o->node_id, &o->fabric) < 0)
		return -EINVAL;
	if (!IS_POW2(o->section_size) || o->section_size < MN_MIN_SECTION_SIZE) {
		log_error("--section-size must be a power of two of at least 2M");
		return -EINVAL;
	}
	if (o->pool_size % o->section_size != 0) {
		log_error("--pool (%" PRIu64 " bytes) must be a multiple of the section size "
			  "(%" PRIu64 " bytes)",
			  o->pool_size, o->section_size);
		return -EINVAL;
	}
	return 0;
}

static void http_healthz(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	nodehttp_health(resp, mn_health_render(opaque), true);
}

static void http_metrics(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	if (apiauth_node_authorize(&mn_auth, req, resp))
		nodehttp_metrics(resp, mn_stats_render(opaque), "memnode");
}

/*
 * Registrar callback: the current free section count, and the coherence
 * directory's last lost holders (the orchestrator makes events of the
 * ones it has not seen: "dir_drops", each with its number "seq").
 */
static void mn_fill_capacity(void *opaque, json_t *body)
{
	struct mn_node *n = opaque;
	uint32_t used = atomic_load(&n->table.nused);
	struct mn_dir_drop drops[MN_DIR_DROPS];
	size_t nd = n->dir ? mn_dir_drops(n->dir, 0, drops, MN_DIR_DROPS) : 0;
	json_t *arr = json_array();

	json_object_set_new(body, "sections_free",
			    json_integer(used < n->pool->nsections ? n->pool->nsections - used : 0));
	for (size_t i = 0; arr && i < nd; i++)
		json_array_append_new(arr, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
			"seq", (json_int_t)drops[i].seq, "section", (json_int_t)drops[i].section,
			"generation", (json_int_t)drops[i].generation,
			"node", (json_int_t)drops[i].node, "tag", (json_int_t)drops[i].tag,
			"pages", (json_int_t)drops[i].pages, "lease", drops[i].lease));
	if (arr && nd)
		json_object_set_new(body, "dir_drops", arr);
	else
		json_decref(arr);
}

static int mn_register(const struct mn_opts *o, struct mn_node *n, const char *addr,
		       const char *http, struct registrar **ret)
{
	const struct nodehttp_opts *no = &o->node;
	json_t *reg = json_pack("{s:I, s:s, s:s, s:O*, s:I, s:I, s:s*, s:s*}", "node_id",
				(json_int_t)o->node_id, "kind", "memnode", "addr",
				no->advertise ? no->advertise : addr, "labels", o->labels,
				"section_size", (json_int_t)n->pool->section_size, "sections_total",
				(json_int_t)n->pool->nsections, "name", no->name, "http", http);

	return nodehttp_register(no, &mn_auth, reg, mn_fill_capacity, n, ret);
}

static int run(const struct mn_opts *o)
{
	struct mn_node *n;
	struct http_server *http = NULL;
	struct registrar *reg = NULL;
	struct mn_pool_opts po = {
		.backing = o->backing,
		.path = o->path,
		.size = o->pool_size,
		.section_size = o->section_size,
		.node_id = o->node_id,
	};
	_cleanup_close_ int lfd = -1, sfd = -1;
	char err[512] = "", addr[PROTO_MAX_ADDR];
	int r, rc = 1;

	if (!o->node.http_cert != !o->node.http_key) {
		log_error("--http-cert and --http-key go together");
		return 1;
	}
	if (apiauth_node_setup(&mn_auth, o->node.node_cred, o->node.metrics_tokens, o->node_id,
			       o->node.http, o->node.api_open) < 0)
		return 1;
	n = calloc(1, sizeof(*n));
	if (!n)
		return 1;
	n->node_id = o->node_id;
	n->limits = o->limits;
	n->listen_fd = -1;
	pthread_mutex_init(&n->copy_mu, NULL);
	if (mn_admit_new(&n->limits, &n->admit) < 0) {
		log_error("out of memory");
		goto out_free;
	}

	r = daemon_keys_load(o->keyfile, &n->key, o->grant_keyfile, false, &n->grant_key);
	if (r < 0)
		goto out_free;
	r = tls_ctx_new(&o->fabric, CERT_ROLE_MEMORY, o->node_id, &n->tls);
	if (r < 0)
		goto out_free;
	mnc_set_tls(n->tls);      /* COPY to other memory nodes */
	r = revlist_init(&n->revoked, o->state_dir);
	if (r < 0)
		goto out_free;
	r = mn_grant_cache_new(MN_GRANT_CACHE_BITS, &n->gcache);
	if (r < 0) {
		log_error("cannot allocate the grant cache: %s", strerror(-r));
		goto out_free;
	}
	r = mn_pool_open(&po, &n->pool, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err[0] ? err : strerror(-r));
		goto out_free;
	}
	if (o->backing == MN_BACK_TMPFS && !n->pool->on_tmpfs)
		log_warn("%s is not on tmpfs or hugetlbfs", o->path);
	r = mn_table_init(&n->table, n->pool);
	if (r < 0) {
		log_error("section table: %s", strerror(-r));
		goto out_pool;
	}
	/* A pool that outlives us keeps the diff frames it applied beside it (once.h). */
	r = mn_once_open(o->backing == MN_BACK_ANON ? NULL : o->path, n->table.nsections,
			 &n->once);
	if (r < 0) {
		log_error("diff table: %s", strerror(-r));
		goto out_table;
	}

	/* Signals: SIGTERM/SIGINT through a signalfd, before the directory's thread. */
	sfd = daemon_signalfd();
	if (sfd < 0)
		goto out_table;
	/* A pool that outlives us keeps the directory's holders beside it (dirtab.h). */
	r = mn_dirtab_open(o->backing == MN_BACK_ANON ? NULL : o->path, n->pool->nsections,
			   n->pool->section_pages, &n->dirtab);
	if (r < 0) {
		log_error("%s.dir: %s", o->path, strerror(-r));
		goto out_table;
	}
	/* Its lease thread inherits the signal mask: the signals go to the signalfd. */
	r = mn_dir_new(&mn_dir_node_ops, &n->table, n->pool->nsections, n->pool->section_pages,
		       o->dir_lease_ms, o->dir_grace_ms, n->dirtab, &n->dir);
	if (r == 0)
		r = mn_dir_grace_load(n->dir, o->dir_grace_ms);
	if (r < 0) {
		log_error("coherence directory: %s", strerror(-r));
		goto out_table;
	}

	lfd = daemon_listen(o->listen, addr, sizeof(addr));
	if (lfd < 0 || nodehttp_start(&o->node, http_healthz, http_metrics, n, &http) < 0)
		goto out_table;
	r = mn_server_start(n, lfd, o->workers);
	if (r < 0) {
		log_error("cannot start workers: %s", strerror(-r));
		goto out_server;
	}
	if (o->node.orchestrator && mn_register(o, n, addr, http_server_addr(http), &reg) < 0)
		goto out_server;

	log_info("node %" PRIu64 ": %s pool of %" PRIu64 " MiB, %u sections of %" PRIu64
		 " MiB, %u in use%s",
		 n->node_id, mn_backing_name(o->backing), o->pool_size >> 20, n->pool->nsections,
		 o->section_size >> 20, atomic_load(&n->table.nused),
		 n->pool->upgraded    ? " (recovered from the pool file, upgraded to version 2)"
		 : n->pool->recovered ? " (recovered from the pool file)"
				      : "");
	daemon_ready("disagg-memnode", addr, http_server_addr(http));

	rc = daemon_stopped(mn_server_run(n, sfd));
	registrar_stop(reg);
	atomic_store(&n->stopping, true);
	mn_copy_join_all(n);
out_server:
	http_server_stop(http);   /* its metrics read the workers and the directory */
	mn_dir_stop(n->dir);      /* nothing more is posted to the workers */
	mn_server_stop(n);
out_table:
	mn_dir_free(n->dir);      /* the connections it still points at */
	mn_dirtab_close(n->dirtab);
	mn_once_free(n->once);
	mn_table_destroy(&n->table);
out_pool:
	mn_pool_close(n->pool);
out_free:
	mn_admit_free(n->admit);
	pthread_mutex_destroy(&n->copy_mu);
	memset(&n->key, 0, sizeof(n->key));
	grant_key_free(n->grant_key);
	mn_grant_cache_free(n->gcache);
	mnc_set_tls(NULL);
	tls_ctx_free(n->tls);
	revlist_destroy(&n->revoked);
	free(n);
	apiauth_node_clear(&mn_auth);
	return rc;
}

int main(int argc, char **argv)
{
	struct mn_opts o;
	int r;

	log_init(argv[0]);
	r = parse_args(argc, argv, &o);
	if (r != 0) {
		json_decref(o.labels);
		return r > 0 ? 0 : 2;
	}
	daemon_raise_fd_limit();
	r = run(&o);
	json_decref(o.labels);
	return r;
}
