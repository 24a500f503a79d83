// SPDX-License-Identifier: MIT
/*
 * Importing an image into a new volume (volume_import.h):
 * `qemu-img info` says what the image is, `qemu-img convert` writes it
 * raw into the volume's unnamed file, which is then published like any
 * new volume. The qemu-img binary is $DISAGG_QEMU_IMG, else `qemu-img`
 * from PATH.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "volume.h"
#include "volume_import.h"
#include "volume_int.h"

#define INFO_MAX (64u << 10)     /* bytes of `qemu-img info` output we read */
#define CHILD_FD 3               /* where the child finds the volume's fd */

extern char **environ;

static const char *qemu_img(void)
{
	const char *p = getenv("DISAGG_QEMU_IMG");

	return p && *p ? p : "qemu-img";
}

/*
 * Run argv with the volume fd (if >= 0) as the child's CHILD_FD and its
 * stdout into out (NUL-terminated; out NULL: stdout is ours). 0 when it
 * exits 0, else -EIO; -errno when it cannot start.
 */
static int run(char *const argv[], int fd, char *out, size_t outlen)
{
	posix_spawn_file_actions_t fa;
	int pfd[2] = { -1, -1 }, st = 0, r;
	size_t got = 0;
	pid_t pid;

	if (out && pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	if (out)
		posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	if (fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, fd, CHILD_FD);   /* dup2 clears CLOEXEC */
	r = -posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (out) {
		close(pfd[1]);
		while (r == 0) {
			ssize_t n = read(pfd[0], out + got, outlen - 1 - got);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
			if (got == outlen - 1)
				break;    /* too long: the parse fails below */
		}
		out[got] = '\0';
		close(pfd[0]);
	}
	if (r < 0)
		return r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* The image's format and virtual size; -EPERM if it names a backing file. */
static int image_info(const char *path, const char *format, char *fmt, size_t fmtlen,
		      uint64_t *ret_size)
{
	_cleanup_free_ char *out = malloc(INFO_MAX);
	char *argv[] = { (char *)qemu_img(), "info", "--output=json", "-f",
			 (char *)(format ? format : ""), (char *)path, NULL };
	json_t *j, *vs;
	const char *f;
	int r;

	if (!out)
		return -ENOMEM;
	if (!format) {          /* no -f: qemu-img probes */
		argv[3] = (char *)path;
		argv[4] = NULL;
	}
	r = run(argv, -1, out, INFO_MAX);
	if (r < 0)
		return r;
	j = json_loads(out, 0, NULL);
	vs = json_object_get(j, "virtual-size");
	f = json_string_value(json_object_get(j, "format"));
	if (!json_is_integer(vs) || json_integer_value(vs) <= 0 || !f)
		r = -EIO;
	else if (json_object_get(j, "backing-filename") || json_object_get(j, "full-backing-filename"))
		r = -EPERM;
	else if (strcmp(f, "raw") != 0 && strcmp(f, "qcow2") != 0)
		r = -EINVAL;
	if (r == 0) {
		snprintf(fmt, fmtlen, "%s", f);
		*ret_size = (uint64_t)json_integer_value(vs);
	}
	json_decref(j);
	return r;
}

int dn_volume_import(struct dn_volumes *vs, const char *name, const char *path,
		     const char *format, uint64_t *ret_size)
{
	char tmp[DN_VOL_TMP_MAX], fmt[16], target[32];
	char *argv[] = { (char *)qemu_img(), "convert", "-n", "--target-is-zero", "-f", fmt,
			 "-O", "raw", (char *)path, target, NULL };
	_cleanup_close_ int fd = -1;
	uint64_t size = 0;
	int r;

	if (!dn_volume_name_valid(name) ||
	    (format && strcmp(format, "raw") != 0 && strcmp(format, "qcow2") != 0))
		return -EINVAL;
	if (access(path, R_OK) < 0)
		return -errno;
	r = image_info(path, format, fmt, sizeof(fmt), &size);
	if (r < 0)
		return r;
	size = ALIGN_UP(size, DN_VOLUME_SECTOR);
	if (size > DN_VOLUME_MAX_SIZE)
		return -EINVAL;
	fd = dn_vol_begin_new(vs, name, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	snprintf(target, sizeof(target), "/proc/self/fd/%d", CHILD_FD);
	r = ftruncate(fd, (off_t)size) < 0 ? -errno : run(argv, fd, NULL, 0);
	if (r == 0)
		r = dn_vol_publish(vs, fd, tmp, name);
	dn_vol_drop_unnamed(vs, tmp);
	if (r == 0 && ret_size)
		*ret_size = size;
	return r;
}
