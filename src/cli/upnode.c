// SPDX-License-Identifier: MIT
/*
 * The command lines of the nodes `disagg up` starts, all on 127.0.0.1 (or --address)
 * with ports the kernel picks (docs/cli.md, "What `disagg up` does"):
 *
 *   memory node ID   disagg-memnode --listen 127.0.0.1:0 --http 127.0.0.1:0
 *                    --node-id ID --pool SIZE --backing anon|file:DIR/memnode-ID.pool
 *                    --state-dir DIR/memnode-ID.state --key ... --grant-pubkey ...
 *   compute node ID  disagg-compute --http 127.0.0.1:0 --node-id ID --key ...
 *                    --accel MODE --stop-vms-on-exit [--run-dir DIR/run/compute-ID]
 *   device node ID   disagg-devnode --data DIR/devnode-ID.data --listen 127.0.0.1:0
 *                    --http 127.0.0.1:0 --node-id ID --key ... --grant-pubkey ...
 *
 * each with --orchestrator URL --node-credential DIR/node-ID.cred and the
 * fabric's --tls-ca/--tls-cert/--tls-key (a device node's certificate has
 * the role device), or --fabric-plaintext.
 */
#include "upnode.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

/* A growing argv; `oom` once anything failed. */
struct strv {
	char **v;
	size_t n, cap;
	bool oom;
};

static void add(struct strv *s, const char *fmt, ...) _printf_(2, 3);
static void add(struct strv *s, const char *fmt, ...)
{
	va_list ap;
	char *arg;
	int r;

	if (s->oom)
		return;
	if (s->n + 2 > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 32;
		char **nv = realloc(s->v, cap * sizeof(*nv));

		if (!nv) {
			s->oom = true;
			return;
		}
		s->v = nv;
		s->cap = cap;
	}
	va_start(ap, fmt);
	r = vasprintf(&arg, fmt, ap);
	va_end(ap);
	if (r < 0) {
		s->oom = true;
		return;
	}
	s->v[s->n++] = arg;
	s->v[s->n] = NULL;
}

void upnode_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **a = argv; *a; a++)
		free(*a);
	free(argv);
}

/* Every regular file in dir goes (a missing dir is fine). */
static int empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int r = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d)))
		if (e->d_type == DT_REG && unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT)
			r = -errno;
	closedir(d);
	return r;
}

int upnode_prepare(const struct upnode_conf *c, const char *kind, int64_t id)
{
	char path[4200];
	int r = 0;

	if (strcmp(kind, "memnode") == 0) {
		snprintf(path, sizeof(path), "%s/memnode-%" PRId64 ".state/revoked", c->dir, id);
		if (unlink(path) < 0 && errno != ENOENT)
			r = -errno;
	} else if (strcmp(kind, "devnode") == 0) {
		snprintf(path, sizeof(path), "%s/devnode-%" PRId64 ".data", c->dir, id);
		r = empty_dir(path);
	}
	if (r < 0)
		fprintf(stderr, "error: cannot clear %s (an earlier cluster's): %s\n", path,
			strerror(-r));
	return r;
}

char **upnode_argv(const struct upnode_conf *c, const char *kind, const char *path, int64_t id,
		   const char *cred, const char *tls_cert, const char *tls_key)
{
	struct strv s = { 0 };

	add(&s, "%s", path);
	if (strcmp(kind, "devnode") == 0)
		add(&s, "--data"), add(&s, "%s/devnode-%" PRId64 ".data", c->dir, id);
	if (strcmp(kind, "compute") != 0)
		add(&s, "--listen"), add(&s, "%s", c->bind);
	add(&s, "--http"), add(&s, "%s", c->bind);
	add(&s, "--node-id"), add(&s, "%" PRId64, id);
	if (strcmp(kind, "memnode") == 0) {
		add(&s, "--pool"), add(&s, "%" PRIu64, c->pool);
		add(&s, "--backing");
		if (c->persistent)
			add(&s, "file:%s/memnode-%" PRId64 ".pool", c->dir, id);
		else
			add(&s, "anon");
		add(&s, "--state-dir"), add(&s, "%s/memnode-%" PRId64 ".state", c->dir, id);
	}
	add(&s, "--key"), add(&s, "%s", c->key);
	if (strcmp(kind, "compute") != 0)
		add(&s, "--grant-pubkey"), add(&s, "%s", c->gpub);
	add(&s, "--orchestrator"), add(&s, "%s", c->url);
	if (strcmp(kind, "compute") == 0) {
		/* `down` stops the VMs with their agents (SIGTERM alone would leave them running). */
		add(&s, "--accel"), add(&s, "%s", c->accel);
		add(&s, "--stop-vms-on-exit");
	}
	add(&s, "--node-credential"), add(&s, "%s", cred);
	if (c->plaintext || !tls_cert) {
		add(&s, "--fabric-plaintext");
	} else {
		add(&s, "--tls-ca"), add(&s, "%s", c->ca);
		add(&s, "--tls-cert"), add(&s, "%s", tls_cert);
		add(&s, "--tls-key"), add(&s, "%s", tls_key);
	}
	if (strcmp(kind, "compute") == 0 && c->rundir)
		add(&s, "--run-dir"), add(&s, "%s/compute-%" PRId64, c->rundir, id);
	if (s.oom) {
		upnode_argv_free(s.v);
		return NULL;
	}
	return s.v;
}
