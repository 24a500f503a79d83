/* SPDX-License-Identifier: MIT */
/*
 * The dirty log of a vhost-user back end (vu_log.c): while QEMU migrates
 * the VM it asks for VHOST_F_LOG_ALL and hands over a shared bitmap
 * (SET_LOG_BASE, protocol feature LOG_SHMFD), one bit per 4 KiB page of
 * guest-physical memory, and the back end sets the bit of every page it
 * writes: the guest's buffers of a read, the status byte, the used ring
 * (at the address SET_VRING_ADDR gave for logging). QEMU then sends those
 * pages again. With disagg's migration (x-ignore-shared) guest RAM is not
 * sent by QEMU at all, but the log is kept all the same: it is the
 * protocol's contract, and what QEMU checks before it migrates at all.
 */
#ifndef DISAGG_VU_LOG_H
#define DISAGG_VU_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VU_LOG_PAGE 4096u

struct vu_log {
	uint8_t *bits;           /* the bitmap, NULL when there is none */
	uint64_t len;            /* its bytes */
	void *map;               /* the mmap (from the file's start) */
	size_t maplen;
};

/* Map the log: fd (borrowed), mmap_size bytes of bitmap at mmap_offset. -EINVAL, -errno. */
int vu_log_set(struct vu_log *l, int fd, uint64_t size, uint64_t offset);
void vu_log_clear(struct vu_log *l);
/* Mark guest-physical [gpa, gpa + len) written (pages past the bitmap are ignored). */
void vu_log_write(const struct vu_log *l, uint64_t gpa, uint64_t len);

#endif /* DISAGG_VU_LOG_H */
