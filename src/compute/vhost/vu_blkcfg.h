/* SPDX-License-Identifier: MIT */
/*
 * The virtio-blk configuration space the back end shows QEMU
 * (vu_blkcfg.c; GET_CONFIG), and the limits it states.
 */
#ifndef DISAGG_VU_BLKCFG_H
#define DISAGG_VU_BLKCFG_H

#include <stdint.h>

#include "vu_msg.h"

#define VU_BLK_MAX_DZ_SECTORS (1u << 21)   /* 1 GiB per discard or write-zeroes */

/* Render the config space of a disk of `capacity` bytes (a multiple of 512). */
void vu_blk_config(uint8_t cfg[VU_MAX_CONFIG], uint64_t capacity, uint16_t num_queues,
		   uint8_t writeback);

#endif /* DISAGG_VU_BLKCFG_H */
