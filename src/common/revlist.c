// SPDX-License-Identifier: MIT
/*
 * Revoked node ids: the list the orchestrator pushes (REVOKE), kept in
 * memory as a sorted array and, given a state directory (the memory
 * node's --state-dir, the device node's --data), in DIR/revoked (one
 * decimal id per line, replaced atomically: written to a temporary file,
 * synced, renamed, the directory synced). The daemons refuse a connection
 * whose certificate (or, in plaintext, whose HELLO) names a revoked node,
 * and close the connections of the nodes on a new list.
 */
#include "revlist.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "disagg/proto.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sort and drop duplicates; returns the new count. */
static size_t normalize(uint64_t *ids, size_t n)
{
	size_t k = 0;

	if (n < 2)
		return n;   /* also ids == NULL: qsort must not see it */
	qsort(ids, n, sizeof(*ids), cmp_u64);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || ids[k - 1] != ids[i])
			ids[k++] = ids[i];
	return k;
}

static int persist(const char *dir, const uint64_t *ids, size_t n)
{
	_cleanup_free_ char *path = NULL, *tmp = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	int fd, dfd, r = 0;

	if (asprintf(&path, "%s/revoked", dir) < 0 || asprintf(&tmp, "%s/.revoked.tmp", dir) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -errno;
	}
	for (size_t i = 0; i < n && r >= 0; i++)
		if (fprintf(f, "%" PRIu64 "\n", ids[i]) < 0)
			r = -EIO;
	if (r < 0 || fflush(f) != 0 || fsync(fileno(f)) < 0) {
		unlink(tmp);
		return r < 0 ? r : -errno;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
		return r;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

int revlist_init(struct revlist *rv, const char *dir)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	uint64_t *ids = NULL;
	size_t len = 0, cap = 0;
	char line[64];
	unsigned lineno = 0;

	pthread_rwlock_init(&rv->lock, NULL);
	rv->dir = dir;
	if (!dir)
		return 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_error("cannot create the state directory %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (asprintf(&path, "%s/revoked", dir) < 0)
		return -ENOMEM;
	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		log_error("cannot read %s: %s", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *end;
		uint64_t v;

		lineno++;
		errno = 0;
		v = strtoull(line, &end, 10);
		if (errno || end == line || (*end != '\n' && *end) || v == 0 || len >= PROTO_MAX_REVOKED) {
			log_error("%s:%u: not a node id (or too many): the file is damaged", path,
				  lineno);
			free(ids);
			return -EBADMSG;
		}
		if (len == cap) {
			uint64_t *p = realloc(ids, (cap = cap ? cap * 2 : 64) * sizeof(*ids));

			if (!p) {
				free(ids);
				return -ENOMEM;
			}
			ids = p;
		}
		ids[len++] = v;
	}
	rv->n = normalize(ids, len);
	rv->ids = ids;
	atomic_store(&rv->count, rv->n);
	if (rv->n)
		log_info("%zu revoked node id%s (%s)", rv->n, rv->n == 1 ? "" : "s",
			 path);
	return 0;
}

void revlist_destroy(struct revlist *rv)
{
	free(rv->ids);
	rv->ids = NULL;
	pthread_rwlock_destroy(&rv->lock);
}

bool revlist_has(struct revlist *rv, uint64_t id)
{
	bool hit;

	if (atomic_load(&rv->count) == 0)
		return false;
	pthread_rwlock_rdlock(&rv->lock);
	hit = rv->ids &&
	      bsearch(&id, rv->ids, rv->n, sizeof(id), cmp_u64) != NULL;
	pthread_rwlock_unlock(&rv->lock);
	return hit;
}

int revlist_set(struct revlist *rv, const uint64_t *ids, size_t count)
{
	uint64_t *copy = malloc((count ? count : 1) * sizeof(*copy));
	uint64_t *old;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	if (count)
		memcpy(copy, ids, count * sizeof(*copy));
	count = normalize(copy, count);
	if (rv->dir) {
		r = persist(rv->dir, copy, count);
		if (r < 0) {
			log_error("cannot store the revocation list in %s: %s", rv->dir,
				  strerror(-r));
			free(copy);
			return r;
		}
	}
	pthread_rwlock_wrlock(&rv->lock);
	old = rv->ids;
	rv->ids = copy;
	rv->n = count;
	atomic_store(&rv->count, count);
	pthread_rwlock_unlock(&rv->lock);
	free(old);
	atomic_fetch_add(&rv->gen, 1);
	log_info("revocation list: %zu node id%s", count, count == 1 ? "" : "s");
	return 0;
}

/* A REVOKE payload: *ret (malloc'ed, host order) and *ret_n, or -EBADMSG. */
static int decode(const void *p, size_t len, uint64_t **ret, size_t *ret_n)
{
	struct proto_revoke_req req;
	_cleanup_free_ uint64_t *ids = NULL;

	if (len < sizeof(req))
		return -EBADMSG;
	memcpy(&req, p, sizeof(req));
	req.count = le32toh(req.count);
	req.rsvd = le32toh(req.rsvd);
	if (req.rsvd != 0 || req.count > PROTO_MAX_REVOKED ||
	    len != sizeof(req) + (size_t)req.count * sizeof(uint64_t))
		return -EBADMSG;
	ids = malloc((req.count ? req.count : 1) * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	for (uint32_t i = 0; i < req.count; i++) {
		uint64_t v;

		memcpy(&v, (const uint8_t *)p + sizeof(req) + (size_t)i * sizeof(v), sizeof(v));
		ids[i] = le64toh(v);
		if (ids[i] == 0)
			return -EBADMSG;
	}
	*ret = TAKE_PTR(ids);
	*ret_n = req.count;
	return 0;
}

int revlist_set_wire(struct revlist *rv, const void *p, size_t len)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t count = 0;
	int r = decode(p, len, &ids, &count);

	if (r == 0)
		r = revlist_set(rv, ids, count);
	return r == -EBADMSG || r == -ENOMEM ? r : r < 0 ? -EIO : 0;
}
