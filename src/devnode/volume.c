// SPDX-License-Identifier: MIT
/*
 * A device node's block volumes (volume.h): sparse raw files in a data
 * directory, made atomically, cloned by reflink or by their data extents
 * (the kind "file"); block devices are the kind "block" (volume_block.c).
 * Each operation asks the kind of the volume it names (kind_of, volume_kind.h).
 */
#include "volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "macro.h"
#include "volume_block.h"
#include "volume_int.h"

#define SUFFIX ".vol"
#define COPY_CHUNK (1u << 20)
#define KEY_XATTR "user.disagg.key"
#define EPOCH_XATTR "user.disagg.epoch"

struct dn_user {
	char name[DN_VOLUME_NAME_MAX + 1];
	unsigned n;
};

struct dn_volumes {
	int dirfd;
	pthread_mutex_t mu;          /* users */
	struct dn_user *users;
	size_t nusers;
	struct dn_blockdev **blocks; /* added before serving, fixed after: read without a lock */
	size_t nblocks;
};

static const struct dn_vol_kind file_kind;

static struct dn_blockdev *block_find(struct dn_volumes *vs, const char *name)
{
	for (size_t i = 0; i < vs->nblocks; i++)
		if (!strcmp(dn_blockdev_name(vs->blocks[i]), name))
			return vs->blocks[i];
	return NULL;
}

/* The kind of volume `name` and what the store keeps of it (*ret_obj). */
static const struct dn_vol_kind *kind_of(struct dn_volumes *vs, const char *name, void **ret_obj)
{
	*ret_obj = block_find(vs, name);
	return *ret_obj ? &dn_vol_block_kind : &file_kind;
}

bool dn_volume_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > DN_VOLUME_NAME_MAX || name[0] == '-' || name[0] == '_')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '-' || name[i] == '_'))
			return false;
	return true;
}

static bool size_valid(uint64_t size)
{
	return size > 0 && size <= DN_VOLUME_MAX_SIZE && size % DN_VOLUME_SECTOR == 0;
}

static void file_of(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s" SUFFIX, name);
}

int dn_volumes_open(const char *dir, struct dn_volumes **ret)
{
	struct dn_volumes *vs;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	vs = calloc(1, sizeof(*vs));
	if (!vs)
		return -ENOMEM;
	vs->dirfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (vs->dirfd < 0) {
		int r = -errno;

		free(vs);
		return r;
	}
	pthread_mutex_init(&vs->mu, NULL);
	*ret = vs;
	return 0;
}

void dn_volumes_close(struct dn_volumes *vs)
{
	if (!vs)
		return;
	for (size_t i = 0; i < vs->nblocks; i++)
		dn_blockdev_free(vs->blocks[i]);
	free(vs->blocks);
	close(vs->dirfd);
	pthread_mutex_destroy(&vs->mu);
	free(vs->users);
	free(vs);
}

/* vs->mu held: the entry of name, or NULL. */
static struct dn_user *user_find(struct dn_volumes *vs, const char *name)
{
	for (size_t i = 0; i < vs->nusers; i++)
		if (!strcmp(vs->users[i].name, name))
			return &vs->users[i];
	return NULL;
}

static unsigned users_of(struct dn_volumes *vs, const char *name)
{
	struct dn_user *u;
	unsigned n;

	pthread_mutex_lock(&vs->mu);
	u = user_find(vs, name);
	n = u ? u->n : 0;
	pthread_mutex_unlock(&vs->mu);
	return n;
}

/*
 * A new file with no name yet: O_TMPFILE where the filesystem has it, else
 * a hidden temporary name (*tmp set, unlinked by publish or by the caller).
 */
static int make_unnamed(struct dn_volumes *vs, const char *name, char *tmp, size_t tmplen)
{
	int fd = openat(vs->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	tmp[0] = '\0';
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd >= 0 ? fd : -errno;
	snprintf(tmp, tmplen, ".%s" SUFFIX ".new", name);
	fd = openat(vs->dirfd, tmp, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
	return fd >= 0 ? fd : -errno;
}

void dn_vol_drop_unnamed(struct dn_volumes *vs, const char *tmp)
{
	if (tmp[0])
		(void)unlinkat(vs->dirfd, tmp, 0);
}

/*
 * Give the file a new random key, or (create_only) one if it has none. A
 * nonzero key, little-endian, in an extended attribute: it moves with the
 * file and is never shared by two volumes, even of one name over time.
 */
static int new_key(uint8_t b[8], uint64_t *ret)
{
	uint64_t key = 0;

	while (key == 0) {
		if (getrandom(b, 8, 0) != 8)
			return -EIO;
		for (int i = 7; i >= 0; i--)
			key = key << 8 | b[i];
	}
	*ret = key;
	return 0;
}

static int key_set(int fd, bool create_only, uint64_t *ret)
{
	uint8_t b[8];
	uint64_t key;

	if (new_key(b, &key) < 0)
		return -EIO;
	if (fsetxattr(fd, KEY_XATTR, b, sizeof(b), create_only ? XATTR_CREATE : 0) < 0)
		return -errno;
	if (ret)
		*ret = key;
	return 0;
}

int dn_volume_key(int fd, uint64_t *ret)
{
	uint8_t b[8];
	ssize_t n;
	int r;

	for (int tries = 0; tries < 2; tries++) {
		n = fgetxattr(fd, KEY_XATTR, b, sizeof(b));
		if (n == (ssize_t)sizeof(b)) {
			*ret = 0;
			for (int i = 7; i >= 0; i--)
				*ret = *ret << 8 | b[i];
			return *ret ? 0 : -EBADMSG;
		}
		if (n >= 0)
			return -EBADMSG;
		if (errno != ENODATA)
			return -errno;
		r = key_set(fd, true, ret);
		if (r != -EEXIST)
			return r;   /* made now, or failed; EEXIST: someone else made it */
	}
	return -EBADMSG;
}

int dn_vol_publish(struct dn_volumes *vs, int fd, const char *tmp, const char *name)
{
	char file[DN_VOLUME_NAME_MAX + sizeof(SUFFIX)], proc[64];
	int r;

	r = key_set(fd, false, NULL);
	if (r < 0)
		return r;
	if (fsync(fd) < 0)
		return -errno;
	file_of(name, file, sizeof(file));
	if (tmp[0]) {
		r = linkat(vs->dirfd, tmp, vs->dirfd, file, 0) < 0 ? -errno : 0;
	} else {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		r = linkat(AT_FDCWD, proc, vs->dirfd, file, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
	}
	if (r == 0 && fsync(vs->dirfd) < 0)
		r = -errno;
	return r;
}

static bool file_exists(struct dn_volumes *vs, const char *name)
{
	char file[DN_VOLUME_NAME_MAX + sizeof(SUFFIX)];
	struct stat st;

	file_of(name, file, sizeof(file));
	return fstatat(vs->dirfd, file, &st, 0) == 0;
}

static bool exists(struct dn_volumes *vs, const char *name)
{
	return block_find(vs, name) || file_exists(vs, name);
}

/* An fd of existing volume `name` opened with flags, and its stat; -errno. */
static int open_volume(struct dn_volumes *vs, const char *name, int flags, struct stat *st)
{
	char file[DN_VOLUME_NAME_MAX + sizeof(SUFFIX)];
	_cleanup_close_ int fd = -1;

	file_of(name, file, sizeof(file));
	fd = openat(vs->dirfd, file, flags | O_CLOEXEC);
	if (fd < 0 || fstat(fd, st) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int dn_vol_begin_new(struct dn_volumes *vs, const char *name, char *tmp, size_t tmplen)
{
	tmp[0] = '\0';
	return exists(vs, name) ? -EEXIST : make_unnamed(vs, name, tmp, tmplen);
}

int dn_volume_create(struct dn_volumes *vs, const char *name, uint64_t size)
{
	char tmp[DN_VOL_TMP_MAX];
	_cleanup_close_ int fd = -1;
	int r;

	if (!dn_volume_name_valid(name) || !size_valid(size))
		return -EINVAL;
	fd = dn_vol_begin_new(vs, name, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	r = ftruncate(fd, (off_t)size) < 0 ? -errno : dn_vol_publish(vs, fd, tmp, name);
	dn_vol_drop_unnamed(vs, tmp);
	return r;
}

int dn_volume_delete(struct dn_volumes *vs, const char *name)
{
	void *obj;

	if (!dn_volume_name_valid(name))
		return -EINVAL;
	return kind_of(vs, name, &obj)->remove(vs, name, obj);
}

static int file_remove(struct dn_volumes *vs, const char *name, void *obj)
{
	char file[DN_VOLUME_NAME_MAX + sizeof(SUFFIX)];

	if (users_of(vs, name))
		return -EBUSY;
	file_of(name, file, sizeof(file));
	if (unlinkat(vs->dirfd, file, 0) < 0)
		return -errno;
	return fsync(vs->dirfd) < 0 ? -errno : 0;
}

int dn_volume_resize(struct dn_volumes *vs, const char *name, uint64_t size, bool shrink)
{
	void *obj;

	if (!dn_volume_name_valid(name) || !size_valid(size))
		return -EINVAL;
	return kind_of(vs, name, &obj)->resize(vs, name, obj, size, shrink);
}

static int file_resize(struct dn_volumes *vs, const char *name, void *obj, uint64_t size,
		       bool shrink)
{
	_cleanup_close_ int fd = -1;
	struct stat st;

	fd = open_volume(vs, name, O_RDWR, &st);
	if (fd < 0)
		return fd;
	if (size < (uint64_t)st.st_size && !shrink)
		return -EINVAL;
	if (size < (uint64_t)st.st_size && users_of(vs, name))
		return -EBUSY;
	if (ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Copy [off, end) of src to dst: copy_file_range, or read and write where it cannot. */
static int copy_range(int src, int dst, off_t off, off_t end)
{
	_cleanup_free_ uint8_t *buf = NULL;

	while (off < end) {
		size_t want = (size_t)MIN((off_t)COPY_CHUNK, end - off);
		off_t in = off, out = off;
		ssize_t n = copy_file_range(src, &in, dst, &out, want, 0);

		if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP ||
			      errno == EINVAL)) {
			if (!buf && !(buf = malloc(COPY_CHUNK)))
				return -ENOMEM;
			n = pread(src, buf, want, off);
			if (n > 0 && pwrite(dst, buf, (size_t)n, off) != n)
				return errno ? -errno : -EIO;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;      /* the source shrank under us */
		off += n;
	}
	return 0;
}

/* dst (size already set) gets src's data extents; holes stay holes. */
static int sparse_copy(int src, int dst, off_t size)
{
	off_t off = 0;

	while (off < size) {
		off_t data = lseek(src, off, SEEK_DATA), hole;
		int r;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno;
		hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		r = copy_range(src, dst, data, MIN(hole, size));
		if (r < 0)
			return r;
		off = hole;
	}
	return 0;
}

static int file_open_src(struct dn_volumes *vs, const char *name, void *obj, int *ret_fd,
			 uint64_t *ret_size)
{
	struct stat st;
	int fd = open_volume(vs, name, O_RDONLY, &st);

	if (fd < 0)
		return fd;
	*ret_fd = fd;
	*ret_size = (uint64_t)st.st_size;
	return 0;
}

/* The clone shares src's blocks where the filesystem can, else gets its data extents. */
static int file_copy(int sfd, int dfd, uint64_t size, bool *ret_reflinked)
{
	*ret_reflinked = false;
	if (ioctl(dfd, FICLONE, sfd) == 0) {
		*ret_reflinked = true;
		return 0;
	}
	if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EXDEV && errno != EINVAL &&
	    errno != ENOSYS)
		return -errno;
	if (ftruncate(dfd, (off_t)size) < 0)
		return -errno;
	return sparse_copy(sfd, dfd, (off_t)size);
}

int dn_volume_clone(struct dn_volumes *vs, const char *src, const char *dst,
		    bool *ret_reflinked)
{
	const struct dn_vol_kind *k;
	char tmp[DN_VOL_TMP_MAX];
	_cleanup_close_ int sfd = -1, dfd = -1;
	bool reflinked = false;
	uint64_t size;
	void *obj;
	int r;

	if (!dn_volume_name_valid(src) || !dn_volume_name_valid(dst))
		return -EINVAL;
	k = kind_of(vs, src, &obj);
	r = k->open_src(vs, src, obj, &sfd, &size);
	if (r < 0)
		return r;
	dfd = dn_vol_begin_new(vs, dst, tmp, sizeof(tmp));
	if (dfd < 0)
		return dfd;
	r = k->copy(sfd, dfd, size, &reflinked);
	if (r == 0)
		r = dn_vol_publish(vs, dfd, tmp, dst);
	dn_vol_drop_unnamed(vs, tmp);
	if (r == 0 && ret_reflinked)
		*ret_reflinked = reflinked;
	return r;
}

int dn_volume_stat(struct dn_volumes *vs, const char *name, struct dn_volume_info *ret)
{
	struct dn_volume_info info;
	void *obj;
	int r;

	if (!dn_volume_name_valid(name))
		return -EINVAL;
	r = kind_of(vs, name, &obj)->stat(vs, name, obj, &info);
	if (r < 0)
		return r;
	info.users = users_of(vs, name);
	*ret = info;
	return 0;
}

static int file_stat(struct dn_volumes *vs, const char *name, void *obj,
		     struct dn_volume_info *ret)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	uint64_t key;
	int r;

	fd = open_volume(vs, name, O_RDONLY | O_NONBLOCK, &st);
	if (fd < 0)
		return fd;
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	r = dn_volume_key(fd, &key);
	if (r < 0)
		return r;
	memset(ret, 0, sizeof(*ret));
	ret->kind = DN_VOLUME_FILE;
	ret->key = key;
	snprintf(ret->name, sizeof(ret->name), "%s", name);
	ret->size = (uint64_t)st.st_size;
	ret->allocated = (uint64_t)st.st_blocks * 512;
	return 0;
}

static int cmp_info(const void *a, const void *b)
{
	return strcmp(((const struct dn_volume_info *)a)->name,
		      ((const struct dn_volume_info *)b)->name);
}

/* Append the volume `name` to *v (n of cap): -ENOMEM; one that cannot be looked at is left out. */
static int list_add(struct dn_volumes *vs, const char *name, struct dn_volume_info **v,
		    size_t *n, size_t *cap)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 16;
		struct dn_volume_info *nv = realloc(*v, c * sizeof(**v));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	if (dn_volume_stat(vs, name, &(*v)[*n]) == 0)
		(*n)++;
	return 0;
}

int dn_volume_list(struct dn_volumes *vs, struct dn_volume_info **ret, size_t *ret_n)
{
	struct dn_volume_info *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int r = 0, fd = dup(vs->dirfd);
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;   /* before close can change errno */
		close(fd);
		return r;
	}
	rewinddir(d);
	while (r == 0 && (de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char name[DN_VOLUME_NAME_MAX + 1];

		if (len <= strlen(SUFFIX) || len - strlen(SUFFIX) > DN_VOLUME_NAME_MAX ||
		    strcmp(de->d_name + len - strlen(SUFFIX), SUFFIX) != 0)
			continue;
		memcpy(name, de->d_name, len - strlen(SUFFIX));
		name[len - strlen(SUFFIX)] = '\0';
		if (dn_volume_name_valid(name) && !block_find(vs, name))
			r = list_add(vs, name, &v, &n, &cap);
	}
	closedir(d);
	for (size_t i = 0; r == 0 && i < vs->nblocks; i++)
		r = list_add(vs, dn_blockdev_name(vs->blocks[i]), &v, &n, &cap);
	if (r < 0) {
		free(v);
		return r;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_info);
	*ret = v;
	*ret_n = n;
	return 0;
}

static int epoch_xattr_read(const struct dn_epoch_store *s, uint32_t *ret)
{
	uint8_t b[4];
	ssize_t n = fgetxattr(s->fd, EPOCH_XATTR, b, sizeof(b));

	if (n < 0 && errno == ENODATA) {
		*ret = 0;
		return 0;
	}
	if (n != (ssize_t)sizeof(b))
		return n < 0 ? -errno : -EBADMSG;
	*ret = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	return 0;
}

/* The new epoch is on the disk before anyone is told (a restart keeps the fence). */
static int epoch_xattr_write(const struct dn_epoch_store *s, uint32_t e)
{
	uint8_t b[4] = { e & 0xff, e >> 8 & 0xff, e >> 16 & 0xff, e >> 24 };

	if (fsetxattr(s->fd, EPOCH_XATTR, b, sizeof(b), 0) < 0 || fsync(s->fd) < 0)
		return -errno;
	return 0;
}

static const struct dn_epoch_ops epoch_xattr_ops = {
	.read = epoch_xattr_read,
	.write = epoch_xattr_write,
};

static int file_open(struct dn_volumes *vs, const char *name, void *obj, int flags,
		     struct dn_volume_ref *ret)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	uint64_t key;
	int r;

	fd = open_volume(vs, name, O_RDWR | flags, &st);
	if (fd < 0)
		return fd;
	r = dn_volume_key(fd, &key);
	if (r < 0)
		return r;
	*ret = (struct dn_volume_ref){
		.fd = fd, .size = (uint64_t)st.st_size, .key = key, .kind = DN_VOLUME_FILE,
		.epoch = { .ops = &epoch_xattr_ops, .fd = fd },
	};
	TAKE_FD(fd);
	return 0;
}

int dn_volume_open_ref(struct dn_volumes *vs, const char *name, int extra_flags,
		       struct dn_volume_ref *ret)
{
	struct dn_volume_ref ref;
	struct dn_user *u;
	void *obj;
	int r;

	if (!dn_volume_name_valid(name))
		return -EINVAL;
	r = kind_of(vs, name, &obj)->open(vs, name, obj, extra_flags, &ref);
	if (r < 0)
		return r;
	pthread_mutex_lock(&vs->mu);
	u = user_find(vs, name);
	if (!u) {
		struct dn_user *nu = realloc(vs->users, (vs->nusers + 1) * sizeof(*nu));

		if (!nu) {
			pthread_mutex_unlock(&vs->mu);
			close(ref.fd);
			return -ENOMEM;
		}
		vs->users = nu;
		u = &vs->users[vs->nusers++];
		snprintf(u->name, sizeof(u->name), "%s", name);
		u->n = 0;
	}
	u->n++;
	pthread_mutex_unlock(&vs->mu);
	*ret = ref;
	return 0;
}

int dn_volume_open(struct dn_volumes *vs, const char *name, int extra_flags, int *ret_fd,
		   uint64_t *ret_size)
{
	struct dn_volume_ref ref;
	int r = dn_volume_open_ref(vs, name, extra_flags, &ref);

	if (r < 0)
		return r;
	*ret_fd = ref.fd;
	*ret_size = ref.size;
	return 0;
}

void dn_volume_put(struct dn_volumes *vs, const char *name)
{
	struct dn_user *u;

	pthread_mutex_lock(&vs->mu);
	u = user_find(vs, name);
	if (u && u->n && --u->n == 0)
		*u = vs->users[--vs->nusers];
	pthread_mutex_unlock(&vs->mu);
}

int dn_volume_add_block(struct dn_volumes *vs, const char *name, const char *path)
{
	struct dn_blockdev *b, **nb;
	uint8_t kb[8];
	uint64_t key;
	int r;

	if (!dn_volume_name_valid(name))
		return -EINVAL;
	if (exists(vs, name))
		return -EEXIST;
	nb = realloc(vs->blocks, (vs->nblocks + 1) * sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	vs->blocks = nb;
	r = new_key(kb, &key);
	if (r == 0)
		r = dn_blockdev_open(vs->dirfd, name, path, key, &b);
	if (r < 0)
		return r;
	vs->blocks[vs->nblocks++] = b;
	return 0;
}

static const struct dn_vol_kind file_kind = {
	.name = "file",
	.stat = file_stat,
	.open = file_open,
	.remove = file_remove,
	.resize = file_resize,
	.open_src = file_open_src,
	.copy = file_copy,
};
