// SPDX-License-Identifier: MIT
/*
 * The virtio-blk configuration space (vu_blkcfg.h; virtio 1.x, struct
 * virtio_blk_config, little-endian).
 */
#include "vu_blkcfg.h"

#include <string.h>

#include "vu_ring.h"

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

void vu_blk_config(uint8_t cfg[VU_MAX_CONFIG], uint64_t capacity, uint16_t num_queues,
		   uint8_t writeback)
{
	uint64_t sectors = capacity / 512;

	memset(cfg, 0, VU_MAX_CONFIG);
	memcpy(cfg, &sectors, 8);                    /* capacity */
	/*
	 * size_max (offset 8) stays 0 and SIZE_MAX unoffered: SeaBIOS keeps it
	 * in 16 bits, and 1 MiB there makes it send empty reads for ever.
	 */
	put32(cfg + 12, VU_MAX_SEGS - 2);            /* seg_max */
	put32(cfg + 20, 512);                        /* blk_size */
	cfg[32] = writeback;                         /* writeback */
	memcpy(cfg + 34, &num_queues, 2);            /* num_queues */
	put32(cfg + 36, VU_BLK_MAX_DZ_SECTORS);      /* max_discard_sectors */
	put32(cfg + 40, 1);                          /* max_discard_seg */
	put32(cfg + 44, 8);                          /* discard_sector_alignment (4 KiB) */
	put32(cfg + 48, VU_BLK_MAX_DZ_SECTORS);      /* max_write_zeroes_sectors */
	put32(cfg + 52, 1);                          /* max_write_zeroes_seg */
	cfg[56] = 1;                                 /* write_zeroes_may_unmap */
}
