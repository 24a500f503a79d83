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
 * The agent may die or restart while QEMU runs (a crash, SIGKILL, an
 * upgrade). The shim keeps its own copy of each uffd, so the registration
 * outlives the agent: faults simply wait (without that copy the kernel
 * would drop the registration with the agent's last reference and QEMU
 * would read holes as zeros). A watcher thread, started when the library
 * is loaded, notices the agent's socket hang up and connects again until
 * a new agent listens on the same path, then hands every registered
 * mapping over again (SHIM_MSG_READOPT, the same uffd) and ends with
 * SHIM_MSG_READOPT_DONE. Whichever thread connects first does that, so a
 * new agent always learns the whole table before any MAP or UNMAP.
 *
 * Any other mapping, or a process started without the two variables,
 * behaves exactly as without the shim: the wrappers go straight to libc.
 *
 * The library depends on nothing but libc and the kernel headers, keeps
 * its own state in a small fixed table, and never allocates in the mmap
 * path (QEMU may call mmap from inside malloc): the watcher thread is
 * created by the library's constructor, before QEMU's main(), with every
 * signal blocked so that QEMU's signal handling is unchanged.
 *
 * Wire format to the agent (one datagram-like message per direction over a
 * SOCK_SEQPACKET socket, so message boundaries are kept):
 *   shim -> agent: struct shim_msg, uffd attached for MAP and READOPT
 *   agent -> shim: int32 status (0 or -errno)
 */
/* Define mmap and mmap64 as two symbols (the build sets 64-bit offsets, which
 * would rename mmap to mmap64 in the headers). */
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
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
#define SHIM_RETRY_MIN_MS 20      /* reconnect attempts: first interval */
#define SHIM_RETRY_MAX_MS 500     /* and the longest */

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

enum { SLOT_FREE = 0, SLOT_PENDING, SLOT_ACTIVE };

/*
 * Registered mappings (ACTIVE: the agent has them; PENDING: being
 * registered, not yet the agent's) and the one connection to the agent.
 * All under `lock`; agent_gen counts connections, so the watcher can tell
 * a new connection from the one it was watching.
 */
static struct shim_map {
	int state;
	int uffd;                     /* our copy (ACTIVE) */
	uintptr_t addr;
	size_t len;
	uint64_t offset;
	char path[256];
} maps[SHIM_MAX_MAPS];
static unsigned nactive;
static int agent_fd = -1;
static unsigned agent_gen;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;  /* connected, or a mapping added */

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

/* Send one message (with an optional fd) on fd and wait for the status. -EPIPE: broken. */
static int send_recv(int fd, const struct shim_msg *msg, int pass_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = sizeof(*msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int32_t status;
	ssize_t n;

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
		return -EPIPE;
	do
		n = recv(fd, &status, sizeof(status), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(status))
		return -EPIPE;
	return shim_answer_status(status);
}

/* The connection is gone. Lock held. */
static void agent_drop(void)
{
	if (agent_fd >= 0)
		close(agent_fd);
	agent_fd = -1;
}

/*
 * A new connection: hand every registered mapping over again, then say
 * how many. A mapping the agent refuses stays registered (its faults
 * wait); QEMU's log says so. Lock held.
 */
static int readopt_all(int fd)
{
	struct shim_msg msg = { .op = SHIM_MSG_READOPT_DONE };
	uint64_t sent = 0;

	for (int i = 0; i < SHIM_MAX_MAPS; i++) {
		struct shim_map *m = &maps[i];
		struct shim_msg rm = { .op = SHIM_MSG_READOPT };
		int r;

		if (m->state != SLOT_ACTIVE)
			continue;
		rm.pid = (uint32_t)getpid();
		rm.addr = m->addr;
		rm.len = m->len;
		rm.offset = m->offset;
		memcpy(rm.path, m->path, sizeof(rm.path));
		r = send_recv(fd, &rm, m->uffd);
		if (r == -EPIPE)
			return r;
		if (r < 0)
			fprintf(stderr, "disagg-shim: the agent did not take %s back: %s\n", m->path,
				strerror(-r));
		sent++;
	}
	msg.pid = (uint32_t)getpid();
	msg.len = sent;
	return send_recv(fd, &msg, -1) == -EPIPE ? -EPIPE : 0;
}

/* The connection to the agent, made (and the table re-sent) if need be. Lock held. */
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
	/* Mappings registered with an earlier agent: this one must take them first. */
	if (nactive && readopt_all(fd) < 0) {
		close(fd);
		return -EPIPE;
	}
	agent_fd = fd;
	agent_gen++;
	pthread_cond_broadcast(&changed);
	return fd;
}

/* Send one message (with an optional fd) and wait for the agent's status. Lock held. */
static int agent_call(const struct shim_msg *msg, int pass_fd)
{
	int fd = agent_connect(), r;

	if (fd < 0)
		return fd;
	r = send_recv(fd, msg, pass_fd);
	if (r == -EPIPE)
		agent_drop(); /* the agent is gone; the watcher looks for the next one */
	return r;
}

/*
 * The watcher: while mappings are registered, keep a connection to an
 * agent. It sleeps in poll() on the connection; when the agent hangs up,
 * it connects again (the table is re-sent in agent_connect), retrying
 * every SHIM_RETRY_MIN_MS..SHIM_RETRY_MAX_MS until an agent listens.
 */
static void *watch_main(void *arg)
{
	unsigned delay = SHIM_RETRY_MIN_MS;

	(void)arg;
	pthread_setname_np(pthread_self(), "disagg-shim");
	for (;;) {
		struct pollfd pfd = { .events = POLLRDHUP };
		unsigned gen;

		pthread_mutex_lock(&lock);
		while (agent_fd < 0 && !nactive)
			pthread_cond_wait(&changed, &lock);
		if (agent_fd < 0) {
			int r = agent_connect();

			pthread_mutex_unlock(&lock);
			if (r < 0) {
				usleep(delay * 1000);
				delay = delay * 2 > SHIM_RETRY_MAX_MS ? SHIM_RETRY_MAX_MS : delay * 2;
			} else {
				delay = SHIM_RETRY_MIN_MS;
			}
			continue;
		}
		pfd.fd = agent_fd;
		gen = agent_gen;
		pthread_mutex_unlock(&lock);
		/* A timeout only re-checks the state: a close elsewhere does not wake poll. */
		if (poll(&pfd, 1, 1000) <= 0 ||
		    !(pfd.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)))
			continue;
		pthread_mutex_lock(&lock);
		if (agent_gen == gen && agent_fd == pfd.fd)
			agent_drop();
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

/*
 * fork() (QEMU's helpers, -daemonize): the child gets the table but not
 * the watcher, and must never use the parent's connection or uffds; until
 * it execs (the fds are O_CLOEXEC) the shim is off in it. The lock is
 * taken across the fork so that the child's copy is consistent.
 */
static void fork_prepare(void)
{
	pthread_mutex_lock(&lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&lock);
}

static void fork_child(void)
{
	shim_enabled = 0;
	pthread_mutex_unlock(&lock);
}

__attribute__((constructor)) static void shim_start(void)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;

	pthread_once(&init_once, shim_init);
	if (shim_enabled != 1)
		return;
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	if (pthread_create(&t, &attr, watch_main, NULL) != 0)
		fprintf(stderr, "disagg-shim: no watcher thread: the VM cannot outlive its agent\n");
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
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

/* A free slot, now PENDING, or -ENOSPC. Lock held. */
static int map_slot_reserve(void)
{
	for (int i = 0; i < SHIM_MAX_MAPS; i++)
		if (maps[i].state == SLOT_FREE) {
			maps[i].state = SLOT_PENDING;
			return i;
		}
	return -ENOSPC;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct shim_msg msg = { .op = SHIM_MSG_MAP };
	struct shim_map *m;
	void *p;
	int uffd, slot, r;

	pthread_once(&init_once, shim_init);
	p = real_mmap(addr, len, prot, flags, fd, off);
	if (p == MAP_FAILED || shim_enabled != 1 || fd < 0 || !(flags & MAP_SHARED) ||
	    !is_agent_file(fd, msg.path, sizeof(msg.path)))
		return p;

	pthread_mutex_lock(&lock);
	slot = r = map_slot_reserve();
	if (r < 0)
		goto fail;
	m = &maps[slot];
	uffd = r = uffd_register(p, len);
	if (r < 0)
		goto fail;
	msg.addr = (uintptr_t)p;
	msg.len = len;
	msg.offset = (uint64_t)off;
	msg.pid = (uint32_t)getpid();
	r = agent_call(&msg, uffd);
	if (r < 0) {
		close(uffd);
		goto fail;
	}
	/* Keep our copy of the uffd: the registration must outlive the agent. */
	m->uffd = uffd;
	m->addr = (uintptr_t)p;
	m->len = len;
	m->offset = (uint64_t)off;
	memcpy(m->path, msg.path, sizeof(m->path));
	m->state = SLOT_ACTIVE;
	nactive++;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
	return p;
fail:
	if (slot >= 0)
		maps[slot].state = SLOT_FREE;
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
			struct shim_map *m = &maps[i];

			if (m->state != SLOT_ACTIVE || m->addr >= a + len || m->addr + m->len <= a)
				continue;
			msg.addr = m->addr;
			msg.len = m->len;
			msg.pid = (uint32_t)getpid();
			(void)agent_call(&msg, -1); /* the agent forgets the range */
			close(m->uffd);
			m->state = SLOT_FREE;
			nactive--;
		}
		pthread_mutex_unlock(&lock);
	}
	return real_munmap(addr, len);
}
