// SPDX-License-Identifier: MIT
/*
 * libdisagg-shim.so: loaded into an unmodified QEMU with LD_PRELOAD by the
 * compute agent.
 *
 * Guest RAM is a set of `memory-backend-file,share=on` objects whose files
 * the agent creates in its run directory. Pages of those files that live on
 * memory nodes are holes in the files, and a read of a hole through a plain
 * mapping would silently return zeros. So every mapping of such a file must
 * be registered with userfaultfd *before* QEMU can touch it, and the fault
 * handler (the agent's pager) must get the descriptor.
 *
 * This library wraps mmap() and munmap(). When QEMU maps a file whose path
 * starts with $DISAGG_SHIM_DIR, the wrapper
 *   1. performs the real mmap,
 *   2. creates a userfaultfd in QEMU's process and registers the range for
 *      MISSING and WP faults,
 *   3. sends the uffd and the mapping's identity (file path, file offset,
 *      length, address) to the agent over the UNIX socket $DISAGG_SHIM_SOCK
 *      (SCM_RIGHTS), and
 *   4. waits for the agent's answer before returning the mapping to QEMU.
 * If any step fails, the mapping is undone and mmap fails with the error:
 * QEMU then reports a failed object-add or exits, which is far better than a
 * guest that reads zeros where its data should be.
 *
 * munmap() of a registered range tells the agent first (and waits), so the
 * pager stops serving an address range that is about to disappear.
 *
 * Any other mapping, or a process started without the two variables,
 * behaves exactly as without the shim: the wrappers go straight to libc.
 *
 * The library depends on nothing but libc and the kernel headers, keeps
 * its own state in a small fixed table, and never allocates in the mmap
 * path (QEMU may call mmap from inside malloc).
 *
 * Wire format to the agent (one datagram-like message per direction over a
 * SOCK_SEQPACKET socket, so message boundaries are kept):
 *   shim -> agent: struct shim_msg, uffd attached for SHIM_MSG_MAP
 *   agent -> shim: int32 status (0 or -errno)
 */
/* Define mmap and mmap64 as two symbols (the build sets 64-bit offsets, which
 * would rename mmap to mmap64 in the headers). */
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "shim.h"

#define SHIM_MAX_MAPS 512

#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);

static mmap_fn real_mmap;
static munmap_fn real_munmap;

/* Configuration, read once. */
static char shim_dir[256];
static size_t shim_dir_len;
static char shim_sock[108];
static uint64_t shim_features;
static int shim_enabled = -1;        /* -1 unknown, 0 off, 1 on */

/* Registered mappings and the one connection to the agent. */
static struct {
	uintptr_t addr;
	size_t len;
} maps[SHIM_MAX_MAPS];
static int agent_fd = -1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void shim_init(void)
{
	const char *dir, *sock, *feat;

	real_mmap = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
	real_munmap = (munmap_fn)dlsym(RTLD_NEXT, "munmap");
	dir = getenv("DISAGG_SHIM_DIR");
	sock = getenv("DISAGG_SHIM_SOCK");
	feat = getenv("DISAGG_SHIM_UFFD_FEATURES");
	if (!dir || !sock || !*dir || strlen(dir) >= sizeof(shim_dir) - 1 ||
	    strlen(sock) >= sizeof(shim_sock)) {
		shim_enabled = 0;
		return;
	}
	strcpy(shim_dir, dir);
	shim_dir_len = strlen(shim_dir);
	if (shim_dir[shim_dir_len - 1] != '/') { /* match whole path components */
		shim_dir[shim_dir_len++] = '/';
		shim_dir[shim_dir_len] = '\0';
	}
	strcpy(shim_sock, sock);
	shim_features = feat ? strtoull(feat, NULL, 0) : 0;
	shim_enabled = 1;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Does fd name a file inside the agent's directory? Fills path. */
static int is_agent_file(int fd, char *path, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, len - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	return (size_t)n > shim_dir_len && strncmp(path, shim_dir, shim_dir_len) == 0;
}

static int agent_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (agent_fd >= 0)
		return agent_fd;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, shim_sock, strlen(shim_sock) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	agent_fd = fd;
	return fd;
}

/* Send one message (with an optional fd) and wait for the agent's status. */
static int agent_call(const struct shim_msg *msg, int pass_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = sizeof(*msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int32_t status;
	ssize_t n;
	int fd = agent_connect();

	if (fd < 0)
		return fd;
	if (pass_fd >= 0) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*msg))
		goto broken;
	do
		n = recv(fd, &status, sizeof(status), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(status))
		goto broken;
	return status;
broken:
	/* The agent is gone: nothing can serve faults any more. */
	close(fd);
	agent_fd = -1;
	return -EPIPE;
}

/* Create a uffd and register [addr, addr+len) for MISSING|WP faults. */
static int uffd_register(void *addr, size_t len)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = shim_features,
	};
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	int fd, err;

	/* No UFFD_USER_MODE_ONLY: kernel accesses (syscalls, vhost) must fault too. */
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int map_slot_add(void *addr, size_t len)
{
	for (int i = 0; i < SHIM_MAX_MAPS; i++)
		if (!maps[i].len) {
			maps[i].addr = (uintptr_t)addr;
			maps[i].len = len;
			return 0;
		}
	return -ENOSPC;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct shim_msg msg = { .op = SHIM_MSG_MAP };
	void *p;
	int uffd, r;

	pthread_once(&init_once, shim_init);
	p = real_mmap(addr, len, prot, flags, fd, off);
	if (p == MAP_FAILED || shim_enabled != 1 || fd < 0 || !(flags & MAP_SHARED) ||
	    !is_agent_file(fd, msg.path, sizeof(msg.path)))
		return p;

	pthread_mutex_lock(&lock);
	uffd = uffd_register(p, len);
	if (uffd < 0) {
		r = uffd;
		goto fail;
	}
	msg.addr = (uintptr_t)p;
	msg.len = len;
	msg.offset = (uint64_t)off;
	msg.pid = (uint32_t)getpid();
	r = map_slot_add(p, len);
	if (r == 0)
		r = agent_call(&msg, uffd);
	close(uffd); /* the agent holds its own copy now */
	if (r < 0)
		goto fail;
	pthread_mutex_unlock(&lock);
	return p;
fail:
	for (int i = 0; i < SHIM_MAX_MAPS; i++)
		if (maps[i].addr == (uintptr_t)p)
			maps[i].len = 0;
	pthread_mutex_unlock(&lock);
	real_munmap(p, len);
	fprintf(stderr, "disagg-shim: cannot register %s with the agent: %s\n", msg.path,
		strerror(-r));
	errno = -r;
	return MAP_FAILED;
}

/* glibc on 64-bit: mmap64 is the same call. */
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("mmap")));

int munmap(void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;

	pthread_once(&init_once, shim_init);
	if (shim_enabled == 1) {
		pthread_mutex_lock(&lock);
		for (int i = 0; i < SHIM_MAX_MAPS; i++) {
			struct shim_msg msg = { .op = SHIM_MSG_UNMAP };

			if (!maps[i].len || maps[i].addr >= a + len ||
			    maps[i].addr + maps[i].len <= a)
				continue;
			msg.addr = maps[i].addr;
			msg.len = maps[i].len;
			msg.pid = (uint32_t)getpid();
			(void)agent_call(&msg, -1); /* the agent forgets the range */
			maps[i].len = 0;
		}
		pthread_mutex_unlock(&lock);
	}
	return real_munmap(addr, len);
}
