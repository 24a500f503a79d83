// SPDX-License-Identifier: MIT
/*
 * Child process for test_shim: maps FILE (LEN bytes, MAP_SHARED) the way
 * QEMU maps guest RAM, then reads every page and prints one line:
 *   "ok SUM" (the sum of the first byte of every page), or
 *   "mmap-failed ERRNO".
 * Built without sanitizers: it runs with libdisagg-shim.so preloaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t len, sum = 0;
	uint8_t *p;
	int fd;

	if (argc != 3)
		return 2;
	len = strtoull(argv[2], NULL, 0);
	fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 3;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		printf("mmap-failed %d\n", errno);
		return 0;
	}
	for (size_t off = 0; off < len; off += 4096)
		sum += p[off];
	munmap(p, len);
	printf("ok %zu\n", sum);
	return 0;
}
