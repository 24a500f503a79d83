// SPDX-License-Identifier: MIT
/*
 * Bare baselines of bench-pager (baseline.h): a raw userfaultfd handler and
 * a TCP loopback round trip. Nothing of the pager is used here.
 */
#include "baseline.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net.h"

#define PS 4096u

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double median_us(uint64_t *lat, unsigned n)
{
	qsort(lat, n, sizeof(*lat), cmp_u64);
	return n ? (double)lat[n / 2] / 1000.0 : 0;
}

static void pin_cpu0(bool pin)
{
	cpu_set_t set;

	if (!pin)
		return;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* ---- raw userfaultfd ---------------------------------------------------------- */

struct raw_uffd {
	int uffd, stopfd;
	bool pin;
	uint8_t *page;               /* the ready page */
	int err;
};

static void *raw_handler(void *arg)
{
	struct raw_uffd *h = arg;
	struct pollfd pfd[2] = { { h->uffd, POLLIN, 0 }, { h->stopfd, POLLIN, 0 } };

	pin_cpu0(h->pin);
	for (;;) {
		struct uffd_msg m;
		struct uffdio_copy cp;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
			h->err = -errno;
			return NULL;
		}
		if (pfd[1].revents)
			return NULL;
		/* Non-blocking: poll may report a fault another read already took. */
		if (read(h->uffd, &m, sizeof(m)) != sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		cp = (struct uffdio_copy){ .dst = m.arg.pagefault.address & ~(uint64_t)(PS - 1),
					   .src = (uintptr_t)h->page, .len = PS };
		if (ioctl(h->uffd, UFFDIO_COPY, &cp) < 0 && errno != EEXIST)
			h->err = -errno;
	}
}

double baseline_uffd_fault_us(uint64_t len, unsigned n, bool pin)
{
	struct raw_uffd h = { .uffd = -1, .stopfd = -1, .pin = pin };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	uint64_t nclu = len / PS / 16, *lat = NULL, *perm = NULL, x = 0x9e3779b97f4a7c15ull;
	uint8_t *mem = MAP_FAILED;
	pthread_t th;
	bool started = false;
	int memfd = -1, r = 0;
	double res = -ENOMEM;

	n = (unsigned)(n < nclu ? n : nclu);
	lat = calloc(n ? n : 1, sizeof(*lat));
	perm = malloc((nclu ? nclu : 1) * sizeof(*perm));
	h.page = aligned_alloc(PS, PS);
	if (!lat || !perm || !h.page)
		goto out;
	memset(h.page, 0x5a, PS);
	memfd = memfd_create("uffd-floor", MFD_CLOEXEC);
	h.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	h.stopfd = eventfd(0, EFD_CLOEXEC);
	if (memfd < 0 || h.uffd < 0 || h.stopfd < 0 || ftruncate(memfd, (off_t)len) < 0 ||
	    ioctl(h.uffd, UFFDIO_API, &api) < 0) {
		r = -errno;
		goto out;
	}
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	reg.range = (struct uffdio_range){ (uintptr_t)mem, len };
	if (ioctl(h.uffd, UFFDIO_REGISTER, &reg) < 0) {
		r = -errno;
		goto out;
	}
	r = -pthread_create(&th, NULL, raw_handler, &h);
	if (r < 0)
		goto out;
	started = true;
	for (uint64_t i = 0; i < nclu; i++)
		perm[i] = i;
	for (uint64_t i = nclu - 1; nclu && i > 0; i--) {
		uint64_t j, t;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = x % (i + 1);
		t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (unsigned i = 0; i < n; i++) {
		uint64_t pg = perm[i] * 16 + (x >> 8) % 16, t0 = now_ns();
		volatile uint8_t v = mem[pg * PS];

		lat[i] = now_ns() - t0;
		(void)v;
		x = x * 6364136223846793005ull + 1;
	}
out:
	if (started) {
		uint64_t one = 1;

		(void)!write(h.stopfd, &one, sizeof(one));
		pthread_join(th, NULL);
	}
	if (r == 0 && h.err)
		r = h.err;
	if (r == 0)
		res = median_us(lat, n);
	else
		res = r;
	if (mem != MAP_FAILED)
		munmap(mem, len);
	if (h.uffd >= 0)
		close(h.uffd);
	if (h.stopfd >= 0)
		close(h.stopfd);
	if (memfd >= 0)
		close(memfd);
	free(h.page);
	free(lat);
	free(perm);
	return res;
}

/* ---- TCP loopback round trip ------------------------------------------------- */

struct echo {
	int lfd;
	size_t req, reply;
	bool pin;
};

static void *echo_main(void *arg)
{
	struct echo *e = arg;
	uint8_t *rq = malloc(e->req), *rp = calloc(1, e->reply);
	int fd = accept(e->lfd, NULL, NULL);

	pin_cpu0(e->pin);
	if (fd >= 0 && rq && rp) {
		(void)net_set_nodelay(fd);
		while (net_read_full(fd, rq, e->req) == 0 && net_write_full(fd, rp, e->reply) == 0)
			;
	}
	if (fd >= 0)
		close(fd);
	free(rq);
	free(rp);
	return NULL;
}

double baseline_tcp_rtt_us(size_t req, size_t reply, unsigned n, bool pin)
{
	struct echo e = { .lfd = -1, .req = req, .reply = reply, .pin = pin };
	char addr[64];
	uint8_t *rq = calloc(1, req), *rp = malloc(reply);
	uint64_t *lat = calloc(n ? n : 1, sizeof(*lat));
	pthread_t th;
	int fd = -1, r;
	double res;

	if (!rq || !rp || !lat) {
		r = -ENOMEM;
		goto out;
	}
	e.lfd = net_listen_tcp("127.0.0.1:0", false);
	if (e.lfd < 0) {
		r = e.lfd;
		goto out;
	}
	r = net_local_addr(e.lfd, addr, sizeof(addr));
	if (r < 0)
		goto out;
	r = -pthread_create(&th, NULL, echo_main, &e);
	if (r < 0)
		goto out;
	fd = net_connect_tcp(addr, 5000);
	if (fd < 0) {
		r = fd;
		shutdown(e.lfd, SHUT_RDWR);
		pthread_join(th, NULL);
		goto out;
	}
	(void)net_set_nodelay(fd);
	for (unsigned i = 0; i < n && r == 0; i++) {
		uint64_t t0 = now_ns();

		r = net_write_full(fd, rq, req);
		if (r == 0)
			r = net_read_full(fd, rp, reply);
		lat[i] = now_ns() - t0;
	}
	close(fd);
	fd = -1;
	pthread_join(th, NULL);
out:
	res = r < 0 ? r : median_us(lat, n);
	if (fd >= 0)
		close(fd);
	if (e.lfd >= 0)
		close(e.lfd);
	free(rq);
	free(rp);
	free(lat);
	return res;
}
