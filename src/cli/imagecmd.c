// SPDX-License-Identifier: MIT
/*
 * The image subcommands of disagg (docs/cli.md, "Images"): import, ls,
 * show and delete, on the orchestrator's /v1/images (docs/api.md,
 * "Images"). Same rules as commands.c: usage errors exit 2, server
 * errors print their code and exit 1, an unreachable orchestrator exits 3.
 *
 * An import runs here, on the client's host: the file is probed (and a
 * qcow2 image converted to raw, imagefile.c), the image is created, the
 * disk's data is uploaded in chunks of up to 4 MiB (holes and chunks of
 * zeros are skipped: the base volume reads as zeros there), then the
 * kernel and initramfs, then the import is committed. A failed import
 * deletes the half-made image.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "imagefile.h"

#define CHUNK (4u << 20)        /* the orchestrator's largest request body */
#define SECTOR 512u

/* A string field, or "" (printed as "-" in a table). */
static const char *text(const json_t *o, const char *key)
{
	return jstr(o, key) ? jstr(o, key) : "";
}

struct upload {
	struct cli_args *a;
	const char *name;
	char *buf;              /* CHUNK bytes */
	uint64_t sent, total;   /* bytes sent of the disk's data, of the file's */
	double t0, last;        /* progress lines */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* PUT len bytes of u->buf at offset into the image's `part`: 0, or the exit status. */
static int put(struct upload *u, const char *part, uint64_t offset, size_t len)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *base = cli_path_with("/v1/images/", u->name, NULL), *path = NULL;

	if (!base || asprintf(&path, "%s/%s?offset=%" PRIu64, base, part, offset) < 0)
		return CLI_EXIT_ERROR;
	if (cli_http_bytes(u->a, "PUT", path, u->buf, len, &r) < 0)
		return CLI_EXIT_UNREACHABLE;
	if (r.status != 200)
		return cli_server_error(&r);
	return 0;
}

/* Read len bytes at offset of fd into u->buf (zeros past the end of the file). */
static int read_at(int fd, char *buf, size_t len, uint64_t offset, const char *path)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(offset + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_err("cannot read %s: %m", path);
			return CLI_EXIT_ERROR;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	memset(buf + got, 0, len - got);
	return 0;
}

/*
 * The disk: each data extent of the file (SEEK_DATA/SEEK_HOLE), in chunks
 * aligned to CHUNK, the last one padded to a whole sector; chunks of zeros
 * are not sent.
 */
static int upload_disk(struct upload *u, const char *path, uint64_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;
	off_t data = 0, hole;

	if (fd < 0) {
		cli_err("cannot read %s: %m", path);
		return CLI_EXIT_ERROR;
	}
	u->total = size;
	while (ret == 0 && (uint64_t)data < size) {
		data = lseek(fd, data, SEEK_DATA);
		if (data < 0)
			break;              /* ENXIO: only a hole is left */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = (off_t)size;
		for (uint64_t off = (uint64_t)data & ~(uint64_t)(CHUNK - 1);
		     ret == 0 && off < (uint64_t)hole && off < size; off += CHUNK) {
			size_t len = (size_t)(size - off < CHUNK ? size - off : CHUNK);

			len = (len + SECTOR - 1) / SECTOR * SECTOR;
			ret = read_at(fd, u->buf, len, off, path);
			if (ret == 0 && !all_zero(u->buf, len)) {
				ret = put(u, "disk", off, len);
				u->sent += len;
			}
			if (now_s() - u->last >= 2 && !u->a->json) {
				u->last = now_s();
				fprintf(stderr, "importing image %s: %" PRIu64 " of %" PRIu64
					" MiB read, %" PRIu64 " MiB of data sent\n", u->name,
					(off + len) >> 20, size >> 20, u->sent >> 20);
			}
		}
		data = hole;
	}
	close(fd);
	return ret;
}

/* A kernel or initramfs, whole. */
static int upload_file(struct upload *u, const char *part, const char *path, uint64_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0) {
		cli_err("cannot read %s: %m", path);
		return CLI_EXIT_ERROR;
	}
	for (uint64_t off = 0; ret == 0 && off < size; off += CHUNK) {
		size_t len = (size_t)(size - off < CHUNK ? size - off : CHUNK);

		ret = read_at(fd, u->buf, len, off, path);
		if (ret == 0)
			ret = put(u, part, off, len);
	}
	close(fd);
	return ret;
}

static int64_t file_size(const char *path)
{
	struct stat st;

	return path && stat(path, &st) == 0 ? st.st_size : 0;
}

/* POST /v1/images for src: 0 or the exit status. */
static int create(struct cli_args *a, const char *name, const struct image_src *src,
		  uint64_t devnode, struct cli_resp *r)
{
	_cleanup_(json_decrefp) json_t *body = NULL;
	uint64_t size = (src->size + SECTOR - 1) / SECTOR * SECTOR;

	body = json_pack("{s:s, s:I, s:s}", "name", name, "size", (json_int_t)size, "format",
			 src->format);
	if (body && devnode)
		json_object_set_new(body, "devnode", json_integer((json_int_t)devnode));
	if (body && src->kernel) {
		json_object_set_new(body, "kernel_size", json_integer(file_size(src->kernel)));
		json_object_set_new(body, "initrd_size", json_integer(file_size(src->initrd)));
		if (src->cmdline[0])
			json_object_set_new(body, "cmdline", json_string(src->cmdline));
	}
	if (!body)
		return CLI_EXIT_ERROR;
	return cli_call(a, "POST", "/v1/images", body, NULL, true, r);
}

static int cmd_image_import(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 }, done = { 0 };
	_cleanup_free_ char *commit = cli_path_with("/v1/images/", a->args[0], "/commit");
	struct upload u = { .a = a, .name = a->args[0] };
	struct image_src src;
	uint64_t devnode;
	char size[32];
	int ret;

	if ((ret = cli_opt_u64(a, "devnode", 0, INT64_MAX, &devnode)))
		return ret;
	if (!commit)
		return CLI_EXIT_ERROR;
	if (image_src_open(a->args[1], &src) < 0)
		return CLI_EXIT_ERROR;
	u.buf = malloc(CHUNK);
	u.t0 = u.last = now_s();
	ret = u.buf ? create(a, u.name, &src, devnode, &r) : CLI_EXIT_ERROR;
	if (ret) {
		free(u.buf);
		image_src_close(&src);
		return ret;
	}
	ret = upload_disk(&u, src.disk, src.size);
	if (ret == 0 && src.kernel)
		ret = upload_file(&u, "kernel", src.kernel, (uint64_t)file_size(src.kernel));
	if (ret == 0 && src.initrd)
		ret = upload_file(&u, "initrd", src.initrd, (uint64_t)file_size(src.initrd));
	if (ret == 0)
		ret = cli_call(a, "POST", commit, NULL, NULL, true, &done);
	if (ret) {
		/* Nothing half-made stays behind. */
		_cleanup_resp_ struct cli_resp del = { 0 };
		_cleanup_free_ char *path = cli_path_with("/v1/images/", u.name, NULL);

		if (path && ret != CLI_EXIT_UNREACHABLE &&
		    cli_http(a, "DELETE", path, NULL, NULL, &del) == 0 && del.status == 204)
			fprintf(stderr, "image %s not imported (deleted again)\n", u.name);
	} else if (a->json) {
		print_json(done.json);
	} else {
		fmt_size(src.size, size, sizeof(size));
		printf("image %s imported: %s %s%s, %" PRIu64 " MiB of data sent to device node %"
		       PRId64 " in %.1f s\n", u.name, size, src.format,
		       src.kernel ? " with a kernel and an initramfs" : "", u.sent >> 20,
		       jint(done.json, "devnode", -1), now_s() - u.t0);
	}
	free(u.buf);
	image_src_close(&src);
	return ret;
}

static void image_row(struct table *t, const json_t *x)
{
	char size[32], dn[32], age[32];

	cli_size_of(x, "size", size, sizeof(size));
	jtext(x, "devnode", dn, sizeof(dn));
	fmt_age(jstr(x, "created"), age, sizeof(age));
	table_rowf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s", text(x, "name"), text(x, "state"),
		   text(x, "format"), size, dn,
		   json_is_integer(json_object_get(x, "kernel")) ? "yes" : "", age);
}

static int cmd_image_ls(struct cli_args *a)
{
	static const char *const head[] = { "NAME", "STATE", "FORMAT", "SIZE", "DEVNODE", "KERNEL",
					    "AGE" };

	return cli_list(a, "/v1/images", "images", head, ARRAY_SIZE(head), 1u << 3 | 1u << 4,
			image_row);
}

static void print_image(const json_t *img)
{
	static const char *const keys[] = { "name", "state", "format", "volume", "devnode" };
	static const char *const labels[] = { "name:", "state:", "imported from:", "base volume:",
					      "device node:" };
	json_t *clones = json_object_get(img, "clones"), *x;
	char size[32], age[32];
	size_t i;

	cli_print_fields(img, keys, labels, ARRAY_SIZE(keys), false);
	cli_size_of(img, "size", size, sizeof(size));
	printf("%-15s %s (%" PRId64 " bytes)\n", "size:", size, jint(img, "size", 0));
	if (json_is_integer(json_object_get(img, "kernel")))
		printf("%-15s kernel %" PRId64 " bytes, initramfs %" PRId64 " bytes, cmdline \"%s\"\n",
		       "boot:", jint(img, "kernel", 0), jint(img, "initrd", 0), text(img, "cmdline"));
	else
		printf("%-15s - (boots from its disk)\n", "boot:");
	printf("%-15s", "clones:");
	json_array_foreach(clones, i, x)
		printf(" %s", json_string_value(x));
	printf("%s\n", json_array_size(clones) ? "" : " -");
	if (jstr(img, "created")) {
		fmt_age(jstr(img, "created"), age, sizeof(age));
		printf("%-15s %s (%s ago)\n", "created:", jstr(img, "created"), age);
	}
}

static int cmd_image_show(struct cli_args *a)
{
	return cli_show(a, "/v1/images/", a->args[0], print_image);
}

static int cmd_image_delete(struct cli_args *a)
{
	return cli_delete(a, "/v1/images/", a->args[0], "image", true);
}

const struct cli_cmd cli_image_cmds[] = {
	{ "image import", "NAME FILE|DIR [--devnode ID]", 2, 2,
	  "import a disk image into a base volume on a device node",
	  "FILE is a raw or qcow2 disk image (probed with qemu-img; a qcow2 image is\n"
	  "converted to raw in $TMPDIR first). DIR is what scripts/build-image.sh made: its\n"
	  "root filesystem is the disk, and its kernel and initramfs are kept with the\n"
	  "image. The data is uploaded through the orchestrator (only what is not zeros).\n"
	  "The base volume is named NAME: `disagg volume create ROOT SIZE --from NAME`\n"
	  "makes a guest's root disk from it.",
	  cmd_image_import,
	  { { "devnode", "ID", "the device node to put it on (default: placement)" } } },
	{ "image ls", "", 0, 0, "list images", NULL, cmd_image_ls, { { NULL } } },
	{ "image show", "NAME", 1, 1, "show an image and the volumes cloned from it", NULL,
	  cmd_image_show, { { NULL } } },
	{ "image delete", "NAME", 1, 1, "delete an image and its base volume",
	  "Refused while volumes cloned from it exist (delete them first).", cmd_image_delete,
	  { { NULL } } },
};

const size_t cli_image_ncmds = ARRAY_SIZE(cli_image_cmds);
