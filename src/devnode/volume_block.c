// SPDX-License-Identifier: MIT
/*
 * Block devices given to the device node as volumes (volume.h, the kind
 * "block"; docs/devnode.md, "Block devices").
 *
 * The device is opened O_EXCL once, when it is added, and kept open while
 * the store is: the kernel then refuses it to a mount and to any other
 * exclusive opener (another device node). Each BLK_OPEN gets a new open
 * of the same device through /proc/self/fd, so it has its own file and
 * the same I/O path as a file volume.
 *
 * A device node cannot hold user extended attributes, so the volume's key
 * and ownership epoch are kept in the state file NAME.blk of the data
 * directory: {"device": PATH, "key": "HEX", "epoch": N}, replaced whole
 * (a temporary file, fsync, rename, fsync of the directory). A state file
 * that names another device is the state of another volume: the key is
 * made anew and the epoch starts at 0, so grants of the old one fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "volume_block.h"

#define STATE_SUFFIX ".blk"
#define STATE_MAX 4096
#define STATE_TMP_MAX 80
#define COPY_CHUNK (1u << 20)

struct dn_blockdev {
	char name[DN_VOLUME_NAME_MAX + 1];
	char path[DN_VOLUME_DEV_MAX];
	int fd;                      /* O_EXCL, for the store's life */
	uint64_t size;
	uint64_t key;
	uint32_t epoch;              /* written under the fence lock (fence.c) */
	int dirfd;                   /* the data directory (the store's) */
};

const char *dn_blockdev_name(const struct dn_blockdev *b)
{
	return b->name;
}

void dn_blockdev_free(struct dn_blockdev *b)
{
	if (!b)
		return;
	close(b->fd);
	free(b);
}

/* ---- the state file ------------------------------------------------------------- */

/* Write b's state whole, atomically and durably. */
static int state_save(const struct dn_blockdev *b)
{
	char file[DN_VOLUME_NAME_MAX + sizeof(STATE_SUFFIX)], tmp[STATE_TMP_MAX], key[17];
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int fd = -1;
	json_t *j;
	size_t len;
	int dirfd = b->dirfd;

	snprintf(key, sizeof(key), "%016" PRIx64, b->key);
	j = json_pack("{s:s, s:s, s:I}", "device", b->path, "key", key, "epoch",
		      (json_int_t)b->epoch);
	text = j ? json_dumps(j, JSON_SORT_KEYS) : NULL;
	json_decref(j);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	snprintf(file, sizeof(file), "%s" STATE_SUFFIX, b->name);
	snprintf(tmp, sizeof(tmp), ".%s" STATE_SUFFIX ".new", b->name);
	fd = openat(dirfd, tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		int r = errno ? -errno : -EIO;

		(void)unlinkat(dirfd, tmp, 0);
		return r;
	}
	if (renameat(dirfd, tmp, dirfd, file) < 0) {
		int r = -errno;

		(void)unlinkat(dirfd, tmp, 0);
		return r;
	}
	return fsync(dirfd) < 0 ? -errno : 0;
}

/* b's key and epoch from its state file: -ENOENT (none), -ESTALE (another device's), -EBADMSG. */
static int state_load(struct dn_blockdev *b)
{
	char file[DN_VOLUME_NAME_MAX + sizeof(STATE_SUFFIX)], text[STATE_MAX];
	_cleanup_close_ int fd = -1;
	const char *dev = NULL, *key = NULL;
	json_int_t epoch = -1;
	json_t *j;
	ssize_t n;
	int r = 0;

	snprintf(file, sizeof(file), "%s" STATE_SUFFIX, b->name);
	fd = openat(b->dirfd, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, text, sizeof(text) - 1);
	if (n < 0)
		return -errno;
	text[n] = '\0';
	j = json_loads(text, 0, NULL);
	if (!j || json_unpack(j, "{s:s, s:s, s:I}", "device", &dev, "key", &key, "epoch",
			      &epoch) < 0 || epoch < 0 || epoch > UINT32_MAX ||
	    strlen(key) != 16 || sscanf(key, "%" SCNx64, &b->key) != 1 || b->key == 0)
		r = -EBADMSG;
	else if (strcmp(dev, b->path) != 0)
		r = -ESTALE;
	else
		b->epoch = (uint32_t)epoch;
	json_decref(j);
	return r;
}

/* ---- adding a device ------------------------------------------------------------- */

static int open_device(const char *path, uint64_t *ret_size)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	uint64_t size;

	/* O_EXCL without O_CREAT means "exclusive" only for a block device: look first. */
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	fd = open(path, O_RDWR | O_EXCL | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;        /* replaced between the two looks */
	if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		return -errno;
	if (size == 0 || size % DN_VOLUME_SECTOR || size > DN_VOLUME_MAX_SIZE)
		return -ERANGE;
	*ret_size = size;
	return TAKE_FD(fd);
}

int dn_blockdev_open(int dirfd, const char *name, const char *path, uint64_t new_key,
		     struct dn_blockdev **ret)
{
	_cleanup_free_ struct dn_blockdev *b = NULL;
	int r;

	if (strlen(path) >= DN_VOLUME_DEV_MAX || strlen(name) > DN_VOLUME_NAME_MAX)
		return -ENAMETOOLONG;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	snprintf(b->name, sizeof(b->name), "%s", name);
	snprintf(b->path, sizeof(b->path), "%s", path);
	b->dirfd = dirfd;
	b->fd = open_device(path, &b->size);
	if (b->fd < 0)
		return b->fd;
	r = state_load(b);
	if (r == -ENOENT || r == -ESTALE) {
		b->epoch = 0;
		b->key = new_key;
		r = state_save(b);
	}
	if (r < 0) {
		close(b->fd);
		return r;
	}
	*ret = TAKE_PTR(b);
	return 0;
}

/* ---- the kind's operations --------------------------------------------------------- */

static int block_stat(struct dn_volumes *vs, const char *name, void *obj,
		      struct dn_volume_info *ret)
{
	const struct dn_blockdev *b = obj;

	*ret = (struct dn_volume_info){
		.kind = DN_VOLUME_BLOCK, .size = b->size, .allocated = b->size, .key = b->key,
	};
	snprintf(ret->name, sizeof(ret->name), "%s", b->name);
	snprintf(ret->device, sizeof(ret->device), "%s", b->path);
	return 0;
}

/* A new open of the device held at b->fd: its own file, the same device. */
static int reopen(const struct dn_blockdev *b, int flags)
{
	char proc[64];
	int fd;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", b->fd);
	fd = open(proc, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int epoch_state_read(const struct dn_epoch_store *s, uint32_t *ret)
{
	const struct dn_blockdev *b = s->ctx;

	*ret = b->epoch;
	return 0;
}

static int epoch_state_write(const struct dn_epoch_store *s, uint32_t epoch)
{
	struct dn_blockdev *b = s->ctx;
	uint32_t was = b->epoch;
	int r;

	b->epoch = epoch;
	r = state_save(b);
	if (r < 0)
		b->epoch = was;
	return r;
}

static const struct dn_epoch_ops epoch_state_ops = {
	.read = epoch_state_read,
	.write = epoch_state_write,
};

static int block_open(struct dn_volumes *vs, const char *name, void *obj, int flags,
		      struct dn_volume_ref *ret)
{
	struct dn_blockdev *b = obj;
	int fd = reopen(b, O_RDWR | flags);

	if (fd < 0)
		return fd;
	*ret = (struct dn_volume_ref){
		.fd = fd, .size = b->size, .key = b->key, .kind = DN_VOLUME_BLOCK,
		.epoch = { .ops = &epoch_state_ops, .ctx = b, .fd = fd },
	};
	return 0;
}

/* The operator gives the device (--block-device) and takes it away; the node does neither. */
static int block_remove(struct dn_volumes *vs, const char *name, void *obj)
{
	return -EOPNOTSUPP;
}

static int block_resize(struct dn_volumes *vs, const char *name, void *obj, uint64_t size,
			bool shrink)
{
	return -EOPNOTSUPP;
}

static int block_open_src(struct dn_volumes *vs, const char *name, void *obj, int *ret_fd,
			  uint64_t *ret_size)
{
	const struct dn_blockdev *b = obj;
	int fd = reopen(b, O_RDONLY);

	if (fd < 0)
		return fd;
	*ret_fd = fd;
	*ret_size = b->size;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/*
 * A device says nothing of where its data is (SEEK_DATA calls all of it
 * data): every block is read, and the chunks of zeros stay holes.
 */
static int block_copy(int sfd, int dfd, uint64_t size, bool *ret_reflinked)
{
	_cleanup_free_ uint8_t *buf = malloc(COPY_CHUNK);

	*ret_reflinked = false;
	if (!buf)
		return -ENOMEM;
	if (ftruncate(dfd, (off_t)size) < 0)
		return -errno;
	for (uint64_t off = 0; off < size;) {
		size_t want = (size_t)MIN((uint64_t)COPY_CHUNK, size - off);
		ssize_t n = pread(sfd, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		if (!all_zero(buf, (size_t)n) && pwrite(dfd, buf, (size_t)n, (off_t)off) != n)
			return errno ? -errno : -EIO;
		off += (uint64_t)n;
	}
	return 0;
}

const struct dn_vol_kind dn_vol_block_kind = {
	.name = "block",
	.stat = block_stat,
	.open = block_open,
	.remove = block_remove,
	.resize = block_resize,
	.open_src = block_open_src,
	.copy = block_copy,
};
