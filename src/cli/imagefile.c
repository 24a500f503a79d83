// SPDX-License-Identifier: MIT
/*
 * What `disagg image import` reads on the client's host (imagefile.h): a
 * disk image file, probed with `qemu-img info` ($DISAGG_QEMU_IMG, else
 * qemu-img from PATH) and, when it is qcow2, converted to a sparse raw
 * temporary file with `qemu-img convert`; or the output directory of
 * scripts/build-image.sh (image.json names the root filesystem, kernel,
 * initramfs and command line). Without qemu-img only raw files are
 * accepted (a qcow2 magic is recognised and refused with a hint).
 */
#include "imagefile.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

#define INFO_MAX (64u << 10)

extern char **environ;

static const char *qemu_img(void)
{
	const char *p = getenv("DISAGG_QEMU_IMG");

	return p && *p ? p : "qemu-img";
}

/*
 * Run argv, its stdout into out (NUL-terminated, may be NULL: discarded),
 * its stderr into err (the same). 0 when it exits 0, -EIO when it fails,
 * -ENOENT when it cannot be started.
 */
static int run(char *const argv[], char *out, size_t outlen, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	int po[2], pe[2], st = 0, r;
	size_t got[2] = { 0, 0 };
	pid_t pid;

	if (pipe2(po, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		r = -errno;
		close(po[0]);
		close(po[1]);
		return r;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, po[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, pe[1], STDERR_FILENO);
	r = -posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	/* Outputs are small (qemu-img info, error lines): stdout first, then stderr. */
	for (int i = 0; r == 0 && i < 2; i++) {
		char *buf = i ? err : out, sink[512];
		size_t cap = i ? errlen : outlen;

		for (;;) {
			char *dst = buf && got[i] + 1 < cap ? buf + got[i] : sink;
			size_t room = dst == sink ? sizeof(sink) : cap - 1 - got[i];
			ssize_t n = read(i ? pe[0] : po[0], dst, room);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (dst != sink)
				got[i] += (size_t)n;
		}
	}
	if (out && outlen)
		out[got[0]] = '\0';
	if (err && errlen)
		err[got[1]] = '\0';
	close(po[0]);
	close(pe[0]);
	if (r < 0)
		return r == -ENOENT ? -ENOENT : r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : WIFEXITED(st) && WEXITSTATUS(st) == 127 ?
										 -ENOENT : -EIO;
}

/* The last line of qemu-img's stderr, for a message. */
static const char *last_line(char *err)
{
	size_t n = strlen(err);
	char *nl;

	while (n && (err[n - 1] == '\n' || err[n - 1] == '\r'))
		err[--n] = '\0';
	nl = strrchr(err, '\n');
	return nl ? nl + 1 : err;
}

/* Without qemu-img: raw, unless the file starts with a qcow2 magic. */
static int probe_magic(const char *path, struct image_src *src)
{
	unsigned char m[4] = { 0 };
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		cli_err("cannot read %s: %m", path);
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	if (pread(fd, m, sizeof(m), 0) == (ssize_t)sizeof(m) && !memcmp(m, "QFI\xfb", 4)) {
		close(fd);
		cli_err("%s is a qcow2 image, and qemu-img is not installed to convert it "
			"(install qemu-utils, or set DISAGG_QEMU_IMG)", path);
		return -EINVAL;
	}
	close(fd);
	snprintf(src->format, sizeof(src->format), "raw");
	src->size = (uint64_t)st.st_size;
	return 0;
}

/* The format and virtual size of the image at path (src->format, src->size). */
static int probe(const char *path, struct image_src *src)
{
	_cleanup_free_ char *out = malloc(INFO_MAX), *err = malloc(INFO_MAX);
	char *argv[] = { (char *)qemu_img(), "info", "--output=json", (char *)path, NULL };
	json_t *j;
	const char *f;
	int r;

	if (!out || !err)
		return -ENOMEM;
	r = run(argv, out, INFO_MAX, err, INFO_MAX);
	if (r == -ENOENT)
		return probe_magic(path, src);
	if (r < 0) {
		cli_err("%s is not a disk image that qemu-img can read: %s", path,
			r == -EIO ? last_line(err) : strerror(-r));
		return -EINVAL;
	}
	j = json_loads(out, 0, NULL);
	f = jstr(j, "format");
	if (!f || jint(j, "virtual-size", -1) < 0) {
		json_decref(j);
		cli_err("qemu-img info %s answered something else than an image's description", path);
		return -EIO;
	}
	r = 0;
	if (json_object_get(j, "backing-filename") || json_object_get(j, "full-backing-filename")) {
		cli_err("%s names a backing file (%s): import a whole image (qemu-img convert "
			"-O qcow2 %s whole.qcow2)", path, jstr(j, "backing-filename"), path);
		r = -EPERM;
	} else if (strcmp(f, "raw") != 0 && strcmp(f, "qcow2") != 0) {
		cli_err("%s is a %s image: import raw or qcow2 images (qemu-img convert -O qcow2 "
			"%s image.qcow2)", path, f, path);
		r = -EINVAL;
	} else {
		snprintf(src->format, sizeof(src->format), "%s", f);
		src->size = (uint64_t)jint(j, "virtual-size", 0);
	}
	json_decref(j);
	return r;
}

/* A qcow2 image as a sparse raw temporary file (src->disk). */
static int convert(const char *path, struct image_src *src)
{
	_cleanup_free_ char *err = malloc(INFO_MAX);
	const char *tmp = getenv("TMPDIR");
	char *argv[] = { (char *)qemu_img(), "convert", "-q", "-f", "qcow2", "-O", "raw",
			 (char *)path, NULL, NULL };
	int fd, r;

	if (!err || asprintf(&src->tmp, "%s/disagg-image-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
		return -ENOMEM;
	fd = mkostemp(src->tmp, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		cli_err("cannot make a temporary file %s: %s", src->tmp, strerror(-r));
		free(src->tmp);
		src->tmp = NULL;
		return r;
	}
	close(fd);
	argv[8] = src->tmp;
	r = run(argv, NULL, 0, err, INFO_MAX);
	if (r < 0) {
		cli_err("qemu-img convert %s failed: %s", path,
			r == -EIO ? last_line(err) : strerror(-r));
		return -EIO;
	}
	src->disk = strdup(src->tmp);
	return src->disk ? 0 : -ENOMEM;
}

/* DIR/NAME, malloc'd, when it is a regular file; else NULL with the error printed. */
static char *file_in(const char *dir, const char *name, const char *what)
{
	struct stat st;
	char *p;

	if (!name || strchr(name, '/')) {
		cli_err("%s/image.json names no %s", dir, what);
		return NULL;
	}
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	if (stat(p, &st) < 0 || !S_ISREG(st.st_mode)) {
		cli_err("%s (the %s) is missing: is %s a finished scripts/build-image.sh output?", p,
			what, dir);
		free(p);
		return NULL;
	}
	return p;
}

/* A build-image.sh output directory. */
static int from_dir(const char *dir, struct image_src *src)
{
	_cleanup_free_ char *meta = NULL;
	json_t *j;
	int r = -EINVAL;

	if (asprintf(&meta, "%s/image.json", dir) < 0)
		return -ENOMEM;
	j = json_load_file(meta, 0, NULL);
	if (!j) {
		cli_err("%s has no image.json: give an image file, or the directory "
			"scripts/build-image.sh made", dir);
		return -EINVAL;
	}
	src->disk = file_in(dir, jstr(j, "rootfs"), "root filesystem");
	src->kernel = src->disk ? file_in(dir, jstr(j, "kernel"), "kernel") : NULL;
	src->initrd = src->kernel ? file_in(dir, jstr(j, "initrd"), "initramfs") : NULL;
	if (src->initrd) {
		snprintf(src->cmdline, sizeof(src->cmdline), "%s",
			 jstr(j, "cmdline") ? jstr(j, "cmdline") : "");
		r = probe(src->disk, src);
		if (r == 0 && strcmp(src->format, "raw") != 0) {
			cli_err("%s is %s, not the raw filesystem build-image.sh makes", src->disk,
				src->format);
			r = -EINVAL;
		}
	}
	json_decref(j);
	return r;
}

int image_src_open(const char *path, struct image_src *src)
{
	struct stat st;
	int r;

	*src = (struct image_src){ 0 };
	if (stat(path, &st) < 0) {
		cli_err("cannot read %s: %m", path);
		return -errno;
	}
	if (S_ISDIR(st.st_mode))
		r = from_dir(path, src);
	else if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		r = probe(path, src);
	else {
		cli_err("%s is neither a file nor a directory", path);
		r = -EINVAL;
	}
	if (r == 0 && src->size == 0) {
		cli_err("%s is empty: nothing to import", src->disk ? src->disk : path);
		r = -EINVAL;
	}
	if (r == 0 && !src->disk && strcmp(src->format, "qcow2") == 0)
		r = convert(path, src);
	else if (r == 0 && !src->disk && !(src->disk = strdup(path)))
		r = -ENOMEM;
	if (r < 0)
		image_src_close(src);
	return r;
}

void image_src_close(struct image_src *src)
{
	if (src->tmp)
		unlink(src->tmp);
	free(src->tmp);
	free(src->disk);
	free(src->kernel);
	free(src->initrd);
	*src = (struct image_src){ 0 };
}
