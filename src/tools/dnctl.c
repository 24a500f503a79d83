// SPDX-License-Identifier: MIT
/*
 * disagg-dnctl: a small device-node client for tests, the demo and humans
 * (the device node's counterpart of disagg-mnctl), on dnclient.h.
 *
 *   disagg-dnctl --addr HOST:PORT --key FILE --node-id ID [--grant-key FILE]
 *                [--timeout MS] CMD ...
 *
 *   vol-create NAME SIZE | vol-delete NAME | vol-resize NAME SIZE [--shrink]
 *   vol-clone SRC DST | vol-stat NAME | vol-ls | grant NAME
 *   write NAME OFFSET FILE | read NAME OFFSET LEN OUTFILE | flush NAME
 *   discard NAME OFFSET LEN | zero NAME OFFSET LEN
 *
 * The vol-* commands and `grant` need --grant-key, the orchestrator's
 * private grant key: its AUTH proves the orchestrator's capability. The
 * I/O commands open NAME through a grant: --grant HEX, or one they mint
 * with --grant-key after a VOL_STAT (the volume's key) on an orchestrator
 * connection; the I/O itself goes over a connection of its own without
 * the capability, as a compute node's would. Minted grants name holder
 * --holder (default --node-id), the device node of the HELLO reply,
 * rights rw (r with --read-only), and expire at --expiry (seconds since
 * the epoch, 0 never; default an hour from now).
 *
 * Volumes are JSON on stdout (an object each, an array for vol-ls); write
 * and read print the bytes moved, grant the grant's hex. Failures print
 * "disagg-dnctl: WHAT: ERROR" on stderr and exit with status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "dnclient.h"
#include "grant.h"
#include "jsonhttp.h"
#include "tls.h"
#include "toolutil.h"
#include "wire.h"

#define QD          8                  /* requests in flight for write and read */
#define SPAN_CHUNK  (1u << 30)         /* bytes per DISCARD or WRITE_ZEROES request */

struct args {
	const char *addr, *keyfile, *grant_keyfile, *grant_hex;
	uint64_t node_id, holder, expiry, timeout;
	bool have_node, have_holder, have_expiry, read_only, shrink;
	struct fabric_conf fabric;
	char **pos;
	int npos;
};

struct ctx {
	const struct args *a;
	struct auth_key key;
	struct grant_key *gkey;        /* NULL without --grant-key */
	struct tls_ctx *tls;
};

static int fail(const char *what, int r)
{
	fprintf(stderr, "disagg-dnctl: %s: %s\n", what, strerror(-r));
	return 1;
}

/* A refusal by the node: its own words where the errno text alone misleads. */
static int fail_node(const char *what, int r)
{
	const char *node = NULL;

	switch (-r) {
	case EKEYREJECTED: case EPERM: case ENOENT: case EEXIST: case ENOKEY:
	case EKEYREVOKED: case ERANGE:
		node = proto_status_str(proto_errno_to_status(r));
		break;
	}
	fprintf(stderr, "disagg-dnctl: %s: %s%s%s%s\n", what, strerror(-r), node ? " (" : "",
		node ? node : "", node ? ")" : "");
	return 1;
}

/* "CMD ARG" for messages. */
static const char *what2(char *buf, size_t n, const char *a, const char *b)
{
	snprintf(buf, n, "%s %s", a, b);
	return buf;
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

static json_t *vol_json(const struct dnc_volume *v)
{
	char key[17];

	snprintf(key, sizeof(key), "%016" PRIx64, v->key);
	return json_pack("{s:s, s:s, s:I, s:I, s:s, s:I, s:b}", "name", v->name, "kind",
			 v->block ? "block" : "file", "size", (json_int_t)v->size, "allocated",
			 (json_int_t)v->allocated, "key", key, "users", (json_int_t)v->users,
			 "reflinked", (int)v->reflinked);
}

/* A SIZE, OFFSET or LEN operand (K, M, G, T suffixes). */
static int operand(const char *what, const char *s, uint64_t *ret)
{
	if (size_parse(s, ret) < 0) {
		fprintf(stderr, "disagg-dnctl: invalid %s '%s': a number of bytes such as 4096, "
				"512K or 1G\n", what, s);
		return -EINVAL;
	}
	return 0;
}

/* A volume name the node would refuse: says so. */
static bool bad_name(const char *cmd, const char *name)
{
	if (dnc_name_check(name) == 0)
		return false;
	fprintf(stderr, "disagg-dnctl: %s %s: %s (a volume name is 1-63 of [a-z0-9_-], "
			"starting with a letter or a digit)\n", cmd, name, strerror(EINVAL));
	return true;
}

/* ---- connections and grants ------------------------------------------------ */

static int connect_node(const struct ctx *x, bool orch, struct mnc **ret)
{
	const struct args *a = x->a;
	struct mnc_opts o = {
		.addr = a->addr, .key = &x->key, .orch_key = orch ? x->gkey : NULL,
		.node_id = a->node_id, .timeout_ms = (int)a->timeout, .tls = x->tls,
	};
	char what[300];
	int r = dnc_connect(&o, ret);

	if (r < 0) {
		fprintf(stderr, "disagg-dnctl: %s: %s%s\n", what2(what, sizeof(what), "connect to",
			a->addr), strerror(-r),
			r == -EKEYREJECTED ? " (the node does not hold our cluster key)" :
			r == -EPROTONOSUPPORT ? " (not a device node)" : "");
		return r;
	}
	return 0;
}

/* An orchestrator's connection (--grant-key needed). */
static int connect_orch(const struct ctx *x, const char *cmd, struct mnc **ret)
{
	if (!x->gkey) {
		fprintf(stderr, "disagg-dnctl: %s needs --grant-key FILE (the orchestrator's "
				"grant key)\n", cmd);
		return -EINVAL;
	}
	return connect_node(x, true, ret);
}

/* Mint a grant for volume `name` after a VOL_STAT. Prints why not. */
static int mint_grant(const struct ctx *x, const char *cmd, const char *name,
		      struct proto_grant *ret)
{
	const struct args *a = x->a;
	_cleanup_mnc_ struct mnc *c = NULL;
	struct dnc_volume v;
	char what[128];
	int r = connect_orch(x, cmd, &c);

	if (r < 0)
		return r;
	r = dnc_vol_stat(c, name, &v);
	if (r < 0) {
		fail_node(what2(what, sizeof(what), "vol-stat", name), r);
		return r;
	}
	r = grant_mint(x->gkey, mnc_info(c)->node_id, a->have_holder ? a->holder : a->node_id,
		       (uint32_t)v.key, (uint32_t)(v.key >> 32), 0,
		       a->read_only ? PROTO_R_READ : PROTO_R_READ | PROTO_R_WRITE,
		       a->have_expiry ? a->expiry : (uint64_t)time(NULL) + 3600, ret);
	if (r < 0)
		fail("mint grant", r);
	return r;
}

/* The grant for an I/O command: --grant, else a minted one. */
static int io_grant(const struct ctx *x, const char *cmd, const char *name,
		    struct proto_grant *ret)
{
	const char *hex = x->a->grant_hex;

	if (!hex && !x->gkey) {
		fprintf(stderr, "disagg-dnctl: %s needs --grant HEX or --grant-key FILE\n", cmd);
		return -EINVAL;
	}
	if (!hex)
		return mint_grant(x, cmd, name, ret);
	if (strlen(hex) != GRANT_HEX_LEN || grant_from_hex(hex, ret) < 0) {
		fprintf(stderr, "disagg-dnctl: invalid --grant: %zu hex digits expected\n",
			(size_t)GRANT_HEX_LEN);
		return -EINVAL;
	}
	return 0;
}

/* ---- volumes ---------------------------------------------------------------- */

static int cmd_vol(const struct ctx *x)
{
	const struct args *a = x->a;
	const char *cmd = a->pos[0], *name = a->pos[1];
	_cleanup_mnc_ struct mnc *c = NULL;
	struct dnc_volume v;
	uint64_t size = 0;
	char what[128];
	int r;

	if (bad_name(cmd, name) || (!strcmp(cmd, "vol-clone") && bad_name(cmd, a->pos[2])))
		return 1;
	if (!strcmp(cmd, "vol-create") || !strcmp(cmd, "vol-resize")) {
		if (operand("SIZE", a->pos[2], &size) < 0)
			return 1;
		if (size % PROTO_BLK_SECTOR || (size == 0 && !strcmp(cmd, "vol-create"))) {
			fprintf(stderr, "disagg-dnctl: %s %s: %s (SIZE is a%s multiple of %d bytes)\n",
				cmd, name, strerror(EINVAL), size ? "" : " nonzero", PROTO_BLK_SECTOR);
			return 1;
		}
	}
	if (a->shrink && strcmp(cmd, "vol-resize") != 0) {
		fprintf(stderr, "disagg-dnctl: --shrink is for vol-resize\n");
		return 1;
	}
	if (connect_orch(x, cmd, &c) < 0)
		return 1;
	if (!strcmp(cmd, "vol-create"))
		r = dnc_vol_create(c, name, size, &v);
	else if (!strcmp(cmd, "vol-resize"))
		r = dnc_vol_resize(c, name, size, a->shrink, &v);
	else if (!strcmp(cmd, "vol-clone"))
		r = dnc_vol_clone(c, name, a->pos[2], &v);
	else if (!strcmp(cmd, "vol-stat"))
		r = dnc_vol_stat(c, name, &v);
	else
		r = dnc_vol_delete(c, name);
	if (r == -EBADMSG && !strcmp(cmd, "vol-resize") && !a->shrink)
		fprintf(stderr, "disagg-dnctl: %s %s: %s (a smaller size needs --shrink)\n", cmd,
			name, strerror(-r));
	else if (r < 0)
		fail_node(what2(what, sizeof(what), cmd, name), r);
	if (r < 0)
		return 1;
	return !strcmp(cmd, "vol-delete") ? 0 : print_json(vol_json(&v));
}

static int cmd_vol_ls(const struct ctx *x)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	_cleanup_free_ struct dnc_volume *v = NULL;
	json_t *arr;
	size_t n;
	int r;

	if (connect_orch(x, "vol-ls", &c) < 0)
		return 1;
	r = dnc_vol_list(c, &v, &n);
	if (r < 0)
		return fail_node("vol-ls", r);
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, vol_json(&v[i])) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	return print_json(arr);
}

static int cmd_grant(const struct ctx *x)
{
	char hex[GRANT_HEX_LEN + 1];
	struct proto_grant g;

	if (bad_name("grant", x->a->pos[1]) || mint_grant(x, "grant", x->a->pos[1], &g) < 0)
		return 1;
	grant_to_hex(&g, hex);
	printf("%s\n", hex);
	return 0;
}

/* ---- block I/O ----------------------------------------------------------------- */

enum xop { X_WRITE, X_READ, X_DISCARD, X_ZERO };

struct chunk {
	struct xfer *x;
	uint8_t *buf;                  /* X_WRITE, X_READ */
	uint64_t off;                  /* in the volume */
	uint32_t len;
	bool busy;
};

struct xfer {
	enum xop op;
	struct chunk ch[QD];
	int fd;                        /* X_WRITE: read from; X_READ: written to */
	const char *path;
	uint64_t base;                 /* the volume offset of the file's byte 0 */
	unsigned busy;
	int err;
	bool file_err;                 /* err is the file's, not the node's */
};

static void xfer_error(struct xfer *x, int r, bool file)
{
	if (!x->err) {
		x->err = r;
		x->file_err = file;
	}
}

/* Whole transfers to and from the file at an offset. */
static int file_io(int fd, bool write, void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = write ? pwrite(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done))
				  : pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;   /* the file shrank under us */
		done += (size_t)n;
	}
	return 0;
}

static void chunk_done(void *opaque, int status, size_t len)
{
	struct chunk *k = opaque;
	struct xfer *x = k->x;
	int r;

	k->busy = false;
	x->busy--;
	if (status < 0) {
		xfer_error(x, status, false);
		return;
	}
	if (x->op == X_READ && !x->err) {
		r = file_io(x->fd, true, k->buf, k->len, k->off - x->base);
		if (r < 0)
			xfer_error(x, r, true);
	}
}

static int chunk_submit(struct mnc *c, uint32_t h, struct chunk *k)
{
	switch (k->x->op) {
	case X_WRITE: return dnc_write_async(c, h, k->off, k->len, k->buf, chunk_done, k);
	case X_READ: return dnc_read_async(c, h, k->off, k->len, k->buf, chunk_done, k);
	case X_DISCARD: return dnc_discard_async(c, h, k->off, k->len, chunk_done, k);
	default: return dnc_write_zeroes_async(c, h, k->off, k->len, chunk_done, k);
	}
}

/* [offset, offset + len) of the volume, in chunks, QD in flight. 0 or x->err. */
static int xfer_run(struct mnc *c, uint32_t h, struct xfer *x, uint64_t offset, uint64_t len,
		    int wait_ms)
{
	bool data = x->op == X_WRITE || x->op == X_READ;
	uint32_t chunk = data ? PROTO_BLK_MAX_IO : SPAN_CHUNK;
	uint64_t pos = 0;
	int r;

	x->base = offset;
	for (int i = 0; i < QD; i++) {
		x->ch[i].x = x;
		if (data && !(x->ch[i].buf = malloc(chunk)))
			xfer_error(x, -ENOMEM, true);
	}
	while (!x->err && (pos < len || x->busy)) {
		struct chunk *k = NULL;

		for (int i = 0; i < QD && !k && pos < len; i++)
			if (!x->ch[i].busy)
				k = &x->ch[i];
		if (!k) {
			r = mnc_poll(c, wait_ms);
			if (r < 0 || (r == 0 && x->busy))
				xfer_error(x, r < 0 ? r : -ETIMEDOUT, false);
			continue;
		}
		k->off = offset + pos;
		k->len = (uint32_t)MIN(len - pos, (uint64_t)chunk);
		if (x->op == X_WRITE) {
			r = file_io(x->fd, false, k->buf, k->len, pos);
			if (r < 0) {
				xfer_error(x, r, true);
				break;
			}
		}
		k->busy = true;
		x->busy++;
		r = chunk_submit(c, h, k);
		if (r < 0) {
			k->busy = false;
			x->busy--;
			xfer_error(x, r, false);
			break;
		}
		pos += k->len;
	}
	/* Also after an error: nothing may stay in flight pointing at x. */
	r = mnc_drain(c);
	if (r < 0)
		xfer_error(x, r, false);
	for (int i = 0; i < QD; i++)
		free(x->ch[i].buf);
	return x->err;
}

/* What an I/O command is asked to do, checked before anything is sent. */
struct job {
	const char *cmd, *name;
	uint64_t off, len;
	int fd;                        /* write: FILE; read: OUTFILE; else -1 */
	const char *path;
};

/* OFFSET and LEN operands: aligned, LEN nonzero, no overflow. */
static int job_range(struct job *j, const char *off_s, const char *len_s)
{
	if (operand("OFFSET", off_s, &j->off) < 0 || (len_s && operand("LEN", len_s, &j->len) < 0))
		return -EINVAL;
	if (j->off % PROTO_BLK_SECTOR || j->len % PROTO_BLK_SECTOR || j->len == 0) {
		fprintf(stderr, "disagg-dnctl: %s %s: %s (OFFSET and LEN are multiples of %d "
				"bytes, LEN nonzero)\n", j->cmd, j->name, strerror(EINVAL),
			PROTO_BLK_SECTOR);
		return -EINVAL;
	}
	if (j->off > UINT64_MAX - j->len) {
		fprintf(stderr, "disagg-dnctl: %s %s: %s\n", j->cmd, j->name, strerror(ERANGE));
		return -ERANGE;
	}
	return 0;
}

/* A file call failed (errno): say so, return -errno. */
static int file_fail(const char *what)
{
	int r = -errno;

	fail(what, r);
	return r;
}

/* The operands of an I/O command; the file of write and read opened. */
static int job_prepare(const struct args *a, struct job *j)
{
	char what[300];
	struct stat st;

	*j = (struct job){ .cmd = a->pos[0], .name = a->pos[1], .fd = -1 };
	if (bad_name(j->cmd, j->name))
		return -EINVAL;
	if (!strcmp(j->cmd, "write")) {
		j->path = a->pos[3];
		j->fd = open(j->path, O_RDONLY | O_CLOEXEC);
		if (j->fd < 0 || fstat(j->fd, &st) < 0)
			return file_fail(what2(what, sizeof(what), "open", j->path));
		j->len = (uint64_t)st.st_size;
		if (j->len == 0 || j->len % PROTO_BLK_SECTOR) {
			fprintf(stderr, "disagg-dnctl: write %s: %s has %" PRIu64 " bytes, not a "
					"nonzero multiple of %d\n", j->name, j->path, j->len,
				PROTO_BLK_SECTOR);
			return -EINVAL;
		}
		return job_range(j, a->pos[2], NULL);
	}
	if (!strcmp(j->cmd, "read")) {
		j->path = a->pos[4];
		if (job_range(j, a->pos[2], a->pos[3]) < 0)
			return -EINVAL;
		j->fd = open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (j->fd < 0)
			return file_fail(what2(what, sizeof(what), "open", j->path));
		return 0;
	}
	if (!strcmp(j->cmd, "flush"))
		return 0;
	return job_range(j, a->pos[2], a->pos[3]);
}

/* write, read, discard, zero: the transfer; write then flushes. */
static int job_run(struct mnc *c, uint32_t h, struct job *j, int wait_ms)
{
	struct xfer x = { .fd = j->fd, .path = j->path };
	char what[300];
	int r;

	x.op = !strcmp(j->cmd, "write") ? X_WRITE : !strcmp(j->cmd, "read") ? X_READ
	     : !strcmp(j->cmd, "zero") ? X_ZERO : X_DISCARD;
	r = xfer_run(c, h, &x, j->off, j->len, wait_ms);
	if (r < 0 && x.file_err)
		return fail(what2(what, sizeof(what), x.op == X_WRITE ? "read" : "write", j->path), r);
	if (r < 0)
		return fail_node(what2(what, sizeof(what), j->cmd, j->name), r);
	if (x.op == X_WRITE && (r = dnc_flush(c, h)) < 0)
		return fail_node(what2(what, sizeof(what), "flush", j->name), r);
	if (x.op == X_READ && close(TAKE_FD(j->fd)) < 0) {
		file_fail(what2(what, sizeof(what), "close", j->path));
		return 1;
	}
	if (x.op == X_WRITE || x.op == X_READ)
		printf("%" PRIu64 "\n", j->len);
	return 0;
}

/* Every I/O command: its operands, a grant, a connection, BLK_OPEN, the work, BLK_CLOSE. */
static int cmd_io(const struct ctx *x)
{
	const struct args *a = x->a;
	_cleanup_mnc_ struct mnc *c = NULL;
	_cleanup_close_ int fd = -1;
	struct proto_grant g;
	struct job j;
	uint32_t h, flags = 0;
	uint64_t size;
	char what[128];
	int wait_ms = a->timeout ? (int)a->timeout : 5000;
	int r;

	r = job_prepare(a, &j);
	fd = j.fd;                     /* closed on every way out */
	if (r < 0)
		return 1;
	if (io_grant(x, j.cmd, j.name, &g) < 0 || connect_node(x, false, &c) < 0)
		return 1;
	/* A read needs no write right; --read-only opens any command read-only. */
	if (a->read_only || !strcmp(j.cmd, "read"))
		flags |= PROTO_BLK_RDONLY;
	r = dnc_open(c, &g, j.name, flags, &h, &size);
	if (r < 0)
		return fail_node(what2(what, sizeof(what), "open", j.name), r);
	if (!strcmp(j.cmd, "flush")) {
		r = dnc_flush(c, h);
		r = r < 0 ? fail_node(what2(what, sizeof(what), "flush", j.name), r) : 0;
	} else {
		r = job_run(c, h, &j, wait_ms);
		fd = j.fd;             /* job_run may have closed it */
	}
	if (r == 0 && (r = dnc_close(c, h)) < 0)
		return fail_node(what2(what, sizeof(what), "close", j.name), r);
	return r;
}

/* ---- options and main -------------------------------------------------------- */

static const struct cmd {
	const char *name;
	int nargs;                     /* operands after the command */
	const char *args;
	int (*fn)(const struct ctx *x);
} cmds[] = {
	{ "vol-create", 2, "NAME SIZE", cmd_vol },
	{ "vol-delete", 1, "NAME", cmd_vol },
	{ "vol-resize", 2, "NAME SIZE [--shrink]", cmd_vol },
	{ "vol-clone", 2, "SRC DST", cmd_vol },
	{ "vol-stat", 1, "NAME", cmd_vol },
	{ "vol-ls", 0, "", cmd_vol_ls },
	{ "grant", 1, "NAME", cmd_grant },
	{ "write", 3, "NAME OFFSET FILE", cmd_io },
	{ "read", 4, "NAME OFFSET LEN OUTFILE", cmd_io },
	{ "flush", 1, "NAME", cmd_io },
	{ "discard", 3, "NAME OFFSET LEN", cmd_io },
	{ "zero", 3, "NAME OFFSET LEN", cmd_io },
};

static void usage(FILE *f)
{
	fputs("usage: disagg-dnctl --addr HOST:PORT --key FILE --node-id ID [--grant-key FILE]\n"
	      "                    [--timeout MS] CMD ...\n"
	      "volumes (need --grant-key, the orchestrator's private grant key):\n"
	      "  vol-create NAME SIZE | vol-delete NAME | vol-resize NAME SIZE [--shrink]\n"
	      "  vol-clone SRC DST | vol-stat NAME | vol-ls\n"
	      "  grant NAME                  print a grant for NAME (hex) for holder --holder\n"
	      "block I/O through a grant (--grant HEX, or minted with --grant-key):\n"
	      "  write NAME OFFSET FILE      FILE's bytes at OFFSET, then flush; prints the bytes\n"
	      "  read NAME OFFSET LEN OUTFILE\n"
	      "  flush NAME | discard NAME OFFSET LEN | zero NAME OFFSET LEN\n"
	      "options:\n"
	      "  --grant HEX         the grant to open NAME with (disagg-dnctl grant)\n"
	      "  --read-only         mint read-only grants, open read-only (read always does)\n"
	      "  --holder ID         the holder of minted grants (default --node-id)\n"
	      "  --expiry SECS       minted grants expire then (seconds since the epoch, 0 never;\n"
	      "                      default an hour from now)\n"
	      "  --shrink            vol-resize may drop data past the new end\n"
	      "SIZE, OFFSET and LEN take K, M, G suffixes; OFFSET and LEN are multiples of 512.\n"
	      "Volumes print as JSON; errors go to stderr with exit status 1.\n"
	      "fabric: --tls-ca FILE --tls-cert FILE --tls-key FILE (defaults from\n"
	      "DISAGG_TLS_CA, DISAGG_TLS_CERT, DISAGG_TLS_KEY), or --fabric-plaintext\n"
	      "(or DISAGG_FABRIC_PLAINTEXT=1)\n",
	      f);
}

static int parse(int argc, char **argv, struct args *a)
{
	enum {
		O_ADDR = 256, O_KEY, O_GKEY, O_NODE, O_TIMEOUT, O_GRANT, O_RO, O_HOLDER, O_EXPIRY,
		O_SHRINK,
	};
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, O_ADDR },
		{ "key", required_argument, NULL, O_KEY },
		{ "grant-key", required_argument, NULL, O_GKEY },
		{ "node-id", required_argument, NULL, O_NODE },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "grant", required_argument, NULL, O_GRANT },
		{ "read-only", no_argument, NULL, O_RO },
		{ "holder", required_argument, NULL, O_HOLDER },
		{ "expiry", required_argument, NULL, O_EXPIRY },
		{ "shrink", no_argument, NULL, O_SHRINK },
		FABRIC_LONG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int c, r = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (fabric_opt(c, optarg, &a->fabric))
			continue;
		switch (c) {
		case O_ADDR: a->addr = optarg; break;
		case O_KEY: a->keyfile = optarg; break;
		case O_GKEY: a->grant_keyfile = optarg; break;
		case O_NODE: a->have_node = true; r = tool_u64("--node-id", optarg, &a->node_id); break;
		case O_TIMEOUT: r = tool_u64("--timeout", optarg, &a->timeout); break;
		case O_GRANT: a->grant_hex = optarg; break;
		case O_RO: a->read_only = true; break;
		case O_HOLDER: a->have_holder = true; r = tool_u64("--holder", optarg, &a->holder); break;
		case O_EXPIRY: a->have_expiry = true; r = tool_u64("--expiry", optarg, &a->expiry); break;
		case O_SHRINK: a->shrink = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
		if (r < 0)
			return r;
	}
	if (!a->addr || !a->keyfile || !a->have_node || optind >= argc) {
		fprintf(stderr, "disagg-dnctl: --addr, --key, --node-id and a command are required\n");
		usage(stderr);
		return -EINVAL;
	}
	if (a->timeout > INT32_MAX) {
		fprintf(stderr, "disagg-dnctl: --timeout %" PRIu64 " ms is too large\n", a->timeout);
		return -EINVAL;
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	return 0;
}

static const struct cmd *find_cmd(const struct args *a)
{
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (strcmp(a->pos[0], cmds[i].name) != 0)
			continue;
		if (a->npos - 1 == cmds[i].nargs)
			return &cmds[i];
		fprintf(stderr, "disagg-dnctl: usage: %s %s\n", cmds[i].name, cmds[i].args);
		return NULL;
	}
	fprintf(stderr, "disagg-dnctl: unknown command '%s'\n", a->pos[0]);
	usage(stderr);
	return NULL;
}

/* Keys and the fabric's TLS into x. */
static int load(struct ctx *x)
{
	const struct args *a = x->a;
	int r = auth_key_load(a->keyfile, &x->key);

	if (r < 0) {
		fprintf(stderr, "disagg-dnctl: cannot load key %s: %s%s\n", a->keyfile, strerror(-r),
			auth_key_hint(r));
		return r;
	}
	if (a->grant_keyfile) {
		r = grant_key_load(a->grant_keyfile, true, &x->gkey);
		if (r < 0) {
			fprintf(stderr, "disagg-dnctl: cannot load grant key %s: %s%s\n",
				a->grant_keyfile, strerror(-r), grant_key_hint(r));
			return r;
		}
	}
	r = fabric_conf_check(&a->fabric);
	if (r < 0)
		return r;
	return tls_ctx_new(&a->fabric, CERT_ROLE_NONE, a->node_id, &x->tls);
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	struct ctx x = { .a = &a };
	const struct cmd *cmd;
	int r;

	if (parse(argc, argv, &a) < 0)
		return 1;
	cmd = find_cmd(&a);
	if (!cmd)
		return 1;
	signal(SIGPIPE, SIG_IGN);      /* TLS writes go through write(2): a closed peer is EPIPE */
	fabric_conf_env(&a.fabric);
	r = load(&x) < 0 ? 1 : cmd->fn(&x);
	OPENSSL_cleanse(&x.key, sizeof(x.key));
	grant_key_free(x.gkey);
	tls_ctx_free(x.tls);
	fflush(stdout);
	return r;
}
