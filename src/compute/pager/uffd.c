// SPDX-License-Identifier: MIT
/*
 * userfaultfd and tmpfs file operations (uffd.h): thin wrappers over the
 * syscalls and ioctls that turn -1/errno into -errno. No policy.
 */
#include "uffd.h"

#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "uffd_compat.h"

/* ---- userfaultfd ---------------------------------------------------------- */

static int uffd_raw(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, flags), e, dev;

	if (fd >= 0)
		return fd;
	e = errno;
	/* Kernels with vm.unprivileged_userfaultfd=0 still offer /dev/userfaultfd. */
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -e;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	e = errno;
	close(dev);
	return fd < 0 ? -e : fd;
}

int pager_uffd_probe(uint64_t *ret_features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = uffd_raw(O_CLOEXEC), r = 0;

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		r = -errno;
	close(fd);
	if (r == 0)
		*ret_features = api.features;
	return r;
}

int pager_uffd_open(enum pager_dirty_mode mode, int *ret_fd, uint64_t *ret_features)
{
	uint64_t have, need = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |
			      UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_REMOVE |
			      UFFD_FEATURE_THREAD_ID;
	struct uffdio_api api = { .api = UFFD_API };
	int fd, r;

	if (mode == PAGER_DIRTY_ASYNC_WP)
		need |= UFFD_FEATURE_WP_ASYNC;
	r = pager_uffd_probe(&have);
	if (r < 0)
		return r;
	if ((have & need) != need)
		return -EOPNOTSUPP;
	fd = uffd_raw(O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return fd;
	api.features = need;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	/* The kernel answers with everything it supports; report what is enabled. */
	*ret_features = api.features & need;
	return 0;
}

int pager_uffd_register(int uffd, uint64_t addr, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { .start = addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	uint64_t want = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_WAKE) |
			(1ull << _UFFDIO_WRITEPROTECT) | (1ull << _UFFDIO_ZEROPAGE);

	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	return (reg.ioctls & want) == want ? 0 : -EOPNOTSUPP;
}

/* ---- messages and ioctls ---------------------------------------------------- */

unsigned uffd_read(int uffd, struct uffd_msg *msgs, unsigned max)
{
	ssize_t n = read(uffd, msgs, (size_t)max * sizeof(*msgs));

	return n > 0 ? (unsigned)((size_t)n / sizeof(*msgs)) : 0;
}

int uffd_wake(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range rg = { .start = start, .len = len };

	return ioctl(uffd, UFFDIO_WAKE, &rg) < 0 ? -errno : 0;
}

static int wp_ioctl(int uffd, uint64_t start, uint64_t len, uint64_t mode)
{
	struct uffdio_writeprotect wp = { .range = { .start = start, .len = len }, .mode = mode };

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

int uffd_writeprotect(int uffd, uint64_t start, uint64_t len, bool protect)
{
	/* WP|DONTWAKE is EINVAL */
	return wp_ioctl(uffd, start, len, protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0);
}

int uffd_unprotect_nowake(int uffd, uint64_t start, uint64_t len)
{
	return wp_ioctl(uffd, start, len, UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
}

int uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len, uint64_t mode,
	      int64_t *ret_done)
{
	struct uffdio_copy c = { .dst = dst, .src = (uintptr_t)src, .len = len, .mode = mode };
	int rc = ioctl(uffd, UFFDIO_COPY, &c) < 0 ? -errno : 0;

	*ret_done = c.copy;
	return rc;
}

int uffd_zeropage(int uffd, uint64_t dst, uint64_t len, int64_t *ret_done)
{
	struct uffdio_zeropage z = { .range = { .start = dst, .len = len } };
	int rc = ioctl(uffd, UFFDIO_ZEROPAGE, &z) < 0 ? -errno : 0;

	*ret_done = z.zeropage;
	return rc;
}

long uffd_scan_written(int pagemap_fd, uint64_t start, uint64_t end, struct page_region *vec,
		       unsigned nvec, uint64_t *ret_walk_end)
{
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = start,
		.end = end,
		.vec = (uintptr_t)vec,
		.vec_len = nvec,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	long nreg = ioctl(pagemap_fd, PAGEMAP_SCAN, &a);

	if (nreg < 0)
		return -errno;
	*ret_walk_end = a.walk_end;
	return nreg;
}

/* ---- the tmpfs file ------------------------------------------------------- */

int uffd_file_punch(int fd, uint64_t off, uint64_t len)
{
	int rc = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);

	return rc < 0 ? -errno : 0;
}

bool uffd_file_has_data(int fd, uint64_t off, uint64_t len)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);

	if (d < 0)
		return errno != ENXIO;   /* ENXIO: only holes up to EOF; else assume data */
	return (uint64_t)d < off + len;
}

int64_t uffd_file_seek(int fd, uint64_t off, bool data)
{
	off_t r = lseek(fd, (off_t)off, data ? SEEK_DATA : SEEK_HOLE);

	return r < 0 ? -errno : (int64_t)r;
}
