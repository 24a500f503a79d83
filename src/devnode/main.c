// SPDX-License-Identifier: MIT
/*
 * disagg-devnode: the device node daemon (docs/devnode.md).
 *
 * Parses the options, loads the cluster key and the orchestrator's public
 * grant key, opens the volume store and the revocation list kept beside
 * it (DATA/revoked, revlist.h), starts the optional HTTP endpoint
 * (/healthz, /metrics) and the registrar, prints the ready line
 * ("disagg-devnode listening on ADDR [http ADDR]") and accepts connections
 * until SIGTERM or SIGINT, each served by a thread of its own (conn.c).
 * Shutdown closes every connection, waits for the requests on their rings,
 * and frees everything. This is where errors are logged; the modules below
 * return -errno.
 */
#include "conn.h"
#include "ops.h"
#include "stats.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "macro.h"
#include "nodehttp.h"
#include "opts.h"
#include "tls.h"

#define DN_MAX_BLOCK_DEVICES 64

struct dn_blockdev_opt {
	char name[DN_VOLUME_NAME_MAX + 1];
	const char *path;
};

struct dn_opts {
	const char *data;
	struct dn_blockdev_opt blockdevs[DN_MAX_BLOCK_DEVICES];
	unsigned nblockdevs;
	const char *listen;
	const char *keyfile;
	const char *grant_keyfile;
	uint64_t node_id;
	struct dn_limits limits;
	struct nodehttp_opts node; /* --http, --orchestrator, --node-credential ... */
	struct fabric_conf fabric;
};

/* Who may read /metrics (--node-credential). */
static struct apiauth_node dn_auth;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: disagg-devnode --data DIR --key FILE --grant-pubkey FILE --node-id ID\n"
		"                      (--tls-ca F --tls-cert F --tls-key F | --fabric-plaintext)\n"
		"                      [options]\n"
		"\n"
		"Device node of a disagg cluster: serves block volumes (sparse raw files\n"
		"in DIR, and block devices it is given) to compute nodes over the disagg\n"
		"wire protocol.\n"
		"\n"
		"  --data DIR             the volume store (made 0700 if missing; needs user xattrs),\n"
		"                         and the revocation list the orchestrator pushes (DIR/revoked)\n"
		"  --block-device NAME=PATH  serve the block device PATH as volume NAME (opened\n"
		"                         exclusively; its key and epoch in DIR/NAME.blk); repeatable\n"
		"  --listen HOST:PORT     protocol address (default 127.0.0.1:7300; port 0 picks one)\n"
		"  --http HOST:PORT       serve GET /healthz and GET /metrics here (default: off)\n"
		"  --key FILE             cluster key: 32 bytes, mode 0600 (required)\n"
		"  --grant-pubkey FILE    the orchestrator's grant key, public half, PEM (required):\n"
		"                         verifies volume grants and the orchestrator's capability\n"
		"  --node-id ID           this node's id, nonzero (required)\n"
		FABRIC_HELP
		"                         (its certificate: disagg-cert --issue ID --role device)\n"
		"  --depth N              requests in flight per connection (default %u, max %u)\n"
		"  --max-conns N          connections in all (default %u)\n"
		"  --handshake-timeout-ms MS  close a connection not authenticated by then\n"
		"                         (default %u)\n"
		"  --orchestrator URL     register with the orchestrator and send heartbeats\n"
		"  --name NAME            name shown by the orchestrator (default devnode-ID)\n"
		"  --advertise HOST:PORT  data address to register (default: the bound address)\n"
		"  --node-credential FILE this node's credential (disagg-grant --node-credential):\n"
		"                         register with it; /metrics then answers the orchestrator\n"
		"                         only. With --http, required unless --api-open\n"
		APIAUTH_OPEN_HELP
		"  --metrics-tokens FILE  tokens (one a line, mode 0600) that may also read /metrics\n"
		"  --http-cert FILE       serve HTTP over TLS with this PEM certificate ...\n"
		"  --http-key FILE        ... and this PEM private key\n"
		"  --http-ca FILE         CA certificate (PEM) for an https:// --orchestrator\n"
		"  --log-level LEVEL      error, warn, info (default) or debug\n"
		"  --help                 show this help\n",
		DN_DEPTH_DEFAULT, DN_DEPTH_MAX, DN_MAX_CONNS, DN_HANDSHAKE_MS);
}

enum {
	OPT_DATA = 256,
	OPT_LISTEN,
	OPT_KEY,
	OPT_GRANT_KEY,
	OPT_NODE,
	OPT_DEPTH,
	OPT_MAX_CONNS,
	OPT_HANDSHAKE,
	OPT_BLOCK_DEVICE,
};

static int parse_num(const char *name, const char *arg, uint64_t min, uint64_t max,
		     const char *unit, unsigned *ret)
{
	uint64_t v;

	if (opt_u64(name, arg, min, max, unit, &v) < 0)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

/* --block-device NAME=PATH: the name checked here, the device when the store is open. */
static int parse_block_device(struct dn_opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct dn_blockdev_opt *b = &o->blockdevs[o->nblockdevs];
	size_t len = eq ? (size_t)(eq - arg) : 0;

	if (!eq || !eq[1]) {
		log_error("--block-device '%s': give NAME=PATH (a volume name and a block device)",
			  arg);
		return -EINVAL;
	}
	if (o->nblockdevs == DN_MAX_BLOCK_DEVICES) {
		log_error("--block-device: at most %u devices", DN_MAX_BLOCK_DEVICES);
		return -EINVAL;
	}
	if (len < sizeof(b->name))
		memcpy(b->name, arg, len);
	b->name[len < sizeof(b->name) ? len : 0] = '\0';
	if (len >= sizeof(b->name) || !dn_volume_name_valid(b->name)) {
		log_error("--block-device '%s': '%.*s' is not a valid volume name (1-63 of "
			  "[a-z0-9_-], starting with a letter or a digit)", arg, (int)len, arg);
		return -EINVAL;
	}
	for (unsigned i = 0; i < o->nblockdevs; i++)
		if (!strcmp(o->blockdevs[i].name, b->name)) {
			log_error("--block-device: volume name '%s' is given twice", b->name);
			return -EINVAL;
		}
	b->path = eq + 1;
	o->nblockdevs++;
	return 0;
}

static const char **opt_string(struct dn_opts *o, int c)
{
	switch (c) {
	case OPT_DATA: return &o->data;
	case OPT_LISTEN: return &o->listen;
	case OPT_KEY: return &o->keyfile;
	case OPT_GRANT_KEY: return &o->grant_keyfile;
	default: return NULL;
	}
}

/* Returns 0 to run, 1 after --help, <0 on a bad option (already reported). */
static int parse_args(int argc, char **argv, struct dn_opts *o)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, OPT_DATA },
		{ "block-device", required_argument, NULL, OPT_BLOCK_DEVICE },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "http", required_argument, NULL, NODEHTTP_OPT_HTTP },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "grant-pubkey", required_argument, NULL, OPT_GRANT_KEY },
		{ "node-id", required_argument, NULL, OPT_NODE },
		{ "depth", required_argument, NULL, OPT_DEPTH },
		{ "max-conns", required_argument, NULL, OPT_MAX_CONNS },
		{ "handshake-timeout-ms", required_argument, NULL, OPT_HANDSHAKE },
		{ "orchestrator", required_argument, NULL, NODEHTTP_OPT_ORCH },
		{ "name", required_argument, NULL, NODEHTTP_OPT_NAME },
		{ "advertise", required_argument, NULL, NODEHTTP_OPT_ADVERTISE },
		NODEHTTP_AUTH_OPTIONS,
		FABRIC_LONG_OPTIONS,
		DAEMON_LOG_LEVEL_OPTION,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char **sp;
	int c, r;

	*o = (struct dn_opts){
		.listen = "127.0.0.1:7300",
		.limits = { .depth = DN_DEPTH_DEFAULT, .max_conns = DN_MAX_CONNS,
			    .handshake_ms = DN_HANDSHAKE_MS },
	};
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (fabric_opt(c, optarg, &o->fabric) || nodehttp_opt(c, optarg, &o->node))
			continue;
		sp = opt_string(o, c);
		if (sp) {
			*sp = optarg;
			continue;
		}
		switch (c) {
		case OPT_NODE:
			if (opt_node_id(optarg, &o->node_id) < 0)
				return -EINVAL;
			break;
		case OPT_DEPTH:
			if (parse_num("depth", optarg, 1, DN_DEPTH_MAX, NULL, &o->limits.depth) < 0)
				return -EINVAL;
			break;
		case OPT_MAX_CONNS:
			if (parse_num("max-conns", optarg, 1, 1u << 16, NULL, &o->limits.max_conns) < 0)
				return -EINVAL;
			break;
		case OPT_HANDSHAKE:
			if (parse_num("handshake-timeout-ms", optarg, 100, 600000, "ms",
				      &o->limits.handshake_ms) < 0)
				return -EINVAL;
			break;
		case OPT_BLOCK_DEVICE:
			if (parse_block_device(o, optarg) < 0)
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
	if (!o->data) {
		log_error("--data DIR is required (the volume store)");
		return -EINVAL;
	}
	if (daemon_node_opts_check(o->grant_keyfile, o->node_id, &o->fabric) < 0)
		return -EINVAL;
	if (!o->node.http_cert != !o->node.http_key) {
		log_error("--http-cert and --http-key go together");
		return -EINVAL;
	}
	return 0;
}

static void http_healthz(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	bool ok = false;
	char *body = dn_health_render(opaque, &ok);

	nodehttp_health(resp, body, ok);
}

static void http_metrics(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	if (apiauth_node_authorize(&dn_auth, req, resp))
		nodehttp_metrics(resp, dn_stats_render(opaque), "devnode");
}

/*
 * Registrar callback: the volumes and the bytes their files take in the
 * data directory, at every heartbeat (placement puts new volumes there;
 * a block device's volume takes none of it).
 */
static void dn_fill_capacity(void *opaque, json_t *body)
{
	struct dn_node *n = opaque;
	struct dn_volume_info *v = NULL;
	uint64_t bytes = 0;
	size_t nv = 0;

	if (dn_volume_list(n->vols, &v, &nv) < 0)
		return;
	for (size_t i = 0; i < nv; i++)
		if (v[i].kind == DN_VOLUME_FILE)
			bytes += v[i].allocated;
	free(v);
	json_object_set_new(body, "volumes", json_integer((json_int_t)nv));
	json_object_set_new(body, "volume_bytes_allocated", json_integer((json_int_t)bytes));
}

static int dn_register(const struct dn_opts *o, struct dn_node *n, const char *addr,
		       const char *http, struct registrar **ret)
{
	const struct nodehttp_opts *no = &o->node;
	json_t *reg = json_pack("{s:I, s:s, s:s, s:s*, s:s*}", "node_id", (json_int_t)o->node_id,
				"kind", "devnode", "addr", no->advertise ? no->advertise : addr,
				"name", no->name, "http", http);

	return nodehttp_register(no, &dn_auth, reg, dn_fill_capacity, n, ret);
}

/* Accept until a signal comes on sfd. */
static int accept_loop(struct dn_node *n, int lfd, int sfd)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[1].revents)
			return 0;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
				continue;
			log_warn("accept: %s", strerror(errno));
			usleep(10000);   /* EMFILE and the like: do not spin */
			continue;
		}
		if (dn_conn_start(n, fd) < 0) {
			atomic_fetch_add(&n->stats.rejected_conns, 1);
			close(fd);
		}
	}
}

static int open_node(const struct dn_opts *o, struct dn_node *n)
{
	int r;

	n->node_id = o->node_id;
	n->limits = o->limits;
	n->dispatch = dn_dispatch;
	r = daemon_keys_load(o->keyfile, &n->key, o->grant_keyfile, false, &n->grant_key);
	if (r < 0)
		return r;
	r = tls_ctx_new(&o->fabric, CERT_ROLE_DEVICE, o->node_id, &n->tls);
	if (r < 0)
		return r;
	r = dn_fences_new(&n->fences);
	if (r < 0)
		return r;
	r = dn_volumes_open(o->data, &n->vols);
	if (r < 0) {
		log_error("cannot open the volume store %s: %s", o->data, strerror(-r));
		return r;
	}
	return revlist_init(&n->revoked, o->data);   /* DATA/revoked; errors logged */
}

static const char *block_device_why(int r)
{
	switch (r) {
	case -ENOTBLK: return "not a block device";
	case -EEXIST: return "the name is taken by a file volume NAME.vol in the data directory";
	case -EBUSY: return "in use (mounted, given twice, or opened exclusively elsewhere, "
			    "such as by another device node)";
	case -ERANGE: return "its size is 0, not whole 512-byte sectors, or over 16 TiB";
	case -EBADMSG: return "its state file NAME.blk in the data directory is damaged";
	default: return strerror(-r);
	}
}

/* Every --block-device, or the first refusal (logged). */
static int add_block_devices(const struct dn_opts *o, struct dn_node *n)
{
	for (unsigned i = 0; i < o->nblockdevs; i++) {
		const struct dn_blockdev_opt *b = &o->blockdevs[i];
		struct dn_volume_info info;
		int r = dn_volume_add_block(n->vols, b->name, b->path);

		if (r == 0)
			r = dn_volume_stat(n->vols, b->name, &info);
		if (r < 0) {
			log_error("--block-device %s=%s: %s", b->name, b->path, block_device_why(r));
			return r;
		}
		log_info("volume %s: block device %s, %llu bytes", b->name, b->path,
			 (unsigned long long)info.size);
	}
	return 0;
}

static int run(const struct dn_opts *o)
{
	struct dn_node *n = calloc(1, sizeof(*n));
	struct http_server *http = NULL;
	struct registrar *reg = NULL;
	_cleanup_close_ int lfd = -1, sfd = -1;
	char addr[PROTO_MAX_ADDR];
	int rc = 1;

	if (!n)
		return 1;
	pthread_mutex_init(&n->mu, NULL);
	if (apiauth_node_setup(&dn_auth, o->node.node_cred, o->node.metrics_tokens, o->node_id,
			       o->node.http, o->node.api_open) < 0 ||
	    open_node(o, n) < 0)
		goto out;
	if (add_block_devices(o, n) < 0) {
		rc = 2;              /* a bad option, as the ones parse_args refuses */
		goto out;
	}
	/* Before the first thread (connections, HTTP): every thread inherits the mask. */
	sfd = daemon_signalfd();
	if (sfd < 0)
		goto out;
	lfd = daemon_listen(o->listen, addr, sizeof(addr));
	if (lfd < 0 || nodehttp_start(&o->node, http_healthz, http_metrics, n, &http) < 0)
		goto out;
	if (o->node.orchestrator && dn_register(o, n, addr, http_server_addr(http), &reg) < 0)
		goto out_http;
	log_info("node %" PRIu64 ": volumes in %s, depth %u per connection, %s fabric", n->node_id,
		 o->data, n->limits.depth, n->tls ? "TLS" : "plaintext");
	daemon_ready("disagg-devnode", addr, http_server_addr(http));

	rc = daemon_stopped(accept_loop(n, lfd, sfd));
	registrar_stop(reg);
	dn_conn_stop_all(n);
out_http:
	http_server_stop(http);
out:
	dn_conn_stop_all(n);
	if (n->vols)
		dn_volumes_close(n->vols);
	dn_fences_free(n->fences);
	revlist_destroy(&n->revoked);
	grant_key_free(n->grant_key);
	tls_ctx_free(n->tls);
	memset(&n->key, 0, sizeof(n->key));
	pthread_mutex_destroy(&n->mu);
	free(n);
	apiauth_node_clear(&dn_auth);
	return rc;
}

int main(int argc, char **argv)
{
	struct dn_opts o;
	int r;

	log_init(argv[0]);
	r = parse_args(argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : 2;
	return run(&o);
}
