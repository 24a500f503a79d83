// SPDX-License-Identifier: MIT
/*
 * VM lifecycle: run directory and RAM files, the shim socket that receives
 * QEMU's userfaultfds, the pager, the QEMU process and its supervision.
 * Hotplug and the guest channel live in vm_hot.c; see vm.h for the model.
 */
#include "vm_internal.h"

#include <dirent.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/magic.h>

#include "hotplug.h"
#include "log.h"
#include "mnclient.h"
#include "net.h"
#include "pager_adopt.h"
#include "proc.h"
#include "shim.h"
#include "uffd_compat.h"

extern char **environ;

/* What the shim must ask of UFFDIO_API for the pager's sync-WP mode. */
#define VM_UFFD_FEATURES                                                                   \
	(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |                    \
	 UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_THREAD_ID)

static const char *const state_names[] = {
	[VM_CREATED] = "created",   [VM_STARTING] = "starting", [VM_RUNNING] = "running",
	[VM_STOPPING] = "stopping", [VM_STOPPED] = "stopped",   [VM_FAILED] = "failed",
	[VM_INCOMING] = "incoming", [VM_MIGRATED] = "migrated", [VM_DEGRADED] = "degraded",
	[VM_SWITCHOVER] = "switchover",
};

const char *vm_state_name(enum vm_state s)
{
	return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

const char *vm_name(const struct vm *vm)
{
	return vm->spec.name;
}

enum vm_state vm_get_state(struct vm *vm)
{
	enum vm_state s;

	pthread_mutex_lock(&vm->lock);
	s = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

int vm_state_parse(const char *name, enum vm_state *ret)
{
	for (unsigned i = 0; i < ARRAY_SIZE(state_names); i++)
		if (state_names[i] && !strcmp(name, state_names[i])) {
			*ret = (enum vm_state)i;
			return 0;
		}
	return -EINVAL;
}

enum vm_state vm_wait_state(struct vm *vm, enum vm_state want, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)MAX(timeout_ms, 0) * 1000000ull;
	enum vm_state s;

	pthread_mutex_lock(&vm->lock);
	for (;;) {
		struct timespec ts;
		uint64_t left;

		s = vm->state;
		if (s == want || s == VM_STOPPED || s == VM_FAILED || s == VM_MIGRATED ||
		    now_ns() >= deadline)
			break;
		/* Not every transition broadcasts: wake up now and then regardless. */
		left = MIN(deadline - now_ns(), 5000000ull);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)left;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	}
	pthread_mutex_unlock(&vm->lock);
	return s;
}

const char *vm_console_path(const struct vm *vm)
{
	return vm->console_path;
}

void vm_set_failed(struct vm *vm, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vm->reason, sizeof(vm->reason), fmt, ap);
	va_end(ap);
	vm->state = VM_FAILED;
	/* The orchestrator hears of it at once (a heartbeat), not at the next one. */
	if (vm->env.on_state)
		vm->env.on_state(vm->env.opaque);
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= VM_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '-' || s[i] == '_' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

/* ---- RAM files ----------------------------------------------------------- */

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

/* Which RAM file is `path`, and which sections back it? (lock held) */
static int region_for_path(struct vm *vm, const char *path, const struct vm_section **ret_secs,
			   unsigned *ret_n, int *ret_hot)
{
	if (strcmp(path, vm->base_path) == 0) {
		*ret_secs = vm->spec.base;
		*ret_n = vm->spec.nbase;
		*ret_hot = -1;
		return 0;
	}
	for (unsigned i = 0; i < vm->nhot; i++)
		if (vm->hot[i].in_use && strcmp(path, vm->hot[i].path) == 0) {
			*ret_secs = &vm->hot[i].sec;
			*ret_n = 1;
			*ret_hot = (int)i;
			return 0;
		}
	if (vm->vmem_path[0] && strcmp(path, vm->vmem_path) == 0) {
		*ret_secs = vm->vmem_secs;
		*ret_n = vm->spec.max_hot;
		*ret_hot = -2;
		return 0;
	}
	return -ENOENT;
}

/* ---- the shim socket ----------------------------------------------------- */

static int recv_shim_msg(int fd, struct shim_msg *msg, int *ret_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(*msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n;

	*ret_fd = -1;
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n == 0)
		return -EPIPE;
	if (n < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
	if (n != (ssize_t)sizeof(*msg) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		if (*ret_fd >= 0)
			close(*ret_fd);
		*ret_fd = -1;
		return -EBADMSG;
	}
	msg->path[sizeof(msg->path) - 1] = '\0';
	return 0;
}

/*
 * A MAP message: give the mapping to the pager. READOPT (adopt): a mapping
 * an earlier agent served; its resident pages become dirty and its faults
 * are woken (pager_adopt_region). A READOPT of a mapping served already
 * (the shim reconnected to the same agent) changes nothing.
 */
static int shim_map(struct vm *vm, const struct shim_msg *msg, int uffd, bool adopt)
{
	const struct vm_section *secs;
	struct pager_section psecs[VM_MAX_SECTIONS];
	_cleanup_close_ int file_fd = -1;
	struct pager *p;
	unsigned n, first;
	uint64_t pages = 0;
	int hot, r;

	pthread_mutex_lock(&vm->lock);
	r = region_for_path(vm, msg->path, &secs, &n, &hot);
	for (unsigned i = 0; adopt && r >= 0 && i < vm->nregions; i++)
		if (vm->regions[i].addr == msg->addr)
			r = 1;
	pthread_mutex_unlock(&vm->lock);
	if (r == 1)
		return 0;
	if (r < 0) {
		log_warn("vm %s: shim mapped an unknown file %s", vm->spec.name, msg->path);
		return r;
	}
	if (msg->offset % vm->env.section_size || msg->len % vm->env.section_size)
		return -EINVAL;
	first = (unsigned)(msg->offset / vm->env.section_size);
	if (first + msg->len / vm->env.section_size > n)
		return -ERANGE;
	n = (unsigned)(msg->len / vm->env.section_size);
	for (unsigned i = 0; i < n; i++)
		psecs[i] = secs[first + i].sec;
	file_fd = open(msg->path, O_RDWR | O_CLOEXEC);
	if (file_fd < 0)
		return -errno;

	struct pager_region_config rc = {
		.uffd = uffd,
		.uffd_features = VM_UFFD_FEATURES,
		.file_fd = file_fd,
		.file_offset = msg->offset,
		.base = msg->addr,
		.length = msg->len,
		.sections = psecs,
		.pagemap_fd = -1,
	};
	p = vm_pager_get(vm);
	r = p ? pager_add_region(p, &rc) : -ESRCH;
	if (r < 0) {
		vm_pager_put(vm, p);
		return r;
	}
	if (adopt) {
		int e = pager_adopt_region(p, r, &pages);

		if (e < 0) {
			(void)pager_remove_region(p, r, false);
			vm_pager_put(vm, p);
			return e;
		}
		log_info("vm %s: took %s back from the shim (%llu resident pages to write back)",
			 vm->spec.name, msg->path, (unsigned long long)pages);
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->nregions < ARRAY_SIZE(vm->regions)) {
		vm->regions[vm->nregions].index = r;
		vm->regions[vm->nregions].addr = msg->addr;
		vm->regions[vm->nregions].file_fd = TAKE_FD(file_fd);
		vm->regions[vm->nregions].uffd = -1;
		vm->nregions++;
	}
	if (hot >= 0)
		vm->hot[hot].addr = msg->addr;
	else if (hot == -2)
		vm->vmem_region = r;
	else
		vm->base_region = r;
	pthread_mutex_unlock(&vm->lock);
	vm_pager_put(vm, p);
	log_debug("vm %s: serving %s (%llu MiB at %#llx)", vm->spec.name, msg->path,
		  (unsigned long long)(msg->len >> 20), (unsigned long long)msg->addr);
	return 0;
}

static void *shim_main(void *arg)
{
	struct vm *vm = arg;
	struct pollfd pfd[8];
	int nconn = 0;

	for (;;) {
		pfd[0] = (struct pollfd){ .fd = vm->stop_efd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = vm->shim_listen, .events = POLLIN };
		if (poll(pfd, (nfds_t)(2 + nconn), -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents)
			break;
		if ((pfd[1].revents & POLLIN) && nconn < 6) {
			int c = accept4(vm->shim_listen, NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0)
				pfd[2 + nconn++] = (struct pollfd){ .fd = c, .events = POLLIN };
		}
		for (int i = 0; i < nconn; i++) {
			struct shim_msg msg;
			int32_t status;
			int uffd = -1, r;

			if (!pfd[2 + i].revents)
				continue;
			r = recv_shim_msg(pfd[2 + i].fd, &msg, &uffd);
			if (r == -EPIPE || r == -ECONNRESET) {
				close(pfd[2 + i].fd);
				pfd[2 + i] = pfd[2 + --nconn];
				i--;
				continue;
			}
			if (r == 0 && (msg.op == SHIM_MSG_MAP || msg.op == SHIM_MSG_READOPT))
				r = uffd >= 0 ? shim_map(vm, &msg, uffd, msg.op == SHIM_MSG_READOPT)
					      : -EBADMSG;
			else if (r == 0 && msg.op == SHIM_MSG_READOPT_DONE)
				vm_adopt_shim_done(vm, (unsigned)MIN(msg.len, UINT32_MAX));
			else if (r == 0 && msg.op == SHIM_MSG_UNMAP) {
				/* A migrated-away QEMU's exit: drop its pages at low priority. */
				if (vm_get_state(vm) == VM_MIGRATED)
					vm_lower_priority(0);
				r = vm_region_unmapped(vm, msg.addr);
			}
			else if (r == 0)
				r = -EOPNOTSUPP;
			if (uffd >= 0 && r < 0)
				close(uffd);
			else if (uffd >= 0)
				vm_region_keep_uffd(vm, msg.addr, uffd);
			status = r < 0 ? r : 0;
			(void)send(pfd[2 + i].fd, &status, sizeof(status), MSG_NOSIGNAL);
		}
	}
	for (int i = 0; i < nconn; i++)
		close(pfd[2 + i].fd);
	return NULL;
}

static int shim_listen(struct vm *vm)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/shim.sock", vm->dir) >=
	    (int)sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
		return -errno;
	strcpy(vm->shim_path, sa.sun_path);
	return TAKE_FD(fd);
}

/* The shim socket (RUN_DIR/NAME/shim.sock) and the thread that serves it. */
/* The eventfd that stops the shim and supervisor threads (vm_free, vm_detach). */
static int stop_efd(struct vm *vm)
{
	if (vm->stop_efd < 0)
		vm->stop_efd = eventfd(0, EFD_CLOEXEC);
	return vm->stop_efd < 0 ? -errno : 0;
}

int vm_shim_listen(struct vm *vm)
{
	int r = stop_efd(vm);

	if (r < 0)
		return r;
	vm->shim_listen = shim_listen(vm);
	if (vm->shim_listen < 0)
		return vm->shim_listen;
	r = -pthread_create(&vm->shim_thread, NULL, shim_main, vm);
	if (r < 0)
		return r;
	vm->shim_thread_on = true;
	return 0;
}

/* ---- QEMU ---------------------------------------------------------------- */

struct argv {
	char *v[1200];                /* up to 256 DIMMs on an incoming VM's command line */
	int n;
};

static void add(struct argv *a, const char *fmt, ...) _printf_(2, 3);
static void add(struct argv *a, const char *fmt, ...)
{
	va_list ap;

	if (a->n >= (int)ARRAY_SIZE(a->v) - 1)
		return;
	va_start(ap, fmt);
	if (vasprintf(&a->v[a->n], fmt, ap) >= 0)
		a->n++;
	va_end(ap);
}

static void argv_free(struct argv *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
}

static void add_strv(struct argv *a, char **v)
{
	for (; v && *v; v++)
		add(a, "%s", *v);
}

static int build_argv(struct vm *vm, struct argv *a)
{
	char **hp = NULL, **gc = NULL, **mg = NULL, chan[PATH_MAX];
	struct hotplug_config hc;
	int r;

	vm_hot_config(vm, &hc);
	r = hotplug_qemu_args(&hc, &hp);
	if (r < 0)
		return r;
	snprintf(chan, sizeof(chan), "%s/guest.sock", vm->dir);
	r = guestchan_qemu_args("gch", chan, &gc);
	if (r >= 0)
		r = vm_mig_qemu_args(vm, &mg);
	if (r < 0) {
		hotplug_strv_free(hp);
		guestchan_strv_free(gc);
		return r;
	}
	add(a, "%s", vm->env.qemu);
	add(a, "-name");
	add(a, "guest=%s,debug-threads=on", vm->spec.name);
	add(a, "-machine");
	add(a, "pc,accel=%s", vm->env.accel);
	add(a, "-cpu");
	add(a, "%s", strcmp(vm->env.accel, "kvm") == 0 ? "host" : "max");
	add(a, "-smp");
	add(a, "%u", vm->spec.vcpus);
	add_strv(a, hp);      /* -m, boot RAM on its file, the virtio-mem device */
	add(a, "-kernel");
	add(a, "%s", vm->env.kernel);
	add(a, "-initrd");
	add(a, "%s", vm->env.initrd);
	add(a, "-append");
	add(a, "console=ttyS0 memhp_default_state=online_movable panic=1 %s", vm->spec.append);
	add(a, "-nodefaults");
	add(a, "-display");
	add(a, "none");
	add(a, "-chardev");
	add(a, "file,id=con,path=%s", vm->console_path);
	add(a, "-serial");
	add(a, "chardev:con");
	add_strv(a, gc);      /* virtio-serial port org.disagg.guest on guest.sock */
	add(a, "-qmp");
	add(a, "unix:%s/qmp.sock,server=on,wait=off", vm->dir);
	add(a, "-no-reboot");
	add_strv(a, mg);      /* incoming VM: -incoming defer, the source's DIMMs */
	a->v[a->n] = NULL;
	hotplug_strv_free(hp);
	guestchan_strv_free(gc);
	guestchan_strv_free(mg);
	return 0;
}

static int spawn_qemu(struct vm *vm)
{
	struct argv a = { .n = 0 };
	char *envp[512];
	char e_pre[PATH_MAX + 16], e_dir[PATH_MAX + 20], e_sock[PATH_MAX + 20], e_feat[64];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	sigset_t none, dfl;
	char logpath[PATH_MAX];
	int n = 0, r;
	pid_t pid;

	r = build_argv(vm, &a);
	if (r < 0) {
		argv_free(&a);
		return r;
	}
	snprintf(e_pre, sizeof(e_pre), "LD_PRELOAD=%s", vm->env.shim);
	snprintf(e_dir, sizeof(e_dir), "DISAGG_SHIM_DIR=%s", vm->dir);
	snprintf(e_sock, sizeof(e_sock), "DISAGG_SHIM_SOCK=%s", vm->shim_path);
	snprintf(e_feat, sizeof(e_feat), "DISAGG_SHIM_UFFD_FEATURES=%llu",
		 (unsigned long long)VM_UFFD_FEATURES);
	envp[n++] = e_pre;
	envp[n++] = e_dir;
	envp[n++] = e_sock;
	envp[n++] = e_feat;
	for (char **e = environ; *e && n < (int)ARRAY_SIZE(envp) - 1; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "DISAGG_SHIM_", 12) &&
		    strncmp(*e, "ASAN_", 5) && strncmp(*e, "UBSAN_", 6) && strncmp(*e, "LSAN_", 5))
			envp[n++] = *e;
	envp[n] = NULL;

	snprintf(logpath, sizeof(logpath), "%s/qemu.log", vm->dir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	/*
	 * QEMU outlives the agent (a crash, a restart: vm_adopt.c): its own
	 * session, so that no signal to the agent's process group or terminal
	 * reaches it; default signal handling and mask (the agent ignores
	 * SIGPIPE); no pipe to the agent; no parent-death signal.
	 */
	posix_spawnattr_init(&sa);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGHUP);
	posix_spawnattr_setsigmask(&sa, &none);
	posix_spawnattr_setsigdefault(&sa, &dfl);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	r = posix_spawn(&pid, vm->env.qemu, &fa, &sa, a.v, envp);
	posix_spawnattr_destroy(&sa);
	posix_spawn_file_actions_destroy(&fa);
	argv_free(&a);
	if (r)
		return -r;
	vm->pid = pid;
	vm->qemu_starttime = proc_starttime(pid);
	vm->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (vm->pidfd < 0) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		vm->pid = 0;
		return r;
	}
	return 0;
}

/* The last len - 1 bytes of a file, NUL-terminated ("" if unreadable). */
static void file_tail(const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		return;
	n = pread(fd, buf, len - 1, size > (off_t)len - 1 ? size - (off_t)len + 1 : 0);
	buf[n > 0 ? n : 0] = '\0';
}

/*
 * Why a guest died, from its serial console: the kernel's panic line if
 * there is one in the last 32 KiB, else the last line that is not empty.
 */
static void console_reason(const char *path, char *buf, size_t len)
{
	static const char panic[] = "Kernel panic - not syncing:";
	_cleanup_free_ char *tail = malloc(32768);
	char *line = NULL, *p;

	buf[0] = '\0';
	if (!tail)
		return;
	file_tail(path, tail, 32768);
	for (p = strstr(tail, panic); p; p = strstr(p + 1, panic))
		line = p;
	if (!line) {
		for (p = tail + strlen(tail); p > tail && (p[-1] == '\n' || p[-1] == '\r'); p--)
			p[-1] = '\0';
		line = strrchr(tail, '\n');
		line = line ? line + 1 : tail;
	}
	line[strcspn(line, "\r\n")] = '\0';
	snprintf(buf, len, "%s", line);
}

void vm_qemu_log_tail(struct vm *vm, char *buf, size_t len)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/qemu.log", vm->dir);
	file_tail(path, buf, len);
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = p[1] ? ' ' : '\0';
}

/* ---- section checks ------------------------------------------------------- */

/*
 * Check that a remote section is usable before the guest can touch it: the
 * grant names this node, its memory node answers, and a one-page READ with
 * the grant succeeds. Without this a bad grant only shows when the pager's
 * first fetch is rejected, and the faulting vCPU then waits for ever.
 * Only a READ: another node (a migration's source) may still be writing.
 * A rejected grant is bad input (-EINVAL); an unreachable node keeps its errno.
 */
int vm_check_section(struct vm *vm, const struct vm_section *s, char *err, size_t errlen)
{
	const struct proto_grant *g = &s->sec.grant;
	struct mnc_opts o = {
		.addr = s->sec.addr, .key = vm->env.key, .node_id = vm->env.node_id,
		.timeout_ms = 5000,
	};
	struct proto_extent ext = { .page = 0, .count = 1 };
	_cleanup_mnc_ struct mnc *c = NULL;
	_cleanup_free_ void *buf = NULL;
	int r;

	if (s->sec.kind != PAGER_SEC_REMOTE)
		return 0;
	if (g->holder_id != vm->env.node_id) {
		snprintf(err, errlen, "the grant for section %u on %s names node %llu as its holder, not this node (%llu)",
			 g->section, s->sec.addr, (unsigned long long)g->holder_id,
			 (unsigned long long)vm->env.node_id);
		return -EINVAL;
	}
	buf = malloc(PROTO_PAGE_SIZE);
	if (!buf)
		return -ENOMEM;
	r = mnc_connect(&o, &c);
	if (r < 0) {
		snprintf(err, errlen, "memory node %s: %s", s->sec.addr, strerror(-r));
		return r;
	}
	if (mnc_info(c)->node_id != g->memnode_id) {
		snprintf(err, errlen, "the grant for section %u is for memory node %llu, but %s is node %llu",
			 g->section, (unsigned long long)g->memnode_id, s->sec.addr,
			 (unsigned long long)mnc_info(c)->node_id);
		return -EINVAL;
	}
	r = mnc_read(c, g, &ext, 1, buf);
	if (r < 0) {
		snprintf(err, errlen, "memory node %s refused a read of section %u: %s", s->sec.addr,
			 g->section, strerror(-r));
		switch (-r) {
		case EKEYREJECTED: case EKEYEXPIRED: case EPERM: case ESTALE: case ENOENT:
		case ERANGE:
			return -EINVAL;
		default:
			return r;
		}
	}
	return 0;
}

/* ---- release ------------------------------------------------------------- */

/* Free a section on its memory node if the control plane asked us to. */
void vm_free_section(struct vm *vm, const struct vm_section *s)
{
	struct mnc_opts o = {
		.addr = s->sec.addr, .key = vm->env.key, .node_id = vm->env.node_id,
		.timeout_ms = 3000,
	};
	_cleanup_mnc_ struct mnc *c = NULL;
	int r;

	if (!s->free_on_release || s->sec.kind != PAGER_SEC_REMOTE)
		return;
	r = mnc_connect(&o, &c);
	if (r >= 0)
		r = mnc_free(c, s->sec.grant.section, s->sec.grant.generation, s->sec.grant.epoch);
	if (r < 0)
		log_warn("vm %s: cannot free section %u on %s: %s", vm->spec.name,
			 s->sec.grant.section, s->sec.addr, strerror(-r));
}

/* ---- supervision --------------------------------------------------------- */

/*
 * Lower every thread of process pid (0: the calling thread) to nice 19.
 * A VM that migrated away is torn down while its guest starts on the
 * destination, often on the same host: its QEMU's exit (unmapping the
 * RAM) and the freeing of its RAM files cost hundreds of ms of CPU that
 * must not compete with the guest. Nice is per thread on Linux, hence the
 * walk over /proc/PID/task. Best effort: a thread that is gone is fine.
 */
void vm_lower_priority(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;

	if (pid <= 0) {
		(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			(void)setpriority(PRIO_PROCESS, (id_t)atoi(de->d_name), 19);
	closedir(d);
}

static void *supervise_main(void *arg)
{
	struct vm *vm = arg;
	struct pollfd pfd[2] = {
		{ .fd = vm->pidfd, .events = POLLIN },
		{ .fd = vm->stop_efd, .events = POLLIN },
	};
	bool retired = false;
	int status = 0;

	for (;;) {
		int n = poll(pfd, 2, 1000);

		if (n > 0)
			break;
		if (n < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&vm->lock);
		if (vm->state == VM_MIGRATED && !retired && now_ns() > vm->retire_ns) {
			/* Migrated away and never deleted: its paused QEMU goes. */
			log_info("vm %s: migrated away and not deleted within %llu ms: stopping its QEMU",
				 vm->spec.name, (unsigned long long)(vm->env.retire_ms ? vm->env.retire_ms
										: VM_RETIRE_MS));
			vm_lower_priority(0);
			kill(vm->pid, SIGTERM);
			retired = true;
		}
		pthread_mutex_unlock(&vm->lock);
	}
	if (!(pfd[0].revents & POLLIN))
		return NULL; /* vm_free: it reaps QEMU itself */
	/* An adopted QEMU is not our child: its parent (init) reaps it. */
	if (!vm->adopted)
		(void)waitpid(vm->pid, &status, 0);
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_MIGRATED)
		vm_lower_priority(0);   /* freeing its RAM files: after the guest's start */
	vm->exited = true;
	if (vm->state == VM_STOPPING) {
		vm->state = VM_STOPPED;
	} else if (vm->state != VM_MIGRATED) { /* migrated: it quit as asked */
		char tail[400];

		vm_qemu_log_tail(vm, tail, sizeof(tail));
		if (vm->adopted)
			vm_set_failed(vm, "QEMU exited (started by an earlier agent: exit status unknown): %s",
				      tail);
		else if (WIFSIGNALED(status))
			vm_set_failed(vm, "QEMU killed by signal %d (%s)", WTERMSIG(status),
				      strsignal(WTERMSIG(status)));
		else
			vm_set_failed(vm, "QEMU exited with status %d: %s", WEXITSTATUS(status),
				      tail);
		log_error("vm %s failed: %s", vm->spec.name, vm->reason);
	}
	vm_release(vm);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vm_supervise(struct vm *vm)
{
	int r = stop_efd(vm);

	if (r == 0)
		r = -pthread_create(&vm->sup_thread, NULL, supervise_main, vm);
	if (r == 0)
		vm->sup_thread_on = true;
	return r;
}

/* ---- public -------------------------------------------------------------- */

struct vm *vm_alloc(const struct vm_env *env)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->env = *env;
	vm->pidfd = vm->shim_listen = vm->stop_efd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->hot_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->vmem_region = -1;
	vm->base_region = -1;
	vm->created_ns = now_ns();
	vm->refs = 1;
	return vm;
}

int vm_new(const struct vm_env *env, const struct vm_spec *spec, struct vm **ret)
{
	struct vm *vm;
	struct statfs sfs;

	if (!name_ok(spec->name))
		return -EINVAL;
	if (spec->vcpus < 1 || spec->vcpus > 64 || spec->nbase < 1 ||
	    spec->nbase > VM_MAX_SECTIONS || spec->max_hot > VM_MAX_SECTIONS)
		return -EINVAL;
	if (statfs(env->run_root, &sfs) < 0)
		return -errno;
	if (sfs.f_type != TMPFS_MAGIC)
		return -ENOTSUP; /* guest RAM files must be on tmpfs */
	vm = vm_alloc(env);
	if (!vm)
		return -ENOMEM;
	vm->spec = *spec;
	vm->spec.base = calloc(spec->nbase, sizeof(*spec->base));
	if (!vm->spec.base) {
		free(vm);
		return -ENOMEM;
	}
	memcpy(vm->spec.base, spec->base, spec->nbase * sizeof(*spec->base));
	/*
	 * RUN_DIR/NAME, or NAME.1, NAME.2 ... while an earlier VM of that name
	 * is still being torn down (a migrated-away record freed in the
	 * background) or a killed agent left its directory behind.
	 */
	for (int i = 0;; i++) {
		int r;

		if (i == 0)
			snprintf(vm->dir, sizeof(vm->dir), "%s/%s", env->run_root, spec->name);
		else
			snprintf(vm->dir, sizeof(vm->dir), "%s/%s.%d", env->run_root, spec->name, i);
		if (mkdir(vm->dir, 0700) == 0)
			break;
		r = -errno;
		if (r != -EEXIST || i == 99) {
			free(vm->spec.base);
			free(vm);
			return r;
		}
	}
	snprintf(vm->console_path, sizeof(vm->console_path), "%s/console.log", vm->dir);
	*ret = vm;
	return 0;
}

/* The memory-node backend and the pager, started (vm_start, adoption). */
int vm_pager_open(struct vm *vm, char *err, size_t errlen)
{
	struct pager_config pc = {
		.name = vm->spec.name,
		.section_size = vm->env.section_size,
		.budget = vm->spec.budget,
		/* A stalled node parks its faults after this; the rest go on. */
		.fail_timeout_ms = vm->env.memnode_timeout_ms > 0 ? vm->env.memnode_timeout_ms
								  : 2000,
		.fail_mode = vm->env.memnode_policy == VM_MEMNODE_SIGBUS ? PAGER_FAIL_SIGBUS
									 : PAGER_FAIL_BLOCK,
		.on_node = vm_health_node,
		.opaque = vm,
	};
	int r;

	r = vm_health_start(vm);
	if (r < 0) {
		snprintf(err, errlen, "thread: %s", strerror(-r));
		return r;
	}
	r = pager_backend_memnode_new(vm->env.key, vm->env.node_id, pc.fail_timeout_ms, 0,
				      &vm->backend);
	if (r < 0) {
		snprintf(err, errlen, "memory-node backend: %s", strerror(-r));
		return r;
	}
	pc.backend = vm->backend;
	r = pager_new(&pc, &vm->pager);
	if (r >= 0)
		r = pager_start(vm->pager);
	if (r < 0)
		snprintf(err, errlen, "pager: %s", strerror(-r));
	return r;
}

int vm_start(struct vm *vm, char *err, size_t errlen)
{
	uint64_t t0 = now_ns();
	int r;

	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_CREATED) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "VM is %s", vm_state_name(vm->state));
		return -EBUSY;
	}
	vm->state = VM_STARTING;
	pthread_mutex_unlock(&vm->lock);

	for (unsigned i = 0; i < vm->spec.nbase; i++) {
		char why[400];

		r = vm_check_section(vm, &vm->spec.base[i], why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "section %u: %s", i, why);
			/* Not ours: never free a section on the word of a rejected grant. */
			if (r == -EINVAL)
				vm->spec.base[i].free_on_release = false;
			goto fail;
		}
	}
	r = vm_pager_open(vm, err, errlen);
	if (r < 0)
		goto fail;
	r = vm_make_file(vm, "ram-base", vm->env.section_size * vm->spec.nbase, vm->base_path,
			 sizeof(vm->base_path));
	if (r >= 0)
		r = vm_hot_prepare(vm);
	if (r < 0) {
		snprintf(err, errlen, "RAM files in %s: %s", vm->dir, strerror(-r));
		goto fail;
	}
	r = vm_shim_listen(vm);
	if (r < 0) {
		snprintf(err, errlen, "shim socket: %s", strerror(-r));
		goto fail;
	}
	r = spawn_qemu(vm);
	if (r < 0) {
		snprintf(err, errlen, "cannot start %s: %s", vm->env.qemu, strerror(-r));
		goto fail;
	}
	(void)vm_persist(vm);   /* "starting", with QEMU's pid: a restarted agent stops it */
	r = vm_supervise(vm);
	if (r < 0) {
		snprintf(err, errlen, "thread: %s", strerror(-r));
		goto fail;
	}
	r = qmp_connect(vm->qmp_path_buf[0] ? vm->qmp_path_buf : vm_qmp_path(vm), 15000, &vm->qmp);
	if (r < 0) {
		char tail[400];

		vm_qemu_log_tail(vm, tail, sizeof(tail));
		snprintf(err, errlen, "QEMU did not come up (QMP: %s): %s", strerror(-r), tail);
		goto fail;
	}
	r = vm_hot_attach(vm);
	if (r < 0) {
		snprintf(err, errlen, "hotplug: %s", strerror(-r));
		goto fail;
	}
	r = vm->spec.incoming ? 0 : vm_guest_connect(vm); /* incoming: once it arrived */
	if (r < 0) {
		struct pager_stats st = { 0 };

		pthread_mutex_lock(&vm->lock);
		if (vm->pager)
			pager_stats(vm->pager, &st);
		pthread_mutex_unlock(&vm->lock);
		if (st.failed < 0) {
			snprintf(err, errlen,
				 "the pager cannot serve the guest's RAM from its memory nodes: %s",
				 strerror(-st.failed));
		} else {
			/* The guest died or hung while booting: its console says why. */
			char why[240];

			console_reason(vm->console_path, why, sizeof(why));
			snprintf(err, errlen, "guest channel: %s; the guest's console: %s",
				 strerror(-r), why[0] ? why : "(empty)");
		}
		goto fail;
	}
	vm_mig_guest_attached(vm);
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_STARTING)
		vm->state = vm->spec.incoming ? VM_INCOMING : VM_RUNNING;
	r = vm->state == VM_RUNNING || vm->state == VM_INCOMING ? 0 : -ECHILD;
	if (r == 0)
		(void)vm_persist_locked(vm);
	if (r < 0)
		snprintf(err, errlen, "%s", vm->reason);
	pthread_mutex_unlock(&vm->lock);
	log_info("vm %s: QEMU %d up in %llu ms (%u MiB base, %s)", vm->spec.name, (int)vm->pid,
		 (unsigned long long)((now_ns() - t0) / 1000000),
		 (unsigned)(vm->env.section_size * vm->spec.nbase >> 20), vm->env.accel);
	return r;
fail:
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_STARTING)
		vm_set_failed(vm, "%s", err);
	pthread_mutex_unlock(&vm->lock);
	if (vm->pid > 0)
		kill(vm->pid, SIGKILL);
	return r;
}

int vm_stop(struct vm *vm, int timeout_ms)
{
	struct timespec ts;
	int r = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->pid <= 0 || vm->exited) {
		if (vm->state == VM_CREATED || vm->state == VM_STARTING)
			vm->state = VM_STOPPED;
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	if (vm->state != VM_FAILED && vm->state != VM_MIGRATED)
		vm->state = VM_STOPPING;
	(void)vm_persist_locked(vm);   /* a restarted agent finishes the stop */
	pthread_mutex_unlock(&vm->lock);

	/* Ask QEMU to quit; the guest's state does not matter to us. */
	if (vm->qmp)
		(void)qmp_execute(vm->qmp, "quit", NULL, 2000, NULL);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&vm->lock);
	while (!vm->exited && r == 0)
		r = pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	if (!vm->exited) {
		kill(vm->pid, SIGKILL);
		while (!vm->exited)
			pthread_cond_wait(&vm->cond, &vm->lock);
	}
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/* Stop the shim and supervisor threads. */
static void join_threads(struct vm *vm)
{
	uint64_t one = 1;

	if (vm->stop_efd >= 0)
		(void)!write(vm->stop_efd, &one, sizeof(one));
	if (vm->shim_thread_on)
		pthread_join(vm->shim_thread, NULL);
	if (vm->sup_thread_on)
		pthread_join(vm->sup_thread, NULL);
	vm->shim_thread_on = vm->sup_thread_on = false;
}

/* Close the connections to QEMU (guest channel, hotplug, QMP). */
static void close_conns(struct vm *vm)
{
	vm_guest_close(vm);
	hotplug_free(vm->hp);
	vm->hp = NULL;
	qmp_close(vm->qmp);
	vm->qmp = NULL;
}

/* Close the descriptors and free the struct. */
static void close_and_free(struct vm *vm)
{
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	if (vm->shim_listen >= 0)
		close(vm->shim_listen);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	free(vm->spec.base);
	free(vm->vmem_secs);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->hot_lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}

void vm_free(struct vm *vm)
{
	if (!vm)
		return;
	vm_mig_free(vm);
	vm_health_stop(vm);
	vm_stop(vm, 5000);
	join_threads(vm);
	if (vm->pid > 0 && !vm->exited) {
		kill(vm->pid, SIGKILL);
		if (vm->adopted)
			(void)poll(&(struct pollfd){ .fd = vm->pidfd, .events = POLLIN }, 1, 10000);
		else
			waitpid(vm->pid, NULL, 0);
	}
	close_conns(vm);
	pthread_mutex_lock(&vm->lock);
	vm_release_wait(vm);
	pthread_mutex_unlock(&vm->lock);
	vm_health_free(vm);
	vm_remove_dir(vm);
	close_and_free(vm);
}

void vm_detach(struct vm *vm)
{
	if (!vm)
		return;
	vm_mig_free(vm);
	vm_health_stop(vm);
	(void)vm_persist(vm);
	join_threads(vm);
	close_conns(vm);
	/* The pager stops; faults wait in QEMU for the next agent (the shim keeps the uffds). */
	pager_free(vm->pager);
	vm->pager = NULL;
	vm_health_free(vm);   /* no pager thread calls it back any more */
	pager_backend_free(vm->backend);
	for (unsigned i = 0; i < vm->nregions; i++) {
		if (vm->regions[i].file_fd >= 0)
			close(vm->regions[i].file_fd);
		if (vm->regions[i].uffd >= 0)
			close(vm->regions[i].uffd);
	}
	log_info("vm %s: left running (QEMU %d) for the next agent", vm->spec.name, (int)vm->pid);
	close_and_free(vm);
}

struct vm *vm_ref(struct vm *vm)
{
	atomic_fetch_add(&vm->refs, 1);
	return vm;
}

void vm_unref(struct vm *vm)
{
	if (vm && atomic_fetch_sub(&vm->refs, 1) == 1)
		vm_free(vm);
}

void vm_remove_dir(struct vm *vm)
{
	(void)vm_remove_tree(AT_FDCWD, vm->dir);
}

const char *vm_qmp_path(struct vm *vm)
{
	snprintf(vm->qmp_path_buf, sizeof(vm->qmp_path_buf), "%s/qmp.sock", vm->dir);
	return vm->qmp_path_buf;
}

int vm_set_budget(struct vm *vm, uint64_t bytes)
{
	int r;

	pthread_mutex_lock(&vm->lock);
	r = vm->pager ? pager_set_budget(vm->pager, bytes) : -ESRCH;
	if (r >= 0) {
		vm->spec.budget = bytes;
		(void)vm_persist_locked(vm);
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_flush(struct vm *vm)
{
	struct pager *p = vm_pager_get(vm);
	int r = p ? pager_flush(p) : -ESRCH;

	vm_pager_put(vm, p);
	return r;
}

void vm_render_metrics(struct vm *vm, struct strbuf *sb)
{
	char labels[VM_NAME_MAX + 8];

	snprintf(labels, sizeof(labels), "vm=\"%s\"", vm->spec.name);
	pthread_mutex_lock(&vm->lock);
	if (vm->pager)
		pager_render_metrics(vm->pager, sb, labels);
	pthread_mutex_unlock(&vm->lock);
}

/* ---- accelerator probe --------------------------------------------------- */

const char *vm_probe_accel(const struct vm_env *env)
{
	char *argv[] = {
		(char *)env->qemu, (char *)"-accel", (char *)"kvm", (char *)"-m", (char *)"256M",
		(char *)"-display", (char *)"none", (char *)"-nodefaults", (char *)"-serial",
		(char *)"stdio", (char *)"-no-reboot", (char *)"-kernel", (char *)env->kernel,
		(char *)"-initrd", (char *)env->initrd, (char *)"-append",
		(char *)"console=ttyS0 disagg.poweroff", NULL,
	};
	posix_spawn_file_actions_t fa;
	char buf[65536];
	size_t have = 0;
	int pipefd[2];
	uint64_t deadline;
	bool ok = false;
	pid_t pid;

	if (access("/dev/kvm", R_OK | W_OK) != 0 || pipe2(pipefd, O_CLOEXEC) < 0)
		return "tcg";
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawn(&pid, env->qemu, &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(pipefd[0]);
		close(pipefd[1]);
		return "tcg";
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	/* A working KVM boots this guest to init in well under a second. */
	deadline = now_ns() + 8000000000ull;
	while (!ok && now_ns() < deadline && have < sizeof(buf) - 1) {
		struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = read(pipefd[0], buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		ok = strstr(buf, "disagg-guest-init: up") != NULL;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(pipefd[0]);
	return ok ? "kvm" : "tcg";
}

/* ---- status -------------------------------------------------------------- */

static json_t *section_json(const struct vm_section *s)
{
	if (s->sec.kind == PAGER_SEC_LOCAL)
		return json_pack("{s:s}", "kind", "local");
	/* Where it lives, never the grant; section and generation are unsigned 32-bit. */
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:b}", "kind", "remote", "addr", s->sec.addr,
			 "memnode", (json_int_t)s->sec.grant.memnode_id, "section",
			 (json_int_t)s->sec.grant.section, "generation",
			 (json_int_t)s->sec.grant.generation, "free_on_release", s->free_on_release);
}

json_t *vm_status(struct vm *vm)
{
	json_t *j, *base = json_array(), *hot = json_array();
	struct pager_stats st;
	bool have_stats;

	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->spec.nbase; i++)
		json_array_append_new(base, section_json(&vm->spec.base[i]));
	for (unsigned i = 0; i < vm->nhot; i++) {
		json_t *h;

		if (!vm->hot[i].in_use)
			continue;
		h = section_json(&vm->hot[i].sec);
		json_object_set_new(h, "index", json_integer(i));
		json_object_set_new(h, "plugged", json_boolean(vm->hot[i].plugged));
		if (vm->hot[i].gpa && vm->hot[i].slot >= 0) {
			json_object_set_new(h, "gpa", json_integer((json_int_t)vm->hot[i].gpa));
			json_object_set_new(h, "slot", json_integer(vm->hot[i].slot));
		}
		json_array_append_new(hot, h);
	}
	/* virtio-mem: the plugged slots of the device, in order (index = slot). */
	for (unsigned i = 0; vm->vmem_secs && i < vm->vmem_plugged; i++) {
		json_t *h = section_json(&vm->vmem_secs[i]);

		json_object_set_new(h, "index", json_integer(i));
		json_object_set_new(h, "plugged", json_true());
		json_array_append_new(hot, h);
	}
	have_stats = vm->pager != NULL;
	if (have_stats)
		pager_stats(vm->pager, &st);
	j = json_pack("{s:s, s:s, s:i, s:i, s:s, s:s, s:I, s:I, s:o, s:o, s:I}", "name",
		      vm->spec.name, "state", vm_state_name(vm->state), "pid", (int)vm->pid,
		      "vcpus", (int)vm->spec.vcpus, "accel", vm->env.accel, "hotplug",
		      vm->spec.hotplug == VM_HOTPLUG_DIMM ? "dimm" : "virtio-mem", "section_size",
		      (json_int_t)vm->env.section_size, "memory_bytes",
		      (json_int_t)(vm->env.section_size * (vm->spec.nbase + vm_hot_count(vm))),
		      "sections", base, "hot_sections", hot, "guest_memtotal_kb",
		      (json_int_t)vm->guest_memtotal_kb);
	if (vm->spec.budget == UINT64_MAX)
		json_object_set_new(j, "cache_bytes", json_null());
	else
		json_object_set_new(j, "cache_bytes", json_integer((json_int_t)vm->spec.budget));
	if (vm->state == VM_FAILED || vm->state == VM_DEGRADED)
		json_object_set_new(j, "reason", json_string(vm->reason));
	pthread_mutex_unlock(&vm->lock);
	if (have_stats)
		json_object_set_new(
			j, "pager",
			json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "mode",
				  pager_mode_name(st.mode), "dirty_pages", (json_int_t)st.dirty_pages,
				  "faults", (json_int_t)st.faults,
				  "pages_fetched", (json_int_t)st.pages_fetched, "pages_evicted",
				  (json_int_t)st.pages_evicted, "pages_written_back",
				  (json_int_t)st.pages_written_back, "resident_pages",
				  (json_int_t)st.resident_pages, "max_resident_pages",
				  (json_int_t)st.max_resident_pages, "errors", (json_int_t)st.errors,
				  "failed", st.failed));
	if (have_stats)
	{
		json_t *pj = json_object_get(j, "pager");

		json_object_set_new(pj, "faults_missing", json_integer((json_int_t)st.faults_missing));
		json_object_set_new(pj, "pages_hot_prefetched",
				    json_integer((json_int_t)st.pages_hot_prefetched));
		json_object_set_new(pj, "writebacks_fenced",
				    json_integer((json_int_t)st.writebacks_fenced));
	}
	vm_mig_status(vm, j);
	return j;
}
