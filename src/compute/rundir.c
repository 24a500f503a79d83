// SPDX-License-Identifier: MIT
/*
 * The agent's run directory: who owns it.
 *
 * Everything in a run directory (VM directories, RAM files, the sockets of
 * running QEMUs) was made by one agent of one cluster or by an earlier
 * instance of it, and only such an agent may adopt, stop or remove it. Two
 * files say whose it is:
 *   .owner  written atomically when an agent takes the directory:
 *             disagg-compute run directory
 *             cluster FINGERPRINT
 *             node ID
 *             pid PID
 *           (FINGERPRINT: an HMAC of a fixed label under the cluster key,
 *           which names the cluster without revealing the key);
 *   .lock   flock()ed by the running agent for its whole life (O_CLOEXEC:
 *           QEMU, which outlives the agent, never holds it).
 * An agent refuses, with a message that says which, a directory whose lock
 * another agent holds (after waiting up to 3 s for it: an agent killed a
 * moment before holds it until its threads are gone), one owned by
 * another cluster or node id, and one
 * that holds VM directories but no owner record (an older agent's, or not
 * an agent's at all: nobody's to touch).
 *
 * The directory itself must be a real directory (opened with O_NOFOLLOW:
 * never a symbolic link), owned by the agent's user (root, as a service)
 * and not writable by group or others: whoever else could write into it
 * could plant files or links where QEMU and the agent expect their own.
 * VM directories are made inside it with mkdir (0700), never reused when
 * something of that name exists.
 *
 * The default directory names the cluster too, so that two clusters on one
 * machine (two `disagg up` with different data directories) never share
 * a run directory even when their compute nodes have the same id.
 */
#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "macro.h"
#include "recover.h"

#define OWNER_FILE ".owner"
#define LOCK_FILE ".lock"
#define OWNER_MAGIC "disagg-compute run directory"
/* A lock held by an agent that is still exiting: 60 looks, 50 ms apart. */
#define RUNDIR_LOCK_TRIES 60
#define RUNDIR_LOCK_WAIT_MS 50

int rundir_cluster_id(const struct auth_key *key, char ret[RUNDIR_CLUSTER_ID_LEN + 1])
{
	static const char label[] = "disagg-compute run directory";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (!HMAC(EVP_sha256(), key->bytes, sizeof(key->bytes), (const unsigned char *)label,
		  sizeof(label) - 1, mac, &len) || len < RUNDIR_CLUSTER_ID_LEN / 2)
		return -EIO;
	for (unsigned i = 0; i < RUNDIR_CLUSTER_ID_LEN / 2; i++)
		snprintf(ret + 2 * i, 3, "%02x", mac[i]);
	return 0;
}

void rundir_default(const char *cluster_id, uint64_t node_id, char *ret, size_t len)
{
	snprintf(ret, len, "/dev/shm/disagg-compute-%s-%" PRIu64, cluster_id, node_id);
}

struct owner {
	char cluster[RUNDIR_CLUSTER_ID_LEN + 1];
	uint64_t node;
	long pid;
};

/* Read dir/.owner: 0, -ENOENT (none), -EBADMSG (not an owner record), -errno. */
static int owner_read(int dfd, struct owner *ret)
{
	_cleanup_close_ int fd = openat(dfd, OWNER_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char buf[512], magic[64];
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	*ret = (struct owner){ .pid = 0 };
	if (sscanf(buf, "%63[^\n]\ncluster %16s\nnode %" SCNu64 "\npid %ld", magic, ret->cluster,
		   &ret->node, &ret->pid) < 3 ||
	    strcmp(magic, OWNER_MAGIC) || strlen(ret->cluster) != RUNDIR_CLUSTER_ID_LEN)
		return -EBADMSG;
	return 0;
}

static int owner_write(int dfd, const char *cluster_id, uint64_t node_id)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "%s\ncluster %s\nnode %" PRIu64 "\npid %ld\n",
			 OWNER_MAGIC, cluster_id, node_id, (long)getpid());
	_cleanup_close_ int fd = openat(dfd, OWNER_FILE ".tmp",
					O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)n) != n)
		return errno ? -errno : -EIO;
	return renameat(dfd, OWNER_FILE ".tmp", dfd, OWNER_FILE) < 0 ? -errno : 0;
}

/* dfd (the run directory dir) is a directory of ours that nobody else may write. */
static int rundir_check(int dfd, const char *dir, char *err, size_t errlen)
{
	struct stat st;
	int r;

	if (fstat(dfd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot stat the run directory %s: %s", dir, strerror(-r));
		return r;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen,
			 "the run directory %s belongs to uid %u, not to this agent's user (uid %u): refusing it; remove it or use another --run-dir",
			 dir, (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen,
			 "the run directory %s is writable by %s (mode %04o): refusing it; chmod go-w it or use another --run-dir",
			 dir, (st.st_mode & S_IWOTH) ? "others" : "its group",
			 (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* Open the run directory, never through a symbolic link. */
static int rundir_open(const char *dir, char *err, size_t errlen)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	int r;

	if (fd >= 0)
		return fd;
	r = -errno;
	if ((r == -ELOOP || r == -ENOTDIR) && lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
		snprintf(err, errlen,
			 "the run directory %s is a symbolic link: refusing it; give the real directory as --run-dir",
			 dir);
	else
		snprintf(err, errlen, "cannot open the run directory %s: %s", dir, strerror(-r));
	return r == -ENOTDIR || r == -ELOOP ? -ENOTDIR : r;
}

/* The first VM directory in dfd, or false. */
static bool has_vm_dir(int dfd, char *ret_name, size_t len)
{
	int fd = dup(dfd);
	struct dirent *de;
	bool found = false;
	DIR *d;

	if (fd < 0)
		return false;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	while (!found && (de = readdir(d)))
		if (de->d_name[0] != '.' && vm_dir_is_vm(dirfd(d), de->d_name)) {
			snprintf(ret_name, len, "%s", de->d_name);
			found = true;
		}
	closedir(d);
	return found;
}

int rundir_claim(const char *dir, const char *cluster_id, uint64_t node_id, char *err,
		 size_t errlen)
{
	_cleanup_close_ int dfd = -1, lockfd = -1;
	struct owner o;
	char name[NAME_MAX + 1];
	int r;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		snprintf(err, errlen, "cannot create the run directory %s: %s", dir, strerror(-r));
		return r;
	}
	dfd = rundir_open(dir, err, errlen);
	if (dfd < 0)
		return dfd;
	r = rundir_check(dfd, dir, err, errlen);
	if (r < 0)
		return r;
	lockfd = openat(dfd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lockfd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open %s/%s: %s", dir, LOCK_FILE, strerror(-r));
		return r;
	}
	/*
	 * An agent killed a moment ago still holds the lock while its
	 * threads exit (a restart right after a SIGKILL): wait for that
	 * a little before calling the directory in use.
	 */
	for (unsigned i = 0; flock(lockfd, LOCK_EX | LOCK_NB) < 0; i++) {
		r = -errno;
		if (r == -EWOULDBLOCK && i < RUNDIR_LOCK_TRIES) {
			usleep(RUNDIR_LOCK_WAIT_MS * 1000);
			continue;
		}
		if (r != -EWOULDBLOCK) {
			snprintf(err, errlen, "cannot lock %s/%s: %s", dir, LOCK_FILE, strerror(-r));
			return r;
		}
		if (owner_read(dfd, &o) == 0 && o.pid > 0)
			snprintf(err, errlen,
				 "the run directory %s is in use by another running agent (pid %ld, node %" PRIu64 "): give each agent its own --run-dir",
				 dir, o.pid, o.node);
		else
			snprintf(err, errlen,
				 "the run directory %s is in use by another running agent: give each agent its own --run-dir",
				 dir);
		return -EBUSY;
	}
	r = owner_read(dfd, &o);
	if (r == 0 && (strcmp(o.cluster, cluster_id) || o.node != node_id)) {
		snprintf(err, errlen,
			 "the run directory %s belongs to node %" PRIu64 " of %s cluster (key fingerprint %s; this agent: node %" PRIu64 ", %s): its VMs are not this agent's; use another --run-dir",
			 dir, o.node, strcmp(o.cluster, cluster_id) ? "another" : "this", o.cluster,
			 node_id, cluster_id);
		return -EPERM;
	}
	if (r == -EBADMSG) {
		snprintf(err, errlen, "%s/%s is not an owner record of this program: refusing the run directory",
			 dir, OWNER_FILE);
		return -EPERM;
	}
	if (r < 0 && r != -ENOENT) {
		snprintf(err, errlen, "cannot read %s/%s: %s", dir, OWNER_FILE, strerror(-r));
		return r;
	}
	if (r == -ENOENT && has_vm_dir(dfd, name, sizeof(name))) {
		snprintf(err, errlen,
			 "the run directory %s holds VM directories (%s) but no owner record: they are not this agent's to adopt or remove; use another --run-dir, or remove them if nothing uses them",
			 dir, name);
		return -ENOTEMPTY;
	}
	r = owner_write(dfd, cluster_id, node_id);
	if (r < 0) {
		snprintf(err, errlen, "cannot write %s/%s: %s", dir, OWNER_FILE, strerror(-r));
		return r;
	}
	return TAKE_FD(lockfd);
}

/*
 * The boot cache's files (regular files only, as vm_boot.c writes them),
 * then the cache itself. The run directory is going: so are its copies.
 */
static void boot_cache_remove(int dfd)
{
	int fd = openat(dfd, RUNDIR_BOOT_CACHE, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			(void)unlinkat(dirfd(d), de->d_name, 0);   /* fails on a directory: left */
	closedir(d);
	(void)unlinkat(dfd, RUNDIR_BOOT_CACHE, AT_REMOVEDIR);
}

void rundir_release(const char *dir, int lockfd, int remove_dir)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	char name[NAME_MAX + 1];

	if (dfd >= 0 && lockfd >= 0 && !has_vm_dir(dfd, name, sizeof(name))) {
		(void)unlinkat(dfd, OWNER_FILE, 0);
		(void)unlinkat(dfd, LOCK_FILE, 0);
		if (remove_dir) {
			boot_cache_remove(dfd);
			(void)rmdir(dir);   /* only if empty */
		}
	}
	if (lockfd >= 0)
		close(lockfd);
}
