/* SPDX-License-Identifier: MIT */
/*
 * Block devices as volumes, the kind "block" (volume_block.c): what the
 * store (volume.c) keeps of each device, and its operations.
 */
#ifndef DISAGG_DEVNODE_VOLUME_BLOCK_H
#define DISAGG_DEVNODE_VOLUME_BLOCK_H

#include <stdint.h>

#include "volume_kind.h"

struct dn_blockdev;

extern const struct dn_vol_kind dn_vol_block_kind;

/*
 * Open the block device at path O_EXCL as volume `name` (valid, not
 * taken), its key and epoch from the state file NAME.blk in dirfd (kept
 * for writing them; the caller's); new_key is its key when there is no
 * state file yet, or one of another device. Errors as dn_volume_add_block.
 */
int dn_blockdev_open(int dirfd, const char *name, const char *path, uint64_t new_key,
		     struct dn_blockdev **ret);
void dn_blockdev_free(struct dn_blockdev *b);   /* accepts NULL */
const char *dn_blockdev_name(const struct dn_blockdev *b);

#endif /* DISAGG_DEVNODE_VOLUME_BLOCK_H */
