// SPDX-License-Identifier: MIT
/*
 * Spawning a disagg-memnode child for benchmarks and tests (see mnspawn.h).
 */
#include <stdbool.h>

#include "mnspawn.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mnadmin.h"
#include "mnclient.h"

extern char **environ;

static bool is_exec(const char *p)
{
	return access(p, X_OK) == 0;
}

const char *mnspawn_backing;

int mnspawn_find(const char *argv0, char *ret, size_t len)
{
	char tmp[PATH_MAX], self[PATH_MAX];
	const char *env = getenv("DISAGG_MEMNODE");
	ssize_t n;

	if (env && is_exec(env)) {
		snprintf(ret, len, "%s", env);
		return 0;
	}
	if (argv0 && strchr(argv0, '/')) {
		snprintf(tmp, sizeof(tmp), "%s", argv0);
		snprintf(self, sizeof(self), "%s/disagg-memnode", dirname(tmp));
		if (is_exec(self)) {
			snprintf(ret, len, "%s", self);
			return 0;
		}
	}
	n = readlink("/proc/self/exe", tmp, sizeof(tmp) - 1);
	if (n > 0) {
		tmp[n] = 0;
		snprintf(self, sizeof(self), "%s/../../src/memnode/disagg-memnode", dirname(tmp));
		if (is_exec(self)) {
			snprintf(ret, len, "%s", self);
			return 0;
		}
	}
	return -ENOENT;
}

/* A fresh grant key pair in temporary files (m->gkeypath, m->gpubpath, m->gkey). */
static int make_grant_key(struct mnspawn *m)
{
	int fd, r;

	snprintf(m->gkeypath, sizeof(m->gkeypath), "/tmp/disagg-pagergkey.XXXXXX");
	fd = mkostemp(m->gkeypath, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(fd);
	unlink(m->gkeypath);     /* grant_key_create makes it, exclusively */
	snprintf(m->gpubpath, sizeof(m->gpubpath), "%s.pub", m->gkeypath);
	r = grant_key_create(m->gkeypath, m->gpubpath);
	if (r < 0) {
		m->gkeypath[0] = m->gpubpath[0] = 0;
		return r;
	}
	return grant_key_load(m->gkeypath, true, &m->gkey);
}

/* A fresh cluster key in a temporary file (m->keypath, m->key). */
static int make_key(struct mnspawn *m)
{
	uint8_t key[PROTO_KEY_SIZE];
	int fd;

	snprintf(m->keypath, sizeof(m->keypath), "/tmp/disagg-pagerkey.XXXXXX");
	fd = mkostemp(m->keypath, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0 || auth_random(key, sizeof(key)) < 0 ||
	    write(fd, key, sizeof(key)) != (ssize_t)sizeof(key)) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return auth_key_load(m->keypath, &m->key);
}

int mnspawn_start(struct mnspawn *m, const char *exe, uint64_t pool_bytes, uint64_t section_size,
		  uint64_t node_id)
{
	return mnspawn_start_keyed(m, exe, pool_bytes, section_size, node_id, NULL);
}

int mnspawn_start_keyed(struct mnspawn *m, const char *exe, uint64_t pool_bytes,
			uint64_t section_size, uint64_t node_id, const struct mnspawn *key_from)
{
	char pool[32], sec[32], nid[32], line[512];
	const char *keypath, *gpubpath;
	int pfd[2], r;
	size_t got = 0;
	posix_spawn_file_actions_t fa;

	memset(m, 0, sizeof(*m));
	m->pid = -1;
	m->node_id = node_id;
	if (key_from) {
		/* Same cluster: share the key; m->keypath stays empty (not ours to remove). */
		m->key = key_from->key;
		m->gkey = key_from->gkey;
		keypath = key_from->keypath;
		gpubpath = key_from->gpubpath;
	} else {
		r = make_key(m);
		if (r == 0)
			r = make_grant_key(m);
		if (r < 0) {
			mnspawn_stop(m, true);
			return r;
		}
		keypath = m->keypath;
		gpubpath = m->gpubpath;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	snprintf(pool, sizeof(pool), "%lluM", (unsigned long long)(pool_bytes >> 20));
	snprintf(sec, sizeof(sec), "%lluM", (unsigned long long)(section_size >> 20));
	snprintf(nid, sizeof(nid), "%llu", (unsigned long long)node_id);
	{
		char *argv[] = { (char *)exe, "--key", (char *)keypath, "--grant-pubkey",
				 (char *)gpubpath, "--node-id", nid, "--listen", "127.0.0.1:0",
				 "--pool", pool, "--section-size", sec, "--log-level", "error",
				 /* the pager's tests and benchmark are not about the fabric */
				 "--fabric-plaintext", NULL, NULL, NULL };

		if (mnspawn_backing) {
			argv[16] = "--backing";
			argv[17] = (char *)mnspawn_backing;
		}

		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
		r = posix_spawn(&m->pid, exe, &fa, NULL, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
	}
	close(pfd[1]);
	if (r) {
		close(pfd[0]);
		m->pid = -1;
		return -r;
	}
	/* "disagg-memnode listening on HOST:PORT http HOST:PORT" */
	while (got < sizeof(line) - 1) {
		struct pollfd p = { pfd[0], POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 10000) <= 0)
			break;
		n = read(pfd[0], line + got, sizeof(line) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		line[got] = 0;
		if (strchr(line, '\n'))
			break;
	}
	close(pfd[0]);
	line[got] = 0;
	{
		char *p = strstr(line, "listening on ");

		if (!p || sscanf(p + 13, "%255s", m->addr) != 1) {
			mnspawn_stop(m, true);
			return -EPROTO;
		}
	}
	return 0;
}

int mnspawn_alloc(const struct mnspawn *m, uint64_t owner, struct proto_section *ret)
{
	struct mnc_opts o = { .addr = m->addr, .key = &m->key, .orch_key = m->gkey, .node_id = 1 };
	struct mnc *c = NULL;
	int r = mnc_connect(&o, &c);

	if (r == 0)
		r = mnc_alloc(c, owner, ret);
	mnc_close(c);
	return r;
}

void mnspawn_stop(struct mnspawn *m, bool hard)
{
	if (m->pid > 0) {
		kill(m->pid, hard ? SIGKILL : SIGTERM);
		waitpid(m->pid, NULL, 0);
		m->pid = -1;
	}
	if (m->keypath[0]) {
		unlink(m->keypath);
		m->keypath[0] = 0;
	}
	if (m->gkeypath[0]) {     /* ours, not a key_from's */
		unlink(m->gkeypath);
		unlink(m->gpubpath);
		m->gkeypath[0] = m->gpubpath[0] = 0;
		grant_key_free(m->gkey);
	}
	m->gkey = NULL;
}
