// SPDX-License-Identifier: MIT
/*
 * The RAM backing files of a VM and its run directory. Every RAM file is
 * a tmpfs file of whole sections (vm_new checks the run root is tmpfs),
 * shared with QEMU (memory-backend-file,share=on) and served by the
 * pager once the shim hands its mapping over (mappings.c).
 */
#include "ramfile.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

int vm_make_file(struct vm *vm, const char *leaf, uint64_t size, char *ret_path, size_t len)
{
	_cleanup_close_ int fd = -1;

	snprintf(ret_path, len, "%s/%s", vm->dir, leaf);
	fd = open(ret_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		int r = -errno;

		unlink(ret_path);
		return r;
	}
	return 0;
}

static int side_path(const char *region_path, const char *suffix, char *buf, size_t len)
{
	return (size_t)snprintf(buf, len, "%s%s", region_path, suffix) >= len ? -ENAMETOOLONG : 0;
}

static int side_open(const char *region_path, const char *suffix, bool keep)
{
	char path[PATH_MAX];
	int fd, r = side_path(region_path, suffix, path, sizeof(path));

	if (r < 0)
		return r;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (keep ? 0 : O_TRUNC), 0600);
	return fd < 0 ? -errno : fd;
}

int vm_twins_open(const char *region_path, bool keep)
{
	return side_open(region_path, ".twins", keep);
}

int vm_answers_open(const char *region_path, bool keep)
{
	return side_open(region_path, ".answers", keep);
}

void vm_region_sides_remove(const char *region_path)
{
	static const char *const suffixes[] = { ".twins", ".answers" };
	char path[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++)
		if (side_path(region_path, suffixes[i], path, sizeof(path)) == 0)
			(void)unlink(path);
}

int vm_remove_tree(int rootfd, const char *name)
{
	int fd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			(void)unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	return unlinkat(rootfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

void vm_remove_dir(struct vm *vm)
{
	(void)vm_remove_tree(AT_FDCWD, vm->dir);
}
