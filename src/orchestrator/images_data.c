// SPDX-License-Identifier: MIT
/*
 * Where the bytes of an image go (images_data.h): its disk into its base volume
 * on the device node, over the fabric like a compute node's writes (the
 * orchestrator mints a grant for itself, with its own node id as holder,
 * and opens the volume for each upload); its kernel and initramfs into
 * files NAME.kernel and NAME.initrd of the orchestrator's image directory
 * (made 0700 when missing).
 */
#include "images_data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dnclient.h"
#include "log.h"
#include "macro.h"
#include "volumes_conn.h"

#define GRANT_TTL_S 600

int images_disk_write(struct orch *o, const struct volume_rec *v, const struct node_rec *dn,
		      uint64_t offset, const void *data, size_t len)
{
	_cleanup_mnc_ struct mnc *c = NULL;
	struct proto_grant g;
	uint32_t handle = 0;
	uint64_t size = 0;
	int r, rc;

	r = grant_mint(o->grant_key, dn->id, o->node_id, (uint32_t)v->key,
		       (uint32_t)(v->key >> 32), 0, PROTO_R_READ | PROTO_R_WRITE,
		       (uint64_t)time(NULL) + GRANT_TTL_S, &g);
	if (r == 0)
		r = volumes_connect(o, dn, &c);
	if (r == 0)
		r = dnc_open(c, &g, v->name, 0, &handle, &size);
	if (r < 0)
		return r;
	for (size_t done = 0; r == 0 && done < len;) {
		uint32_t n = (uint32_t)MIN(len - done, (size_t)PROTO_BLK_MAX_IO);

		r = dnc_write(c, handle, offset + done, n, (const char *)data + done);
		done += n;
	}
	if (r == 0 && len == 0)
		r = dnc_flush(c, handle);
	rc = dnc_close(c, handle);
	return r < 0 ? r : rc;
}

char *images_file_path(struct orch *o, const char *name, enum images_part part)
{
	char *p;

	if (!o->images_dir ||
	    asprintf(&p, "%s/%s.%s", o->images_dir, name,
		     part == IMAGES_KERNEL ? "kernel" : "initrd") < 0)
		return NULL;
	return p;
}

int images_file_write(struct orch *o, const char *name, enum images_part part, uint64_t offset,
		      const void *data, size_t len)
{
	_cleanup_free_ char *path = images_file_path(o, name, part);
	_cleanup_close_ int fd = -1;
	ssize_t n;

	if (!path)
		return o->images_dir ? -ENOMEM : -EOPNOTSUPP;
	if (mkdir(o->images_dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (len) {
		n = pwrite(fd, data, len, (off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		data = (const char *)data + n;
		len -= (size_t)n;
		offset += (uint64_t)n;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

int64_t images_file_size(struct orch *o, const char *name, enum images_part part)
{
	_cleanup_free_ char *path = images_file_path(o, name, part);
	struct stat st;

	if (!path)
		return o->images_dir ? -ENOMEM : 0;
	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	return st.st_size;
}

void images_files_remove(struct orch *o, const char *name)
{
	for (enum images_part p = IMAGES_KERNEL; p <= IMAGES_INITRD; p++) {
		_cleanup_free_ char *path = images_file_path(o, name, p);

		if (path && unlink(path) < 0 && errno != ENOENT)
			log_warn("image %s: cannot remove %s: %m", name, path);
	}
}
