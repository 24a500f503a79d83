// SPDX-License-Identifier: MIT
/*
 * Unit test of the device node's volume store (src/devnode/volume.c), on
 * the real filesystem of a temporary directory: names and sizes refused,
 * create/clone/resize/delete, a clone that keeps its source's data and
 * holes, the use counts that refuse deleting or shrinking an open volume,
 * a listing that ignores other files, and no temporary file left behind.
 * Import runs the real qemu-img (installed by scripts/install-deps.sh): a
 * qcow2 image written with qemu-io comes in raw with its data and holes;
 * an image with a backing file, a missing file and a bad format are
 * refused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "tap.h"
#include "volume.h"
#include "volume_import.h"

#define MiB (1ull << 20)

static bool pattern_at(int fd, off_t off, uint8_t seed)
{
	uint8_t buf[4096];

	if (pread(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf))
		return false;
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != (uint8_t)(seed + i))
			return false;
	return true;
}

static bool write_pattern(int fd, off_t off, uint8_t seed)
{
	uint8_t buf[4096];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(seed + i);
	return pwrite(fd, buf, sizeof(buf), off) == (ssize_t)sizeof(buf);
}

static bool zeros_at(int fd, off_t off)
{
	uint8_t buf[4096];

	if (pread(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf))
		return false;
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i])
			return false;
	return true;
}

/* Files in dir that are not NAME.vol (temporaries left behind). */
static int strays(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.' ? 0 : strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	if (d)
		closedir(d);
	return n;
}

/* Run a shell command quietly; true if it exits 0. */
static bool sh(const char *fmt, const char *a, const char *b)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), fmt, a, b);
	return system(cmd) == 0;
}

static void test_import(struct dn_volumes *vs, const char *dir)
{
	char img[128], top[128], garbage[128];
	struct dn_volume_info info;
	uint64_t size = 0;
	int fd = -1;

	snprintf(img, sizeof(img), "%s/base.qcow2", dir);
	snprintf(top, sizeof(top), "%s/top.qcow2", dir);
	snprintf(garbage, sizeof(garbage), "%s/garbage", dir);
	if (!ok(sh("qemu-img create -q -f qcow2 %s 6M && qemu-io -c 'write -q -P 0x5a 1M 64k' "
		   "-f qcow2 %s >/dev/null", img, img), "a 6 MiB qcow2 image, 64 KiB of 0x5a at 1 MiB"))
		return;
	is(dn_volume_import(vs, "img", img, "qcow2", &size), 0, "import it as qcow2");
	ok(size == 6 * 1024 * 1024 && dn_volume_open(vs, "img", 0, &fd, &size) == 0,
	   "  a 6 MiB volume");
	if (fd >= 0) {
		uint8_t buf[4096];
		bool good = true;

		for (off_t off = 1 << 20; off < (1 << 20) + 65536; off += sizeof(buf))
			good &= pread(fd, buf, sizeof(buf), off) == (ssize_t)sizeof(buf) &&
				buf[0] == 0x5a && buf[4095] == 0x5a;
		ok(good && zeros_at(fd, 0) && zeros_at(fd, 3 << 20), "  its data, and zeros around it");
		close(fd);
		dn_volume_put(vs, "img");
	}
	ok(dn_volume_stat(vs, "img", &info) == 0 && info.allocated < 1024 * 1024,
	   "  holes kept (under 1 MiB on disk)");
	is(dn_volume_import(vs, "img", img, NULL, NULL), -EEXIST, "again: -EEXIST");
	ok(sh("qemu-img create -q -f qcow2 -b %s -F qcow2 %s", img, top), "an image over a backing file");
	is(dn_volume_import(vs, "top", top, NULL, NULL), -EPERM, "  refused: -EPERM");
	is(dn_volume_stat(vs, "top", &info), -ENOENT, "  and no volume made");
	is(dn_volume_import(vs, "x", garbage, "raw", NULL), -ENOENT, "a missing file: -ENOENT");
	ok(sh("head -c 4096 /dev/urandom > %s%s", garbage, ""), "a file of random bytes");
	is(dn_volume_import(vs, "x", garbage, "qcow2", NULL), -EIO,
	   "  imported as qcow2: -EIO (qemu-img refuses it)");
	is(dn_volume_import(vs, "x", garbage, "vmdk", NULL), -EINVAL, "  a format not offered: -EINVAL");
	is(dn_volume_stat(vs, "x", &info), -ENOENT, "  no volume made");
	dn_volume_delete(vs, "img");
	unlink(img);
	unlink(top);
	unlink(garbage);
}

/* Keys: nonzero, one per volume made, kept by resize, new after delete and create. */
static void test_keys(struct dn_volumes *vs, const char *sub)
{
	struct dn_volume_info a, a2, b, k;
	uint64_t size, key = 0;
	char path[128];
	int fd = -1;

	ok(dn_volume_stat(vs, "a", &a) == 0 && dn_volume_stat(vs, "b", &b) == 0 && a.key && b.key &&
	   a.key != b.key, "keys: nonzero, a clone has its own");
	ok(dn_volume_resize(vs, "a", 3 * MiB, false) == 0 && dn_volume_stat(vs, "a", &a2) == 0 &&
	   a2.key == a.key, "  a resize keeps it");
	ok(dn_volume_open(vs, "a", 0, &fd, &size) == 0 && dn_volume_key(fd, &key) == 0 &&
	   key == a.key, "  dn_volume_key of the open file says the same");
	close(fd);
	dn_volume_put(vs, "a");
	ok(dn_volume_create(vs, "k", MiB) == 0 && dn_volume_stat(vs, "k", &k) == 0 &&
	   dn_volume_delete(vs, "k") == 0 && dn_volume_create(vs, "k", MiB) == 0 &&
	   dn_volume_stat(vs, "k", &a2) == 0 && a2.key != k.key,
	   "  a volume deleted and made again under its name has a new one");
	dn_volume_delete(vs, "k");
	snprintf(path, sizeof(path), "%s/hand.vol", sub);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ok(fd >= 0 && ftruncate(fd, MiB) == 0, "a file put there by hand");
	if (fd >= 0)
		close(fd);
	ok(dn_volume_stat(vs, "hand", &k) == 0 && k.key && dn_volume_stat(vs, "hand", &a2) == 0 &&
	   a2.key == k.key, "  gets a key when first looked at, and keeps it");
	dn_volume_delete(vs, "hand");
}

static void test_names(void)
{
	char longname[DN_VOLUME_NAME_MAX + 2];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ok(dn_volume_name_valid("vm-1_root") && dn_volume_name_valid("0"), "good names");
	ok(!dn_volume_name_valid("") && !dn_volume_name_valid(NULL) &&
	   !dn_volume_name_valid("Root") && !dn_volume_name_valid("-x") &&
	   !dn_volume_name_valid("_x") && !dn_volume_name_valid("a/b") &&
	   !dn_volume_name_valid("..") && !dn_volume_name_valid("a.vol") &&
	   !dn_volume_name_valid(longname), "bad names refused (case, slash, dots, 64 chars)");
	longname[DN_VOLUME_NAME_MAX] = '\0';
	ok(dn_volume_name_valid(longname), "63 characters are fine");
}

int main(void)
{
	char dir[64], sub[80], junk[96], bad[96];
	struct dn_volumes *vs = NULL;
	struct dn_volume_info info, *list = NULL;
	size_t n = 0;
	uint64_t size = 0;
	bool reflinked = false;
	int fd = -1, fd2 = -1, r;

	test_names();
	/* $TMPDIR picks the filesystem (tmpfs, ext4, XFS with reflink); /tmp by default */
	snprintf(dir, sizeof(dir), "%s/dn-volume-XXXXXX",
		 getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!ok(mkdtemp(dir) != NULL, "a temporary directory")) {
		done_testing();
		return tap_exit();
	}
	snprintf(sub, sizeof(sub), "%s/data", dir);
	is(dn_volumes_open(sub, &vs), 0, "open makes the data directory");

	is(dn_volume_create(vs, "a", 4 * MiB), 0, "create a (4 MiB)");
	is(dn_volume_create(vs, "a", 4 * MiB), -EEXIST, "again: -EEXIST");
	is(dn_volume_create(vs, "b", 1000), -EINVAL, "a size that is not whole sectors: -EINVAL");
	is(dn_volume_create(vs, "b", 0), -EINVAL, "size 0: -EINVAL");
	is(dn_volume_create(vs, "b", DN_VOLUME_MAX_SIZE + DN_VOLUME_SECTOR), -EINVAL,
	   "past the maximum: -EINVAL");
	is(dn_volume_create(vs, "B", MiB), -EINVAL, "a bad name: -EINVAL");
	r = dn_volume_stat(vs, "a", &info);
	ok(r == 0 && info.size == 4 * MiB && info.users == 0 && info.allocated < 64 * 1024,
	   "a: 4 MiB, sparse (%llu bytes on disk), unused", (unsigned long long)info.allocated);

	is(dn_volume_open(vs, "a", 0, &fd, &size), 0, "open a");
	ok(size == 4 * MiB && write_pattern(fd, 0, 1) && write_pattern(fd, 3 * MiB, 2),
	   "write 4 KiB at 0 and at 3 MiB");
	ok(dn_volume_stat(vs, "a", &info) == 0 && info.users == 1, "a has one user");
	is(dn_volume_delete(vs, "a"), -EBUSY, "delete of an open volume: -EBUSY");
	is(dn_volume_resize(vs, "a", MiB, true), -EBUSY, "shrinking an open volume: -EBUSY");

	is(dn_volume_clone(vs, "a", "b", &reflinked), 0, "clone a to b (%s)",
	   reflinked ? "reflink" : "sparse copy");
	is(dn_volume_clone(vs, "a", "b", NULL), -EEXIST, "clone onto b again: -EEXIST");
	is(dn_volume_clone(vs, "nope", "c", NULL), -ENOENT, "clone of a missing volume: -ENOENT");
	ok(dn_volume_open(vs, "b", 0, &fd2, &size) == 0 && size == 4 * MiB &&
	   pattern_at(fd2, 0, 1) && pattern_at(fd2, 3 * MiB, 2) && zeros_at(fd2, MiB),
	   "b holds a's data, and zeros between");
	r = dn_volume_stat(vs, "b", &info);
	ok(r == 0 && (reflinked || info.allocated < 256 * 1024),
	   "b is as sparse as a (%llu bytes on disk)", (unsigned long long)info.allocated);
	ok(write_pattern(fd2, 0, 9) && pattern_at(fd, 0, 1), "a write to b leaves a alone");
	close(fd2);
	dn_volume_put(vs, "b");

	is(dn_volume_resize(vs, "a", 8 * MiB, false), 0, "grow a to 8 MiB");
	ok(dn_volume_stat(vs, "a", &info) == 0 && info.size == 8 * MiB && pattern_at(fd, 3 * MiB, 2) &&
	   zeros_at(fd, 7 * MiB), "  its data kept, zeros after");
	close(fd);
	dn_volume_put(vs, "a");
	ok(dn_volume_stat(vs, "a", &info) == 0 && info.users == 0, "a closed: no user");
	is(dn_volume_resize(vs, "a", 2 * MiB, false), -EINVAL, "shrink without asking: -EINVAL");
	is(dn_volume_resize(vs, "a", 2 * MiB, true), 0, "shrink when asked");
	ok(dn_volume_stat(vs, "a", &info) == 0 && info.size == 2 * MiB, "  a is 2 MiB");
	is(dn_volume_resize(vs, "nope", MiB, false), -ENOENT, "resize of a missing volume: -ENOENT");

	snprintf(junk, sizeof(junk), "%s/junk.txt", sub);
	snprintf(bad, sizeof(bad), "%s/BAD.vol", sub);
	close(open(junk, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	close(open(bad, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	is(dn_volume_create(vs, "0-first", MiB), 0, "create 0-first");
	ok(dn_volume_list(vs, &list, &n) == 0 && n == 3 && !strcmp(list[0].name, "0-first") &&
	   !strcmp(list[1].name, "a") && !strcmp(list[2].name, "b") && list[1].size == 2 * MiB,
	   "the list: 0-first, a, b, sorted; other files ignored");
	free(list);

	test_keys(vs, sub);
	is(dn_volume_delete(vs, "a"), 0, "delete a");
	is(dn_volume_delete(vs, "a"), -ENOENT, "again: -ENOENT");
	is(dn_volume_stat(vs, "a", &info), -ENOENT, "a is gone");
	test_import(vs, dir);
	is(strays(sub), 0, "no temporary file left in the data directory");

	dn_volume_delete(vs, "b");
	dn_volume_delete(vs, "0-first");
	unlink(junk);
	unlink(bad);
	dn_volumes_close(vs);
	rmdir(sub);
	rmdir(dir);
	done_testing();
	return tap_exit();
}
