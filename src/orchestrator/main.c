// SPDX-License-Identifier: MIT
/*
 * disagg-orchestrator: the control plane of a disagg cluster.
 *
 * Parses the options, loads the cluster key (to authenticate to memory
 * nodes and to mint grants), opens the SQLite store (migrating it), settles
 * slots that a previous run left in the middle of an operation, starts the
 * REST API and the liveness monitor (which first reconciles with the
 * compute nodes), prints the ready line
 * ("disagg-orchestrator listening on HOST:PORT") and serves until SIGTERM
 * or SIGINT. It never stops a VM on its own: a restart leaves running VMs
 * alone and only asks the compute nodes what they run.
 */
#include "events.h"
#include "images.h"
#include "orch.h"
#include "regions_api.h"
#include "replicas_nodes.h"
#include "store_sqlite.h"
#include "store_sqlite_replicas.h"
#include "store_sqlite_volumes.h"
#include "volumes_api.h"
#include "volumes_boot.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "jsonhttp.h"
#include "log.h"
#include "opts.h"
#include "macro.h"
#include "notify.h"
#include "mnclient.h"
#include "tls.h"

struct orch_opts {
	const char *http;
	const char *db;
	const char *images;
	const char *keyfile;
	const char *grant_keyfile;
	const char *api_tokens;
	bool api_open;            /* --api-open */
	const char *node_secret;
	const char *http_cert, *http_key, *http_ca;
	const char *public_url;         /* --public-url, or NULL: from --http */
	uint64_t node_id;
	uint64_t node_timeout;
	uint64_t section_size;
	uint64_t compute_timeout;
	uint64_t sweep_s;
	uint64_t grant_ttl_s;
	uint64_t replicas;
	struct fabric_conf fabric;
};

/* --images, or images/ in the database's directory: malloc'd (NULL: no memory). */
static char *images_dir_of(const struct orch_opts *opts)
{
	const char *slash = strrchr(opts->db, '/');
	char *p;

	if (opts->images)
		return strdup(opts->images);
	if (asprintf(&p, "%.*simages", slash ? (int)(slash - opts->db + 1) : 0, opts->db) < 0)
		return NULL;
	return p;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: disagg-orchestrator --key FILE --grant-key FILE [options]\n"
		"\n"
		"Control plane of a disagg cluster: node inventory, slot placement and\n"
		"assembly, section grants, REST API (docs/api.md), durable state in SQLite.\n"
		"\n"
		"  --http HOST:PORT         REST API address (default 127.0.0.1:7000; port 0 picks one)\n"
		"  --db PATH                SQLite database (default ./disagg.db)\n"
		"  --images DIR             images' kernels and initramfs (default: images/ beside\n"
		"                           the database)\n"
		"  --key FILE               cluster key: 32 bytes, mode 0600 (required)\n"
		"  --grant-key FILE         grant key, private half, PEM, mode 0600 (required): signs\n"
		"                           grants; memory nodes get its public half\n"
		"  --api-tokens FILE        people tokens, one a line, mode 0600: every /v1 request\n"
		"                           and /metrics need \"Authorization: Bearer TOKEN\"\n"
		"  --node-secret FILE       node secret (32 bytes, mode 0600) from which node\n"
		"                           credentials derive (disagg-grant --node-credential);\n"
		"                           required with --api-tokens\n"
		"  --api-open               no --api-tokens/--node-secret: serve the API open\n"
		"                           (loopback --http only; development and tests)\n"
		"  --http-cert FILE         serve the API over HTTPS with this PEM certificate ...\n"
		"  --http-key FILE          ... and this PEM private key\n"
		"  --http-ca FILE           call the compute agents over HTTPS, verified with this\n"
		"                           CA certificate (PEM); default plain HTTP\n"
		"  --public-url URL         where compute nodes reach this API to fetch images'\n"
		"                           kernels (default: http(s)://the --http address)\n"
		"  --node-id ID             our id towards memory nodes (default 1); must not be\n"
		"                           the id of any node of the cluster\n"
		FABRIC_HELP
		"  --node-timeout SECONDS   a node without heartbeat this long is down (default 15)\n"
		"  --section-size SIZE      the cluster's section size (default 128M)\n"
		"  --compute-timeout SECONDS  limit for a VM start or hot-plug (default 120)\n"
		"  --orphan-sweep SECONDS   free sections no slot uses this often (default 10, 0: never)\n"
		"  --grant-ttl SECONDS      life of the grants handed to compute nodes, renewed every\n"
		"                           third of it while a slot runs (default 3600, 10 to 3600)\n"
		"  --replicas N             replicas of each remote section of a slot that does not\n"
		"                           say (1 to 3, default 1; docs/replication.md)\n"
		"  --log-level LEVEL        error, warn, info (default) or debug\n"
		"  --help                   show this help\n");
}

enum {
	OPT_HTTP = 256,
	OPT_DB,
	OPT_KEY,
	OPT_GRANT_KEY,
	OPT_NODE,
	OPT_TIMEOUT,
	OPT_SECTION,
	OPT_CTIMEOUT,
	OPT_SWEEP,
	OPT_GRANT_TTL,
	OPT_REPLICAS,
	OPT_API_TOKENS,
	OPT_NODE_SECRET,
	OPT_HTTP_CERT,
	OPT_HTTP_KEY,
	OPT_HTTP_CA,
	OPT_IMAGES,
	OPT_PUBLIC_URL,
};

static int parse_args(int argc, char **argv, struct orch_opts *o)
{
	static const struct option longopts[] = {
		{ "http", required_argument, NULL, OPT_HTTP },
		{ "db", required_argument, NULL, OPT_DB },
		{ "images", required_argument, NULL, OPT_IMAGES },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "grant-key", required_argument, NULL, OPT_GRANT_KEY },
		{ "node-id", required_argument, NULL, OPT_NODE },
		{ "node-timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "section-size", required_argument, NULL, OPT_SECTION },
		{ "compute-timeout", required_argument, NULL, OPT_CTIMEOUT },
		{ "orphan-sweep", required_argument, NULL, OPT_SWEEP },
		{ "grant-ttl", required_argument, NULL, OPT_GRANT_TTL },
		{ "replicas", required_argument, NULL, OPT_REPLICAS },
		DAEMON_LOG_LEVEL_OPTION,
		{ "api-tokens", required_argument, NULL, OPT_API_TOKENS },
		APIAUTH_OPEN_OPTION,
		{ "node-secret", required_argument, NULL, OPT_NODE_SECRET },
		{ "http-cert", required_argument, NULL, OPT_HTTP_CERT },
		{ "http-key", required_argument, NULL, OPT_HTTP_KEY },
		{ "http-ca", required_argument, NULL, OPT_HTTP_CA },
		{ "public-url", required_argument, NULL, OPT_PUBLIC_URL },
		FABRIC_LONG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c, r;

	*o = (struct orch_opts){
		.http = "127.0.0.1:7000",
		.db = "./disagg.db",
		.node_id = 1,
		.node_timeout = 15,
		.section_size = ORCH_DEFAULT_SECTION_SIZE,
		.compute_timeout = 120,
		.sweep_s = 10,
		.grant_ttl_s = 3600,
		.replicas = 1,
	};
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (fabric_opt(c, optarg, &o->fabric))
			continue;
		switch (c) {
		case OPT_HTTP:
			o->http = optarg;
			break;
		case OPT_DB:
			o->db = optarg;
			break;
		case OPT_IMAGES:
			o->images = optarg;
			break;
		case OPT_KEY:
			o->keyfile = optarg;
			break;
		case OPT_GRANT_KEY:
			o->grant_keyfile = optarg;
			break;
		case APIAUTH_OPT_OPEN:
			o->api_open = true;
			break;
		case OPT_API_TOKENS:
			o->api_tokens = optarg;
			break;
		case OPT_NODE_SECRET:
			o->node_secret = optarg;
			break;
		case OPT_HTTP_CERT:
			o->http_cert = optarg;
			break;
		case OPT_HTTP_KEY:
			o->http_key = optarg;
			break;
		case OPT_HTTP_CA:
			o->http_ca = optarg;
			break;
		case OPT_PUBLIC_URL:
			if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8)) {
				log_error("--public-url must be an http:// or https:// URL");
				return -EINVAL;
			}
			o->public_url = optarg;
			break;
		case OPT_NODE:
			if (opt_node_id(optarg, &o->node_id) < 0)
				return -EINVAL;
			break;
		case OPT_TIMEOUT:
			if (opt_u64("node-timeout", optarg, 1, 86400, "seconds", &o->node_timeout) < 0)
				return -EINVAL;
			break;
		case OPT_SECTION:
			if (opt_size("section-size", optarg, 2u << 20, &o->section_size) < 0)
				return -EINVAL;
			break;
		case OPT_GRANT_TTL:
			if (opt_u64("grant-ttl", optarg, 10, 3600, "seconds", &o->grant_ttl_s) < 0)
				return -EINVAL;
			break;
		case OPT_REPLICAS:
			if (opt_u64("replicas", optarg, 1, 3, "replicas", &o->replicas) < 0)
				return -EINVAL;
			break;
		case OPT_SWEEP:
			if (opt_u64("orphan-sweep", optarg, 0, 86400, "seconds", &o->sweep_s) < 0)
				return -EINVAL;
			break;
		case OPT_CTIMEOUT:
			if (opt_u64("compute-timeout", optarg, 1, 3600, "seconds",
				    &o->compute_timeout) < 0)
				return -EINVAL;
			break;
		default:
			r = daemon_opt(c, optarg, usage);
			if (r != 0)
				return r;
		}
	}
	if (opt_done(argc, argv, o->keyfile) < 0)
		return -EINVAL;
	if (!o->grant_keyfile) {
		log_error("--grant-key FILE is required (the private half of the grant key: "
			  "disagg-grant --new-grant-key makes one)");
		return -EINVAL;
	}
	if (!o->api_tokens != !o->node_secret) {
		log_error("--api-tokens and --node-secret go together (people and nodes both "
			  "authenticate)");
		return -EINVAL;
	}
	if (apiauth_open_check(o->api_tokens != NULL, o->api_open, o->http,
			       "--api-tokens and --node-secret") < 0)
		return -EINVAL;
	if (!o->http_cert != !o->http_key) {
		log_error("--http-cert and --http-key go together");
		return -EINVAL;
	}
	if (fabric_conf_check(&o->fabric) < 0)
		return -EINVAL;
	return 0;
}

static int run(const struct orch_opts *opts)
{
	struct orch *o;
	struct tls_ctx *tls = NULL;
	sigset_t mask;
	int r, sig, rc = 1;

	o = calloc(1, sizeof(*o));
	if (!o)
		return 1;
	o->node_id = opts->node_id;
	o->node_timeout_s = (int)opts->node_timeout;
	o->heartbeat_s = MAX(1, o->node_timeout_s / 3);
	o->section_size = opts->section_size;
	o->compute_timeout_ms = (int)opts->compute_timeout * 1000;
	o->sweep_s = (int)opts->sweep_s;
	o->grant_ttl_s = (int)opts->grant_ttl_s;
	o->replicas_default = (int)opts->replicas;
	pthread_mutex_init(&o->place_mu, NULL);
	pthread_mutex_init(&o->mon_mu, NULL);
	pthread_cond_init(&o->mon_cv, NULL);

	r = daemon_keys_load(opts->keyfile, &o->key, opts->grant_keyfile, true, &o->grant_key);
	if (r < 0)
		goto out_free;
	if (opts->api_tokens) {
		r = apiauth_tokens_load(opts->api_tokens, &o->api_tokens);
		if (r < 0) {
			log_error("cannot load the API tokens %s: %s%s", opts->api_tokens,
				  strerror(-r), apiauth_file_hint(r));
			goto out_free;
		}
		r = auth_key_load(opts->node_secret, &o->node_secret);
		if (r < 0) {
			log_error("cannot load the node secret %s: %s%s", opts->node_secret,
				  strerror(-r), auth_key_hint(r));
			goto out_free;
		}
		o->auth = true;
	} else {
		log_warn("the API is open to anyone who reaches %s (no --api-tokens)", opts->http);
	}
	r = tls_ctx_new(&opts->fabric, CERT_ROLE_ORCH, opts->node_id, &tls);
	if (r < 0)
		goto out_free;
	mnc_set_tls(tls);         /* every connection to a memory node */
	r = cclient_global_init();
	if (r < 0) {
		log_error("libcurl initialisation failed");
		goto out_free;
	}
	r = cclient_set_auth(o->auth ? &o->node_secret : NULL, opts->http_ca);
	if (r < 0)
		goto out_curl;
	r = store_sqlite_open(opts->db, &o->store);
	if (r < 0) {
		log_error("cannot open the database %s: %s", opts->db, strerror(-r));
		goto out_curl;
	}
	events_start(o);   /* /v1/events (long polls wake on new events), /ui/, .../pager */
	store_sqlite_volumes(o->store);
	store_sqlite_replicas(o->store);
	o->images_dir = images_dir_of(opts);
	if (!o->images_dir) {
		r = -ENOMEM;
		goto out_store;
	}
	r = mnpool_new(o, &o->mnpool);
	if (r < 0)
		goto out_store;
	o->store->ops->request_abandon(o->store);
	replicas_start(o, replicas_nodes_hooks);   /* before slots_recover: repairs too */
	slots_recover(o);
	regions_start(o);
	volumes_start(o);
	volumes_boot_start(o);
	images_start(o);

	/* Signals through sigwait; every thread inherits the mask. */
	daemon_block_signals(&mask);

	r = api_start(o, opts->http, opts->http_cert, opts->http_key);
	if (r < 0) {
		log_error("cannot serve HTTP%s on %s: %s", opts->http_cert ? "S" : "", opts->http,
			  strerror(-r));
		goto out_pool;
	}
	/* Where compute nodes fetch an image's kernel and initramfs (volumes_boot.c). */
	if (opts->public_url)
		snprintf(o->public_url, sizeof(o->public_url), "%.*s",
			 (int)strcspn(opts->public_url, "\n"), opts->public_url);
	else
		snprintf(o->public_url, sizeof(o->public_url), "%s://%s",
			 opts->http_cert ? "https" : "http", http_server_addr(o->http));
	/* No trailing slash: image URLs are public_url + "/v1/images/..." */
	for (size_t n = strlen(o->public_url); n && o->public_url[n - 1] == '/'; n--)
		o->public_url[n - 1] = '\0';
	r = nodes_monitor_start(o);
	if (r == 0)
		r = replicas_repair_start(o);
	if (r < 0) {
		log_error("cannot start the monitor thread: %s", strerror(-r));
		nodes_monitor_stop(o);
		goto out_api;
	}
	log_info("database %s, node id %" PRIu64 ", node timeout %d s, sections of %" PRIu64
		 " MiB",
		 opts->db, o->node_id, o->node_timeout_s, o->section_size >> 20);
	daemon_ready("disagg-orchestrator", http_server_addr(o->http), NULL);

	do {
		r = sigwait(&mask, &sig);
	} while (r == EINTR);
	log_info("shutting down (%s)", strsignal(sig));
	notify_stopping();
	rc = 0;

	replicas_repair_stop(o);
	nodes_monitor_stop(o);
out_api:
	api_stop(o);
out_pool:
	mnpool_free(o->mnpool);
out_store:
	store_close(o->store);
out_curl:
	cclient_global_cleanup();
out_free:
	free(o->images_dir);
	pthread_cond_destroy(&o->mon_cv);
	pthread_mutex_destroy(&o->mon_mu);
	pthread_mutex_destroy(&o->place_mu);
	memset(&o->key, 0, sizeof(o->key));
	memset(&o->node_secret, 0, sizeof(o->node_secret));
	apiauth_tokens_free(o->api_tokens);
	grant_key_free(o->grant_key);
	mnc_set_tls(NULL);
	tls_ctx_free(tls);
	free(o);
	return rc;
}

int main(int argc, char **argv)
{
	struct orch_opts o;
	int r;

	log_init(argv[0]);
	r = parse_args(argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : 2;
	daemon_raise_fd_limit();   /* many nodes, many connections */
	return run(&o);
}
