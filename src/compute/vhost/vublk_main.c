// SPDX-License-Identifier: MIT
/*
 * disagg-vublk: the agent's vhost-user-blk back end as a program of its
 * own, serving one disk to one QEMU: for tests of the vhost-user path, for
 * benchmarks, and for debugging a guest's disk without an agent.
 *
 *   disagg-vublk --socket PATH --file FILE [--read-only] [--queues N]
 *                [--serial S] [--log-level L]
 *   disagg-vublk --socket PATH --devnode HOST:PORT --volume NAME --grant HEX
 *                --key FILE --node-id ID [--outage-ms MS] [...]
 *
 * It listens on the UNIX socket PATH (QEMU connects: -chardev
 * socket,path=PATH and -device vhost-user-blk-pci,chardev=...), prints
 * "disagg-vublk listening on PATH" when ready, and serves one connection
 * at a time until SIGTERM or SIGINT; when QEMU goes, it waits for the
 * next one (a QEMU restarted, or reconnecting).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "grant.h"
#include "log.h"
#include "macro.h"
#include "mnclient.h"
#include "opts.h"
#include "tls.h"
#include "vu_blk.h"
#include "vu_devnode.h"
#include "vu_file.h"

static volatile sig_atomic_t stopping;
static struct vu_blk *volatile current;

static void on_signal(int sig)
{
	stopping = 1;
	if (current)
		vu_blk_stop(current);
}

static void usage(FILE *f)
{
	fputs("Usage: disagg-vublk --socket PATH --file FILE [options]\n"
	      "       disagg-vublk --socket PATH --devnode HOST:PORT --volume NAME --grant HEX\n"
	      "                    --key FILE --node-id ID [options]\n"
	      "\n"
	      "Serve a disk to a QEMU as a vhost-user-blk device on the UNIX socket PATH:\n"
	      "a local FILE, or a device node's volume.\n"
	      "\n"
	      "  --socket PATH     the socket to listen on (made; an old one is replaced)\n"
	      "  --file FILE       the disk: a regular file (its size, a multiple of 512)\n"
	      "                    or a block device\n"
	      "  --devnode ADDR    the device node ...\n"
	      "  --volume NAME     ... its volume ...\n"
	      "  --grant HEX       ... a grant for it held by --node-id (disagg-dnctl grant)\n"
	      "  --key FILE        the cluster key\n"
	      "  --node-id ID      our node id (the grant's holder)\n"
	      "  --tls-ca F --tls-cert F --tls-key F   TLS to the device node, with a compute\n"
	      "                    node's certificate of --node-id (default: plain TCP)\n"
	      "  --outage-ms MS    while the device node is unreachable the guest's requests\n"
	      "                    wait this long, then fail with EIO (default 30000; 0: at once)\n"
	      "  --read-only       the guest sees a read-only disk\n"
	      "  --queues N        virtqueues offered (default 1, max 8)\n"
	      "  --serial S        the disk's serial number (GET_ID)\n"
	      "  --log-level L     error, warn, info (default) or debug (every message)\n"
	      "  --help            show this help\n",
	      f);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static int serve(int lfd, const struct vu_blk_conf *conf, const struct vu_blk_store_ops *ops,
		 void *store)
{
	while (!stopping) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		struct vu_blk *d;
		int fd, r;

		if (poll(&p, 1, 200) <= 0)
			continue;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		r = vu_blk_new(fd, conf, ops, store, &d);
		if (r < 0) {
			close(fd);
			return r;
		}
		log_info("QEMU connected");
		current = d;
		if (stopping)
			vu_blk_stop(d);
		r = vu_blk_run(d);
		current = NULL;
		if (r < 0)
			log_warn("the connection ended: %s", strerror(-r));
		else
			log_info("QEMU disconnected");
		vu_blk_free(d);
	}
	return 0;
}

static int open_file(const char *path, struct vu_blk_conf *conf, struct vu_file *file)
{
	struct stat st;

	file->fd = open(path, (conf->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (file->fd < 0 || fstat(file->fd, &st) < 0) {
		log_error("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(file->fd, 0, SEEK_END);

		conf->capacity = end > 0 ? (uint64_t)end : 0;
	} else {
		conf->capacity = (uint64_t)st.st_size;
	}
	if (conf->capacity == 0 || conf->capacity % 512) {
		log_error("%s: its size (%llu bytes) is not a positive multiple of 512", path,
			  (unsigned long long)conf->capacity);
		close(file->fd);
		return -EINVAL;
	}
	return 0;
}

static int open_devnode(struct vu_devnode_conf *dc, const char *grant, const char *keyfile,
			struct auth_key *key, struct vu_blk_conf *conf, struct vu_devnode **ret)
{
	int r;

	if (!dc->volume || !grant || !keyfile || !dc->conn.node_id) {
		log_error("--devnode needs --volume, --grant, --key and --node-id");
		return -EINVAL;
	}
	if (grant_from_hex(grant, &dc->grant) < 0) {
		log_error("--grant: not a grant (%u hex digits)", (unsigned)GRANT_HEX_LEN);
		return -EINVAL;
	}
	r = auth_key_load(keyfile, key);
	if (r < 0) {
		log_error("cannot load cluster key %s: %s%s", keyfile, strerror(-r), auth_key_hint(r));
		return r;
	}
	dc->conn.key = key;
	dc->conn.timeout_ms = 2000;
	dc->readonly = conf->readonly;
	r = vu_devnode_new(dc, ret, &conf->capacity);
	if (r < 0)
		log_error("device node %s, volume %s: %s", dc->conn.addr, dc->volume, strerror(-r));
	return r;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "file", required_argument, NULL, 'f' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "queues", required_argument, NULL, 'q' },
		{ "serial", required_argument, NULL, 'S' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "devnode", required_argument, NULL, 'D' },
		{ "volume", required_argument, NULL, 'V' },
		{ "grant", required_argument, NULL, 'G' },
		{ "key", required_argument, NULL, 'K' },
		{ "node-id", required_argument, NULL, 'N' },
		{ "outage-ms", required_argument, NULL, 'O' },
		FABRIC_LONG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct vu_blk_conf conf = { .num_queues = 1, .discard = true, .write_zeroes = true };
	const char *sock = NULL, *path = NULL, *grant = NULL, *keyfile = NULL;
	struct vu_devnode_conf dc = { .outage_ms = 30000 };
	struct vu_devnode *dn = NULL;
	struct fabric_conf fabric = { 0 };
	struct tls_ctx *tls = NULL;
	struct auth_key key;
	struct sigaction sa = { .sa_handler = on_signal };
	struct vu_file file = { .fd = -1 };
	uint64_t v;
	int c, lfd, r;

	log_init(argv[0]);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (fabric_opt(c, optarg, &fabric))
			continue;
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'f':
			path = optarg;
			break;
		case 'r':
			conf.readonly = true;
			break;
		case 'q':
			if (opt_u64("queues", optarg, 1, VU_BLK_MAX_QUEUES, NULL, &v) < 0)
				return 2;
			conf.num_queues = (unsigned)v;
			break;
		case 'S':
			conf.serial = optarg;
			break;
		case 'D':
			dc.conn.addr = optarg;
			break;
		case 'V':
			dc.volume = optarg;
			break;
		case 'G':
			grant = optarg;
			break;
		case 'K':
			keyfile = optarg;
			break;
		case 'N':
			if (opt_node_id(optarg, &dc.conn.node_id) < 0)
				return 2;
			break;
		case 'O':
			if (opt_u64("outage-ms", optarg, 0, 86400000, "ms", &v) < 0)
				return 2;
			dc.outage_ms = (unsigned)v;
			break;
		case 'l':
			if (log_set_level_str(optarg) < 0) {
				log_error("invalid --log-level '%s'", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!sock || !path == !dc.conn.addr || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!path && fabric.ca) {
		fabric.plaintext = false;
		if (tls_ctx_new(&fabric, CERT_ROLE_COMPUTE, dc.conn.node_id, &tls) < 0)
			return 1;
		mnc_set_tls(tls);
	}
	if (path)
		r = open_file(path, &conf, &file);
	else
		r = open_devnode(&dc, grant, keyfile, &key, &conf, &dn);
	if (r < 0)
		return 1;
	lfd = listen_unix(sock);
	if (lfd < 0) {
		log_error("cannot listen on %s: %s", sock, strerror(-lfd));
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	printf("disagg-vublk listening on %s\n", sock);
	fflush(stdout);
	r = path ? serve(lfd, &conf, &vu_file_ops, &file) : serve(lfd, &conf, &vu_devnode_ops, dn);
	close(lfd);
	(void)unlink(sock);
	if (path)
		close(file.fd);
	vu_devnode_free(dn);
	mnc_set_tls(NULL);
	tls_ctx_free(tls);
	if (r < 0)
		log_error("%s", strerror(-r));
	return r < 0 ? 1 : 0;
}
